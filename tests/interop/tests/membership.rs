//! Groups with members of both implementations: creation, adds by Welcome,
//! self-updates, removals and messages in every direction.

mod common;

use common::{assert_agree, deliver, exchange, expect_removed, pair, KitMember, Member, RsMember};

/// `creator` makes the group, adds `joiner`, and they talk both ways.
fn creator_adds_other_implementation(creator: &dyn Member, joiner: &dyn Member) {
    pair(creator, joiner);
    exchange("first epoch", &[creator, joiner]);

    let commit = joiner.update();
    deliver("joiner updates", &commit, joiner, &[creator]);
    assert_agree("after the joiner's update", &[creator, joiner]);
    exchange("after the joiner's update", &[creator, joiner]);
}

#[test]
fn mls_rs_creates_group_and_adds_mlskit_member() {
    creator_adds_other_implementation(&RsMember::new("alice"), &KitMember::new("bob"));
}

#[test]
fn mlskit_creates_group_and_adds_mls_rs_member() {
    creator_adds_other_implementation(&KitMember::new("alice"), &RsMember::new("bob"));
}

/// Three members of alternating implementations: the second adds the third,
/// each updates, the third removes the first, and messages go every way.
fn three_alternating_members(first: &dyn Member, second: &dyn Member, third: &dyn Member) {
    pair(first, second);

    let commit = second.add(&[third.key_package()]);
    deliver("second adds third", &commit, second, &[first]);
    third.join(commit.welcome(), None);
    assert_agree("second added third", &[first, second, third]);
    exchange("three members", &[first, second, third]);

    for (who, others) in [
        (first, [second, third]),
        (second, [first, third]),
        (third, [first, second]),
    ] {
        let step = format!("{} updates", who.name());
        let commit = who.update();
        deliver(&step, &commit, who, &others);
        assert_agree(&step, &[first, second, third]);
        exchange(&step, &[first, second, third]);
    }

    let commit = third.remove(first.identity());
    deliver("third removes first", &commit, third, &[second]);
    expect_removed("third removes first", &commit, first);
    assert_agree("after the removal", &[second, third]);
    exchange("after the removal", &[second, third]);
}

#[test]
fn three_alternating_members_mls_rs_first() {
    three_alternating_members(
        &RsMember::new("alice"),
        &KitMember::new("bob"),
        &RsMember::new("carol"),
    );
}

#[test]
fn three_alternating_members_mlskit_first() {
    three_alternating_members(
        &KitMember::new("alice"),
        &RsMember::new("bob"),
        &KitMember::new("carol"),
    );
}
