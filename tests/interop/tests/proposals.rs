//! Proposals by reference (update, add, remove) sent by one implementation
//! and committed by the other.

mod common;

use common::{
    assert_agree, deliver, deliver_proposal, exchange, expect_removed, pair, KitMember, Member,
    RsMember,
};

/// `committer` creates the group with `proposer` and `target`; the proposer
/// proposes an update, then adding `newcomer`, then removing `target`; the
/// committer commits each by reference.
fn proposals_committed_by_the_other_implementation(
    proposer: &dyn Member,
    committer: &dyn Member,
    target: &dyn Member,
    newcomer: &dyn Member,
) {
    pair(committer, proposer);
    let commit = committer.add(&[target.key_package()]);
    deliver("committer adds target", &commit, committer, &[proposer]);
    target.join(commit.welcome(), None);
    assert_agree("group of three", &[committer, proposer, target]);

    let proposal = proposer.propose_update();
    deliver_proposal("update proposal", &proposal, &[committer, target]);
    let commit = committer.commit_pending();
    deliver("commit the update", &commit, committer, &[proposer, target]);
    assert_agree(
        "proposer's update committed",
        &[committer, proposer, target],
    );
    exchange("after the update", &[committer, proposer, target]);

    let proposal = proposer.propose_add(&newcomer.key_package());
    deliver_proposal("add proposal", &proposal, &[committer, target]);
    let commit = committer.commit_pending();
    deliver("commit the add", &commit, committer, &[proposer, target]);
    newcomer.join(commit.welcome(), None);
    let all = [committer, proposer, target, newcomer];
    assert_agree("proposed add committed", &all);
    exchange("after the add", &all);

    let proposal = proposer.propose_remove(target.identity());
    deliver_proposal("remove proposal", &proposal, &[committer, target, newcomer]);
    let commit = committer.commit_pending();
    deliver(
        "commit the remove",
        &commit,
        committer,
        &[proposer, newcomer],
    );
    expect_removed("commit the remove", &commit, target);
    let rest = [committer, proposer, newcomer];
    assert_agree("proposed remove committed", &rest);
    exchange("after the remove", &rest);
}

#[test]
fn mlskit_proposals_committed_by_mls_rs() {
    proposals_committed_by_the_other_implementation(
        &KitMember::new("alice"),
        &RsMember::new("bob"),
        &RsMember::new("carol"),
        &KitMember::new("dave"),
    );
}

#[test]
fn mls_rs_proposals_committed_by_mlskit() {
    proposals_committed_by_the_other_implementation(
        &RsMember::new("alice"),
        &KitMember::new("bob"),
        &KitMember::new("carol"),
        &RsMember::new("dave"),
    );
}
