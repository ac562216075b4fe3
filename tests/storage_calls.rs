//! What each operation asks of the host's store: exactly one `commit` per
//! mutating call, no `read` for a group already in memory, only the changed
//! chunks of a large message-secrets record per message; and stores written
//! by earlier versions (another CBOR encoder, large records unchunked) still read.

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

/// The one read before each commit: the lease record, read from the store
/// itself so that a client opened later on it stops this one (`lease`).
const LEASE_CHECK: usize = 1;

#[test]
fn a_loaded_group_reads_only_its_lease_and_each_mutating_call_commits_once() {
    let ms = build_group(3, |_| FaultyStore::map());
    let (a, b) = (&ms[0], &ms[1]);
    // Warm up: the first operations after a join may read what the join wrote.
    check_messaging(&[a, b, &ms[2]], 0);
    check_messaging(&[a, b, &ms[2]], 1);

    let (c, ct) = calls(&a.store, || {
        a.group.encrypt(b"hi".to_vec(), vec![]).unwrap()
    });
    assert_eq!(c, (LEASE_CHECK, 1), "encrypt");
    let (c, _) = calls(&b.store, || b.group.process_message(ct).unwrap());
    assert_eq!(c, (LEASE_CHECK, 1), "decrypt");

    let (c, bundle) = calls(&a.store, || a.group.self_update().unwrap());
    assert_eq!(c, (LEASE_CHECK, 1), "self_update");
    let (c, _) = calls(&a.store, || a.group.merge_pending_commit().unwrap());
    assert_eq!(c, (LEASE_CHECK, 1), "merge_pending_commit");
    let (c, staged) = calls(&b.store, || b.group.process_message(bundle.commit.clone()));
    assert_eq!(c, (0, 0), "processing a commit writes nothing until merge");
    let ReceivedMessage::Commit { commit } = staged.unwrap() else {
        panic!("expected a commit")
    };
    let (c, _) = calls(&b.store, || commit.merge().unwrap());
    assert_eq!(c, (LEASE_CHECK, 1), "merge");
    process_and_merge(&ms[2].group, &bundle.commit);

    let newcomer = FaultyStore::map();
    let kp = client_on(&newcomer, "m3")
        .create_key_packages(1, None)
        .unwrap();
    let (c, _) = calls(&a.store, || a.group.add_members(kp).unwrap());
    assert_eq!(c, (LEASE_CHECK, 1), "add_members");
    let (c, _) = calls(&a.store, || a.group.clear_pending_commit().unwrap());
    assert_eq!(c, (LEASE_CHECK, 1), "clear_pending_commit");
    let (c, bundle) = calls(&a.store, || a.group.remove_members(vec![2]).unwrap());
    assert_eq!(c, (LEASE_CHECK, 1), "remove_members");
    let (c, _) = calls(&a.store, || a.group.merge_pending_commit().unwrap());
    assert_eq!(c, (LEASE_CHECK, 1), "merge_pending_commit");
    let (c, _) = calls(&b.store, || process_and_merge(&b.group, &bundle.commit));
    assert_eq!(c, (LEASE_CHECK, 1), "process + merge of a remove");

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

/// A map store that remembers the value bytes each commit put.
#[derive(Default)]
struct Metered {
    map: Arc<MapStore>,
    last_commit_bytes: std::sync::atomic::AtomicUsize,
}

impl StorageBackend for Metered {
    fn read(&self, key: Vec<u8>) -> Result<Option<Vec<u8>>, mlskit::StorageError> {
        self.map.read(key)
    }

    fn commit(&self, writes: Vec<mlskit::StorageWrite>) -> Result<(), mlskit::StorageError> {
        let bytes = writes
            .iter()
            .map(|w| match w {
                mlskit::StorageWrite::Put { value, .. } => value.len(),
                mlskit::StorageWrite::Delete { .. } => 0,
            })
            .sum();
        self.last_commit_bytes
            .store(bytes, std::sync::atomic::Ordering::SeqCst);
        self.map.commit(writes)
    }
}

/// Keys of the chunks of large records (namespace `chk`).
fn chunk_keys(store: &MapStore) -> Vec<Vec<u8>> {
    store
        .snapshot()
        .into_keys()
        .filter(|k| k.windows(4).any(|w| w == b"chk\0"))
        .collect()
}

fn decrypt(group: &mlskit::Group, ct: Vec<u8>) -> Result<Vec<u8>, mlskit::MlsError> {
    match group.process_message(ct)? {
        ReceivedMessage::Application { message } => Ok(message.plaintext),
        _ => panic!("expected an application message"),
    }
}

/// Alice's group of 60 (Bob and 58 members that never join), after four
/// self-updates: each epoch kept for late messages adds its secrets to the
/// message-secrets record, which ends up well above the chunking threshold.
struct LargeGroup {
    a_store: Arc<Metered>,
    b_store: Arc<Metered>,
    a: Arc<mlskit::Group>,
    bob: Arc<Client>,
    b: Arc<mlskit::Group>,
    _alice: Arc<Client>,
}

fn large_group() -> LargeGroup {
    let (a_store, b_store) = (Arc::new(Metered::default()), Arc::new(Metered::default()));
    let alice = Client::new(a_store.clone(), b"alice".to_vec(), None).unwrap();
    let bob = Client::new(b_store.clone(), b"bob".to_vec(), None).unwrap();
    let a = alice.create_group(None).unwrap();
    let mut kps = bob.create_key_packages(1, None).unwrap();
    for i in 0..58 {
        let filler = Client::new(mlskit::memory_storage(), format!("f{i}").into(), None).unwrap();
        kps.extend(filler.create_key_packages(1, None).unwrap());
    }
    let bundle = a.add_members(kps).unwrap();
    a.merge_pending_commit().unwrap();
    let b = bob.join_group(bundle.welcome.unwrap(), None, None).unwrap();
    for _ in 0..4 {
        let bundle = a.self_update().unwrap();
        a.merge_pending_commit().unwrap();
        process_and_merge(&b, &bundle.commit);
    }
    LargeGroup {
        a_store,
        b_store,
        a,
        bob,
        b,
        _alice: alice,
    }
}

/// OpenMLS rewrites a group's message secrets (current and past epochs) after
/// every message; in a large group that record is stored in chunks and a
/// message writes only what changed. It reads back whole after a restart, and
/// a broken chunk is `StorageCorrupt`, not a wrong state.
#[test]
fn large_message_secrets_are_rewritten_in_part_and_read_back_whole() {
    let LargeGroup {
        a_store,
        b_store,
        a,
        bob,
        b,
        _alice,
    } = large_group();
    let ct = a.encrypt(b"warm".to_vec(), vec![]).unwrap();
    assert_eq!(decrypt(&b, ct).unwrap(), b"warm");

    for (store, name) in [(&a_store, "alice"), (&b_store, "bob")] {
        let chunks = chunk_keys(&store.map);
        assert!(chunks.len() >= 3, "{name}: {} chunks", chunks.len());
    }
    let record_bytes: usize = {
        let snapshot = a_store.map.snapshot();
        chunk_keys(&a_store.map)
            .iter()
            .map(|k| snapshot[k].len())
            .sum()
    };
    let ct = a.encrypt(b"one more".to_vec(), vec![]).unwrap();
    let wrote = a_store
        .last_commit_bytes
        .load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        wrote * 2 < record_bytes,
        "an encrypt wrote {wrote} bytes of a {record_bytes}-byte record"
    );

    // A restart reads the record back from its chunks.
    let group_id = b.id();
    drop((b, bob));
    let bob = Client::new(b_store.clone(), b"bob".to_vec(), None).unwrap();
    let b = bob.group(group_id.clone()).unwrap();
    assert_eq!(decrypt(&b, ct).unwrap(), b"one more");
    assert_eq!(
        b.epoch_authenticator().unwrap(),
        a.epoch_authenticator().unwrap()
    );

    // One altered chunk: the group does not load, and says why.
    let victim = chunk_keys(&b_store.map).remove(1);
    let mut value = b_store.map.snapshot()[&victim].clone();
    value[100] ^= 1;
    b_store
        .map
        .commit(vec![mlskit::StorageWrite::Put { key: victim, value }])
        .unwrap();
    drop((b, bob));
    let bob = Client::new(b_store.clone(), b"bob".to_vec(), None).unwrap();
    match bob.group(group_id) {
        Err(mlskit::MlsError::StorageCorrupt { key, .. }) => {
            assert!(key.contains("message_secrets"), "{key}")
        }
        other => panic!("expected StorageCorrupt, got {:?}", other.map(|_| ())),
    }
}

/// A store written before chunking existed holds the message-secrets record
/// as one plain value, however large. It loads as it is, and the next message
/// moves the record into chunks.
#[test]
fn a_large_plain_message_secrets_record_from_an_earlier_version_still_loads() {
    let LargeGroup {
        b_store,
        a,
        bob,
        b,
        _alice,
        ..
    } = large_group();
    let group_id = b.id();
    drop((b, bob));

    // Bob's store as the earlier version wrote it: each chunked record put
    // back together under its own key, no chunk keys. A chunk key ends with
    // the record's key and the chunk index (u64 BE).
    let snapshot = b_store.map.snapshot();
    let chunks = chunk_keys(&b_store.map);
    assert!(chunks.len() >= 3);
    let mut records: std::collections::BTreeMap<Vec<u8>, Vec<(u64, Vec<u8>)>> = Default::default();
    for key in &chunks {
        let start = key.windows(6).position(|w| w == b"chunk\0").unwrap() + 6;
        let (record, index) = key[start..].split_at(key.len() - start - 8);
        let index = u64::from_be_bytes(index.try_into().unwrap());
        records
            .entry(record.to_vec())
            .or_default()
            .push((index, snapshot[key].clone()));
    }
    let mut writes: Vec<mlskit::StorageWrite> = chunks
        .iter()
        .map(|key| mlskit::StorageWrite::Delete { key: key.clone() })
        .collect();
    for (record, mut parts) in records {
        assert!(snapshot[&record][0] == 0xFF, "a chunked record's header");
        parts.sort();
        let value: Vec<u8> = parts.into_iter().flat_map(|(_, chunk)| chunk).collect();
        assert!(value.len() > 32 * 1024, "{} bytes", value.len());
        writes.push(mlskit::StorageWrite::Put { key: record, value });
    }
    b_store.map.commit(writes).unwrap();
    assert!(chunk_keys(&b_store.map).is_empty());

    let bob = Client::new(b_store.clone(), b"bob".to_vec(), None).unwrap();
    let b = bob.group(group_id).unwrap();
    assert_eq!(
        b.epoch_authenticator().unwrap(),
        a.epoch_authenticator().unwrap()
    );
    let ct = a.encrypt(b"after the upgrade".to_vec(), vec![]).unwrap();
    assert_eq!(decrypt(&b, ct).unwrap(), b"after the upgrade");
    // That message moved Bob's record into chunks.
    assert!(chunk_keys(&b_store.map).len() >= 3);
    let ct = b.encrypt(b"and back".to_vec(), vec![]).unwrap();
    assert_eq!(decrypt(&a, ct).unwrap(), b"and back");
}
