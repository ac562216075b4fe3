//! What each operation asks of the host's store: exactly one `commit` per
//! mutating call, no `read` for a group already in memory; and stores written
//! by earlier versions (whose CBOR encoder differed) still read.

mod common;

use std::sync::Arc;

use common::*;
use mlskit::{Client, ReceivedMessage, StorageBackend};

/// Storage calls `op` made on `store`: (reads, commits).
fn calls<T>(store: &FaultyStore, op: impl FnOnce() -> T) -> ((usize, usize), T) {
    let (reads, commits) = (store.reads(), store.commits());
    let out = op();
    ((store.reads() - reads, store.commits() - commits), out)
}

#[test]
fn a_loaded_group_reads_nothing_and_each_mutating_call_commits_once() {
    let ms = build_group(3, |_| FaultyStore::map());
    let (a, b) = (&ms[0], &ms[1]);
    // Warm up: the first operations after a join may read what the join wrote.
    check_messaging(&[a, b, &ms[2]], 0);
    check_messaging(&[a, b, &ms[2]], 1);

    let (c, ct) = calls(&a.store, || {
        a.group.encrypt(b"hi".to_vec(), vec![]).unwrap()
    });
    assert_eq!(c, (0, 1), "encrypt");
    let (c, _) = calls(&b.store, || b.group.process_message(ct).unwrap());
    assert_eq!(c, (0, 1), "decrypt");

    let (c, bundle) = calls(&a.store, || a.group.self_update().unwrap());
    assert_eq!(c, (0, 1), "self_update");
    let (c, _) = calls(&a.store, || a.group.merge_pending_commit().unwrap());
    assert_eq!(c, (0, 1), "merge_pending_commit");
    let (c, staged) = calls(&b.store, || b.group.process_message(bundle.commit.clone()));
    assert_eq!(c, (0, 0), "processing a commit writes nothing until merge");
    let ReceivedMessage::Commit { commit } = staged.unwrap() else {
        panic!("expected a commit")
    };
    let (c, _) = calls(&b.store, || commit.merge().unwrap());
    assert_eq!(c, (0, 1), "merge");
    process_and_merge(&ms[2].group, &bundle.commit);

    let newcomer = FaultyStore::map();
    let kp = client_on(&newcomer, "m3")
        .create_key_packages(1, None)
        .unwrap();
    let (c, _) = calls(&a.store, || a.group.add_members(kp).unwrap());
    assert_eq!(c, (0, 1), "add_members");
    let (c, _) = calls(&a.store, || a.group.clear_pending_commit().unwrap());
    assert_eq!(c, (0, 1), "clear_pending_commit");
    let (c, bundle) = calls(&a.store, || a.group.remove_members(vec![2]).unwrap());
    assert_eq!(c, (0, 1), "remove_members");
    let (c, _) = calls(&a.store, || a.group.merge_pending_commit().unwrap());
    assert_eq!(c, (0, 1), "merge_pending_commit");
    let (c, _) = calls(&b.store, || process_and_merge(&b.group, &bundle.commit));
    assert_eq!(c, (0, 1), "process + merge of a remove");

    let (c, _) = calls(&a.store, || {
        (a.group.epoch().unwrap(), a.group.members().unwrap())
    });
    assert_eq!(c, (0, 0), "queries");
    check_messaging(&[a, b], 0);
}

/// Re-encodes every stored value with ciborium (the encoder of 0.1.0).
fn reencoded_with_ciborium(store: &FaultyStore) -> Arc<MapStore> {
    let old = MapStore::new();
    let writes = store
        .snapshot()
        .into_iter()
        .map(|(key, value)| {
            let parsed: ciborium::Value = ciborium::from_reader(value.as_slice()).unwrap();
            let mut value = Vec::new();
            ciborium::into_writer(&parsed, &mut value).unwrap();
            mlskit::StorageWrite::Put { key, value }
        })
        .collect();
    old.commit(writes).unwrap();
    old
}

#[test]
fn stores_written_by_the_previous_encoder_still_work() {
    let ms = build_group(2, |_| FaultyStore::map());
    check_messaging(&[&ms[0], &ms[1]], 0);
    let old = reencoded_with_ciborium(&ms[1].store);
    let reopened = Client::new(old, b"m1".to_vec(), Some(options())).unwrap();
    let group = reopened.group(ms[0].group.id()).unwrap();
    assert_eq!(
        group.epoch_authenticator().unwrap(),
        ms[0].group.epoch_authenticator().unwrap()
    );
    let ct = ms[0]
        .group
        .encrypt(b"after the upgrade".to_vec(), vec![])
        .unwrap();
    match group.process_message(ct).unwrap() {
        ReceivedMessage::Application { message } => {
            assert_eq!(message.plaintext, b"after the upgrade")
        }
        _ => panic!("expected an application message"),
    }
    let bundle = group.self_update().unwrap();
    group.merge_pending_commit().unwrap();
    process_and_merge(&ms[0].group, &bundle.commit);
    assert_eq!(
        group.epoch_authenticator().unwrap(),
        ms[0].group.epoch_authenticator().unwrap()
    );
}
