//! End-to-end scenarios using every API: three (and more) members, every
//! proposal kind, staged commit inspection, restarts, re-delivery and races.

mod common;

use std::sync::Arc;

use common::*;
use mlskit::{
    Ciphersuite, Client, ExternalSender, GroupExtension, GroupOptions, JoinOptions,
    KeyPackageOptions, MessageKind, MlsError, ProposalContent, ProposalMode, ReceivedMessage,
    Sender, StagedCommit, WireFormatPolicy,
};

fn ext(data: &[u8]) -> Vec<GroupExtension> {
    vec![GroupExtension {
        extension_type: CUSTOM_EXTENSION,
        data: data.to_vec(),
    }]
}

fn staged(msg: ReceivedMessage) -> Arc<StagedCommit> {
    match msg {
        ReceivedMessage::Commit { commit } => commit,
        _ => panic!("expected a commit"),
    }
}

fn app(group: &mlskit::Group, ct: &[u8]) -> mlskit::ApplicationMessage {
    match group.process_message(ct.to_vec()).unwrap() {
        ReceivedMessage::Application { message } => message,
        _ => panic!("expected an application message"),
    }
}

fn member(name: &str, index: u32) -> Sender {
    Sender::Member {
        index,
        identity: name.as_bytes().to_vec(),
    }
}

/// Delivers a proposal message to these groups.
fn deliver_proposal(groups: &[&mlskit::Group], msg: &[u8]) {
    for g in groups {
        process_proposal(g, msg);
    }
}

fn lifecycle(cs: Ciphersuite, policy: WireFormatPolicy) {
    let what = format!("{cs:?}/{policy:?}");
    let step = Step::new(format!("lifecycle {what}"));
    let (sa, sb, sc, sd) = (
        FaultyStore::map(),
        FaultyStore::map(),
        FaultyStore::map(),
        FaultyStore::map(),
    );
    let (a, b, c, d) = (
        client_on(&sa, "alice"),
        client_on(&sb, "bob"),
        client_on(&sc, "carol"),
        client_on(&sd, "dave"),
    );
    let kpo = |last_resort: bool, lifetime: Option<u64>| {
        Some(KeyPackageOptions {
            ciphersuite: Some(cs),
            lifetime_seconds: lifetime,
            last_resort,
        })
    };
    let join = Some(JoinOptions {
        wire_format_policy: Some(policy),
        ..Default::default()
    });

    // Key packages: lifetime, last resort, inventory, delete, prune.
    step.next("key packages");
    let kps_b = b.create_key_packages(2, kpo(false, Some(3600))).unwrap();
    let lr_b = b.create_key_packages(1, kpo(true, None)).unwrap().remove(0);
    let inv = b.key_packages().unwrap();
    assert_eq!(inv.len(), 3);
    assert_eq!(inv.iter().filter(|k| k.last_resort).count(), 1);
    assert!(inv
        .iter()
        .all(|k| k.ciphersuite == cs && k.not_after > k.not_before));
    let info = mlskit::validate_key_package(kps_b[1].clone()).unwrap();
    assert_eq!(info.identity, b"bob");
    assert_eq!(info.ciphersuite, cs);
    assert!(!info.last_resort);
    assert!(info.not_after - info.not_before >= 3600);
    assert_eq!(
        info.signature_key,
        b.signature_public_key(Some(cs)).unwrap()
    );
    assert!(
        mlskit::validate_key_package(lr_b.clone())
            .unwrap()
            .last_resort
    );
    assert_eq!(
        mlskit::parse_message(lr_b.clone()).unwrap().kind,
        MessageKind::KeyPackage
    );
    assert!(b.delete_key_package(info.hash_ref.clone()).unwrap());
    assert!(!b.delete_key_package(info.hash_ref.clone()).unwrap());
    assert_eq!(b.prune_expired_key_packages().unwrap(), 0);
    assert_eq!(b.key_packages().unwrap().len(), 2);
    let kp_c = c.create_key_packages(1, kpo(true, None)).unwrap().remove(0);

    // Create the group with every option.
    step.next("create the group");
    let gid = format!("group {what}").into_bytes();
    let options = GroupOptions {
        group_id: Some(gid.clone()),
        ciphersuite: Some(cs),
        required_extension_types: vec![CUSTOM_EXTENSION],
        required_proposal_types: vec![CUSTOM_PROPOSAL],
        required_credential_types: vec![1],
        external_senders: vec![ExternalSender {
            signature_key: d.signature_public_key(Some(cs)).unwrap(),
            identity: b"dave".to_vec(),
        }],
        custom_extensions: ext(b"v0"),
        join: mlskit::JoinOptions {
            wire_format_policy: Some(policy),
            padding_size: 32,
            max_past_epochs: 2,
            out_of_order_tolerance: 4,
            maximum_forward_distance: 500,
            use_ratchet_tree_extension: true,
            allow_external_commits: true,
        },
    };
    let ga = a.create_group(Some(options.clone())).unwrap();
    assert!(matches!(
        a.create_group(Some(options)),
        Err(MlsError::GroupExists)
    ));
    assert_eq!(ga.id(), gid);
    assert_eq!(ga.ciphersuite().unwrap(), cs);
    assert_eq!(ga.custom_extensions().unwrap(), ext(b"v0"));
    assert_eq!(ga.epoch().unwrap(), 0);
    assert_eq!(ga.own_index().unwrap(), 0);

    // Add bob by commit; inspect the Welcome without writing; join in-band.
    step.next("add bob");
    let bundle = ga.add_members(vec![kps_b[0].clone()]).unwrap();
    let pc = ga.pending_commit().unwrap().unwrap();
    assert_eq!(pc.adds.len(), 1);
    assert_eq!(pc.adds[0].identity, b"bob");
    assert_eq!(pc.new_epoch, 1);
    assert!(bundle.group_info.is_some());
    ga.merge_pending_commit().unwrap();
    let welcome = bundle.welcome.unwrap();
    let before = (sb.snapshot(), sb.commits());
    let wi = b.inspect_welcome(welcome.clone(), None).unwrap();
    assert_eq!(
        (sb.snapshot(), sb.commits()),
        before,
        "inspect_welcome wrote"
    );
    assert_eq!(wi.group_id, gid);
    assert_eq!(wi.epoch, 1);
    assert_eq!(wi.ciphersuite, cs);
    assert_eq!(wi.sender_index, 0);
    assert_eq!(wi.own_index, 1);
    assert_eq!(wi.members.len(), 2);
    assert!(wi.external_psk_ids.is_empty());
    let gb = b.join_group(welcome.clone(), None, join.clone()).unwrap();
    assert!(matches!(
        b.join_group(welcome, None, join.clone()),
        Err(MlsError::GroupExists) | Err(MlsError::NoMatchingKeyPackage)
    ));
    assert_eq!(
        b.key_packages().unwrap().len(),
        1,
        "used key package consumed"
    );
    assert_eq!(gb.custom_extensions().unwrap(), ext(b"v0"));
    assert_eq!(gb.members().unwrap(), ga.members().unwrap());

    // Bob proposes adding carol (by reference); alice commits it.
    step.next("bob proposes carol");
    let p = gb
        .propose_add(kp_c.clone(), ProposalMode::ByReference)
        .unwrap();
    let pi = process_proposal(&ga, &p.message);
    assert_eq!(pi.proposal_ref.as_deref(), Some(&p.proposal_ref[..]));
    assert_eq!(pi.sender, member("bob", 1));
    assert!(
        matches!(pi.content, ProposalContent::Add { ref identity, .. } if identity == b"carol")
    );
    assert!(matches!(
        ga.encrypt(b"x".to_vec(), vec![]),
        Err(MlsError::PendingProposals)
    ));
    let bundle = ga.commit_pending_proposals().unwrap();
    ga.merge_pending_commit().unwrap();
    let sc = staged(gb.process_message(bundle.commit.clone()).unwrap());
    let info = sc.info();
    assert_eq!(info.sender, member("alice", 0));
    assert_eq!(info.adds.len(), 1);
    assert_eq!(info.adds[0].identity, b"carol");
    assert!(!info.removes_us);
    sc.merge().unwrap();
    assert!(matches!(sc.merge(), Err(MlsError::StagedCommitOutdated)));
    let gc = c
        .join_group(bundle.welcome.unwrap(), None, join.clone())
        .unwrap();
    assert_eq!(c.key_packages().unwrap().len(), 1, "last resort kept");
    assert_eq!(gc.own_index().unwrap(), 2);

    // Application messages with AAD, both ways.
    step.next("application messages");
    let ct = ga
        .encrypt(b"hi from a".to_vec(), b"aad-a".to_vec())
        .unwrap();
    assert_eq!(
        mlskit::parse_message(ct.clone()).unwrap().kind,
        MessageKind::PrivateMessage
    );
    for g in [&gb, &gc] {
        let m = app(g, &ct);
        assert_eq!(m.plaintext, b"hi from a");
        assert_eq!(m.aad, b"aad-a");
        assert_eq!(m.sender, member("alice", 0));
        assert_eq!(m.epoch, 2);
    }
    let ct = gc
        .encrypt(b"hi from c".to_vec(), b"aad-c".to_vec())
        .unwrap();
    for g in [&ga, &gb] {
        let m = app(g, &ct);
        assert_eq!(
            (m.plaintext, m.aad),
            (b"hi from c".to_vec(), b"aad-c".to_vec())
        );
        assert_eq!(m.sender, member("carol", 2));
    }

    // Round 1: custom proposals by value and by reference, a custom extension
    // change by reference, an update (by reference), an external PSK by value.
    step.next("round 1: custom, extension, update, PSK");
    let psk = b"psk-1".to_vec();
    for cl in [&a, &b, &c, &d] {
        cl.store_external_psk(psk.clone(), b"shared secret".to_vec())
            .unwrap();
    }
    let msgs = vec![
        (
            0,
            ga.propose_custom(CUSTOM_PROPOSAL, b"by value".to_vec(), ProposalMode::ByValue),
        ),
        (
            2,
            gc.propose_custom(
                CUSTOM_PROPOSAL,
                b"by ref".to_vec(),
                ProposalMode::ByReference,
            ),
        ),
        (
            0,
            ga.propose_custom_extensions(ext(b"v1"), ProposalMode::ByReference),
        ),
        (2, gc.propose_self_update()),
        (
            0,
            ga.propose_external_psk(psk.clone(), ProposalMode::ByValue),
        ),
    ];
    let groups = [&ga, &gb, &gc];
    for (from, p) in msgs {
        let p = p.unwrap();
        for (i, g) in groups.iter().enumerate() {
            if i != from {
                process_proposal(g, &p.message);
            }
        }
    }
    let pending = gb.pending_proposals().unwrap();
    assert_eq!(pending.len(), 5);
    assert!(pending.iter().any(|p| p.content == ProposalContent::Update));
    assert!(pending.iter().any(|p| p.content
        == ProposalContent::PreSharedKey {
            psk_id: psk.clone()
        }));
    let bundle = gb.commit_pending_proposals().unwrap();
    gb.merge_pending_commit().unwrap();
    let sc = staged(ga.process_message(bundle.commit.clone()).unwrap());
    let info = sc.info();
    assert_eq!(info.sender, member("bob", 1));
    assert_eq!(info.custom_proposals.len(), 2);
    assert!(info
        .custom_proposals
        .iter()
        .all(|p| p.proposal_type == CUSTOM_PROPOSAL));
    assert_eq!(info.psk_ids, vec![psk.clone()]);
    assert_eq!(info.updates, vec![2]);
    assert_eq!(info.new_custom_extensions, Some(ext(b"v1")));
    assert!(info.adds.is_empty() && info.removes.is_empty());
    assert!(!info.removes_us);
    assert_eq!(info.proposals.len(), 5);
    // Discard, then process again and merge.
    step.next("discard and process again");
    let e = ga.epoch().unwrap();
    sc.discard();
    assert!(matches!(sc.merge(), Err(MlsError::StagedCommitOutdated)));
    assert_eq!(ga.epoch().unwrap(), e);
    let sc2 = staged(ga.process_message(bundle.commit.clone()).unwrap());
    assert_eq!(sc2.info(), info);
    sc2.merge().unwrap();
    process_and_merge(&gc, &bundle.commit);
    for g in groups {
        assert_eq!(g.custom_extensions().unwrap(), ext(b"v1"));
        assert!(g.pending_proposals().unwrap().is_empty());
    }

    // Round 2: extension change and add by value, PSK by reference.
    step.next("round 2: extension and add by value, PSK by reference");
    let kp_d = d
        .create_key_packages(1, kpo(false, None))
        .unwrap()
        .remove(0);
    let p1 = gc
        .propose_custom_extensions(ext(b"v2"), ProposalMode::ByValue)
        .unwrap();
    deliver_proposal(&[&ga, &gb], &p1.message);
    let p2 = ga.propose_add(kp_d.clone(), ProposalMode::ByValue).unwrap();
    deliver_proposal(&[&gb, &gc], &p2.message);
    let p3 = gb
        .propose_external_psk(psk.clone(), ProposalMode::ByReference)
        .unwrap();
    deliver_proposal(&[&ga, &gc], &p3.message);
    let bundle = gb.commit_pending_proposals().unwrap();
    let pc = gb.pending_commit().unwrap().unwrap();
    assert_eq!(pc.adds.len(), 1);
    assert_eq!(pc.new_custom_extensions, Some(ext(b"v2")));
    assert_eq!(pc.psk_ids, vec![psk.clone()]);
    gb.merge_pending_commit().unwrap();
    process_and_merge(&ga, &bundle.commit);
    process_and_merge(&gc, &bundle.commit);
    let welcome = bundle.welcome.unwrap();
    assert_eq!(
        d.inspect_welcome(welcome.clone(), None)
            .unwrap()
            .external_psk_ids,
        vec![psk.clone()],
        "the joiner needs the PSK injected by the commit that adds it"
    );
    let gd = d.join_group(welcome, None, join.clone()).unwrap();
    assert_eq!(gd.custom_extensions().unwrap(), ext(b"v2"));
    let dave_index = gd.own_index().unwrap();
    let all = [&ga, &gb, &gc, &gd];
    assert_eq_all(&all);

    // Round 3: remove dave by reference; dave sees removes_us.
    step.next("round 3: remove dave by reference");
    let p = ga
        .propose_remove(dave_index, ProposalMode::ByReference)
        .unwrap();
    deliver_proposal(&[&gb, &gc, &gd], &p.message);
    let bundle = gc.commit_pending_proposals().unwrap();
    gc.merge_pending_commit().unwrap();
    process_and_merge(&ga, &bundle.commit);
    process_and_merge(&gb, &bundle.commit);
    let sc = staged(gd.process_message(bundle.commit).unwrap());
    assert!(sc.info().removes_us);
    assert_eq!(sc.info().removes[0].index, dave_index);
    assert_eq!(sc.info().removes[0].identity.as_deref(), Some(&b"dave"[..]));
    sc.merge().unwrap();
    assert!(!gd.is_active().unwrap());
    // (The exact error is checked in `removed_member_encrypt_is_group_inactive`.)
    assert!(gd.encrypt(b"x".to_vec(), vec![]).is_err());

    // Dave rejoins by external commit.
    step.next("dave rejoins by external commit");
    d.delete_group(gid.clone()).unwrap();
    assert!(matches!(gd.epoch(), Err(MlsError::UnknownGroup)));
    assert!(d.group_ids().unwrap().is_empty());
    let gi = ga.export_group_info(true).unwrap();
    let gi_info = mlskit::parse_message(gi.clone()).unwrap();
    assert_eq!(gi_info.kind, MessageKind::GroupInfo);
    assert_eq!(gi_info.group_id.as_deref(), Some(&gid[..]));
    let ej = d.join_by_external_commit(gi, None, join.clone()).unwrap();
    for g in [&ga, &gb, &gc] {
        let sc = staged(g.process_message(ej.commit.clone()).unwrap());
        assert_eq!(sc.info().sender, Sender::NewMemberCommit);
        sc.merge().unwrap();
    }
    let gd = ej.group;
    assert_eq_all(&[&ga, &gb, &gc, &gd]);
    check_group_messaging(&[&ga, &gb, &gc, &gd]);

    // Remove dave by value.
    step.next("remove dave by value");
    let dave_index = gd.own_index().unwrap();
    let p = gb
        .propose_remove(dave_index, ProposalMode::ByValue)
        .unwrap();
    deliver_proposal(&[&ga, &gc, &gd], &p.message);
    let bundle = ga.commit_pending_proposals().unwrap();
    ga.merge_pending_commit().unwrap();
    process_and_merge(&gb, &bundle.commit);
    process_and_merge(&gc, &bundle.commit);
    process_and_merge(&gd, &bundle.commit);
    assert!(!gd.is_active().unwrap());

    // Update proposals cannot be sent by value; unknown members are typed errors.
    step.next("typed errors for bad proposals");
    assert!(matches!(
        ga.propose_remove(99, ProposalMode::ByValue),
        Err(MlsError::UnknownMember { index: 99 })
    ));
    assert!(matches!(
        ga.remove_members(vec![99]),
        Err(MlsError::UnknownMember { index: 99 })
    ));

    // Carol leaves; bob commits.
    step.next("carol leaves");
    let leave = gc.leave().unwrap();
    for g in [&ga, &gb] {
        let p = process_proposal(g, &leave);
        assert!(
            matches!(
                p.content,
                ProposalContent::Remove { index: 2, .. } | ProposalContent::SelfRemove
            ),
            "{:?}",
            p.content
        );
    }
    let bundle = gb.commit_pending_proposals().unwrap();
    gb.merge_pending_commit().unwrap();
    process_and_merge(&ga, &bundle.commit);
    let sc = staged(gc.process_message(bundle.commit).unwrap());
    assert!(sc.info().removes_us);
    sc.merge().unwrap();
    assert!(!gc.is_active().unwrap());

    // Carol rejoins by external commit (tree out of band), then is removed by commit.
    step.next("carol rejoins and is removed");
    c.delete_group(gid.clone()).unwrap();
    let ej = c
        .join_by_external_commit(
            gb.export_group_info(false).unwrap(),
            Some(gb.export_ratchet_tree().unwrap()),
            join.clone(),
        )
        .unwrap();
    process_and_merge(&ga, &ej.commit);
    process_and_merge(&gb, &ej.commit);
    let gc = ej.group;
    check_group_messaging(&[&ga, &gb, &gc]);
    let bundle = ga.remove_members(vec![gc.own_index().unwrap()]).unwrap();
    assert_eq!(ga.pending_commit().unwrap().unwrap().removes.len(), 1);
    ga.merge_pending_commit().unwrap();
    process_and_merge(&gb, &bundle.commit);
    process_and_merge(&gc, &bundle.commit);
    assert!(!gc.is_active().unwrap());

    // Self update, custom extensions by commit.
    step.next("self update and extensions by commit");
    let bundle = gb.self_update().unwrap();
    assert!(gb.pending_commit().unwrap().unwrap().has_path);
    gb.merge_pending_commit().unwrap();
    process_and_merge(&ga, &bundle.commit);
    let bundle = ga.update_custom_extensions(ext(b"v3")).unwrap();
    ga.merge_pending_commit().unwrap();
    let sc = staged(gb.process_message(bundle.commit).unwrap());
    assert_eq!(sc.info().new_custom_extensions, Some(ext(b"v3")));
    sc.merge().unwrap();
    assert_eq!(gb.custom_extensions().unwrap(), ext(b"v3"));
    assert_eq_all(&[&ga, &gb]);
    check_group_messaging(&[&ga, &gb]);
    assert_eq!(ga.members().unwrap().len(), 2);
}

fn assert_eq_all(groups: &[&Arc<mlskit::Group>]) {
    let e = groups[0].epoch().unwrap();
    let auth = groups[0].epoch_authenticator().unwrap();
    let secret = groups[0]
        .export_secret("label".into(), b"ctx".to_vec(), 32)
        .unwrap();
    assert_eq!(secret.len(), 32);
    for g in groups {
        assert_eq!(g.epoch().unwrap(), e);
        assert_eq!(g.epoch_authenticator().unwrap(), auth);
        assert_eq!(
            g.export_secret("label".into(), b"ctx".to_vec(), 32)
                .unwrap(),
            secret
        );
        assert_ne!(
            g.export_secret("other".into(), b"ctx".to_vec(), 32)
                .unwrap(),
            secret
        );
        assert_eq!(g.members().unwrap(), groups[0].members().unwrap());
        assert_eq!(
            g.export_ratchet_tree().unwrap(),
            groups[0].export_ratchet_tree().unwrap()
        );
    }
}

fn check_group_messaging(groups: &[&Arc<mlskit::Group>]) {
    for (i, from) in groups.iter().enumerate() {
        let text = format!("msg {i}").into_bytes();
        let ct = from.encrypt(text.clone(), vec![i as u8]).unwrap();
        for (j, to) in groups.iter().enumerate() {
            if i != j {
                let m = app(to, &ct);
                assert_eq!((m.plaintext, m.aad), (text.clone(), vec![i as u8]));
            }
        }
    }
}

#[test]
fn lifecycle_default_suite_mixed_ciphertext() {
    lifecycle(
        Ciphersuite::X25519Aes128gcmEd25519,
        WireFormatPolicy::MixedCiphertext,
    );
}

#[test]
fn lifecycle_p256_pure_plaintext() {
    lifecycle(
        Ciphersuite::P256Aes128gcmP256,
        WireFormatPolicy::PurePlaintext,
    );
}

#[test]
fn lifecycle_chacha_pure_ciphertext() {
    lifecycle(
        Ciphersuite::X25519Chacha20poly1305Ed25519,
        WireFormatPolicy::PureCiphertext,
    );
}

#[test]
fn lifecycle_default_suite_mixed_plaintext() {
    lifecycle(
        Ciphersuite::X25519Aes128gcmEd25519,
        WireFormatPolicy::MixedPlaintext,
    );
}

#[test]
fn supported_ciphersuites_and_codes() {
    let list = mlskit::supported_ciphersuites();
    assert_eq!(list.len(), 3);
    let codes: Vec<u16> = list.into_iter().map(mlskit::ciphersuite_code).collect();
    assert_eq!(codes, vec![1, 2, 3]);
}

#[test]
fn wire_format_of_handshakes() {
    for (policy, kind) in [
        (WireFormatPolicy::PurePlaintext, MessageKind::PublicMessage),
        (WireFormatPolicy::MixedPlaintext, MessageKind::PublicMessage),
        (
            WireFormatPolicy::PureCiphertext,
            MessageKind::PrivateMessage,
        ),
        (
            WireFormatPolicy::MixedCiphertext,
            MessageKind::PrivateMessage,
        ),
    ] {
        let a = client_on(&FaultyStore::map(), "a");
        let g = a
            .create_group(Some(GroupOptions {
                join: mlskit::JoinOptions {
                    wire_format_policy: Some(policy),
                    ..Default::default()
                },
                ..Default::default()
            }))
            .unwrap();
        let c = g.self_update().unwrap().commit;
        let info = mlskit::parse_message(c).unwrap();
        assert_eq!(info.kind, kind, "{policy:?}");
        assert_eq!(info.content_type, Some(mlskit::ContentType::Commit));
        assert_eq!(info.epoch, Some(0));
    }
}

#[test]
fn key_package_lifetime_and_prune() {
    let s = FaultyStore::map();
    let a = client_on(&s, "a");
    a.create_key_packages(
        2,
        Some(KeyPackageOptions {
            lifetime_seconds: Some(1),
            ..Default::default()
        }),
    )
    .unwrap();
    a.create_key_packages(1, None).unwrap();
    assert!(a
        .create_key_packages(0, None)
        .is_err_and(|e| matches!(e, MlsError::ValidationFailed { .. })));
    std::thread::sleep(std::time::Duration::from_millis(2100));
    assert_eq!(a.prune_expired_key_packages().unwrap(), 2);
    assert_eq!(a.key_packages().unwrap().len(), 1);
    assert_eq!(a.prune_expired_key_packages().unwrap(), 0);
}

#[test]
fn out_of_band_ratchet_tree() {
    let (a, b) = (
        client_on(&FaultyStore::map(), "a"),
        client_on(&FaultyStore::map(), "b"),
    );
    let ga = a
        .create_group(Some(GroupOptions {
            join: mlskit::JoinOptions {
                use_ratchet_tree_extension: false,
                ..Default::default()
            },
            ..Default::default()
        }))
        .unwrap();
    let kp = b.create_key_packages(1, None).unwrap().remove(0);
    let bundle = ga.add_members(vec![kp]).unwrap();
    ga.merge_pending_commit().unwrap();
    let tree = ga.export_ratchet_tree().unwrap();
    let welcome = bundle.welcome.unwrap();
    assert!(matches!(
        b.inspect_welcome(welcome.clone(), None),
        Err(MlsError::MissingRatchetTree)
    ));
    assert!(matches!(
        b.join_group(welcome.clone(), None, None),
        Err(MlsError::MissingRatchetTree)
    ));
    let wi = b
        .inspect_welcome(welcome.clone(), Some(tree.clone()))
        .unwrap();
    assert_eq!(wi.members.len(), 2);
    let gb = b.join_group(welcome, Some(tree), None).unwrap();
    check_group_messaging(&[&ga, &gb]);
    // External join without the tree in the GroupInfo.
    let c = client_on(&FaultyStore::map(), "c");
    let gi = ga.export_group_info(false).unwrap();
    assert!(matches!(
        c.join_by_external_commit(gi.clone(), None, None),
        Err(MlsError::MissingRatchetTree)
    ));
    assert!(c.group_ids().unwrap().is_empty());
    let ej = c
        .join_by_external_commit(gi, Some(ga.export_ratchet_tree().unwrap()), None)
        .unwrap();
    process_and_merge(&ga, &ej.commit);
    process_and_merge(&gb, &ej.commit);
    check_group_messaging(&[&ga, &gb, &ej.group]);
    assert_eq_all(&[&ga, &gb, &ej.group]);
}

#[test]
fn redelivery_changes_nothing() {
    let ms = build_group(3, |_| FaultyStore::map());
    let (a, b) = (&ms[0], &ms[1]);
    let unchanged = |m: &Member, msg: &[u8], check: &dyn Fn(&MlsError) -> bool| {
        let before = (m.store.snapshot(), m.observe(), m.store.commits());
        let e = match m.group.process_message(msg.to_vec()) {
            Ok(_) => panic!("re-delivery accepted"),
            Err(e) => e,
        };
        assert!(check(&e), "unexpected {e:?}");
        assert_eq!(m.store.commits(), before.2);
        assert!(m.store.snapshot() == before.0);
        assert_eq!(m.observe(), before.1);
    };
    // Application message.
    let ct = a.group.encrypt(b"once".to_vec(), vec![]).unwrap();
    app(&b.group, &ct);
    unchanged(b, &ct, &|e| matches!(e, MlsError::DuplicateMessage));
    // Proposal.
    let p = a
        .group
        .propose_custom(CUSTOM_PROPOSAL, b"p".to_vec(), ProposalMode::ByReference)
        .unwrap();
    process_proposal(&b.group, &p.message);
    unchanged(b, &p.message, &|e| matches!(e, MlsError::DuplicateMessage));
    a.group.clear_pending_proposals().unwrap();
    b.group.clear_pending_proposals().unwrap();
    // Commit: after merging, the same commit is for a past epoch.
    let e = a.group.epoch().unwrap();
    let bundle = a.group.self_update().unwrap();
    commit_to_all(&ms, 0, &bundle);
    unchanged(b, &bundle.commit, &|err| {
        matches!(err, MlsError::WrongEpoch { message_epoch, group_epoch }
            if *message_epoch == e && *group_epoch == e + 1)
    });
    // An old application message, already read, after the epoch moved on.
    unchanged(b, &ct, &|e| matches!(e, MlsError::DuplicateMessage));
    // A late application message from the previous epoch that was never read
    // still decrypts (max_past_epochs).
    check_messaging(&[&ms[0], &ms[1], &ms[2]], 1);
}

#[test]
fn commit_race_loser_clears_and_retries() {
    let ms = build_group(3, |_| FaultyStore::map());
    let (a, b, c) = (&ms[0], &ms[1], &ms[2]);
    let winner = a.group.self_update().unwrap();
    let loser = b.group.self_update().unwrap();
    // The Delivery Service accepts alice's commit.
    a.group.merge_pending_commit().unwrap();
    process_and_merge(&c.group, &winner.commit);
    // Bob cannot process anything for the epoch with his commit pending? He
    // clears it first, then processes the winner and commits again.
    assert!(b.group.pending_commit().unwrap().is_some());
    b.group.clear_pending_commit().unwrap();
    assert!(b.group.pending_commit().unwrap().is_none());
    assert!(matches!(
        b.group.clear_pending_commit(),
        Err(MlsError::NoPendingCommit)
    ));
    assert!(matches!(
        b.group.merge_pending_commit(),
        Err(MlsError::NoPendingCommit)
    ));
    process_and_merge(&b.group, &winner.commit);
    // The losing commit is now for a past epoch everywhere.
    for m in [a, c] {
        assert!(matches!(
            m.group.process_message(loser.commit.clone()),
            Err(MlsError::WrongEpoch { .. })
        ));
    }
    let retry = b.group.self_update().unwrap();
    assert!(matches!(
        b.group.self_update(),
        Err(MlsError::PendingCommit)
    ));
    commit_to_all(&ms, 1, &retry);
    assert_agree(&[a, b, c]);
    check_messaging(&[a, b, c], 2);
}

#[test]
fn one_handle_per_group() {
    let ms = build_group(2, |_| FaultyStore::map());
    let gid = ms[0].group.id();
    let h1 = ms[0].client.group(gid.clone()).unwrap();
    let h2 = ms[0].client.group(gid.clone()).unwrap();
    let bundle = h1.self_update().unwrap();
    assert!(h2.pending_commit().unwrap().is_some());
    assert!(ms[0].group.pending_commit().unwrap().is_some());
    h2.merge_pending_commit().unwrap();
    assert_eq!(h1.epoch().unwrap(), ms[0].group.epoch().unwrap());
    assert!(h1.pending_commit().unwrap().is_none());
    process_and_merge(&ms[1].group, &bundle.commit);
    // Messages encrypted through one handle continue the same ratchet.
    let c1 = h1.encrypt(b"1".to_vec(), vec![]).unwrap();
    let c2 = h2.encrypt(b"2".to_vec(), vec![]).unwrap();
    assert_eq!(app(&ms[1].group, &c1).plaintext, b"1");
    assert_eq!(app(&ms[1].group, &c2).plaintext, b"2");
    assert!(matches!(
        ms[0].client.group(b"nope".to_vec()),
        Err(MlsError::UnknownGroup)
    ));
}

fn restart(make: impl Fn() -> Arc<dyn mlskit::StorageBackend>) {
    let ms = build_group(2, |_| FaultyStore::map());
    let store = make();
    let a = Client::new(store.clone(), b"alice".to_vec(), Some(options())).unwrap();
    let kp = a.create_key_packages(3, None).unwrap().remove(0);
    let bundle = ms[0].group.add_members(vec![kp]).unwrap();
    commit_to_all(&ms, 0, &bundle);
    let ga = a.join_group(bundle.welcome.unwrap(), None, None).unwrap();
    let gid = ga.id();
    check_group_messaging(&[&ms[0].group, &ms[1].group, &ga]);
    // A pending commit survives the restart.
    let pending = ga.self_update().unwrap();
    let epoch = ga.epoch().unwrap();
    drop(ga);
    drop(a);
    drop(store); // one live store per SQLite file

    let store2 = make();
    assert!(matches!(
        Client::new(store2.clone(), b"mallory".to_vec(), None),
        Err(MlsError::IdentityMismatch)
    ));
    let a = Client::new(store2, b"alice".to_vec(), Some(options())).unwrap();
    assert_eq!(a.identity(), b"alice");
    assert_eq!(a.group_ids().unwrap(), vec![gid.clone()]);
    assert_eq!(a.key_packages().unwrap().len(), 2);
    let ga = a.group(gid.clone()).unwrap();
    assert_eq!(ga.epoch().unwrap(), epoch);
    assert!(ga.pending_commit().unwrap().is_some());
    // As if it crashed before sending: the very same messages come back.
    let resent = ga
        .pending_commit_bundle()
        .unwrap()
        .expect("stored with the commit");
    assert_eq!(resent.commit, pending.commit);
    assert_eq!(resent.welcome, pending.welcome);
    assert_eq!(resent.group_info, pending.group_info);
    ga.merge_pending_commit().unwrap();
    assert!(ga.pending_commit_bundle().unwrap().is_none());
    process_and_merge(&ms[0].group, &resent.commit);
    process_and_merge(&ms[1].group, &resent.commit);
    check_group_messaging(&[&ms[0].group, &ms[1].group, &ga]);
    let secret = ga.export_secret("x".into(), vec![], 8).unwrap();
    assert_eq!(
        ms[0].group.export_secret("x".into(), vec![], 8).unwrap(),
        secret
    );
}

#[test]
fn restart_from_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alice.db").to_string_lossy().into_owned();
    restart(|| mlskit::sqlite_storage(path.clone()).unwrap());
    // Not a database.
    let bad = dir.path().join("bad.db");
    std::fs::write(&bad, b"this is not sqlite at all, just some bytes......").unwrap();
    assert!(matches!(
        mlskit::sqlite_storage(bad.to_string_lossy().into_owned())
            .and_then(|s| { Client::new(s, b"a".to_vec(), None).map(|_| ()) }),
        Err(MlsError::StorageBackend { .. })
    ));
}

#[test]
fn restart_from_map_store() {
    let store = MapStore::new();
    restart(|| store.clone());
    assert!(!store.snapshot().is_empty());
}

#[test]
fn restart_from_memory_storage() {
    let store = mlskit::memory_storage();
    restart(|| store.clone());
}

/// After a commit that removes us (by a committed Remove proposal), `encrypt`
/// must report `GroupInactive`, and no stale proposals may remain pending.
#[test]
fn removed_member_encrypt_is_group_inactive() {
    let ms = build_group(3, |_| FaultyStore::map());
    let p = ms[0]
        .group
        .propose_remove(2, ProposalMode::ByReference)
        .unwrap();
    process_proposal(&ms[1].group, &p.message);
    process_proposal(&ms[2].group, &p.message);
    let bundle = ms[1].group.commit_pending_proposals().unwrap();
    commit_to_all(&ms, 1, &bundle);
    let g = &ms[2].group;
    assert!(!g.is_active().unwrap());
    let pending = g.pending_proposals().unwrap();
    let r = g.encrypt(b"x".to_vec(), vec![]);
    assert!(
        matches!(r, Err(MlsError::GroupInactive)),
        "encrypt after removal: {:?} (pending proposals left: {})",
        r.map(|c| c.len()),
        pending.len()
    );
    assert!(pending.is_empty(), "stale pending proposals after removal");
}

/// Processing another message between staging and merging a commit makes the
/// staged commit outdated; processing it again works.
#[test]
fn staged_commit_outdated_after_other_write() {
    let ms = build_group(3, |_| FaultyStore::map());
    let bundle = ms[0].group.self_update().unwrap();
    ms[0].group.merge_pending_commit().unwrap();
    let ct = ms[2].group.encrypt(b"late".to_vec(), vec![]).unwrap();
    let sc = staged(ms[1].group.process_message(bundle.commit.clone()).unwrap());
    // An application message of the current epoch arrives before the merge.
    assert_eq!(app(&ms[1].group, &ct).plaintext, b"late");
    assert!(matches!(sc.merge(), Err(MlsError::StagedCommitOutdated)));
    process_and_merge(&ms[1].group, &bundle.commit);
    process_and_merge(&ms[2].group, &bundle.commit);
    assert_agree(&[&ms[0], &ms[1], &ms[2]]);
    check_messaging(&[&ms[0], &ms[1], &ms[2]], 1);
}

/// Our own messages echoed back by the Delivery Service change nothing.
#[test]
fn own_messages_echoed_back() {
    for policy in [
        WireFormatPolicy::MixedCiphertext,
        WireFormatPolicy::PurePlaintext,
    ] {
        let a = client_on(&FaultyStore::map(), "a");
        let b = client_on(&FaultyStore::map(), "b");
        let ga = a
            .create_group(Some(GroupOptions {
                join: mlskit::JoinOptions {
                    wire_format_policy: Some(policy),
                    ..Default::default()
                },
                ..Default::default()
            }))
            .unwrap();
        let kp = b.create_key_packages(1, None).unwrap().remove(0);
        let bundle = ga.add_members(vec![kp]).unwrap();
        ga.merge_pending_commit().unwrap();
        let gb = b
            .join_group(
                bundle.welcome.unwrap(),
                None,
                Some(JoinOptions {
                    wire_format_policy: Some(policy),
                    ..Default::default()
                }),
            )
            .unwrap();
        let own = ga.self_update().unwrap();
        let before = Observed::of(&ga);
        let next = ga.epoch().unwrap() + 1;
        // The echo of the pending commit is the acknowledgement, even twice.
        for _ in 0..2 {
            match ga.process_message(own.commit.clone()) {
                Ok(ReceivedMessage::OwnCommit { new_epoch }) => {
                    assert_eq!(new_epoch, next, "{policy:?}")
                }
                Ok(_) => panic!("{policy:?}: own commit was not recognised"),
                Err(e) => panic!("{policy:?}: own commit: unexpected {e:?}"),
            }
        }
        assert_eq!(
            Observed::of(&ga),
            before,
            "{policy:?}: own commit echo changed state"
        );
        ga.merge_pending_commit().unwrap();
        // Once merged, a late echo is refused by epoch and changes nothing.
        let merged = Observed::of(&ga);
        assert!(matches!(
            ga.process_message(own.commit.clone()),
            Err(MlsError::WrongEpoch { .. })
        ));
        assert_eq!(Observed::of(&ga), merged, "{policy:?}: late echo");
        process_and_merge(&gb, &own.commit);
        check_group_messaging(&[&ga, &gb]);
    }
}

/// A re-delivered plaintext proposal must not be queued twice.
#[test]
fn redelivered_plaintext_proposal_is_not_queued_twice() {
    let a = client_on(&FaultyStore::map(), "a");
    let sb = FaultyStore::map();
    let b = client_on(&sb, "b");
    let opts = Some(GroupOptions {
        required_proposal_types: vec![CUSTOM_PROPOSAL],
        join: mlskit::JoinOptions {
            wire_format_policy: Some(WireFormatPolicy::PurePlaintext),
            ..Default::default()
        },
        ..Default::default()
    });
    let ga = a.create_group(opts).unwrap();
    let kp = b.create_key_packages(1, None).unwrap().remove(0);
    let bundle = ga.add_members(vec![kp]).unwrap();
    ga.merge_pending_commit().unwrap();
    let gb = b
        .join_group(
            bundle.welcome.unwrap(),
            None,
            Some(JoinOptions {
                wire_format_policy: Some(WireFormatPolicy::PurePlaintext),
                ..Default::default()
            }),
        )
        .unwrap();
    let p = ga
        .propose_custom(CUSTOM_PROPOSAL, b"once".to_vec(), ProposalMode::ByReference)
        .unwrap();
    process_proposal(&gb, &p.message);
    let before = (sb.snapshot(), Observed::of(&gb));
    let r = gb.process_message(p.message.clone());
    let after = (sb.snapshot(), Observed::of(&gb));
    assert_eq!(
        gb.pending_proposals().unwrap().len(),
        1,
        "re-delivered proposal queued twice (result {:?})",
        r.as_ref().map(|_| "Ok").map_err(|e| e.clone())
    );
    assert!(after == before, "re-delivery changed state");
    // And the commit of it still works.
    let c = gb.commit_pending_proposals().unwrap();
    gb.merge_pending_commit().unwrap();
    process_and_merge(&ga, &c.commit);
    check_group_messaging(&[&ga, &gb]);
}

/// Whether any stored key holds a staged commit's messages.
fn stores_pending_commit_messages(store: &FaultyStore) -> bool {
    let label = b"pending_commit_out";
    store
        .snapshot()
        .keys()
        .any(|k| k.windows(label.len()).any(|w| w == label))
}

#[test]
fn pending_commit_bundle_lives_exactly_as_long_as_the_staged_commit() {
    let ms = build_group(3, |_| FaultyStore::map());
    let (a, b) = (&ms[0], &ms[1]);
    assert!(a.group.pending_commit_bundle().unwrap().is_none());

    // Cleared: gone.
    let staged = a.group.self_update().unwrap();
    let kept = a.group.pending_commit_bundle().unwrap().unwrap();
    assert_eq!((kept.commit, kept.welcome), (staged.commit, staged.welcome));
    assert!(stores_pending_commit_messages(&a.store));
    a.group.clear_pending_commit().unwrap();
    assert!(a.group.pending_commit_bundle().unwrap().is_none());
    assert!(!stores_pending_commit_messages(&a.store));

    // Lost the race to another member's commit: merging theirs drops ours.
    let newcomer = FaultyStore::map();
    let kp = client_on(&newcomer, "m3")
        .create_key_packages(1, None)
        .unwrap();
    let ours = a.group.add_members(kp).unwrap();
    assert_eq!(
        a.group.pending_commit_bundle().unwrap().unwrap().welcome,
        ours.welcome
    );
    let theirs = b.group.self_update().unwrap();
    commit_to_all(&ms, 1, &theirs);
    assert!(a.group.pending_commit().unwrap().is_none());
    assert!(a.group.pending_commit_bundle().unwrap().is_none());
    assert!(!stores_pending_commit_messages(&a.store));

    // Merged: gone; deleting the group leaves none behind either.
    let staged = a.group.remove_members(vec![2]).unwrap();
    assert!(stores_pending_commit_messages(&a.store));
    commit_to_all(&ms, 0, &staged);
    assert!(!stores_pending_commit_messages(&a.store));
    a.group.self_update().unwrap();
    a.client.delete_group(a.group.id()).unwrap();
    assert!(!stores_pending_commit_messages(&a.store));
}

/// A member whose key package lifetime has passed (it never committed with a
/// path) does not lock newcomers out, by Welcome or by external commit; a key
/// package being added is still checked (RFC 9420 §10.1).
#[test]
fn expired_leaf_in_tree_still_admits_newcomers() {
    let short = Some(KeyPackageOptions {
        lifetime_seconds: Some(2),
        ..Default::default()
    });
    let a = client_on(&FaultyStore::map(), "a");
    let b = client_on(&FaultyStore::map(), "b");
    let ga = a.create_group(None).unwrap();
    let bundle = ga
        .add_members(b.create_key_packages(1, short.clone()).unwrap())
        .unwrap();
    ga.merge_pending_commit().unwrap();
    let gb = b.join_group(bundle.welcome.unwrap(), None, None).unwrap();
    let late = client_on(&FaultyStore::map(), "late");
    let expired = late.create_key_packages(1, short).unwrap().remove(0);
    std::thread::sleep(std::time::Duration::from_millis(3100));

    let c = client_on(&FaultyStore::map(), "c");
    let bundle = ga
        .add_members(c.create_key_packages(1, None).unwrap())
        .unwrap();
    ga.merge_pending_commit().unwrap();
    process_and_merge(&gb, &bundle.commit);
    let gc = c.join_group(bundle.welcome.unwrap(), None, None).unwrap();
    check_group_messaging(&[&ga, &gb, &gc]);

    let e = client_on(&FaultyStore::map(), "e");
    let joined = e
        .join_by_external_commit(ga.export_group_info(true).unwrap(), None, None)
        .unwrap();
    for g in [&ga, &gb, &gc] {
        process_and_merge(g, &joined.commit);
    }
    check_group_messaging(&[&ga, &gb, &gc, &joined.group]);

    assert!(matches!(
        mlskit::validate_key_package(expired.clone()),
        Err(MlsError::InvalidKeyPackage { .. })
    ));
    assert!(matches!(
        ga.add_members(vec![expired]),
        Err(MlsError::InvalidKeyPackage { .. })
    ));
}

/// Key packages may live up to 365 days (the mls-rs default), not longer.
#[test]
fn key_package_lifetime_up_to_a_year() {
    let a = client_on(&FaultyStore::map(), "a");
    let year = 365 * 24 * 60 * 60;
    let kp = a
        .create_key_packages(
            1,
            Some(KeyPackageOptions {
                lifetime_seconds: Some(year),
                ..Default::default()
            }),
        )
        .unwrap()
        .remove(0);
    let info = mlskit::validate_key_package(kp).unwrap();
    assert!(info.not_after - info.not_before >= year);
    assert!(matches!(
        a.create_key_packages(
            1,
            Some(KeyPackageOptions {
                lifetime_seconds: Some(year + 1),
                ..Default::default()
            }),
        ),
        Err(MlsError::ValidationFailed { .. })
    ));
}
