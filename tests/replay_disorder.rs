//! Replays and disorder: what a Delivery Service that re-delivers, reorders,
//! delays or races messages does to a group. Every case gets its documented
//! result or typed error, and a rejected message changes nothing in storage.

mod common;

use std::sync::Arc;

use common::*;
use mlskit::{Group, MlsError, ReceivedMessage, StagedCommit};

fn three() -> Vec<Member> {
    build_group(3, |_| FaultyStore::map())
}

/// Runs `op`, which must fail with `want`, and checks it wrote nothing and
/// left the group as it was.
fn rejected<T>(m: &Member, want: MlsError, op: impl FnOnce() -> Result<T, MlsError>) {
    let before = m.store.snapshot();
    let commits = m.store.commits();
    let observed = m.observe();
    match op() {
        Err(e) => assert_eq!(e, want, "{}", m.name),
        Ok(_) => panic!("{}: expected {want:?}, got success", m.name),
    }
    assert_eq!(m.store.commits(), commits, "{} wrote to storage", m.name);
    assert!(m.store.snapshot() == before, "{} storage changed", m.name);
    assert_eq!(m.observe(), observed, "{} group changed", m.name);
}

fn app(group: &Group, ct: &[u8]) -> mlskit::ApplicationMessage {
    match group.process_message(ct.to_vec()).unwrap() {
        ReceivedMessage::Application { message } => message,
        _ => panic!("expected an application message"),
    }
}

fn staged(group: &Group, commit: &[u8]) -> Arc<StagedCommit> {
    match group.process_message(commit.to_vec()).unwrap() {
        ReceivedMessage::Commit { commit } => commit,
        _ => panic!("expected a commit"),
    }
}

fn all(members: &[Member]) -> Vec<&Member> {
    members.iter().collect()
}

#[test]
fn redelivered_application_message_is_duplicate_and_changes_nothing() {
    let ms = three();
    let ct = ms[0].group.encrypt(b"once".to_vec(), b"".to_vec()).unwrap();
    assert_eq!(app(&ms[1].group, &ct).plaintext, b"once");
    for _ in 0..3 {
        rejected(&ms[1], MlsError::DuplicateMessage, || {
            ms[1].group.process_message(ct.clone())
        });
    }
    // The sender's own message echoed back by the DS, even twice.
    for _ in 0..2 {
        assert!(matches!(
            ms[0].group.process_message(ct.clone()),
            Ok(ReceivedMessage::OwnMessage)
        ));
    }
    check_messaging(&all(&ms), 1);
    check_messaging(&all(&ms), 0);
    assert_agree(&all(&ms));
}

#[test]
fn redelivered_proposal_is_duplicate_and_changes_nothing() {
    let ms = three();
    let p = ms[2].group.propose_self_update().unwrap();
    process_proposal(&ms[0].group, &p.message);
    rejected(&ms[0], MlsError::DuplicateMessage, || {
        ms[0].group.process_message(p.message.clone())
    });
    assert_eq!(ms[0].group.pending_proposals().unwrap().len(), 1);
    process_proposal(&ms[1].group, &p.message);
    let bundle = ms[0].group.commit_pending_proposals().unwrap();
    commit_to_all(&ms, 0, &bundle);
    assert_agree(&all(&ms));
    check_messaging(&all(&ms), 2);
}

#[test]
fn redelivered_commit_is_wrong_epoch_after_merge_and_outdated_before() {
    let ms = three();
    let e = ms[0].group.epoch().unwrap();
    let bundle = ms[0].group.self_update().unwrap();
    ms[0].group.merge_pending_commit().unwrap();

    // Delivered twice before merging: the second staging wins, the first is stale.
    let first = staged(&ms[1].group, &bundle.commit);
    let second = staged(&ms[1].group, &bundle.commit);
    second.merge().unwrap();
    let before = ms[1].store.snapshot();
    assert_eq!(first.merge(), Err(MlsError::StagedCommitOutdated));
    assert_eq!(second.merge(), Err(MlsError::StagedCommitOutdated));
    assert!(ms[1].store.snapshot() == before);

    // Delivered again after the merge: a handshake of a past epoch.
    for m in [&ms[1], &ms[0]] {
        rejected(
            m,
            MlsError::WrongEpoch {
                message_epoch: e,
                group_epoch: e + 1,
            },
            || m.group.process_message(bundle.commit.clone()),
        );
    }
    process_and_merge(&ms[2].group, &bundle.commit);
    rejected(
        &ms[2],
        MlsError::WrongEpoch {
            message_epoch: e,
            group_epoch: e + 1,
        },
        || ms[2].group.process_message(bundle.commit.clone()),
    );
    assert_agree(&all(&ms));
    check_messaging(&all(&ms), 1);
}

/// The sender ratchet accepts a message up to `out_of_order_tolerance - 1`
/// generations behind the newest one received from that sender (OpenMLS
/// measures the distance from the ratchet head, one past the newest).
#[test]
fn out_of_order_within_tolerance_decrypts_and_beyond_is_duplicate() {
    let ms = three();
    // Default out-of-order tolerance: 5.
    let cts: Vec<Vec<u8>> = (0..6)
        .map(|i| {
            ms[0]
                .group
                .encrypt(format!("m{i}").into_bytes(), Vec::new())
                .unwrap()
        })
        .collect();
    // Newest first, then the rest scrambled: all within the window.
    for i in [5usize, 2, 4, 1, 3] {
        assert_eq!(
            app(&ms[1].group, &cts[i]).plaintext,
            format!("m{i}").into_bytes()
        );
    }
    // Five behind the newest: too late, reported like a re-delivery.
    rejected(&ms[1], MlsError::DuplicateMessage, || {
        ms[1].group.process_message(cts[0].clone())
    });
    // Each of the others again: duplicates, nothing changes.
    for ct in &cts[1..] {
        rejected(&ms[1], MlsError::DuplicateMessage, || {
            ms[1].group.process_message(ct.clone())
        });
    }
    // A receiver that had none of them gets them all in order.
    for (i, ct) in cts.iter().enumerate() {
        assert_eq!(
            app(&ms[2].group, ct).plaintext,
            format!("m{i}").into_bytes()
        );
    }

    // Far beyond the window: generation 0 after generation 20.
    let more: Vec<Vec<u8>> = (0..21)
        .map(|i| {
            ms[2]
                .group
                .encrypt(format!("n{i}").into_bytes(), Vec::new())
                .unwrap()
        })
        .collect();
    assert_eq!(app(&ms[1].group, &more[20]).plaintext, b"n20");
    for late in [&more[0], &more[10], &more[15]] {
        rejected(&ms[1], MlsError::DuplicateMessage, || {
            ms[1].group.process_message(late.clone())
        });
    }
    // Just inside the window still decrypts.
    assert_eq!(app(&ms[1].group, &more[19]).plaintext, b"n19");
    assert_eq!(app(&ms[1].group, &more[16]).plaintext, b"n16");
    // Skipping ahead (within the forward distance) is fine for another receiver.
    assert_eq!(app(&ms[0].group, &more[20]).plaintext, b"n20");
    check_messaging(&all(&ms), 1);
    assert_agree(&all(&ms));
}

#[test]
fn late_messages_decrypt_for_three_past_epochs_then_are_wrong_epoch() {
    let ms = three();
    let e = ms[0].group.epoch().unwrap();
    let late: Vec<Vec<u8>> = (0..6)
        .map(|i| {
            ms[0]
                .group
                .encrypt(format!("late {i}").into_bytes(), Vec::new())
                .unwrap()
        })
        .collect();
    for k in 1..=5u64 {
        let bundle = ms[2].group.self_update().unwrap();
        commit_to_all(&ms, 2, &bundle);
        let msg = &late[k as usize];
        if k <= 3 {
            // max_past_epochs defaults to 3.
            let got = app(&ms[1].group, msg);
            assert_eq!(got.plaintext, format!("late {k}").into_bytes());
            assert_eq!(got.epoch, e);
        } else {
            rejected(
                &ms[1],
                MlsError::WrongEpoch {
                    message_epoch: e,
                    group_epoch: e + k,
                },
                || ms[1].group.process_message(msg.clone()),
            );
        }
    }
    assert_agree(&all(&ms));
    check_messaging(&all(&ms), 0);
}

#[test]
fn future_epoch_message_is_wrong_epoch_until_the_commit_is_processed() {
    let ms = three();
    let e = ms[0].group.epoch().unwrap();
    let bundle = ms[0].group.self_update().unwrap();
    ms[0].group.merge_pending_commit().unwrap();
    let ct = ms[0]
        .group
        .encrypt(b"from the future".to_vec(), Vec::new())
        .unwrap();
    let next = ms[0].group.self_update().unwrap();
    ms[0].group.merge_pending_commit().unwrap();
    let want = MlsError::WrongEpoch {
        message_epoch: e + 1,
        group_epoch: e,
    };
    rejected(&ms[1], want.clone(), || {
        ms[1].group.process_message(ct.clone())
    });
    // A commit from a future epoch too.
    rejected(&ms[1], want, || {
        ms[1].group.process_message(next.commit.clone())
    });
    process_and_merge(&ms[1].group, &bundle.commit);
    assert_eq!(app(&ms[1].group, &ct).plaintext, b"from the future");
    process_and_merge(&ms[1].group, &next.commit);
    process_and_merge(&ms[2].group, &bundle.commit);
    process_and_merge(&ms[2].group, &next.commit);
    assert_agree(&all(&ms));
    check_messaging(&all(&ms), 2);
}

/// Two members commit in the same epoch; the DS accepts the first. The loser
/// clears its pending commit, processes the winner and commits again.
#[test]
fn commit_that_loses_the_race_recovers_and_commits_again() {
    let ms = three();
    let e = ms[0].group.epoch().unwrap();
    let winner = ms[0].group.self_update().unwrap();
    let loser = ms[1]
        .group
        .remove_members(vec![ms[2].group.own_index().unwrap()])
        .unwrap();
    // The DS accepted `winner`.
    ms[0].group.merge_pending_commit().unwrap();

    // The losing commit, if a member sees it anyway, is for a past epoch.
    rejected(
        &ms[0],
        MlsError::WrongEpoch {
            message_epoch: e,
            group_epoch: e + 1,
        },
        || ms[0].group.process_message(loser.commit.clone()),
    );
    // The loser cannot act while its commit is pending.
    rejected(&ms[1], MlsError::PendingCommit, || {
        ms[1].group.self_update()
    });

    // Recovery: clear, process the winner, commit again.
    assert!(ms[1].group.pending_commit().unwrap().is_some());
    ms[1].group.clear_pending_commit().unwrap();
    assert!(ms[1].group.pending_commit().unwrap().is_none());
    assert_eq!(
        ms[1].group.clear_pending_commit(),
        Err(MlsError::NoPendingCommit)
    );
    assert_eq!(ms[1].group.epoch().unwrap(), e);
    process_and_merge(&ms[1].group, &winner.commit);
    process_and_merge(&ms[2].group, &winner.commit);
    assert_agree(&all(&ms));

    let again = ms[1]
        .group
        .remove_members(vec![ms[2].group.own_index().unwrap()])
        .unwrap();
    ms[1].group.merge_pending_commit().unwrap();
    process_and_merge(&ms[0].group, &again.commit);
    process_and_merge(&ms[2].group, &again.commit);
    assert!(!ms[2].group.is_active().unwrap());
    assert_eq!(ms[1].group.epoch().unwrap(), e + 2);
    assert_agree(&[&ms[0], &ms[1]]);
    check_messaging(&[&ms[0], &ms[1]], 1);
}

/// What happens when the loser processes the winner without clearing first:
/// the winner merges and replaces the pending commit (OpenMLS drops it), so
/// the group is never left holding a stale commit of a past epoch.
#[test]
fn loser_processing_the_winner_directly_drops_its_own_pending_commit() {
    let ms = three();
    let winner = ms[2].group.self_update().unwrap();
    let _loser = ms[1].group.self_update().unwrap();
    ms[2].group.merge_pending_commit().unwrap();
    process_and_merge(&ms[1].group, &winner.commit);
    assert!(ms[1].group.pending_commit().unwrap().is_none());
    assert_eq!(
        ms[1].group.merge_pending_commit(),
        Err(MlsError::NoPendingCommit)
    );
    process_and_merge(&ms[0].group, &winner.commit);
    assert_agree(&all(&ms));
    check_messaging(&all(&ms), 1);
    // The reloaded state agrees too.
    let reopened = client_on(&ms[1].store, "m1")
        .group(ms[1].group.id())
        .unwrap();
    assert!(reopened.pending_commit().unwrap().is_none());
}

/// A fork, made on purpose: m1 merges its own commit although the DS took
/// m0's. Members detect it by comparing `epoch_authenticator()` (same epoch,
/// different values), and repair it with the existing API: a member on the
/// accepted side removes and re-adds m1 in one commit (`propose_remove` +
/// `propose_add`, then `commit_pending_proposals`), and m1 drops its copy and
/// joins from the Welcome.
#[test]
fn a_forked_member_is_detected_and_re_added_in_one_commit() {
    let ms = three();
    let (a, b, c) = (&ms[0], &ms[1], &ms[2]);
    let accepted = a.group.self_update().unwrap();
    a.group.merge_pending_commit().unwrap();
    let _rejected = b.group.self_update().unwrap();
    b.group.merge_pending_commit().unwrap(); // the app's bug: merged without the DS's word
    process_and_merge(&c.group, &accepted.commit);

    // Detection.
    assert_eq!(a.group.epoch().unwrap(), b.group.epoch().unwrap());
    assert_ne!(
        a.group.epoch_authenticator().unwrap(),
        b.group.epoch_authenticator().unwrap()
    );
    assert_agree(&[a, c]);
    let ct = a
        .group
        .encrypt(b"unreadable on the fork".to_vec(), vec![])
        .unwrap();
    assert!(b.group.process_message(ct).is_err());

    // Repair: remove and re-add m1 in one commit of the accepted side.
    let index = b.group.own_index().unwrap();
    let kp = b.client.create_key_packages(1, None).unwrap().remove(0);
    let remove = a
        .group
        .propose_remove(index, mlskit::ProposalMode::ByReference)
        .unwrap();
    let add = a
        .group
        .propose_add(kp, mlskit::ProposalMode::ByReference)
        .unwrap();
    process_proposal(&c.group, &remove.message);
    process_proposal(&c.group, &add.message);
    let repair = a.group.commit_pending_proposals().unwrap();
    a.group.merge_pending_commit().unwrap();
    process_and_merge(&c.group, &repair.commit);
    b.client.delete_group(b.group.id()).unwrap();
    let rejoined = b
        .client
        .join_group(repair.welcome.unwrap(), None, None)
        .unwrap();

    let b = Member {
        name: b.name.clone(),
        store: b.store.clone(),
        client: b.client.clone(),
        group: rejoined,
    };
    assert_eq!(b.group.members().unwrap().len(), 3);
    assert_agree(&[a, &b, c]);
    check_messaging(&[a, &b, c], 1);
}
