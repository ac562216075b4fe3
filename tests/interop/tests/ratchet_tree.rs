//! Welcomes and GroupInfos without the ratchet tree: joining with the tree
//! passed out of band, and the typed error when it is missing.

mod common;

use common::{assert_agree, deliver, deliver_external, exchange, KitMember, Member, RsMember};
use mls_rs::mls_rules::{CommitOptions, DefaultMlsRules};
use mlskit::{GroupOptions, MlsError};

/// An mls-rs member whose Welcomes leave the ratchet tree out.
fn rs_without_tree_in_welcome(identity: &str) -> RsMember {
    RsMember::new(identity).with_rules(
        DefaultMlsRules::new()
            .with_commit_options(CommitOptions::new().with_ratchet_tree_extension(false)),
    )
}

/// An MLSKit member whose group's Welcomes leave the ratchet tree out.
fn kit_without_tree_in_welcome(identity: &str) -> KitMember {
    KitMember::new(identity).with_group_options(GroupOptions {
        join: mlskit::JoinOptions {
            use_ratchet_tree_extension: false,
            ..Default::default()
        },
        ..GroupOptions::default()
    })
}

#[test]
fn mlskit_joins_mls_rs_welcome_without_tree_given_tree_separately() {
    let alice = rs_without_tree_in_welcome("alice");
    let bob = KitMember::new("bob");
    alice.create_group();
    let commit = alice.add(&[bob.key_package()]);
    deliver("alice adds bob", &commit, &alice, &[]);

    bob.join(commit.welcome(), Some(&alice.ratchet_tree()));
    assert_agree("bob joined with the tree out of band", &[&alice, &bob]);
    exchange("bob joined", &[&alice, &bob]);

    let carol = KitMember::new("carol");
    let commit = bob.add(&[carol.key_package()]);
    deliver("bob adds carol", &commit, &bob, &[&alice]);
    carol.join(commit.welcome(), None);
    assert_agree("carol joined from bob's Welcome", &[&alice, &bob, &carol]);
}

#[test]
fn mls_rs_joins_mlskit_welcome_without_tree_given_tree_separately() {
    let alice = kit_without_tree_in_welcome("alice");
    let bob = RsMember::new("bob");
    alice.create_group();
    let commit = alice.add(&[bob.key_package()]);
    deliver("alice adds bob", &commit, &alice, &[]);

    bob.join(commit.welcome(), Some(&alice.ratchet_tree()));
    assert_agree("bob joined with the tree out of band", &[&alice, &bob]);
    exchange("bob joined", &[&alice, &bob]);
}

#[test]
fn mls_rs_cannot_join_mlskit_welcome_without_tree_and_no_tree() {
    let alice = kit_without_tree_in_welcome("alice");
    let bob = RsMember::new("bob");
    alice.create_group();
    let commit = alice.add(&[bob.key_package()]);
    deliver("alice adds bob", &commit, &alice, &[]);

    let err = bob.try_join(commit.welcome(), None).unwrap_err();
    assert!(
        matches!(err, mls_rs::error::MlsError::RatchetTreeNotFound),
        "the MLSKit Welcome must really lack the tree: {err:?}"
    );
}

#[test]
fn mlskit_join_of_welcome_without_tree_and_no_tree_is_missing_ratchet_tree() {
    let alice = rs_without_tree_in_welcome("alice");
    let bob = KitMember::new("bob");
    alice.create_group();
    let commit = alice.add(&[bob.key_package()]);
    deliver("alice adds bob", &commit, &alice, &[]);

    let err = bob.try_join(commit.welcome(), None).unwrap_err();
    assert_eq!(err, MlsError::MissingRatchetTree);
    let client = bob.client();
    assert!(client.group_ids().unwrap().is_empty(), "no group stored");
    assert_eq!(client.key_packages().unwrap().len(), 1, "key package kept");
    drop(client);

    bob.join(commit.welcome(), Some(&alice.ratchet_tree()));
    assert_agree("bob retried with the tree", &[&alice, &bob]);
}

#[test]
fn mlskit_external_join_from_group_info_without_tree_is_missing_ratchet_tree() {
    let alice = RsMember::new("alice");
    let bob = KitMember::new("bob");
    alice.create_group();
    let group_info = alice.group_info(false);

    let err = bob.try_join_external(&group_info, None).unwrap_err();
    assert_eq!(err, MlsError::MissingRatchetTree);
    assert!(
        bob.client().group_ids().unwrap().is_empty(),
        "no group stored"
    );

    let commit = bob.join_external(&group_info, Some(&alice.ratchet_tree()));
    deliver_external("bob joins", &commit, &bob, &[&alice]);
    assert_agree("bob retried with the tree", &[&alice, &bob]);
}
