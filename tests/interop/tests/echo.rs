//! The Delivery Service echoes every commit to its author too. MLSKit reports
//! the echo of its own pending commit as `OwnCommit` (in either framing) and
//! the app merges; mls-rs applies its pending commit when it sees the echo.

mod common;

use common::{assert_agree, Commit, KitMember, Member, Received, RsMember};
use mls_rs::client_builder::PaddingMode;
use mls_rs::mls_rules::{DefaultMlsRules, EncryptionOptions};
use mlskit::{GroupOptions, MessageKind, ReceivedMessage, WireFormatPolicy};

fn kind(message: &[u8]) -> MessageKind {
    mlskit::parse_message(message.to_vec())
        .expect("parse message")
        .kind
}

/// The Delivery Service echoes `commit` to its MLSKit author, which merges on
/// `OwnCommit`; then the other members process it.
fn kit_echo(step: &str, author: &KitMember, commit: &Commit, others: &[&dyn Member]) {
    let before = author.epoch();
    match author.process(&commit.commit) {
        Ok(ReceivedMessage::OwnCommit { new_epoch }) => {
            assert_eq!(new_epoch, before + 1, "{step}: epoch the echo announces")
        }
        Ok(_) => panic!("{step}: the echo of our pending commit must be OwnCommit"),
        Err(e) => panic!("{step}: processing the echo: {e:?}"),
    }
    assert_eq!(
        author.epoch(),
        before,
        "{step}: the echo itself merges nothing"
    );
    assert!(author.group().pending_commit().unwrap().is_some());
    author
        .group()
        .merge_pending_commit()
        .unwrap_or_else(|e| panic!("{step}: merge after the echo: {e:?}"));
    assert_eq!(author.epoch(), before + 1, "{step}: merged");
    for m in others {
        assert_eq!(
            m.receive(&commit.commit),
            Received::Commit {
                new_epoch: before + 1,
                removed_us: false
            },
            "{step}: {}",
            m.name()
        );
    }
}

/// An MLSKit author with `policy` adds an mls-rs member and updates; each
/// commit comes back as an echo first.
fn mlskit_own_commit_echo(policy: WireFormatPolicy, framing: MessageKind) {
    let alice = KitMember::new("alice").with_group_options(GroupOptions {
        join: mlskit::JoinOptions {
            wire_format_policy: Some(policy),
            ..Default::default()
        },
        ..GroupOptions::default()
    });
    let bob = RsMember::new("bob");
    alice.create_group();

    let commit = alice.add(&[bob.key_package()]);
    assert_eq!(kind(&commit.commit), framing, "add commit framing");
    kit_echo("echo of alice's add", &alice, &commit, &[]);
    bob.join(commit.welcome(), None);
    assert_agree("bob joined", &[&alice, &bob]);

    let commit = alice.update();
    assert_eq!(kind(&commit.commit), framing, "update commit framing");
    kit_echo("echo of alice's update", &alice, &commit, &[&bob]);
    assert_agree("after alice's update", &[&alice, &bob]);
}

#[test]
fn mlskit_echo_of_own_private_message_commit_is_own_commit() {
    mlskit_own_commit_echo(
        WireFormatPolicy::MixedCiphertext,
        MessageKind::PrivateMessage,
    );
}

#[test]
fn mlskit_echo_of_own_public_message_commit_is_own_commit() {
    mlskit_own_commit_echo(WireFormatPolicy::MixedPlaintext, MessageKind::PublicMessage);
}

/// An mls-rs author with `rules` commits an update; the echo applies it and
/// the MLSKit member processes the same bytes.
fn mls_rs_own_commit_echo(rules: DefaultMlsRules, framing: MessageKind) {
    let alice = RsMember::new("alice").with_rules(rules);
    let bob = KitMember::new("bob");
    common::pair(&alice, &bob);

    let commit = alice.update();
    assert_eq!(kind(&commit.commit), framing, "update commit framing");
    let received = alice
        .process(&commit.commit)
        .unwrap_or_else(|e| panic!("alice processing the echo: {e:?}"));
    assert!(
        matches!(received, mls_rs::group::ReceivedMessage::Commit(_)),
        "mls-rs applies its pending commit on the echo: {received:?}"
    );
    assert!(!alice.has_pending_commit());
    assert_eq!(
        bob.receive(&commit.commit),
        Received::Commit {
            new_epoch: 2,
            removed_us: false
        }
    );
    assert_agree("after the echo", &[&alice, &bob]);
}

#[test]
fn mls_rs_echo_of_own_public_message_commit_applies_it() {
    mls_rs_own_commit_echo(DefaultMlsRules::new(), MessageKind::PublicMessage);
}

#[test]
fn mls_rs_echo_of_own_private_message_commit_applies_it() {
    mls_rs_own_commit_echo(
        DefaultMlsRules::new()
            .with_encryption_options(EncryptionOptions::new(true, PaddingMode::StepFunction)),
        MessageKind::PrivateMessage,
    );
}
