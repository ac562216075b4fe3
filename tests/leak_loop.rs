//! A loop of full scenarios for the leak check (tests/leaks/run.sh runs this
//! binary under valgrind and requires zero definitely-lost bytes). Under plain
//! `cargo test` it is one quick pass. `LEAK_LOOP_ITERS` sets the iterations;
//! `LEAK_LOOP_PLANT=1` plants a 1000-byte leak (to check that the check works).

use std::sync::Arc;

use mlskit::{
    encrypted_storage, memory_storage, sqlite_storage, Client, Group, GroupOptions, MlsError,
    ProposalMode, ReceivedMessage, StorageBackend,
};

fn merge(group: &Group, msg: &[u8]) {
    match group.process_message(msg.to_vec()).unwrap() {
        ReceivedMessage::Commit { commit } => {
            let _ = commit.info();
            commit.merge().unwrap()
        }
        _ => panic!("expected a commit"),
    }
}

fn app(group: &Group, msg: &[u8]) -> Vec<u8> {
    match group.process_message(msg.to_vec()).unwrap() {
        ReceivedMessage::Application { message } => message.plaintext,
        _ => panic!("expected an application message"),
    }
}

/// Three members, every kind of message, errors, a discarded staged commit,
/// a restart and an external join.
fn scenario(stores: [Arc<dyn StorageBackend>; 4], reopen: impl Fn() -> Arc<dyn StorageBackend>) {
    let [sa, sb, sc, sd] = stores;
    let a = Client::new(sa, b"alice".to_vec(), None).unwrap();
    let b = Client::new(sb, b"bob".to_vec(), None).unwrap();
    let c = Client::new(sc, b"carol".to_vec(), None).unwrap();
    let d = Client::new(sd, b"dave".to_vec(), None).unwrap();
    let kb = b.create_key_packages(2, None).unwrap();
    let kc = c.create_key_packages(1, None).unwrap();
    let ga = a
        .create_group(Some(GroupOptions {
            group_id: Some(b"leak group".to_vec()),
            ..Default::default()
        }))
        .unwrap();
    let add = ga.add_members(vec![kb[0].clone()]).unwrap();
    ga.merge_pending_commit().unwrap();
    let welcome = add.welcome.unwrap();
    b.inspect_welcome(welcome.clone(), None).unwrap();
    let gb = b.join_group(welcome, None, None).unwrap();
    // Bob proposes carol; alice commits.
    let p = gb
        .propose_add(kc[0].clone(), ProposalMode::ByReference)
        .unwrap();
    assert!(matches!(
        ga.process_message(p.message).unwrap(),
        ReceivedMessage::Proposal { .. }
    ));
    let commit = ga.commit_pending_proposals().unwrap();
    ga.merge_pending_commit().unwrap();
    merge(&gb, &commit.commit);
    let gc = c.join_group(commit.welcome.unwrap(), None, None).unwrap();
    for (from, to) in [(&ga, &gb), (&gb, &gc), (&gc, &ga)] {
        let m = from.encrypt(vec![7; 100], b"aad".to_vec()).unwrap();
        assert_eq!(app(to, &m), vec![7; 100]);
        assert!(matches!(
            to.process_message(m),
            Err(MlsError::DuplicateMessage)
        ));
    }
    // A staged commit discarded, then the same commit merged.
    let up = gc.self_update().unwrap();
    gc.merge_pending_commit().unwrap();
    match ga.process_message(up.commit.clone()).unwrap() {
        ReceivedMessage::Commit { commit } => commit.discard(),
        _ => panic!("expected a commit"),
    }
    merge(&ga, &up.commit);
    merge(&gb, &up.commit);
    // Errors on every kind of input.
    assert!(mlskit::parse_message(vec![0, 1, 2]).is_err());
    assert!(mlskit::validate_key_package(vec![0xff; 40]).is_err());
    assert!(ga.process_message(vec![0, 1, 0, 1, 9]).is_err());
    assert!(b.join_group(vec![1, 2, 3], None, None).is_err());
    assert!(a.group(b"nope".to_vec()).is_err());
    // External join, then removal.
    let gi = ga.export_group_info(true).unwrap();
    let ext = d.join_by_external_commit(gi, None, None).unwrap();
    for g in [&ga, &gb, &gc] {
        merge(g, &ext.commit);
    }
    let rm = ga.remove_members(vec![1]).unwrap();
    ga.merge_pending_commit().unwrap();
    for g in [&gb, &gc, &ext.group] {
        merge(g, &rm.commit);
    }
    assert!(!gb.is_active().unwrap());
    ga.export_secret("leak".into(), vec![1], 32).unwrap();
    drop((ga, a));
    // Restart alice from her store.
    let a = Client::new(reopen(), b"alice".to_vec(), None).unwrap();
    let ga = a.group(b"leak group".to_vec()).unwrap();
    let m = ga.encrypt(b"after restart".to_vec(), vec![]).unwrap();
    assert_eq!(app(&gc, &m), b"after restart");
    a.delete_group(b"leak group".to_vec()).unwrap();
}

#[test]
fn leak_loop() {
    let iters: usize = std::env::var("LEAK_LOOP_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1);
    if std::env::var_os("LEAK_LOOP_PLANT").is_some() {
        // Self-test of tests/leaks/run.sh: a definite leak it must report.
        std::mem::forget(vec![0x42u8; 1000]);
    }
    let dir = tempfile::tempdir().unwrap();
    for i in 0..iters {
        // Memory stores.
        let sa = memory_storage();
        let keep = sa.clone();
        scenario(
            [sa, memory_storage(), memory_storage(), memory_storage()],
            move || keep.clone(),
        );
        // SQLite stores, alice's encrypted.
        let path = |n: &str| {
            dir.path()
                .join(format!("{n}-{i}.db"))
                .to_string_lossy()
                .into_owned()
        };
        let pa = path("alice");
        let key = vec![i as u8; 32];
        let open_a = {
            let pa = pa.clone();
            let key = key.clone();
            move || encrypted_storage(sqlite_storage(pa.clone()).unwrap(), key.clone()).unwrap()
        };
        scenario(
            [
                open_a(),
                sqlite_storage(path("bob")).unwrap(),
                encrypted_storage(memory_storage(), key).unwrap(),
                sqlite_storage(path("dave")).unwrap(),
            ],
            open_a,
        );
    }
}
