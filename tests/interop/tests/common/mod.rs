//! Shared fixtures for the interop tests: one [`Member`] trait implemented by
//! an MLSKit member ([`KitMember`]) and an mls-rs member ([`RsMember`]), and
//! the helpers that deliver messages and check that all members agree.
//!
//! Both kinds of member keep nothing in memory between steps: every call
//! opens the client from the member's storage (SQLite file for MLSKit, a
//! shared map for mls-rs), acts, saves, and drops it again.
#![allow(dead_code)]

mod disk;
mod kit;
mod rs;

use std::time::Duration;

pub use kit::KitMember;
pub use rs::RsMember;

/// The exporter request every agreement check makes.
pub const EXPORTER_LABEL: &str = "mlskit interop";
pub const EXPORTER_CONTEXT: &[u8] = b"same secret on every member";
pub const EXPORTER_LENGTH: usize = 32;

/// A commit for the group, and the Welcome for the members it adds.
#[derive(Clone, Debug)]
pub struct Commit {
    pub commit: Vec<u8>,
    pub welcome: Option<Vec<u8>>,
}

impl Commit {
    /// The Welcome; panics if the commit added nobody.
    pub fn welcome(&self) -> &[u8] {
        self.welcome
            .as_deref()
            .expect("the commit carries no Welcome")
    }
}

/// What a member made of an incoming message. Commits are already merged.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    Application(Vec<u8>),
    Proposal,
    Commit { new_epoch: u64, removed_us: bool },
}

/// A group member of either implementation. Every method is one step of
/// the member's app: it loads the state from storage, acts, stores the
/// result. Failures panic with the member's name and the operation.
pub trait Member {
    /// The identity in the member's basic credential.
    fn identity(&self) -> &str;
    /// The identity and the implementation, for messages: "alice (mls-rs)".
    fn name(&self) -> String;

    /// A fresh key package to publish.
    fn key_package(&self) -> Vec<u8>;
    /// Creates a group with this member alone in it.
    fn create_group(&self);
    /// Joins from a Welcome; `tree` when the Welcome does not carry it.
    fn join(&self, welcome: &[u8], tree: Option<&[u8]>);
    /// Joins by external commit; returns the commit to send (already merged here).
    fn join_external(&self, group_info: &[u8], tree: Option<&[u8]>) -> Vec<u8>;

    fn epoch(&self) -> u64;
    /// (leaf index, identity) of every member, by leaf index.
    fn roster(&self) -> Vec<(u32, String)>;
    /// The exporter secret for `EXPORTER_LABEL`, `EXPORTER_CONTEXT`, `EXPORTER_LENGTH`.
    fn exporter_secret(&self) -> Vec<u8>;
    fn epoch_authenticator(&self) -> Vec<u8>;
    /// A GroupInfo that allows external commits.
    fn group_info(&self, with_tree: bool) -> Vec<u8>;
    /// The current ratchet tree (RFC 9420 encoding).
    fn ratchet_tree(&self) -> Vec<u8>;

    /// Stages a commit adding the members of these key packages.
    fn add(&self, key_packages: &[Vec<u8>]) -> Commit;
    /// Stages a commit with a path refreshing our own leaf.
    fn update(&self) -> Commit;
    /// Stages a commit removing the member with this identity.
    fn remove(&self, identity: &str) -> Commit;
    /// Stages a commit of every pending proposal (by reference).
    fn commit_pending(&self) -> Commit;
    /// Merges our staged commit after the Delivery Service accepted it.
    fn merge_own(&self);

    /// A by-reference proposal to add the member of `key_package`.
    fn propose_add(&self, key_package: &[u8]) -> Vec<u8>;
    /// A by-reference proposal to refresh our own leaf.
    fn propose_update(&self) -> Vec<u8>;
    /// A by-reference proposal to remove the member with this identity.
    fn propose_remove(&self, identity: &str) -> Vec<u8>;

    /// Encrypts an application message.
    fn send(&self, text: &[u8]) -> Vec<u8>;
    /// Processes a group message; merges commits.
    fn receive(&self, message: &[u8]) -> Received;

    /// The leaf index of the member with this identity.
    fn index_of(&self, identity: &str) -> u32 {
        self.roster()
            .into_iter()
            .find(|(_, id)| id == identity)
            .map(|(index, _)| index)
            .unwrap_or_else(|| panic!("{}: no member {identity} in the roster", self.name()))
    }
}

/// What members must agree on after every epoch change.
#[derive(Debug, PartialEq, Eq)]
struct View {
    epoch: u64,
    roster: Vec<(u32, String)>,
    exporter_secret: Vec<u8>,
    epoch_authenticator: Vec<u8>,
}

impl View {
    fn of(m: &dyn Member) -> Self {
        Self {
            epoch: m.epoch(),
            roster: m.roster(),
            exporter_secret: m.exporter_secret(),
            epoch_authenticator: m.epoch_authenticator(),
        }
    }
}

/// Every member has the same epoch, roster (exactly these members),
/// exporter secret and epoch authenticator.
pub fn assert_agree(step: &str, members: &[&dyn Member]) {
    let first = members[0];
    let want = View::of(first);
    for m in &members[1..] {
        let got = View::of(*m);
        let (a, b) = (first.name(), m.name());
        assert_eq!(got.epoch, want.epoch, "{step}: epoch of {b} vs {a}");
        assert_eq!(got.roster, want.roster, "{step}: roster of {b} vs {a}");
        assert!(
            got.exporter_secret == want.exporter_secret,
            "{step}: exporter secret of {b} differs from {a}'s"
        );
        assert!(
            got.epoch_authenticator == want.epoch_authenticator,
            "{step}: epoch authenticator of {b} differs from {a}'s"
        );
    }
    let mut in_roster: Vec<&str> = want.roster.iter().map(|(_, id)| id.as_str()).collect();
    let mut expected: Vec<&str> = members.iter().map(|m| m.identity()).collect();
    in_roster.sort_unstable();
    expected.sort_unstable();
    assert_eq!(
        in_roster, expected,
        "{step}: the roster lists other members"
    );
}

/// The Delivery Service accepted `commit`: its author merges it and every
/// other member processes it.
pub fn deliver(step: &str, commit: &Commit, author: &dyn Member, others: &[&dyn Member]) {
    author.merge_own();
    let new_epoch = author.epoch();
    for m in others {
        let got = m.receive(&commit.commit);
        assert_eq!(
            got,
            Received::Commit {
                new_epoch,
                removed_us: false
            },
            "{step}: {} processing the commit of {}",
            m.name(),
            author.name()
        );
    }
}

/// Every member in `others` processes `joiner`'s external commit.
pub fn deliver_external(step: &str, commit: &[u8], joiner: &dyn Member, others: &[&dyn Member]) {
    let new_epoch = joiner.epoch();
    for m in others {
        assert_eq!(
            m.receive(commit),
            Received::Commit {
                new_epoch,
                removed_us: false
            },
            "{step}: {} processing the external commit of {}",
            m.name(),
            joiner.name()
        );
    }
}

/// `removed` processes a commit and learns that it removed it.
pub fn expect_removed(step: &str, commit: &Commit, removed: &dyn Member) {
    match removed.receive(&commit.commit) {
        Received::Commit {
            removed_us: true, ..
        } => {}
        other => panic!(
            "{step}: {} should learn it was removed, got {other:?}",
            removed.name()
        ),
    }
}

/// Every member in `to` stores the proposal.
pub fn deliver_proposal(step: &str, proposal: &[u8], to: &[&dyn Member]) {
    for m in to {
        assert_eq!(
            m.receive(proposal),
            Received::Proposal,
            "{step}: {} processing a proposal",
            m.name()
        );
    }
}

/// Each member sends a message; every other member decrypts it.
pub fn exchange(step: &str, members: &[&dyn Member]) {
    for sender in members {
        let text = format!("{step}: hello from {}", sender.name()).into_bytes();
        let message = sender.send(&text);
        for receiver in members {
            if receiver.identity() == sender.identity() {
                continue;
            }
            assert_eq!(
                receiver.receive(&message),
                Received::Application(text.clone()),
                "{step}: {} reading {}'s message",
                receiver.name(),
                sender.name()
            );
        }
    }
}

/// `creator` makes a group and adds `joiner` by Welcome.
pub fn pair(creator: &dyn Member, joiner: &dyn Member) {
    creator.create_group();
    let commit = creator.add(&[joiner.key_package()]);
    deliver("creator adds joiner", &commit, creator, &[]);
    joiner.join(commit.welcome(), None);
    assert_agree("after the joiner joined", &[creator, joiner]);
}

/// Waits until a lifetime of `seconds` that began now has certainly ended.
pub fn sleep_past_lifetime(seconds: u64) {
    std::thread::sleep(Duration::from_secs(seconds + 2));
}
