//! Message framing and delivery: PublicMessage and PrivateMessage handshakes
//! in one group, late and out-of-order application messages, padding.

mod common;

use common::{
    assert_agree, deliver, deliver_proposal, exchange, pair, KitMember, Member, Received, RsMember,
};
use mls_rs::client_builder::PaddingMode;
use mls_rs::mls_rules::{DefaultMlsRules, EncryptionOptions};
use mlskit::{GroupOptions, JoinOptions, MessageKind, WireFormatPolicy};

fn kind(message: &[u8]) -> MessageKind {
    mlskit::parse_message(message.to_vec())
        .expect("parse message")
        .kind
}

/// Handshakes from every member in the framing its configuration sends:
/// MLSKit by default PrivateMessage, MLSKit with MixedPlaintext and mls-rs by
/// default PublicMessage, mls-rs with encrypted control messages PrivateMessage.
#[test]
fn public_and_private_message_handshakes_in_one_group() {
    let alice = KitMember::new("alice");
    let bob = RsMember::new("bob");
    let carol = KitMember::new("carol").with_join_options(JoinOptions {
        wire_format_policy: Some(WireFormatPolicy::MixedPlaintext),
        ..JoinOptions::default()
    });
    let dave = RsMember::new("dave").with_rules(
        DefaultMlsRules::new()
            .with_encryption_options(EncryptionOptions::new(true, PaddingMode::StepFunction)),
    );
    let members: [(&dyn Member, MessageKind); 4] = [
        (&alice, MessageKind::PrivateMessage),
        (&bob, MessageKind::PublicMessage),
        (&carol, MessageKind::PublicMessage),
        (&dave, MessageKind::PrivateMessage),
    ];
    let all: Vec<&dyn Member> = members.iter().map(|(m, _)| *m).collect();
    let others = |me: &dyn Member| -> Vec<&dyn Member> {
        all.iter()
            .copied()
            .filter(|m| m.identity() != me.identity())
            .collect()
    };

    alice.create_group();
    let kps = vec![bob.key_package(), carol.key_package(), dave.key_package()];
    let commit = alice.add(&kps);
    deliver("alice adds everyone", &commit, &alice, &[]);
    for m in &all[1..] {
        m.join(commit.welcome(), None);
    }
    assert_agree("four members", &all);

    for (m, framing) in &members {
        let step = format!("{} commits an update", m.name());
        let commit = m.update();
        assert_eq!(kind(&commit.commit), *framing, "{step}: framing");
        deliver(&step, &commit, *m, &others(*m));
        assert_agree(&step, &all);
    }

    // Each member's proposal is committed by the next member.
    for (i, (m, framing)) in members.iter().enumerate() {
        let committer = members[(i + 1) % members.len()].0;
        let step = format!("{} proposes, {} commits", m.name(), committer.name());
        let proposal = m.propose_update();
        assert_eq!(kind(&proposal), *framing, "{step}: proposal framing");
        deliver_proposal(&step, &proposal, &others(*m));
        let commit = committer.commit_pending();
        deliver(&step, &commit, committer, &others(committer));
        assert_agree(&step, &all);
    }
    exchange("after all handshakes", &all);
}

/// A message sent in one epoch and delivered two epochs later still decrypts.
fn late_application_message(sender: &dyn Member, receiver: &dyn Member) {
    pair(receiver, sender);
    let late = sender.send(b"sent in epoch 1");

    let commit = receiver.update();
    deliver("receiver updates", &commit, receiver, &[sender]);
    assert_agree("one epoch later", &[sender, receiver]);
    let later = sender.send(b"sent in epoch 2");
    let commit = sender.update();
    deliver("sender updates", &commit, sender, &[receiver]);
    assert_agree("two epochs later", &[sender, receiver]);

    assert_eq!(
        receiver.receive(&later),
        Received::Application(b"sent in epoch 2".to_vec()),
        "{} reading a message of the previous epoch",
        receiver.name()
    );
    assert_eq!(
        receiver.receive(&late),
        Received::Application(b"sent in epoch 1".to_vec()),
        "{} reading a message of two epochs ago",
        receiver.name()
    );
    exchange("after the late messages", &[sender, receiver]);
}

#[test]
fn late_mls_rs_message_from_past_epochs_decrypts_on_mlskit() {
    late_application_message(&RsMember::new("alice"), &KitMember::new("bob"));
}

#[test]
fn late_mlskit_message_from_past_epochs_decrypts_on_mls_rs() {
    late_application_message(&KitMember::new("alice"), &RsMember::new("bob"));
}

/// Four messages of one epoch delivered as 3, 0, 2, 1.
fn out_of_order_within_epoch(sender: &dyn Member, receiver: &dyn Member) {
    pair(sender, receiver);
    let texts: Vec<Vec<u8>> = (0..4)
        .map(|i| format!("message {i}").into_bytes())
        .collect();
    let sent: Vec<Vec<u8>> = texts.iter().map(|t| sender.send(t)).collect();
    for i in [3, 0, 2, 1] {
        assert_eq!(
            receiver.receive(&sent[i]),
            Received::Application(texts[i].clone()),
            "{} reading message {i} out of order",
            receiver.name()
        );
    }
    exchange("after out-of-order delivery", &[sender, receiver]);
}

#[test]
fn mls_rs_messages_out_of_order_decrypt_on_mlskit() {
    out_of_order_within_epoch(&RsMember::new("alice"), &KitMember::new("bob"));
}

#[test]
fn mlskit_messages_out_of_order_decrypt_on_mls_rs() {
    out_of_order_within_epoch(&KitMember::new("alice"), &RsMember::new("bob"));
}

const PADDING: u32 = 128;

/// `padded` is an MLSKit member padding to `PADDING` bytes: its messages are
/// padded (two texts of different length give equally long ciphertexts) and
/// `plain` reads them; its encrypted commits are read too.
fn padded_messages(padded: &KitMember, plain: &RsMember) {
    let short = padded.send(b"a");
    let long = padded.send(&[b'z'; 30]);
    assert_eq!(short.len(), long.len(), "MLSKit pads both to one size");
    assert_eq!(plain.receive(&short), Received::Application(b"a".to_vec()));
    assert_eq!(plain.receive(&long), Received::Application(vec![b'z'; 30]));

    let commit = padded.update();
    assert_eq!(kind(&commit.commit), MessageKind::PrivateMessage);
    deliver("padded member updates", &commit, padded, &[plain]);
    assert_agree("after the padded commit", &[padded, plain]);
    exchange("padded and unpadded", &[padded, plain]);
}

#[test]
fn padded_mlskit_creator_and_mls_rs_member() {
    let alice = KitMember::new("alice").with_group_options(GroupOptions {
        join: mlskit::JoinOptions {
            padding_size: PADDING,
            ..Default::default()
        },
        ..GroupOptions::default()
    });
    let bob = RsMember::new("bob");
    pair(&alice, &bob);
    padded_messages(&alice, &bob);
}

#[test]
fn padded_mlskit_joiner_in_mls_rs_group() {
    let alice = RsMember::new("alice");
    let bob = KitMember::new("bob").with_join_options(JoinOptions {
        padding_size: PADDING,
        ..JoinOptions::default()
    });
    pair(&alice, &bob);
    padded_messages(&bob, &alice);
}
