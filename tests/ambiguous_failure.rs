//! A host store that applied a batch and then reported an error (a timeout,
//! a lost connection): the documented retry must see that the batch landed
//! and not merge a second time.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::*;
use mlskit::{Client, Group, ReceivedMessage, StorageBackend, StorageError, StorageWrite};

/// Applies every batch; when armed, reports a failure after applying one.
struct AppliesThenFails {
    inner: Arc<MapStore>,
    armed: AtomicBool,
}

impl StorageBackend for AppliesThenFails {
    fn read(&self, key: Vec<u8>) -> Result<Option<Vec<u8>>, StorageError> {
        self.inner.read(key)
    }

    fn commit(&self, writes: Vec<StorageWrite>) -> Result<(), StorageError> {
        self.inner.commit(writes)?;
        if self.armed.swap(false, Ordering::SeqCst) {
            return Err(StorageError::Backend {
                reason: "timeout after the write (injected)".into(),
            });
        }
        Ok(())
    }
}

/// Alice (plain store) and Bob (the ambiguous store) in one group.
fn pair() -> (Arc<Group>, Arc<AppliesThenFails>, Arc<Group>) {
    let alice = client_on(&FaultyStore::map(), "alice");
    let store = Arc::new(AppliesThenFails {
        inner: MapStore::new(),
        armed: AtomicBool::new(false),
    });
    let backend: Arc<dyn StorageBackend> = store.clone();
    let bob = Client::new(backend, b"bob".to_vec(), Some(options())).unwrap();
    let ga = alice.create_group(None).unwrap();
    let add = ga
        .add_members(bob.create_key_packages(1, None).unwrap())
        .unwrap();
    ga.merge_pending_commit().unwrap();
    let gb = bob.join_group(add.welcome.unwrap(), None, None).unwrap();
    (ga, store, gb)
}

fn read(group: &Group, message: Vec<u8>) -> Vec<u8> {
    match group.process_message(message).unwrap() {
        ReceivedMessage::Application { message } => message.plaintext,
        _ => panic!("expected an application message"),
    }
}

fn retried_incoming_merge_merges_once(with_path: bool) {
    let (ga, store, gb) = pair();
    let late = ga
        .encrypt(b"sent before the commit".to_vec(), vec![])
        .unwrap();
    let commit = if with_path {
        ga.self_update().unwrap()
    } else {
        let p = ga.propose_custom_extensions(vec![], mlskit::ProposalMode::ByReference);
        let p = p.unwrap();
        process_proposal(&gb, &p.message);
        ga.commit_pending_proposals().unwrap()
    };
    ga.merge_pending_commit().unwrap();
    let ReceivedMessage::Commit { commit: staged } = gb.process_message(commit.commit).unwrap()
    else {
        panic!("expected a commit");
    };
    store.armed.store(true, Ordering::SeqCst);
    assert!(staged.merge().is_err_and(|e| is_ambiguous(&e)));
    staged.merge().expect("the retry sees the landed batch");
    assert_eq!(gb.epoch().unwrap(), ga.epoch().unwrap());
    assert_eq!(
        gb.epoch_authenticator().unwrap(),
        ga.epoch_authenticator().unwrap()
    );
    // The previous epoch's message still decrypts (a second merge would
    // have dropped or consumed its keys), and the new epoch works both ways.
    assert_eq!(read(&gb, late), b"sent before the commit");
    assert_eq!(
        read(&gb, ga.encrypt(b"new".to_vec(), vec![]).unwrap()),
        b"new"
    );
    assert_eq!(
        read(&ga, gb.encrypt(b"reply".to_vec(), vec![]).unwrap()),
        b"reply"
    );
}

fn is_ambiguous(e: &mlskit::MlsError) -> bool {
    matches!(e, mlskit::MlsError::StorageBackend { reason } if reason.contains("injected"))
}

#[test]
fn retried_merge_of_a_commit_without_a_path_merges_once() {
    retried_incoming_merge_merges_once(false);
}

#[test]
fn retried_merge_of_a_commit_with_a_path_merges_once() {
    retried_incoming_merge_merges_once(true);
}

#[test]
fn retried_merge_pending_commit_after_an_ambiguous_failure_succeeds() {
    let (ga, store, gb) = pair();
    let commit = gb.self_update().unwrap();
    store.armed.store(true, Ordering::SeqCst);
    assert!(gb.merge_pending_commit().is_err_and(|e| is_ambiguous(&e)));
    gb.merge_pending_commit()
        .expect("the retry sees the landed batch");
    assert!(matches!(
        gb.merge_pending_commit(),
        Err(mlskit::MlsError::NoPendingCommit)
    ));
    process_and_merge(&ga, &commit.commit);
    assert_eq!(gb.epoch().unwrap(), ga.epoch().unwrap());
    assert_eq!(
        read(&ga, gb.encrypt(b"hi".to_vec(), vec![]).unwrap()),
        b"hi"
    );
    assert_eq!(
        read(&gb, ga.encrypt(b"ho".to_vec(), vec![]).unwrap()),
        b"ho"
    );
}
