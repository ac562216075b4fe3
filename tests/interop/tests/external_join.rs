//! External joins by one implementation into a group created by the other,
//! with the ratchet tree in the GroupInfo and out of band.

mod common;

use common::{
    assert_agree, deliver, deliver_external, exchange, pair, KitMember, Member, RsMember,
};

/// `owner` creates a group with `member`; `joiner` joins by external commit
/// from the owner's GroupInfo, then everyone talks and commits again.
fn external_join(
    owner: &dyn Member,
    member: &dyn Member,
    joiner: &dyn Member,
    tree_in_group_info: bool,
) {
    pair(owner, member);
    let group_info = owner.group_info(tree_in_group_info);
    let tree = (!tree_in_group_info).then(|| owner.ratchet_tree());

    let commit = joiner.join_external(&group_info, tree.as_deref());
    deliver_external("external join", &commit, joiner, &[owner, member]);
    let all = [owner, member, joiner];
    assert_agree("after the external join", &all);
    exchange("after the external join", &all);

    let commit = joiner.update();
    deliver("joiner updates", &commit, joiner, &[owner, member]);
    assert_agree("after the joiner's update", &all);

    let commit = owner.update();
    deliver("owner updates", &commit, owner, &[member, joiner]);
    assert_agree("after the owner's update", &all);
    exchange("after the owner's update", &all);
}

#[test]
fn mlskit_joins_mls_rs_group_by_external_commit_tree_in_group_info() {
    external_join(
        &RsMember::new("alice"),
        &KitMember::new("bob"),
        &KitMember::new("carol"),
        true,
    );
}

#[test]
fn mlskit_joins_mls_rs_group_by_external_commit_tree_out_of_band() {
    external_join(
        &RsMember::new("alice"),
        &KitMember::new("bob"),
        &KitMember::new("carol"),
        false,
    );
}

#[test]
fn mls_rs_joins_mlskit_group_by_external_commit_tree_in_group_info() {
    external_join(
        &KitMember::new("alice"),
        &RsMember::new("bob"),
        &RsMember::new("carol"),
        true,
    );
}

#[test]
fn mls_rs_joins_mlskit_group_by_external_commit_tree_out_of_band() {
    external_join(
        &KitMember::new("alice"),
        &RsMember::new("bob"),
        &RsMember::new("carol"),
        false,
    );
}
