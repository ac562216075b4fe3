//! `join_by_external_commit` from a fuzzed GroupInfo (frank, a client in no
//! group). First byte: even = the rest is the GroupInfo; odd = a 2-byte length
//! splits it into GroupInfo and a separate ratchet tree.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mlskit::{Client, StorageBackend};
use mlskit_fuzz::{fixture, run, typed, SnapStore, Snapshot};

static STATE: OnceLock<Snapshot> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    run(|| {
        let Some((&mode, rest)) = data.split_first() else {
            return;
        };
        let (info, tree) = if mode & 1 == 0 || rest.len() < 2 {
            (rest, None)
        } else {
            let n = (u16::from_le_bytes([rest[0], rest[1]]) as usize).min(rest.len() - 2);
            let (g, t) = rest[2..].split_at(n);
            (g, Some(t.to_vec()))
        };
        let state = STATE.get_or_init(|| fixture("frank"));
        let backend: std::sync::Arc<dyn StorageBackend> = SnapStore::new(state.clone());
        let client = Client::new(backend, b"frank".to_vec(), None).expect("fixture opens");
        if let Some(join) = typed(client.join_by_external_commit(info.to_vec(), tree, None)) {
            assert!(!join.commit.is_empty());
            typed(join.group.members());
            typed(join.group.encrypt(b"joined".to_vec(), vec![]));
        }
    });
});
