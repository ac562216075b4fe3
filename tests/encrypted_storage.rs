//! `encrypted_storage`: a full scenario over encrypted memory and SQLite stores;
//! the raw inner store holds no plaintext; tampered, swapped and wrongly keyed
//! values are `StorageCorrupt` and change nothing; a restart with the right key
//! continues the conversation.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use mlskit::{
    encrypted_storage, Client, Group, GroupOptions, MlsError, ReceivedMessage, StorageBackend,
    StorageError, StorageWrite,
};

const KEY: [u8; 32] = [0x42; 32];
const ALICE: &[u8] = b"alice-7Qx9-identity";
const BOB: &[u8] = b"bob-Lw3v-identity";
const GROUP_ID: &[u8] = b"group-id-Zk4p-secret";
const PLAIN_1: &[u8] = b"plaintext-Hq2m-first message";
const PLAIN_2: &[u8] = b"plaintext-Rt8n-second message";
const PLAIN_3: &[u8] = b"plaintext-Yb5c-after restart";
const NEEDLES: &[&[u8]] = &[
    ALICE,
    BOB,
    GROUP_ID,
    b"Q9-identity",
    b"Zk4p",
    b"Hq2m",
    b"Rt8n",
    b"Yb5c",
    b"mlskit\0\x01",
];

/// A plain map store whose whole content can be read and replaced.
#[derive(Default)]
struct RawStore {
    map: Mutex<BTreeMap<Vec<u8>, Vec<u8>>>,
}

impl RawStore {
    fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }
    fn snapshot(&self) -> BTreeMap<Vec<u8>, Vec<u8>> {
        self.map.lock().unwrap().clone()
    }
    fn replace(&self, map: BTreeMap<Vec<u8>, Vec<u8>>) {
        *self.map.lock().unwrap() = map;
    }
}

impl StorageBackend for RawStore {
    fn read(&self, key: Vec<u8>) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(self.map.lock().unwrap().get(&key).cloned())
    }
    fn commit(&self, writes: Vec<StorageWrite>) -> Result<(), StorageError> {
        let mut map = self.map.lock().unwrap();
        for w in writes {
            match w {
                StorageWrite::Put { key, value } => {
                    map.insert(key, value);
                }
                StorageWrite::Delete { key } => {
                    map.remove(&key);
                }
            }
        }
        Ok(())
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn assert_no_plaintext(what: &str, bytes: &[u8]) {
    for n in NEEDLES {
        assert!(
            !contains(bytes, n),
            "{what} contains {:?} in the clear",
            String::from_utf8_lossy(n)
        );
    }
}

fn assert_map_has_no_plaintext(map: &BTreeMap<Vec<u8>, Vec<u8>>) {
    assert!(map.len() > 5, "the scenario stored something");
    for (k, v) in map {
        assert_no_plaintext("a raw key", k);
        assert_no_plaintext("a raw value", v);
    }
}

fn app(group: &Group, msg: &[u8]) -> Vec<u8> {
    match group.process_message(msg.to_vec()).unwrap() {
        ReceivedMessage::Application { message } => message.plaintext,
        _ => panic!("expected an application message"),
    }
}

fn merge_commit(group: &Group, msg: &[u8]) {
    match group.process_message(msg.to_vec()).unwrap() {
        ReceivedMessage::Commit { commit } => commit.merge().unwrap(),
        _ => panic!("expected a commit"),
    }
}

fn open(inner: &Arc<dyn StorageBackend>, identity: &[u8]) -> Result<Arc<Client>, MlsError> {
    let store = encrypted_storage(inner.clone(), KEY.to_vec())?;
    Client::new(store, identity.to_vec(), None)
}

/// Alice and Bob in one group, every kind of message exchanged. Returns the
/// groups and one message from bob that alice has not processed yet.
fn conversation(
    inner_a: &Arc<dyn StorageBackend>,
    inner_b: &Arc<dyn StorageBackend>,
) -> (Arc<Client>, Arc<Group>, Arc<Client>, Arc<Group>) {
    let a = open(inner_a, ALICE).unwrap();
    let b = open(inner_b, BOB).unwrap();
    let kps = b.create_key_packages(3, None).unwrap();
    let ga = a
        .create_group(Some(GroupOptions {
            group_id: Some(GROUP_ID.to_vec()),
            ..Default::default()
        }))
        .unwrap();
    let bundle = ga.add_members(vec![kps[0].clone()]).unwrap();
    ga.merge_pending_commit().unwrap();
    let gb = b.join_group(bundle.welcome.unwrap(), None, None).unwrap();
    assert_eq!(gb.id(), GROUP_ID);
    assert_eq!(
        app(&gb, &ga.encrypt(PLAIN_1.to_vec(), vec![]).unwrap()),
        PLAIN_1
    );
    let update = gb.self_update().unwrap();
    gb.merge_pending_commit().unwrap();
    merge_commit(&ga, &update.commit);
    let p = ga.propose_self_update().unwrap();
    match gb.process_message(p.message).unwrap() {
        ReceivedMessage::Proposal { .. } => {}
        _ => panic!("expected a proposal"),
    }
    let c = gb.commit_pending_proposals().unwrap();
    gb.merge_pending_commit().unwrap();
    // Alice's own proposal comes back inside bob's commit.
    merge_commit(&ga, &c.commit);
    assert_eq!(
        app(&ga, &gb.encrypt(PLAIN_2.to_vec(), vec![]).unwrap()),
        PLAIN_2
    );
    a.store_external_psk(b"psk-id".to_vec(), b"psk-secret".to_vec())
        .unwrap();
    assert_eq!(ga.epoch().unwrap(), gb.epoch().unwrap());
    (a, ga, b, gb)
}

#[test]
fn memory_scenario_hides_everything_and_survives_a_restart() {
    let raw_a = RawStore::new();
    let raw_b = RawStore::new();
    let inner_a: Arc<dyn StorageBackend> = raw_a.clone();
    let inner_b: Arc<dyn StorageBackend> = raw_b.clone();
    let (a, ga, b, gb) = conversation(&inner_a, &inner_b);
    let epoch = ga.epoch().unwrap();
    drop((a, ga, b));
    assert_map_has_no_plaintext(&raw_a.snapshot());
    assert_map_has_no_plaintext(&raw_b.snapshot());

    // Restart alice with the right key over the same raw store.
    let a = open(&inner_a, ALICE).unwrap();
    assert_eq!(a.group_ids().unwrap(), vec![GROUP_ID.to_vec()]);
    let ga = a.group(GROUP_ID.to_vec()).unwrap();
    assert_eq!(ga.epoch().unwrap(), epoch);
    assert_eq!(
        app(&ga, &gb.encrypt(PLAIN_3.to_vec(), vec![]).unwrap()),
        PLAIN_3
    );
    assert_eq!(
        app(&gb, &ga.encrypt(PLAIN_3.to_vec(), vec![]).unwrap()),
        PLAIN_3
    );
    assert_map_has_no_plaintext(&raw_a.snapshot());

    // The built-in memory store as the inner store works the same way.
    let (_a, ga, _b, _gb) = conversation(&mlskit::memory_storage(), &mlskit::memory_storage());
    assert_eq!(ga.members().unwrap().len(), 2);
}

fn files_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        all.extend(std::fs::read(&path).unwrap());
    }
    all
}

#[test]
fn sqlite_scenario_hides_everything_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    let (pa, pb) = (path("alice.db"), path("bob.db"));
    let inner_a = mlskit::sqlite_storage(pa.clone()).unwrap();
    let inner_b = mlskit::sqlite_storage(pb.clone()).unwrap();
    let (a, ga, b, gb) = conversation(&inner_a, &inner_b);
    let epoch = ga.epoch().unwrap();
    // While open (journal and main file) and after closing.
    assert_no_plaintext("the SQLite files", &files_bytes(dir.path()));
    drop((a, ga, b, inner_a));
    assert_no_plaintext("the SQLite files", &files_bytes(dir.path()));

    // A wrong key is refused before anything is read or written.
    let inner_a = mlskit::sqlite_storage(pa.clone()).unwrap();
    let wrong = encrypted_storage(inner_a.clone(), vec![0x43; 32]);
    assert!(
        matches!(wrong, Err(MlsError::StorageCorrupt { .. })),
        "{:?}",
        wrong.err()
    );

    // The right key reopens the conversation.
    let a = open(&inner_a, ALICE).unwrap();
    let ga = a.group(GROUP_ID.to_vec()).unwrap();
    assert_eq!(ga.epoch().unwrap(), epoch);
    assert_eq!(
        app(&ga, &gb.encrypt(PLAIN_3.to_vec(), vec![]).unwrap()),
        PLAIN_3
    );
    assert!(matches!(
        Client::new(
            encrypted_storage(inner_a.clone(), KEY.to_vec()).unwrap(),
            BOB.to_vec(),
            None
        ),
        Err(MlsError::IdentityMismatch)
    ));
    drop((a, ga, inner_a));
    assert_no_plaintext("the SQLite files", &files_bytes(dir.path()));
}

#[test]
fn key_length_and_wrong_key() {
    for len in [0usize, 16, 31, 33, 64] {
        let r = encrypted_storage(mlskit::memory_storage(), vec![1; len]);
        assert!(
            matches!(r, Err(MlsError::ValidationFailed { .. })),
            "len {len}"
        );
    }
    let raw = RawStore::new();
    let inner: Arc<dyn StorageBackend> = raw.clone();
    let a = open(&inner, ALICE).unwrap();
    a.create_group(None).unwrap();
    drop(a);
    let before = raw.snapshot();
    for wrong in [[0u8; 32], [0x41; 32], {
        let mut k = KEY;
        k[31] ^= 1;
        k
    }] {
        let err = encrypted_storage(inner.clone(), wrong.to_vec()).err();
        assert!(
            matches!(err, Some(MlsError::StorageCorrupt { .. })),
            "{err:?}"
        );
    }
    assert_eq!(raw.snapshot(), before, "a wrong key wrote nothing");
    // A corrupted key-check record is also StorageCorrupt.
    let mut broken = before.clone();
    let check = broken
        .get_mut(&b"mlskit\0encrypted\0key-check"[..])
        .expect("the key-check record");
    check[40] ^= 0xff;
    raw.replace(broken);
    assert!(matches!(
        encrypted_storage(inner.clone(), KEY.to_vec()),
        Err(MlsError::StorageCorrupt { .. })
    ));
}

/// Runs the operations that read alice's state; every failure must be
/// `StorageCorrupt` and leave the raw store unchanged. Returns whether one failed.
fn probe(inner: &Arc<dyn StorageBackend>, raw: &RawStore, gb: &Group) -> bool {
    let msg = gb.encrypt(b"probe".to_vec(), vec![]).unwrap();
    let mut before = raw.snapshot();
    let result = open(inner, ALICE).and_then(|a| {
        // Opening wrote the lease record; what follows must write nothing.
        before = raw.snapshot();
        let ga = a.group(GROUP_ID.to_vec())?;
        ga.members()?;
        match ga.process_message(msg)? {
            ReceivedMessage::Application { message } => assert_eq!(message.plaintext, b"probe"),
            _ => panic!("expected an application message"),
        }
        ga.encrypt(b"reply".to_vec(), vec![])?;
        a.key_packages()?;
        Ok(())
    });
    match result {
        Ok(()) => false,
        Err(MlsError::StorageCorrupt { key, reason }) => {
            assert_eq!(raw.snapshot(), before, "a failed call changed the store");
            let text = format!("{key} {reason}");
            assert_no_plaintext("the error", text.as_bytes());
            true
        }
        Err(e) => panic!("expected StorageCorrupt, got {e:?}"),
    }
}

#[test]
fn tampered_and_swapped_values_are_storage_corrupt_and_change_nothing() {
    let raw_a = RawStore::new();
    let inner_a: Arc<dyn StorageBackend> = raw_a.clone();
    let (a, ga, b, gb) = conversation(&inner_a, &mlskit::memory_storage());
    drop((a, ga));
    let good = raw_a.snapshot();
    assert!(!probe(&inner_a, &raw_a, &gb), "the untouched store works");
    raw_a.replace(good.clone());

    // Every record, one at a time: flip one byte of the ciphertext, or cut it.
    let records: Vec<Vec<u8>> = good
        .keys()
        .filter(|k| k.len() == 32) // not the key-check record
        .cloned()
        .collect();
    let mut corrupt = 0;
    for (i, key) in records.iter().enumerate() {
        let mut tampered = good.clone();
        let v = tampered.get_mut(key).unwrap();
        if i % 3 == 2 {
            v.truncate(v.len() / 2);
        } else {
            let at = (v.len() - 1).min(13 + i % 7);
            v[at] ^= 0x01 << (i % 8);
        }
        raw_a.replace(tampered);
        corrupt += usize::from(probe(&inner_a, &raw_a, &gb));
        raw_a.replace(good.clone());
    }
    assert!(
        corrupt >= 5,
        "only {corrupt} of {} tampered records were noticed",
        records.len()
    );

    // Swap two valid values: each is authentic, but not for that record.
    let mut swapped_corrupt = 0;
    for pair in records.windows(2) {
        let mut swapped = good.clone();
        let (x, y) = (good[&pair[0]].clone(), good[&pair[1]].clone());
        swapped.insert(pair[0].clone(), y);
        swapped.insert(pair[1].clone(), x);
        raw_a.replace(swapped);
        swapped_corrupt += usize::from(probe(&inner_a, &raw_a, &gb));
        raw_a.replace(good.clone());
    }
    assert!(swapped_corrupt >= 5, "only {swapped_corrupt} swaps noticed");

    // Rotate every value: opening the client itself fails.
    let mut rotated = good.clone();
    let values: Vec<Vec<u8>> = records.iter().map(|k| good[k].clone()).collect();
    for (i, k) in records.iter().enumerate() {
        rotated.insert(k.clone(), values[(i + 1) % values.len()].clone());
    }
    raw_a.replace(rotated);
    assert!(matches!(
        open(&inner_a, ALICE),
        Err(MlsError::StorageCorrupt { .. })
    ));

    // Restored, everything works again.
    raw_a.replace(good);
    assert!(!probe(&inner_a, &raw_a, &gb));
    drop(b);
}
