//! Writes the seed corpus and the fixtures of the fuzz targets:
//! `cargo run --example gen_corpus` (run.sh gen).
//!
//! A group at epoch 2 (alice sends plaintext handshakes, carol encrypted ones,
//! bob is the fuzzed receiver), then, without bob, one message of every kind
//! valid for bob's state: application messages, every proposal, commits that
//! add, remove, update, an external commit, Welcomes, GroupInfos, key packages
//! of every ciphersuite, a ratchet tree, bob's own message. Fixtures: bob's,
//! erin's (holds the key package of a seed Welcome) and frank's (a fresh
//! client) stores.

use std::path::Path;
use std::sync::Arc;

use mlskit::{
    Ciphersuite, Client, GroupOptions, JoinOptions, KeyPackageOptions, ProposalMode,
    ReceivedMessage, StorageBackend, WireFormatPolicy,
};
use mlskit_fuzz::{encode_snapshot, SnapStore, GROUP_ID};

fn client(name: &str) -> (Arc<SnapStore>, Arc<Client>) {
    let store = SnapStore::new(Default::default());
    let backend: Arc<dyn StorageBackend> = store.clone();
    let c = Client::new(backend, name.as_bytes().to_vec(), None).unwrap();
    (store, c)
}

fn merge(group: &mlskit::Group, msg: &[u8]) {
    match group.process_message(msg.to_vec()).unwrap() {
        ReceivedMessage::Commit { commit } => commit.merge().unwrap(),
        _ => panic!("expected a commit"),
    }
}

fn kp(c: &Client, cs: Option<Ciphersuite>) -> Vec<u8> {
    c.create_key_packages(
        1,
        Some(KeyPackageOptions {
            ciphersuite: cs,
            lifetime_seconds: None,
            last_resort: false,
        }),
    )
    .unwrap()
    .remove(0)
}

type Seeds = Vec<(&'static str, String, Vec<u8>)>;

/// An MLS message: a seed for the message parsers.
fn message(seeds: &mut Seeds, name: &str, bytes: Vec<u8>) {
    for target in ["parse_message", "process_message"] {
        seeds.push((target, name.to_string(), bytes.clone()));
    }
}

fn framed(mode: u8, a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut out = vec![mode];
    if mode & 1 == 1 {
        out.extend_from_slice(&(a.len() as u16).to_le_bytes());
    }
    out.extend_from_slice(a);
    out.extend_from_slice(b);
    out
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = dir.join("corpus");
    let _ = std::fs::remove_dir_all(&corpus);
    let mut seeds: Seeds = Vec::new();

    let (_sa, a) = client("alice");
    let (sb, b) = client("bob");
    let (_sc, c) = client("carol");
    let (_sd, d) = client("dave");
    let (se, e) = client("erin");
    let (sf, _f) = client("frank");
    let (_sx, x) = client("xavier");

    let ga = a
        .create_group(Some(GroupOptions {
            group_id: Some(GROUP_ID.to_vec()),
            join: mlskit::JoinOptions {
                wire_format_policy: Some(WireFormatPolicy::MixedPlaintext),
                ..Default::default()
            },
            ..Default::default()
        }))
        .unwrap();
    let add = ga.add_members(vec![kp(&b, None), kp(&c, None)]).unwrap();
    ga.merge_pending_commit().unwrap();
    let welcome0 = add.welcome.clone().unwrap();
    let gb = b.join_group(welcome0.clone(), None, None).unwrap();
    let gc = c
        .join_group(
            welcome0.clone(),
            None,
            Some(JoinOptions {
                wire_format_policy: Some(WireFormatPolicy::PureCiphertext),
                ..Default::default()
            }),
        )
        .unwrap();
    let up = gc.self_update().unwrap();
    gc.merge_pending_commit().unwrap();
    merge(&ga, &up.commit);
    merge(&gb, &up.commit);
    assert_eq!(gb.epoch().unwrap(), 2);
    // Old-epoch messages are seeds too (WrongEpoch paths).
    message(&mut seeds, "old_welcome", welcome0);
    message(&mut seeds, "old_commit_add", add.commit);
    message(&mut seeds, "old_commit_update_enc", up.commit);

    // Bob's state from here on is the fixture; bob takes no part below.
    let bob_state = sb.snapshot();

    message(
        &mut seeds,
        "app_plain_sender",
        ga.encrypt(b"hello bob".to_vec(), b"aad".to_vec()).unwrap(),
    );
    message(
        &mut seeds,
        "app_from_carol",
        gc.encrypt(vec![0x61; 300], vec![]).unwrap(),
    );
    let p = ga.propose_self_update().unwrap();
    message(&mut seeds, "proposal_update_plain", p.message);
    ga.clear_pending_proposals().unwrap();
    let p = ga.propose_remove(2, ProposalMode::ByReference).unwrap();
    message(&mut seeds, "proposal_remove_plain", p.message);
    ga.clear_pending_proposals().unwrap();
    let p = ga
        .propose_add(kp(&x, None), ProposalMode::ByReference)
        .unwrap();
    message(&mut seeds, "proposal_add_plain", p.message);
    ga.clear_pending_proposals().unwrap();
    let p = gc.propose_self_update().unwrap();
    message(&mut seeds, "proposal_update_enc", p.message);
    gc.clear_pending_proposals().unwrap();
    let p = gc.propose_remove(0, ProposalMode::ByReference).unwrap();
    message(&mut seeds, "proposal_remove_enc", p.message);
    gc.clear_pending_proposals().unwrap();

    let erin_kp = kp(&e, None);
    let erin_state = se.snapshot();
    let add_e = ga.add_members(vec![erin_kp.clone()]).unwrap();
    ga.clear_pending_commit().unwrap();
    message(&mut seeds, "commit_add_plain", add_e.commit.clone());
    let welcome = add_e.welcome.clone().unwrap();
    message(&mut seeds, "welcome", welcome.clone());
    let tree = ga.export_ratchet_tree().unwrap();
    seeds.push(("join_welcome", "welcome".into(), framed(0, &welcome, &[])));
    seeds.push((
        "join_welcome",
        "welcome_tree".into(),
        framed(1, &welcome, &tree),
    ));
    if let Some(gi) = add_e.group_info.clone() {
        message(&mut seeds, "group_info_from_commit", gi);
    }
    let c_add = gc.add_members(vec![kp(&x, None)]).unwrap();
    gc.clear_pending_commit().unwrap();
    message(&mut seeds, "commit_add_enc", c_add.commit);
    if let Some(w) = c_add.welcome {
        message(&mut seeds, "welcome_other", w.clone());
        seeds.push((
            "join_welcome",
            "welcome_not_ours".into(),
            framed(0, &w, &[]),
        ));
    }
    let rm = ga.remove_members(vec![2]).unwrap();
    ga.clear_pending_commit().unwrap();
    message(&mut seeds, "commit_remove_plain", rm.commit);
    let su = ga.self_update().unwrap();
    ga.clear_pending_commit().unwrap();
    message(&mut seeds, "commit_update_plain", su.commit);
    let su = gc.self_update().unwrap();
    gc.clear_pending_commit().unwrap();
    message(&mut seeds, "commit_update_enc", su.commit);
    let leave = gc.leave().unwrap();
    gc.clear_pending_proposals().unwrap();
    message(&mut seeds, "proposal_leave_enc", leave);

    let gi_tree = ga.export_group_info(true).unwrap();
    let gi_bare = ga.export_group_info(false).unwrap();
    message(&mut seeds, "group_info", gi_tree.clone());
    seeds.push((
        "external_join",
        "group_info".into(),
        framed(0, &gi_tree, &[]),
    ));
    seeds.push((
        "external_join",
        "group_info_tree".into(),
        framed(1, &gi_bare, &tree),
    ));
    let ext = d.join_by_external_commit(gi_tree, None, None).unwrap();
    message(&mut seeds, "commit_external", ext.commit);
    message(&mut seeds, "ratchet_tree", tree);

    for (name, cs) in [
        ("kp_0001", Ciphersuite::X25519Aes128gcmEd25519),
        ("kp_0002", Ciphersuite::P256Aes128gcmP256),
        ("kp_0003", Ciphersuite::X25519Chacha20poly1305Ed25519),
    ] {
        let k = kp(&x, Some(cs));
        seeds.push(("validate_key_package", name.into(), k.clone()));
        message(&mut seeds, name, k);
    }
    let lr = x
        .create_key_packages(
            1,
            Some(KeyPackageOptions {
                ciphersuite: None,
                lifetime_seconds: Some(60),
                last_resort: true,
            }),
        )
        .unwrap()
        .remove(0);
    seeds.push(("validate_key_package", "kp_last_resort".into(), lr));
    seeds.push(("validate_key_package", "kp_erin".into(), erin_kp));

    // Bob's own message (processed by bob's fixture: OwnMessage or an error).
    message(
        &mut seeds,
        "app_own",
        gb.encrypt(b"own".to_vec(), vec![]).unwrap(),
    );

    for (i, (_, value)) in bob_state.iter().enumerate() {
        seeds.push((
            "storage_decode",
            format!("echo_{i:02}"),
            framed(0, value, &[]),
        ));
        let mut one = vec![1, i as u8];
        one.extend_from_slice(value);
        seeds.push(("storage_decode", format!("record_{i:02}"), one));
    }

    // Headers of chunked message-secrets records (an intact one whose chunks
    // the echo store cannot supply, and one claiming a huge length).
    for (name, len) in [("chunk_header", 16_385u64), ("chunk_header_huge", 1 << 63)] {
        let mut header = vec![0, 0xFF, 1];
        header.extend_from_slice(&len.to_be_bytes());
        header.extend((0..32u8).collect::<Vec<u8>>());
        seeds.push(("storage_decode", name.into(), header));
    }

    let fixtures = dir.join("fixtures");
    std::fs::create_dir_all(&fixtures).unwrap();
    std::fs::write(fixtures.join("bob.state"), encode_snapshot(&bob_state)).unwrap();
    std::fs::write(fixtures.join("erin.state"), encode_snapshot(&erin_state)).unwrap();
    std::fs::write(
        fixtures.join("frank.state"),
        encode_snapshot(&sf.snapshot()),
    )
    .unwrap();
    let mut total = 0;
    for (target, name, bytes) in &seeds {
        let d = corpus.join(target);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(name), bytes).unwrap();
        total += bytes.len();
    }
    println!(
        "gen_corpus: {} seeds ({} bytes), bob's store {} records",
        seeds.len(),
        total,
        bob_state.len()
    );
}
