//! Who sent it and who may join: senders of late messages, the committer's
//! leaf in `CommitInfo`, and the group setting that refuses external commits.
//! (A hostile external commit that removes another member needs an MLS stack
//! that will build one: tests/interop/tests/external_commit_security.rs.)

mod common;

use common::*;
use mlskit::{GroupOptions, MlsError, ReceivedMessage, Sender};

/// Processes an application message and returns who sent it.
fn sender_of(group: &mlskit::Group, message: &[u8]) -> Sender {
    match group.process_message(message.to_vec()).unwrap() {
        ReceivedMessage::Application { message } => message.sender,
        _ => panic!("expected an application message"),
    }
}

/// Members m0, m1, m2 at leaves 0, 1, 2; m2 writes a message that reaches m1
/// only after m0 removed m2 (and, with `reuse_leaf`, gave leaf 2 to "dave").
fn late_message_after_removal(reuse_leaf: bool) -> Sender {
    let ms = build_group(3, |_| FaultyStore::map());
    let late = ms[2]
        .group
        .encrypt(b"sent before the removal".to_vec(), vec![])
        .unwrap();
    let removal = ms[0].group.remove_members(vec![2]).unwrap();
    commit_to_all(&ms[..2], 0, &removal);
    if reuse_leaf {
        let dave = client_on(&FaultyStore::map(), "dave");
        let add = ms[0]
            .group
            .add_members(dave.create_key_packages(1, None).unwrap())
            .unwrap();
        commit_to_all(&ms[..2], 0, &add);
        let gd = dave.join_group(add.welcome.unwrap(), None, None).unwrap();
        assert_eq!(gd.own_index().unwrap(), 2, "dave takes carol's leaf");
    }
    sender_of(&ms[1].group, &late)
}

#[test]
fn late_message_is_credited_to_its_sender_after_its_leaf_was_reused() {
    assert_eq!(
        late_message_after_removal(true),
        Sender::Member {
            index: 2,
            identity: b"m2".to_vec()
        }
    );
}

#[test]
fn late_message_is_credited_to_its_sender_after_its_leaf_was_emptied() {
    assert_eq!(
        late_message_after_removal(false),
        Sender::Member {
            index: 2,
            identity: b"m2".to_vec()
        }
    );
}

#[test]
fn commit_info_names_the_external_joiner_and_the_committers_new_leaf() {
    let ms = build_group(2, |_| FaultyStore::map());
    let eve = client_on(&FaultyStore::map(), "eve");
    let joined = eve
        .join_by_external_commit(ms[0].group.export_group_info(true).unwrap(), None, None)
        .unwrap();
    let ReceivedMessage::Commit { commit } =
        ms[0].group.process_message(joined.commit.clone()).unwrap()
    else {
        panic!("expected a commit");
    };
    let info = commit.info();
    assert_eq!(info.sender, Sender::NewMemberCommit);
    let joiner = info.committer_leaf.expect("an external commit has a path");
    assert_eq!(joiner.identity, b"eve".to_vec());
    assert_eq!(joiner.index, joined.group.own_index().unwrap());
    assert_eq!(
        joiner.signature_key,
        eve.signature_public_key(None).unwrap()
    );
    commit.merge().unwrap();
    process_and_merge(&ms[1].group, &joined.commit);

    // A member's path commit names its new leaf; a commit without a path none.
    let update = ms[1].group.self_update().unwrap();
    let ReceivedMessage::Commit { commit } =
        ms[0].group.process_message(update.commit.clone()).unwrap()
    else {
        panic!("expected a commit");
    };
    let leaf = commit
        .info()
        .committer_leaf
        .expect("a self-update has a path");
    assert_eq!((leaf.index, leaf.identity), (1, b"m1".to_vec()));
    commit.discard();
    ms[1].group.clear_pending_commit().unwrap();
    let proposal = ms[1].group.propose_self_update().unwrap();
    process_proposal(&ms[0].group, &proposal.message);
    let by_reference = ms[0].group.commit_pending_proposals().unwrap();
    assert!(ms[0].group.pending_commit().unwrap().unwrap().has_path);
    let ReceivedMessage::Commit { commit } = ms[1]
        .group
        .process_message(by_reference.commit.clone())
        .unwrap()
    else {
        panic!("expected a commit");
    };
    assert_eq!(commit.info().committer_leaf.unwrap().index, 0);
}

#[test]
fn group_that_refuses_external_commits_writes_nothing_and_keeps_refusing_after_a_restart() {
    let store = FaultyStore::map();
    let alice = client_on(&store, "alice");
    let ga = alice
        .create_group(Some(GroupOptions {
            join: mlskit::JoinOptions {
                allow_external_commits: false,
                ..Default::default()
            },
            ..Default::default()
        }))
        .unwrap();
    let eve = client_on(&FaultyStore::map(), "eve");
    let joined = eve
        .join_by_external_commit(ga.export_group_info(true).unwrap(), None, None)
        .unwrap();
    let before = Observed::of(&ga);
    let commits = store.commits();
    assert!(matches!(
        ga.process_message(joined.commit.clone()),
        Err(MlsError::ExternalCommitRefused { .. })
    ));
    assert_eq!(store.commits(), commits, "a refused commit writes nothing");
    assert_eq!(Observed::of(&ga), before);

    drop(ga);
    drop(alice);
    let reopened = client_on(&store, "alice");
    let ga = reopened.group(joined.group.id()).unwrap();
    assert!(matches!(
        ga.process_message(joined.commit),
        Err(MlsError::ExternalCommitRefused { .. })
    ));
    // The group works on: a member added by Welcome is welcome.
    let bob = client_on(&FaultyStore::map(), "bob");
    let add = ga
        .add_members(bob.create_key_packages(1, None).unwrap())
        .unwrap();
    ga.merge_pending_commit().unwrap();
    let gb = bob.join_group(add.welcome.unwrap(), None, None).unwrap();
    assert_eq!(gb.epoch().unwrap(), ga.epoch().unwrap());
}
