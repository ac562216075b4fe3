//! `join_by_external_commit` from a fuzzed GroupInfo (frank, a client in no
//! group). First byte: even = the rest is the GroupInfo; odd = a 2-byte length
//! splits it into GroupInfo and a separate ratchet tree.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mlskit_fuzz::{fixture, fixture_client, message_and_tree, run, typed, Snapshot};

static STATE: OnceLock<Snapshot> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    run(|| {
        let Some((info, tree)) = message_and_tree(data) else {
            return;
        };
        let client = fixture_client(STATE.get_or_init(|| fixture("frank")), "frank");
        if let Some(join) = typed(client.join_by_external_commit(info.to_vec(), tree, None)) {
            assert!(!join.commit.is_empty());
            typed(join.group.members());
            typed(join.group.encrypt(b"joined".to_vec(), vec![]));
        }
    });
});
