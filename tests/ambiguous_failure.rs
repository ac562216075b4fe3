//! A host store that applied a batch and then reported an error (a timeout,
//! a lost connection): the documented retry must see that the batch landed
//! and not merge a second time.

mod common;

use std::sync::Arc;

use common::*;
use mlskit::{Client, Group, ReceivedMessage};

/// Alice (plain store) and Bob (the ambiguous store) in one group.
fn pair() -> (Arc<Group>, Arc<OneShot>, Arc<Group>) {
    let alice = client_on(&FaultyStore::map(), "alice");
    let store = OneShot::new();
    let bob = Client::new(store.backend(), b"bob".to_vec(), Some(options())).unwrap();
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
    store.arm(Next::FailAfterApplying);
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
    store.arm(Next::FailAfterApplying);
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

/// A group of Alice's on a plain store.
fn alice_group() -> Arc<Group> {
    client_on(&FaultyStore::map(), "alice")
        .create_group(None)
        .unwrap()
}

/// Adds `client` to `group` (merged) and returns the Welcome.
fn invite(group: &Group, client: &Client) -> Vec<u8> {
    let add = group
        .add_members(client.create_key_packages(1, None).unwrap())
        .unwrap();
    group.merge_pending_commit().unwrap();
    add.welcome.unwrap()
}

/// Bob's client on a store that reports a failure after applying its next batch.
fn ambiguous_client(name: &[u8]) -> (Arc<OneShot>, Arc<Client>) {
    let store = OneShot::new();
    let client = Client::new(store.backend(), name.to_vec(), Some(options())).unwrap();
    (store, client)
}

#[test]
fn retried_join_by_welcome_after_an_ambiguous_failure_returns_the_joined_group() {
    let ga = alice_group();
    let (store, bob) = ambiguous_client(b"bob");
    let welcome = invite(&ga, &bob);
    store.arm(Next::FailAfterApplying);
    assert!(bob
        .join_group(welcome.clone(), None, None)
        .is_err_and(|e| is_ambiguous(&e)));
    // The batch landed: the key package is consumed, the group is stored.
    let gb = bob
        .join_group(welcome.clone(), None, None)
        .expect("the retry finds the joined group");
    assert_eq!(bob.group_ids().unwrap(), vec![ga.id()]);
    assert_eq!(gb.epoch().unwrap(), ga.epoch().unwrap());
    assert_eq!(
        read(&gb, ga.encrypt(b"hi".to_vec(), vec![]).unwrap()),
        b"hi"
    );
    assert_eq!(
        read(&ga, gb.encrypt(b"ho".to_vec(), vec![]).unwrap()),
        b"ho"
    );
    // One handle: a commit through the returned group shows in a lookup.
    let update = gb.self_update().unwrap();
    gb.merge_pending_commit().unwrap();
    process_and_merge(&ga, &update.commit);
    assert_eq!(
        bob.group(ga.id()).unwrap().epoch().unwrap(),
        ga.epoch().unwrap()
    );
    // Only the failed attempt is remembered: a third call is a plain rejoin.
    assert!(bob.join_group(welcome, None, None).is_err());
}

#[test]
fn retried_join_by_welcome_whose_batch_did_not_land_joins_normally() {
    let ga = alice_group();
    let bob_store = FaultyStore::map();
    let bob = client_on(&bob_store, "bob");
    let welcome = invite(&ga, &bob);
    bob_store.arm();
    assert!(bob.join_group(welcome.clone(), None, None).is_err());
    let gb = bob.join_group(welcome, None, None).unwrap();
    assert_eq!(
        read(&gb, ga.encrypt(b"hi".to_vec(), vec![]).unwrap()),
        b"hi"
    );
}

#[test]
fn retried_external_join_after_an_ambiguous_failure_returns_the_same_commit() {
    let ga = alice_group();
    let info = ga.export_group_info(true).unwrap();
    let (store, carol) = ambiguous_client(b"carol");
    store.arm(Next::FailAfterApplying);
    assert!(carol
        .join_by_external_commit(info.clone(), None, None)
        .is_err_and(|e| is_ambiguous(&e)));
    let joined = carol
        .join_by_external_commit(info, None, None)
        .expect("the retry finds the joined group");
    let (gc, commit) = (joined.group, joined.commit);
    process_and_merge(&ga, &commit);
    assert_eq!(gc.epoch().unwrap(), ga.epoch().unwrap());
    assert_eq!(
        gc.epoch_authenticator().unwrap(),
        ga.epoch_authenticator().unwrap()
    );
    assert_eq!(
        read(&gc, ga.encrypt(b"hi".to_vec(), vec![]).unwrap()),
        b"hi"
    );
    assert_eq!(
        read(&ga, gc.encrypt(b"ho".to_vec(), vec![]).unwrap()),
        b"ho"
    );
}

#[test]
fn a_retry_with_other_settings_is_not_taken_for_the_landed_join() {
    let ga = alice_group();
    let (store, bob) = ambiguous_client(b"bob");
    let welcome = invite(&ga, &bob);
    store.arm(Next::FailAfterApplying);
    assert!(bob.join_group(welcome.clone(), None, None).is_err());
    let stricter = mlskit::JoinOptions {
        allow_external_commits: false,
        ..Default::default()
    };
    // The landed group was stored with other settings: not this join's result.
    assert!(bob
        .join_group(welcome.clone(), None, Some(stricter))
        .is_err());
    bob.join_group(welcome, None, None)
        .expect("the retry with the same settings finds the joined group");
}

#[test]
fn a_failed_external_join_that_did_not_land_never_returns_its_commit_later() {
    let ga = alice_group();
    let with_tree = ga.export_group_info(true).unwrap();
    let carol_store = FaultyStore::map();
    let carol = client_on(&carol_store, "carol");
    carol_store.arm();
    assert!(carol
        .join_by_external_commit(with_tree.clone(), None, None)
        .is_err());
    // Joined through other bytes (tree passed apart), then the first input again.
    let without_tree = ga.export_group_info(false).unwrap();
    let tree = ga.export_ratchet_tree().unwrap();
    let joined = carol
        .join_by_external_commit(without_tree, Some(tree), None)
        .unwrap();
    assert!(matches!(
        carol.join_by_external_commit(with_tree, None, None),
        Err(mlskit::MlsError::GroupExists)
    ));
    process_and_merge(&ga, &joined.commit);
    assert_eq!(
        read(&ga, joined.group.encrypt(b"hi".to_vec(), vec![]).unwrap()),
        b"hi"
    );
}
