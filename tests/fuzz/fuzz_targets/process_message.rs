//! `Group::process_message` on a fixed group (bob's, at the epoch the seed
//! corpus was made for). The store is reset to the fixture before each input,
//! so every input meets the same state and crashes reproduce.
#![no_main]
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mlskit::{Client, ReceivedMessage, StorageBackend};
use mlskit_fuzz::{fixture, run, typed, SnapStore, Snapshot, GROUP_ID};

static STATE: OnceLock<Snapshot> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    run(|| {
        let state = STATE.get_or_init(|| fixture("bob"));
        let store = SnapStore::new(state.clone());
        let backend: std::sync::Arc<dyn StorageBackend> = store;
        let client = Client::new(backend, b"bob".to_vec(), None).expect("fixture opens");
        let group = client.group(GROUP_ID.to_vec()).expect("fixture group");
        match typed(group.process_message(data.to_vec())) {
            Some(ReceivedMessage::Commit { commit }) => {
                let _ = format!("{:?}", commit.info());
                if typed(commit.merge()).is_some() {
                    typed(group.members());
                    typed(group.encrypt(b"after".to_vec(), vec![]));
                }
            }
            Some(ReceivedMessage::Proposal { proposal }) => {
                let _ = format!("{proposal:?}");
                typed(group.pending_proposals());
                typed(group.commit_pending_proposals());
            }
            Some(ReceivedMessage::Application { message }) => {
                let _ = format!("{message:?}");
            }
            Some(ReceivedMessage::OwnMessage | ReceivedMessage::OwnCommit { .. }) | None => {}
        }
    });
});
