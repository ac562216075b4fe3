//! `inspect_welcome` and `join_group` on a client (erin) holding the key
//! package the seed Welcomes were made for. The first byte picks how the rest
//! is used: even = the whole rest is the Welcome; odd = a 2-byte length splits
//! the rest into Welcome and a separately passed ratchet tree.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mlskit_fuzz::{fixture, fixture_client, message_and_tree, run, typed, Snapshot};

static STATE: OnceLock<Snapshot> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    run(|| {
        let Some((welcome, tree)) = message_and_tree(data) else {
            return;
        };
        let client = fixture_client(STATE.get_or_init(|| fixture("erin")), "erin");
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
