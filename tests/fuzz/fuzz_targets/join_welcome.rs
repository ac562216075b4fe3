//! `inspect_welcome` and `join_group` on a client (erin) holding the key
//! package the seed Welcomes were made for. The first byte picks how the rest
//! is used: even = the whole rest is the Welcome; odd = a 2-byte length splits
//! the rest into Welcome and a separately passed ratchet tree.
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
        let (welcome, tree) = if mode & 1 == 0 || rest.len() < 2 {
            (rest, None)
        } else {
            let n = (u16::from_le_bytes([rest[0], rest[1]]) as usize).min(rest.len() - 2);
            let (w, t) = rest[2..].split_at(n);
            (w, Some(t.to_vec()))
        };
        let state = STATE.get_or_init(|| fixture("erin"));
        let backend: std::sync::Arc<dyn StorageBackend> = SnapStore::new(state.clone());
        let client = Client::new(backend, b"erin".to_vec(), None).expect("fixture opens");
        if let Some(info) = typed(client.inspect_welcome(welcome.to_vec(), tree.clone())) {
            let _ = format!("{info:?}");
        }
        if let Some(group) = typed(client.join_group(welcome.to_vec(), tree, None)) {
            typed(group.members());
            typed(group.encrypt(b"joined".to_vec(), vec![]));
            typed(group.export_group_info(true));
        }
    });
});
