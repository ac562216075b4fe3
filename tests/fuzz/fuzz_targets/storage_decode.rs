//! Decoding stored values. First byte: even = a backend that returns the rest
//! of the input for every read (of any key); odd = bob's real store with one
//! record (picked by the second byte) replaced by the rest. Then the calls
//! that load state: `Client::new`, `group_ids`, `key_packages`, `group(...)`
//! and reads and writes on the group.
#![no_main]
use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use mlskit::{Client, StorageBackend, StorageError, StorageWrite};
use mlskit_fuzz::{fixture, run, typed, SnapStore, Snapshot, GROUP_ID};

static STATE: OnceLock<Snapshot> = OnceLock::new();

/// Returns the same bytes for every key; accepts and drops writes.
struct Echo(Vec<u8>);

impl StorageBackend for Echo {
    fn read(&self, _key: Vec<u8>) -> Result<Option<Vec<u8>>, StorageError> {
        Ok(Some(self.0.clone()))
    }
    fn commit(&self, _writes: Vec<StorageWrite>) -> Result<(), StorageError> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    run(|| {
        let Some((&mode, rest)) = data.split_first() else {
            return;
        };
        let (backend, identity): (Arc<dyn StorageBackend>, &[u8]) = if mode & 1 == 0 {
            (Arc::new(Echo(rest.to_vec())), b"fuzz")
        } else {
            let Some((&pick, value)) = rest.split_first() else {
                return;
            };
            let mut map = STATE.get_or_init(|| fixture("bob")).clone();
            let key = map.keys().nth(pick as usize % map.len()).cloned();
            if let Some(key) = key {
                map.insert(key, value.to_vec());
            }
            (SnapStore::new(map), b"bob")
        };
        let Some(client) = typed(Client::new(backend, identity.to_vec(), None)) else {
            return;
        };
        typed(client.group_ids());
        typed(client.key_packages());
        typed(client.signature_public_key(None));
        if let Some(group) = typed(client.group(GROUP_ID.to_vec())) {
            typed(group.epoch());
            typed(group.members());
            typed(group.pending_proposals());
            typed(group.pending_commit());
            typed(group.custom_extensions());
            typed(group.epoch_authenticator());
            typed(group.encrypt(b"x".to_vec(), vec![]));
            typed(group.self_update());
        }
    });
});
