//! Storage fault injection: every mutating operation, with the next commit
//! failing, must report the backend's reason, write nothing, change nothing in
//! memory, and succeed when retried.

mod common;

use std::sync::Arc;

use common::*;
use mlskit::{
    Client, GroupExtension, GroupOptions, MlsError, ProposalMode, ReceivedMessage, StagedCommit,
};

/// Runs `op` with the next commit failing, checks that it failed with the
/// injected reason and changed nothing, then retries it and returns the result.
fn faulted<T>(
    what: &str,
    store: &FaultyStore,
    watch: &[&mlskit::Group],
    op: impl Fn() -> Result<T, MlsError>,
) -> T {
    let before = store.snapshot();
    let observed: Vec<Observed> = watch.iter().map(|g| Observed::of(g)).collect();
    let commits = store.commits();
    store.arm();
    let err = match op() {
        Ok(_) => panic!("{what}: must fail while the store fails"),
        Err(e) => e,
    };
    assert!(
        is_storage_backend_injected(&err),
        "{what}: expected StorageBackend with the injected reason, got {err:?}"
    );
    assert!(!store.is_armed(), "{what}: the fault was never hit");
    assert_eq!(
        store.commits(),
        commits + 1,
        "{what}: exactly one commit call"
    );
    assert!(
        store.snapshot() == before,
        "{what}: the store changed after a failed commit"
    );
    for (g, o) in watch.iter().zip(&observed) {
        assert_eq!(
            &Observed::of(g),
            o,
            "{what}: group state changed after failure"
        );
    }
    assert_eq!(
        store.commits(),
        commits + 1,
        "{what}: reads must not commit"
    );
    let out = op().unwrap_or_else(|e| panic!("{what}: retry failed: {e:?}"));
    assert_eq!(
        store.commits(),
        commits + 2,
        "{what}: the retry must make exactly one commit call"
    );
    out
}

/// Runs a read-only `op` and checks it made no commit call.
fn no_writes<T>(what: &str, store: &FaultyStore, op: impl FnOnce() -> T) -> T {
    let commits = store.commits();
    let before = store.snapshot();
    let out = op();
    assert_eq!(store.commits(), commits, "{what}: read-only call committed");
    assert!(store.snapshot() == before, "{what}: store changed");
    out
}

fn staged(msg: ReceivedMessage) -> Arc<StagedCommit> {
    match msg {
        ReceivedMessage::Commit { commit } => commit,
        _ => panic!("expected a commit"),
    }
}

fn new_member(
    make_store: &dyn Fn(usize) -> Arc<FaultyStore>,
    i: usize,
) -> (Arc<FaultyStore>, Arc<Client>) {
    let store = make_store(i);
    let client = client_on(&store, &format!("m{i}"));
    (store, client)
}

fn run_matrix(make_store: &dyn Fn(usize) -> Arc<FaultyStore>) {
    let mut ms = build_group(2, make_store);
    let gid = ms[0].group.id();

    // create_key_packages, key_packages (read), delete_key_package, prune.
    let (s2, c2) = new_member(make_store, 2);
    let kp2 = faulted("create_key_packages", &s2, &[], || {
        c2.create_key_packages(1, None)
    })
    .remove(0);
    let extra = c2.create_key_packages(1, None).unwrap().remove(0);
    let inventory = no_writes("key_packages", &s2, || c2.key_packages().unwrap());
    assert_eq!(inventory.len(), 2);
    let info = no_writes("validate_key_package", &s2, || {
        mlskit::validate_key_package(extra.clone()).unwrap()
    });
    assert!(faulted("delete_key_package", &s2, &[], || {
        c2.delete_key_package(info.hash_ref.clone())
    }));
    assert_eq!(c2.key_packages().unwrap().len(), 1);
    // Nothing expired: no write at all.
    assert_eq!(
        no_writes("prune (none)", &s2, || c2
            .prune_expired_key_packages()
            .unwrap()),
        0
    );
    no_writes("signature_public_key", &s2, || {
        c2.signature_public_key(None).unwrap()
    });
    // Every scheme's key was stored when the identity was created: asking
    // for one never writes (tests/handles.rs races two threads on it).
    let p256 = no_writes("signature_public_key(P256)", &s2, || {
        c2.signature_public_key(Some(mlskit::Ciphersuite::P256Aes128gcmP256))
            .unwrap()
    });
    assert_eq!(
        no_writes("signature_public_key(P256 again)", &s2, || c2
            .signature_public_key(Some(mlskit::Ciphersuite::P256Aes128gcmP256))
            .unwrap()),
        p256
    );
    // prune_expired_key_packages with one expired key package.
    c2.create_key_packages(
        1,
        Some(mlskit::KeyPackageOptions {
            lifetime_seconds: Some(1),
            ..Default::default()
        }),
    )
    .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(2100));
    assert_eq!(
        faulted("prune_expired_key_packages", &s2, &[], || c2
            .prune_expired_key_packages()),
        1
    );
    assert_eq!(c2.key_packages().unwrap().len(), 1);

    // store_external_psk / delete_external_psk on every member.
    let psk_id = b"psk-1".to_vec();
    faulted("store_external_psk", &ms[0].store, &[], || {
        ms[0]
            .client
            .store_external_psk(psk_id.clone(), b"secret".to_vec())
    });
    faulted("delete_external_psk", &ms[0].store, &[], || {
        ms[0].client.delete_external_psk(psk_id.clone())
    });
    for c in [&ms[0].client, &ms[1].client, &c2] {
        c.store_external_psk(psk_id.clone(), b"secret".to_vec())
            .unwrap();
    }

    // create_group (and delete_group of it).
    let g2 = faulted("create_group", &ms[0].store, &[], || {
        ms[0].client.create_group(Some(GroupOptions {
            group_id: Some(b"second".to_vec()),
            ..Default::default()
        }))
    });
    assert_eq!(ms[0].client.group_ids().unwrap().len(), 2);
    drop(g2);

    // add_members, merge_pending_commit, process_message (commit: no write),
    // StagedCommit::merge, join_group.
    let bundle = faulted("add_members", &ms[0].store, &[&ms[0].group], || {
        ms[0].group.add_members(vec![kp2.clone()])
    });
    no_writes("pending_commit", &ms[0].store, || {
        assert!(ms[0].group.pending_commit().unwrap().is_some())
    });
    faulted(
        "merge_pending_commit",
        &ms[0].store,
        &[&ms[0].group],
        || ms[0].group.merge_pending_commit(),
    );
    let sc = no_writes("process_message(commit)", &ms[1].store, || {
        staged(ms[1].group.process_message(bundle.commit.clone()).unwrap())
    });
    faulted("StagedCommit::merge", &ms[1].store, &[&ms[1].group], || {
        sc.merge()
    });
    let welcome = bundle.welcome.clone().unwrap();
    no_writes("inspect_welcome", &s2, || {
        c2.inspect_welcome(welcome.clone(), None).unwrap()
    });
    let g = faulted("join_group", &s2, &[], || {
        c2.join_group(welcome.clone(), None, None)
    });
    assert_eq!(c2.key_packages().unwrap().len(), 0, "key package consumed");
    ms.push(Member {
        name: "m2".into(),
        store: s2,
        client: c2,
        group: g,
    });
    check_messaging(&[&ms[0], &ms[1], &ms[2]], 0);
    assert_agree(&[&ms[0], &ms[1], &ms[2]]);

    // encrypt, process_message(application).
    let ct = faulted("encrypt", &ms[0].store, &[&ms[0].group], || {
        ms[0].group.encrypt(b"x".to_vec(), b"a".to_vec())
    });
    let got = faulted(
        "process_message(application)",
        &ms[1].store,
        &[&ms[1].group],
        || ms[1].group.process_message(ct.clone()),
    );
    assert!(matches!(got, ReceivedMessage::Application { message } if message.plaintext == b"x"));
    let _ = ms[2].group.process_message(ct).unwrap();

    // self_update + clear_pending_commit.
    let up = faulted("self_update", &ms[1].store, &[&ms[1].group], || {
        ms[1].group.self_update()
    });
    faulted(
        "clear_pending_commit",
        &ms[1].store,
        &[&ms[1].group],
        || ms[1].group.clear_pending_commit(),
    );
    assert!(ms[1].group.pending_commit().unwrap().is_none());
    drop(up);
    let up = ms[1].group.self_update().unwrap();
    commit_to_all(&ms, 1, &up);
    assert_agree(&[&ms[0], &ms[1], &ms[2]]);

    // update_custom_extensions.
    let ext = vec![GroupExtension {
        extension_type: CUSTOM_EXTENSION,
        data: b"v1".to_vec(),
    }];
    let b = faulted(
        "update_custom_extensions",
        &ms[0].store,
        &[&ms[0].group],
        || ms[0].group.update_custom_extensions(ext.clone()),
    );
    commit_to_all(&ms, 0, &b);
    assert_eq!(ms[2].group.custom_extensions().unwrap(), ext);

    // Every proposal kind; each delivered with process_message(proposal) faulted.
    let deliver = |ms: &[Member], from: usize, msg: &[u8], what: &str| {
        for (i, m) in ms.iter().enumerate() {
            if i == from {
                continue;
            }
            let p = faulted(what, &m.store, &[&m.group], || {
                m.group.process_message(msg.to_vec())
            });
            assert!(matches!(p, ReceivedMessage::Proposal { .. }), "{what}");
        }
    };
    let p = faulted("propose_custom", &ms[0].store, &[&ms[0].group], || {
        ms[0]
            .group
            .propose_custom(CUSTOM_PROPOSAL, b"payload".to_vec(), ProposalMode::ByValue)
    });
    deliver(&ms, 0, &p.message, "process_message(custom proposal)");
    let p = faulted(
        "propose_custom_extensions",
        &ms[0].store,
        &[&ms[0].group],
        || {
            ms[0].group.propose_custom_extensions(
                vec![GroupExtension {
                    extension_type: CUSTOM_EXTENSION,
                    data: b"v2".to_vec(),
                }],
                ProposalMode::ByReference,
            )
        },
    );
    deliver(&ms, 0, &p.message, "process_message(extensions proposal)");
    let p = faulted(
        "propose_external_psk",
        &ms[0].store,
        &[&ms[0].group],
        || {
            ms[0]
                .group
                .propose_external_psk(psk_id.clone(), ProposalMode::ByReference)
        },
    );
    deliver(&ms, 0, &p.message, "process_message(psk proposal)");
    let p = faulted("propose_self_update", &ms[2].store, &[&ms[2].group], || {
        ms[2].group.propose_self_update()
    });
    deliver(&ms, 2, &p.message, "process_message(update proposal)");
    let pending = no_writes("pending_proposals", &ms[1].store, || {
        ms[1].group.pending_proposals().unwrap()
    });
    assert_eq!(pending.len(), 4);
    let b = faulted(
        "commit_pending_proposals",
        &ms[1].store,
        &[&ms[1].group],
        || ms[1].group.commit_pending_proposals(),
    );
    let info = ms[1].group.pending_commit().unwrap().unwrap();
    assert_eq!(info.custom_proposals.len(), 1);
    assert_eq!(info.psk_ids, vec![psk_id.clone()]);
    assert_eq!(info.updates.len(), 1);
    commit_to_all(&ms, 1, &b);
    assert_agree(&[&ms[0], &ms[1], &ms[2]]);
    check_messaging(&[&ms[0], &ms[1], &ms[2]], 2);

    // clear_pending_proposals.
    let p = ms[0]
        .group
        .propose_custom(
            CUSTOM_PROPOSAL,
            b"drop me".to_vec(),
            ProposalMode::ByReference,
        )
        .unwrap();
    faulted(
        "clear_pending_proposals",
        &ms[0].store,
        &[&ms[0].group],
        || ms[0].group.clear_pending_proposals(),
    );
    drop(p);

    // propose_add, propose_remove, leave.
    let (s3, c3) = new_member(make_store, 3);
    let kp3 = c3.create_key_packages(1, None).unwrap().remove(0);
    let p = faulted("propose_add", &ms[0].store, &[&ms[0].group], || {
        ms[0].group.propose_add(kp3.clone(), ProposalMode::ByValue)
    });
    deliver(&ms, 0, &p.message, "process_message(add proposal)");
    let leave = faulted("leave", &ms[2].store, &[&ms[2].group], || {
        ms[2].group.leave()
    });
    for m in &ms[..2] {
        let _ = process_proposal(&m.group, &leave);
    }
    let b = ms[1].group.commit_pending_proposals().unwrap();
    ms[1].group.merge_pending_commit().unwrap();
    process_and_merge(&ms[0].group, &b.commit);
    let sc = staged(ms[2].group.process_message(b.commit.clone()).unwrap());
    assert!(sc.info().removes_us);
    faulted(
        "StagedCommit::merge (removes us)",
        &ms[2].store,
        &[&ms[2].group],
        || sc.merge(),
    );
    assert!(!ms[2].group.is_active().unwrap());
    let g3 = c3.join_group(b.welcome.unwrap(), None, None).unwrap();
    ms.pop();
    ms.push(Member {
        name: "m3".into(),
        store: s3,
        client: c3,
        group: g3,
    });
    check_messaging(&[&ms[0], &ms[1], &ms[2]], 2);
    let idx3 = ms[2].group.own_index().unwrap();
    let p = faulted("propose_remove", &ms[0].store, &[&ms[0].group], || {
        ms[0].group.propose_remove(idx3, ProposalMode::ByReference)
    });
    assert!(!p.proposal_ref.is_empty());
    ms[0].group.clear_pending_proposals().unwrap();

    // remove_members.
    let b = faulted("remove_members", &ms[0].store, &[&ms[0].group], || {
        ms[0].group.remove_members(vec![idx3])
    });
    commit_to_all(&ms, 0, &b);
    ms.pop();
    check_messaging(&[&ms[0], &ms[1]], 1);

    // export_group_info / export_ratchet_tree / exporters write nothing;
    // join_by_external_commit.
    let gi = no_writes("export_group_info", &ms[0].store, || {
        ms[0].group.export_group_info(true).unwrap()
    });
    no_writes("export_ratchet_tree", &ms[0].store, || {
        ms[0].group.export_ratchet_tree().unwrap()
    });
    no_writes("export_secret", &ms[0].store, || {
        ms[0].group.export_secret("l".into(), vec![], 16).unwrap()
    });
    no_writes("group_ids", &ms[0].store, || {
        ms[0].client.group_ids().unwrap()
    });
    no_writes("group", &ms[0].store, || {
        ms[0].client.group(gid.clone()).unwrap()
    });
    no_writes("parse_message", &ms[0].store, || {
        mlskit::parse_message(gi.clone()).unwrap()
    });
    let (s4, c4) = new_member(make_store, 4);
    let ej = faulted("join_by_external_commit", &s4, &[], || {
        c4.join_by_external_commit(gi.clone(), None, None)
    });
    for m in &ms {
        process_and_merge(&m.group, &ej.commit);
    }
    ms.push(Member {
        name: "m4".into(),
        store: s4,
        client: c4,
        group: ej.group,
    });
    assert_agree(&[&ms[0], &ms[1], &ms[2]]);
    check_messaging(&[&ms[0], &ms[1], &ms[2]], 2);

    // delete_group.
    faulted("delete_group", &ms[1].store, &[&ms[1].group], || {
        ms[1].client.delete_group(gid.clone())
    });
    assert!(matches!(
        ms[1].client.group(gid.clone()),
        Err(MlsError::UnknownGroup)
    ));
    assert!(ms[1].client.group_ids().unwrap().is_empty());
    check_messaging(&[&ms[0], &ms[2]], 0);
}

#[test]
fn fault_matrix_map_store() {
    run_matrix(&|_| FaultyStore::map());
}

#[test]
fn fault_matrix_sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    run_matrix(&|i| FaultyStore::sqlite(&dir, &format!("m{i}.db")));
}

#[test]
fn opening_a_client_writes_once() {
    let store = FaultyStore::map();
    let _c = client_on(&store, "a");
    assert_eq!(store.commits(), 1);
    let created = store.snapshot();
    let _c2 = Client::new(store.as_backend(), b"a".to_vec(), Some(options())).unwrap();
    assert_eq!(store.commits(), 2, "reopening writes the lease, once");
    let reopened = store.snapshot();
    let changed: Vec<_> = reopened
        .iter()
        .filter(|(k, v)| created.get(*k) != Some(v))
        .collect();
    assert_eq!(changed.len(), 1, "only the lease record changes");
    assert_eq!(created.len(), reopened.len());
    assert!(matches!(
        Client::new(store.as_backend(), b"b".to_vec(), None),
        Err(MlsError::IdentityMismatch)
    ));
    assert_eq!(store.commits(), 2);

    let fresh = FaultyStore::map();
    fresh.arm();
    let err = match Client::new(fresh.as_backend(), b"a".to_vec(), None) {
        Ok(_) => panic!("Client::new must fail"),
        Err(e) => e,
    };
    assert!(is_storage_backend_injected(&err), "{err:?}");
    assert!(fresh.snapshot().is_empty());
    let _ok = client_on(&fresh, "a");
}

#[test]
fn garbage_values_are_storage_corrupt() {
    let ms = build_group(2, |_| FaultyStore::map());
    let gid = ms[0].group.id();
    ms[0].client.create_key_packages(2, None).unwrap();
    let store = &ms[0].store;
    store.set_garbage(true);
    let check = |what: &str, r: Result<(), MlsError>| {
        let e = r.expect_err(what);
        assert!(
            matches!(e, MlsError::StorageCorrupt { .. }),
            "{what}: expected StorageCorrupt, got {e:?}"
        );
    };
    let opened = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Client::new(store.as_backend(), b"m0".to_vec(), Some(options())).map(|_| ())
    }))
    .expect("Client::new panicked on garbage");
    check("Client::new", opened);
    check("key_packages", ms[0].client.key_packages().map(|_| ()));
    check("group_ids", ms[0].client.group_ids().map(|_| ()));
    // Force a reload of the group from storage: a failing op drops the cache.
    store.set_garbage(false);
    store.arm();
    assert!(ms[0].group.encrypt(b"x".to_vec(), vec![]).is_err());
    store.set_garbage(true);
    let commits = store.commits();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        ms[0].group.epoch().map(|_| ())
    }))
    .expect("epoch panicked on garbage");
    check("epoch after reload", r);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        ms[0].group.encrypt(b"x".to_vec(), vec![]).map(|_| ())
    }))
    .expect("encrypt panicked on garbage");
    check("encrypt after reload", r);
    assert_eq!(store.commits(), commits, "nothing written on garbage");
    store.set_garbage(false);
    // Healthy again.
    assert_eq!(ms[0].client.group_ids().unwrap(), vec![gid]);
    check_messaging(&[&ms[0], &ms[1]], 0);
}
