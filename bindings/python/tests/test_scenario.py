"""The three-member scenario, exercising every public API of MLSKit."""

from __future__ import annotations

import time
from typing import List

import mlskit
import pytest

from conftest import (
    CLIENT_OPTIONS,
    CUSTOM_EXTENSION_TYPE,
    CUSTOM_PROPOSAL_TYPE,
    DictStorage,
    Trio,
    assert_in_sync,
    commit_and_deliver,
    make_trio,
    process_app,
    process_commit,
    process_proposal,
)

MODES = [mlskit.ProposalMode.BY_REFERENCE, mlskit.ProposalMode.BY_VALUE]


def new_client(name: bytes) -> mlskit.Client:
    return mlskit.Client(DictStorage(), name, CLIENT_OPTIONS)


# --------------------------------------------------------------------------
# Clients and key packages
# --------------------------------------------------------------------------


def test_client_identity_and_signature_keys() -> None:
    storage = DictStorage()
    c = mlskit.Client(storage, b"alice", CLIENT_OPTIONS)
    assert c.identity() == b"alice"
    k1 = c.signature_public_key()
    assert len(k1) == 32  # Ed25519
    assert c.signature_public_key(mlskit.Ciphersuite.X25519_CHACHA20POLY1305_ED25519) == k1
    p256 = c.signature_public_key(mlskit.Ciphersuite.P256_AES128GCM_P256)
    assert p256 != k1 and len(p256) in (33, 65)
    # Re-opening the same storage yields the same keys; another identity is refused.
    c2 = mlskit.Client(storage, b"alice", CLIENT_OPTIONS)
    assert c2.signature_public_key() == k1
    assert c2.signature_public_key(mlskit.Ciphersuite.P256_AES128GCM_P256) == p256
    with pytest.raises(mlskit.MlsError.IdentityMismatch):
        mlskit.Client(storage, b"mallory")
    assert mlskit.supported_ciphersuites()[0] == mlskit.Ciphersuite.X25519_AES128GCM_ED25519
    assert [mlskit.ciphersuite_code(cs) for cs in mlskit.supported_ciphersuites()] == [1, 2, 3]


def test_key_package_inventory_lifetime_prune_delete() -> None:
    c = new_client(b"alice")
    before = int(time.time())
    kps = c.create_key_packages(3)
    assert len(kps) == 3 and len(set(kps)) == 3
    infos = [mlskit.validate_key_package(kp) for kp in kps]
    for info in infos:
        assert info.identity == b"alice"
        assert info.signature_key == c.signature_public_key()
        assert info.ciphersuite == mlskit.Ciphersuite.X25519_AES128GCM_ED25519
        assert not info.last_resort
        assert info.not_before <= before + 1
        assert info.not_after >= before + 80 * 24 * 3600  # default ~84 days
    inventory = c.key_packages()
    assert {bytes(k.hash_ref) for k in inventory} == {bytes(i.hash_ref) for i in infos}
    assert {bytes(k.key_package) for k in inventory} == {bytes(kp) for kp in kps}

    lr = c.create_key_packages(
        1, mlskit.KeyPackageOptions(last_resort=True, lifetime_seconds=3600, ciphersuite=mlskit.Ciphersuite.P256_AES128GCM_P256)
    )
    lr_info = mlskit.validate_key_package(lr[0])
    assert lr_info.last_resort
    assert lr_info.ciphersuite == mlskit.Ciphersuite.P256_AES128GCM_P256
    assert before + 3500 <= lr_info.not_after <= int(time.time()) + 3700
    own_lr = [k for k in c.key_packages() if k.last_resort]
    assert len(own_lr) == 1 and own_lr[0].hash_ref == lr_info.hash_ref
    assert own_lr[0].not_after == lr_info.not_after

    # Short-lived key packages expire and are pruned; the others stay.
    c.create_key_packages(2, mlskit.KeyPackageOptions(lifetime_seconds=1))
    assert len(c.key_packages()) == 6
    assert c.prune_expired_key_packages() == 0 or len(c.key_packages()) < 6
    time.sleep(2.1)
    pruned = c.prune_expired_key_packages()
    remaining = c.key_packages()
    assert pruned + (6 - len(remaining)) >= 2
    assert len(remaining) == 4
    assert c.prune_expired_key_packages() == 0

    # Delete by hash ref.
    assert c.delete_key_package(infos[0].hash_ref) is True
    assert c.delete_key_package(infos[0].hash_ref) is False
    assert bytes(infos[0].hash_ref) not in {bytes(k.hash_ref) for k in c.key_packages()}

    # Bad counts are typed errors.
    for bad in (0, 1001):
        with pytest.raises(mlskit.MlsError):
            c.create_key_packages(bad)


def test_last_resort_key_package_survives_welcome_and_normal_is_consumed() -> None:
    alice, bob = new_client(b"alice"), new_client(b"bob")
    lr = bob.create_key_packages(1, mlskit.KeyPackageOptions(last_resort=True))[0]
    normal = bob.create_key_packages(1)[0]
    normal_ref = mlskit.validate_key_package(normal).hash_ref
    g1 = alice.create_group()
    w1 = g1.add_members([lr]).welcome
    g1.merge_pending_commit()
    assert w1 is not None
    bob.join_group(w1)
    assert any(k.last_resort for k in bob.key_packages())
    g2 = alice.create_group()
    w2 = g2.add_members([normal]).welcome
    g2.merge_pending_commit()
    assert w2 is not None
    bob.join_group(w2)
    assert bytes(normal_ref) not in {bytes(k.hash_ref) for k in bob.key_packages()}
    # Adding bob again (a fresh key package, same signature key) is refused.
    with pytest.raises(mlskit.MlsError.ValidationFailed):
        g2.add_members(bob.create_key_packages(1))
    assert g2.pending_commit() is None
    # The same group can't be joined twice.
    with pytest.raises(mlskit.MlsError.GroupExists):
        bob.join_group(w1)
    assert sorted(bytes(i) for i in bob.group_ids()) == sorted([bytes(g1.id()), bytes(g2.id())])


# --------------------------------------------------------------------------
# Group creation options
# --------------------------------------------------------------------------


@pytest.mark.parametrize("cs", mlskit.supported_ciphersuites())
def test_each_ciphersuite(cs: mlskit.Ciphersuite) -> None:
    t = make_trio(group_options=mlskit.GroupOptions(ciphersuite=cs))
    for g in t.groups:
        assert g.ciphersuite() == cs
    assert_in_sync(t.groups)
    gi = t.alice.export_group_info()
    assert mlskit.parse_message(gi).ciphersuite_code == mlskit.ciphersuite_code(cs)
    # A key package of another suite can't be added.
    other = [s for s in mlskit.supported_ciphersuites() if s != cs][0]
    kp = new_client(b"dave").create_key_packages(1, mlskit.KeyPackageOptions(ciphersuite=other))[0]
    with pytest.raises(mlskit.MlsError):
        t.alice.add_members([kp])
    assert t.alice.pending_commit() is None


@pytest.mark.parametrize(
    "policy,handshake_kind",
    [
        (mlskit.WireFormatPolicy.MIXED_CIPHERTEXT, mlskit.MessageKind.PRIVATE_MESSAGE),
        (mlskit.WireFormatPolicy.MIXED_PLAINTEXT, mlskit.MessageKind.PUBLIC_MESSAGE),
        (mlskit.WireFormatPolicy.PURE_CIPHERTEXT, mlskit.MessageKind.PRIVATE_MESSAGE),
        (mlskit.WireFormatPolicy.PURE_PLAINTEXT, mlskit.MessageKind.PUBLIC_MESSAGE),
    ],
)
def test_wire_format_policies(policy: mlskit.WireFormatPolicy, handshake_kind: mlskit.MessageKind) -> None:
    t = make_trio(group_options=mlskit.GroupOptions(join=mlskit.JoinOptions(wire_format_policy=policy)))
    # Joiners use the default policy unless told otherwise; make bob follow the group.
    bundle = t.alice.self_update()
    info = mlskit.parse_message(bundle.commit)
    assert info.kind == handshake_kind
    assert info.content_type == mlskit.ContentType.COMMIT
    assert info.epoch == 1 and info.group_id == t.alice.id()
    commit_and_deliver(t.alice, bundle, [t.bob, t.carol])
    prop = t.alice.propose_self_update()
    assert mlskit.parse_message(prop.message).kind == handshake_kind
    assert mlskit.parse_message(prop.message).content_type == mlskit.ContentType.PROPOSAL
    process_proposal(t.bob, prop.message)
    process_proposal(t.carol, prop.message)
    bundle = t.alice.commit_pending_proposals()
    commit_and_deliver(t.alice, bundle, [t.bob, t.carol])
    app = t.alice.encrypt(b"hi", b"")
    assert mlskit.parse_message(app).kind == mlskit.MessageKind.PRIVATE_MESSAGE
    assert_in_sync(t.groups)


def test_pure_ciphertext_joiner_rejects_plaintext_commit() -> None:
    t = make_trio(group_options=mlskit.GroupOptions(join=mlskit.JoinOptions(wire_format_policy=mlskit.WireFormatPolicy.PURE_PLAINTEXT)))
    dave = new_client(b"dave")
    kp = dave.create_key_packages(1)[0]
    bundle = t.alice.add_members([kp])
    commit_and_deliver(t.alice, bundle, [t.bob, t.carol])
    assert bundle.welcome is not None
    gd = dave.join_group(bundle.welcome, None, mlskit.JoinOptions(wire_format_policy=mlskit.WireFormatPolicy.PURE_CIPHERTEXT))
    plain_commit = t.alice.self_update()
    assert mlskit.parse_message(plain_commit.commit).kind == mlskit.MessageKind.PUBLIC_MESSAGE
    epoch = gd.epoch()
    with pytest.raises(mlskit.MlsError):
        gd.process_message(plain_commit.commit)
    assert gd.epoch() == epoch


def test_padding_hides_length() -> None:
    t = make_trio(group_options=mlskit.GroupOptions(join=mlskit.JoinOptions(padding_size=256)))
    a = t.alice.encrypt(b"a", b"")
    b = t.alice.encrypt(b"a" * 100, b"")
    assert len(a) == len(b)
    u = make_trio()
    c = u.alice.encrypt(b"a", b"")
    d = u.alice.encrypt(b"a" * 100, b"")
    assert len(d) - len(c) >= 99
    assert process_app(t.bob, b).plaintext == b"a" * 100


def test_custom_extensions_required_capabilities_external_senders() -> None:
    ds = new_client(b"delivery-service")
    ext = mlskit.GroupExtension(extension_type=CUSTOM_EXTENSION_TYPE, data=b"v1")
    opts = mlskit.GroupOptions(
        group_id=b"group-with-options",
        custom_extensions=[ext],
        required_extension_types=[CUSTOM_EXTENSION_TYPE],
        required_proposal_types=[CUSTOM_PROPOSAL_TYPE],
        required_credential_types=[1],
        external_senders=[mlskit.ExternalSender(signature_key=ds.signature_public_key(), identity=b"delivery-service")],
    )
    t = make_trio(group_options=opts)
    assert t.alice.id() == b"group-with-options"
    for g in t.groups:
        assert g.custom_extensions() == [ext]
    # A client lacking the required capabilities can't be added.
    plain = mlskit.Client(DictStorage(), b"plain")
    kp = plain.create_key_packages(1)[0]
    with pytest.raises(mlskit.MlsError):
        t.alice.add_members([kp])
    assert t.alice.pending_commit() is None
    # Same group id again is refused.
    with pytest.raises(mlskit.MlsError.GroupExists):
        t.clients[0].create_group(mlskit.GroupOptions(group_id=b"group-with-options"))
    # update_custom_extensions: staged commit shows the new set.
    ext2 = mlskit.GroupExtension(extension_type=CUSTOM_EXTENSION_TYPE, data=b"v2")
    bundle = t.bob.update_custom_extensions([ext2])
    pending = t.bob.pending_commit()
    assert pending is not None and pending.new_custom_extensions == [ext2]
    t.bob.merge_pending_commit()
    for g in (t.alice, t.carol):
        info = process_commit(g, bundle.commit)
        assert info.new_custom_extensions == [ext2]
        assert info.sender == mlskit.Sender.MEMBER(index=1, identity=b"bob")
    for g in t.groups:
        assert g.custom_extensions() == [ext2]
    assert_in_sync(t.groups)


def test_external_sender_type_code_rejected_when_extension_type_not_custom() -> None:
    c = new_client(b"alice")
    # Extension types below 0x000b are reserved for MLS; the SDK refuses them as custom ones.
    with pytest.raises(mlskit.MlsError):
        c.create_group(mlskit.GroupOptions(custom_extensions=[mlskit.GroupExtension(extension_type=2, data=b"x")]))
    assert c.group_ids() == []


# --------------------------------------------------------------------------
# Joining
# --------------------------------------------------------------------------


def test_inspect_welcome_writes_nothing_and_matches_join() -> None:
    alice = new_client(b"alice")
    bob_storage = DictStorage()
    bob = mlskit.Client(bob_storage, b"bob", CLIENT_OPTIONS)
    kp = bob.create_key_packages(1)[0]
    g = alice.create_group()
    bundle = g.add_members([kp])
    g.merge_pending_commit()
    assert bundle.welcome is not None
    assert mlskit.parse_message(bundle.welcome).kind == mlskit.MessageKind.WELCOME
    assert mlskit.parse_message(bundle.welcome).ciphersuite_code == 1
    snap = bob_storage.snapshot()
    commits = bob_storage.commits
    info = bob.inspect_welcome(bundle.welcome)
    assert bob_storage.snapshot() == snap and bob_storage.commits == commits
    assert info.group_id == g.id()
    assert info.epoch == 1
    assert info.ciphersuite == mlskit.Ciphersuite.X25519_AES128GCM_ED25519
    assert info.sender_index == 0
    assert info.own_index == 1
    assert [(m.index, m.identity) for m in info.members] == [(0, b"alice"), (1, b"bob")]
    assert info.external_psk_ids == []
    assert bob.group_ids() == []
    gb = bob.join_group(bundle.welcome)
    assert gb.own_index() == info.own_index and gb.epoch() == info.epoch
    assert gb.members() == info.members
    # Someone else's Welcome: no key package of ours matches.
    carol = new_client(b"carol")
    with pytest.raises(mlskit.MlsError.NoMatchingKeyPackage):
        carol.inspect_welcome(bundle.welcome)
    with pytest.raises(mlskit.MlsError.NoMatchingKeyPackage):
        carol.join_group(bundle.welcome)


def test_join_with_out_of_band_ratchet_tree() -> None:
    opts = mlskit.GroupOptions(join=mlskit.JoinOptions(use_ratchet_tree_extension=False))
    alice, bob = new_client(b"alice"), new_client(b"bob")
    g = alice.create_group(opts)
    bundle = g.add_members([bob.create_key_packages(1)[0]])
    g.merge_pending_commit()
    assert bundle.welcome is not None
    with pytest.raises(mlskit.MlsError.MissingRatchetTree):
        bob.inspect_welcome(bundle.welcome)
    with pytest.raises(mlskit.MlsError.MissingRatchetTree):
        bob.join_group(bundle.welcome)
    assert bob.group_ids() == []
    tree = g.export_ratchet_tree()
    info = bob.inspect_welcome(bundle.welcome, tree)
    assert info.own_index == 1
    gb = bob.join_group(bundle.welcome, tree, mlskit.JoinOptions(use_ratchet_tree_extension=False))
    assert_in_sync([g, gb])
    # GroupInfo without the tree is smaller; the tree can be passed separately.
    gi_full = g.export_group_info(True)
    gi_bare = g.export_group_info(with_ratchet_tree=False)
    assert len(gi_bare) < len(gi_full)
    carol = new_client(b"carol")
    with pytest.raises(mlskit.MlsError.MissingRatchetTree):
        carol.join_by_external_commit(gi_bare)
    assert carol.group_ids() == []
    ej = carol.join_by_external_commit(gi_bare, g.export_ratchet_tree())
    for m in (g, gb):
        info2 = process_commit(m, ej.commit)
        assert info2.sender == mlskit.Sender.NEW_MEMBER_COMMIT()
    assert_in_sync([g, gb, ej.group])


def test_external_commit_join() -> None:
    t = make_trio()
    dave = new_client(b"dave")
    gi = t.alice.export_group_info()
    meta = mlskit.parse_message(gi)
    assert meta.kind == mlskit.MessageKind.GROUP_INFO
    assert meta.group_id == t.alice.id() and meta.epoch == t.alice.epoch()
    ej = dave.join_by_external_commit(gi, None, mlskit.JoinOptions())
    assert ej.group.epoch() == t.alice.epoch() + 1
    assert ej.group.id() == t.alice.id()
    assert mlskit.parse_message(ej.commit).kind == mlskit.MessageKind.PUBLIC_MESSAGE
    for g in t.groups:
        info = process_commit(g, ej.commit)
        assert info.sender == mlskit.Sender.NEW_MEMBER_COMMIT()
        assert info.has_path and not info.removes_us
        assert any(p.content == mlskit.ProposalContent.EXTERNAL_INIT() for p in info.proposals)
    assert [m.identity for m in t.alice.members()] == [b"alice", b"bob", b"carol", b"dave"]
    assert dave.group_ids() == [t.alice.id()]
    assert_in_sync([*t.groups, ej.group])
    # The CommitBundle's GroupInfo also allows an external join.
    bundle = t.bob.self_update()
    commit_and_deliver(t.bob, bundle, [t.alice, t.carol, ej.group])
    assert bundle.group_info is not None
    erin = new_client(b"erin")
    ej2 = erin.join_by_external_commit(bundle.group_info)
    for g in (*t.groups, ej.group):
        process_commit(g, ej2.commit)
    assert_in_sync([*t.groups, ej.group, ej2.group])


# --------------------------------------------------------------------------
# Membership changes
# --------------------------------------------------------------------------


def test_members_add_remove_update_leave(trio: Trio) -> None:
    t = trio
    assert [(m.index, m.identity) for m in t.alice.members()] == [(0, b"alice"), (1, b"bob"), (2, b"carol")]
    assert [g.own_index() for g in t.groups] == [0, 1, 2]
    sig_keys = {bytes(m.signature_key) for m in t.alice.members()}
    assert sig_keys == {bytes(c.signature_public_key()) for c in t.clients}
    assert all(g.is_active() for g in t.groups)

    # self_update
    bundle = t.carol.self_update()
    assert bundle.welcome is None
    pending = t.carol.pending_commit()
    assert pending is not None and pending.has_path and pending.new_epoch == 2
    t.carol.merge_pending_commit()
    assert t.carol.pending_commit() is None
    for g in (t.alice, t.bob):
        info = process_commit(g, bundle.commit)
        assert info.sender == mlskit.Sender.MEMBER(index=2, identity=b"carol")
        assert info.has_path and info.adds == [] and info.removes == [] and not info.removes_us
    assert_in_sync(t.groups)

    # add a fourth member
    dave = new_client(b"dave")
    bundle = t.bob.add_members(dave.create_key_packages(1))
    commit_and_deliver(t.bob, bundle, [t.alice, t.carol])
    assert bundle.welcome is not None
    gd = dave.join_group(bundle.welcome)
    assert gd.own_index() == 3
    assert_in_sync([*t.groups, gd])

    # remove carol: carol sees removes_us and becomes inactive
    bundle = t.alice.remove_members([2])
    t.alice.merge_pending_commit()
    for g in (t.bob, gd):
        info = process_commit(g, bundle.commit)
        assert info.removes == [mlskit.RemovedMember(index=2, identity=b"carol")]
        assert not info.removes_us
    received = t.carol.process_message(bundle.commit)
    assert isinstance(received, mlskit.ReceivedMessage.COMMIT)
    assert received.commit.info().removes_us
    received.commit.merge()
    assert not t.carol.is_active()
    with pytest.raises(mlskit.MlsError.GroupInactive):
        t.carol.encrypt(b"still here?", b"")
    with pytest.raises(mlskit.MlsError.UnknownMember):
        t.alice.remove_members([2])
    with pytest.raises(mlskit.MlsError.UnknownMember):
        t.alice.remove_members([17])
    assert [m.identity for m in t.alice.members()] == [b"alice", b"bob", b"dave"]

    # bob leaves: proposal, committed by dave
    leave = t.bob.leave()
    assert mlskit.parse_message(leave).content_type == mlskit.ContentType.PROPOSAL
    for g in (t.alice, gd):
        p = process_proposal(g, leave)
        assert p.content == mlskit.ProposalContent.REMOVE(index=1, identity=b"bob")
        assert p.sender == mlskit.Sender.MEMBER(index=1, identity=b"bob")
    bundle = gd.commit_pending_proposals()
    gd.merge_pending_commit()
    process_commit(t.alice, bundle.commit)
    info = process_commit(t.bob, bundle.commit)
    assert info.removes_us
    assert not t.bob.is_active()
    assert_in_sync([t.alice, gd])


def test_pending_commit_clear_and_errors(trio: Trio) -> None:
    t = trio
    with pytest.raises(mlskit.MlsError.NoPendingCommit):
        t.alice.merge_pending_commit()
    with pytest.raises(mlskit.MlsError.NoPendingCommit):
        t.alice.clear_pending_commit()
    bundle = t.alice.self_update()
    with pytest.raises(mlskit.MlsError.PendingCommit):
        t.alice.self_update()
    assert t.alice.pending_commit() is not None
    t.alice.clear_pending_commit()
    assert t.alice.pending_commit() is None
    assert t.alice.epoch() == 1
    # The cleared commit is refused by the others? No: it is valid for them, but alice
    # has dropped it. Another commit wins the epoch instead.
    other = t.bob.self_update()
    commit_and_deliver(t.bob, other, [t.alice, t.carol])
    with pytest.raises(mlskit.MlsError.WrongEpoch):
        t.carol.process_message(bundle.commit)
    assert_in_sync(t.groups)


@pytest.mark.parametrize("policy", [mlskit.WireFormatPolicy.MIXED_CIPHERTEXT, mlskit.WireFormatPolicy.MIXED_PLAINTEXT])
def test_echo_of_own_pending_commit_is_its_acknowledgement(policy: mlskit.WireFormatPolicy) -> None:
    t = make_trio(group_options=mlskit.GroupOptions(join=mlskit.JoinOptions(wire_format_policy=policy)))
    epoch = t.alice.epoch()
    bundle = t.alice.self_update()
    for _ in range(2):  # a re-delivered echo is still the acknowledgement
        echo = t.alice.process_message(bundle.commit)
        assert isinstance(echo, mlskit.ReceivedMessage.OWN_COMMIT)
        assert echo.new_epoch == epoch + 1
    assert t.alice.epoch() == epoch and t.alice.pending_commit() is not None
    t.alice.merge_pending_commit()
    for other in (t.bob, t.carol):
        process_commit(other, bundle.commit)
    with pytest.raises(mlskit.MlsError.WrongEpoch):
        t.alice.process_message(bundle.commit)  # an echo after the merge changes nothing
    assert_in_sync(t.groups)


def test_pending_commit_bundle_survives_a_restart_and_is_resent(trio: Trio) -> None:
    t = trio
    assert t.alice.pending_commit_bundle() is None
    newcomer = new_client(b"dave")
    staged = t.alice.add_members(newcomer.create_key_packages(1))
    # The app "crashes" before sending: a new client on the same storage.
    reopened = mlskit.Client(t.storages[0], b"alice", CLIENT_OPTIONS).group(t.alice.id())
    resent = reopened.pending_commit_bundle()
    assert resent is not None
    assert (resent.commit, resent.welcome, resent.group_info) == (staged.commit, staged.welcome, staged.group_info)
    commit_and_deliver(reopened, resent, [t.bob, t.carol])
    assert reopened.pending_commit_bundle() is None
    assert resent.welcome is not None
    dave = newcomer.join_group(resent.welcome)
    assert dave.epoch_authenticator() == reopened.epoch_authenticator() == t.bob.epoch_authenticator()


# --------------------------------------------------------------------------
# Proposals
# --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_every_proposal_kind_committed(mode: mlskit.ProposalMode) -> None:
    # OpenMLS only accepts custom group context extensions listed as required.
    t = make_trio(group_options=mlskit.GroupOptions(required_extension_types=[CUSTOM_EXTENSION_TYPE]))
    dave = new_client(b"dave")
    psk_id, psk = b"psk-1", b"\x42" * 32
    for c in (*t.clients, dave):
        c.store_external_psk(psk_id, psk)
    ext = mlskit.GroupExtension(extension_type=CUSTOM_EXTENSION_TYPE, data=b"new-ext")

    bundles = [
        (t.bob, t.bob.propose_add(dave.create_key_packages(1)[0], mode)),
        (t.carol, t.carol.propose_self_update()),
        (t.bob, t.bob.propose_custom(CUSTOM_PROPOSAL_TYPE, b"custom-payload", mode)),
        (t.carol, t.carol.propose_external_psk(psk_id, mode)),
        (t.alice, t.alice.propose_custom_extensions([ext], mode)),
    ]
    for sender, pb in bundles:
        assert len(pb.proposal_ref) > 0
        for g in t.groups:
            if g is sender:
                continue
            p = process_proposal(g, pb.message)
            assert p.proposal_ref == pb.proposal_ref
            assert p.sender == mlskit.Sender.MEMBER(index=sender.own_index(), identity=t.clients[sender.own_index()].identity())
    kinds = [p.content for p in t.alice.pending_proposals()]
    assert mlskit.ProposalContent.UPDATE() in kinds
    assert mlskit.ProposalContent.CUSTOM(proposal_type=CUSTOM_PROPOSAL_TYPE, payload=b"custom-payload") in kinds
    assert mlskit.ProposalContent.PRE_SHARED_KEY(psk_id=psk_id) in kinds
    assert mlskit.ProposalContent.GROUP_CONTEXT_EXTENSIONS(custom_extensions=[ext]) in kinds
    assert mlskit.ProposalContent.ADD(identity=b"dave", signature_key=dave.signature_public_key()) in kinds
    assert {bytes(p.proposal_ref) for p in t.alice.pending_proposals()} == {bytes(pb.proposal_ref) for _, pb in bundles}
    # Application messages wait for pending proposals.
    with pytest.raises(mlskit.MlsError.PendingProposals):
        t.alice.encrypt(b"too early", b"")

    bundle = t.alice.commit_pending_proposals()
    pending = t.alice.pending_commit()
    assert pending is not None
    t.alice.merge_pending_commit()
    assert t.alice.pending_proposals() == []
    for g in (t.bob, t.carol):
        info = process_commit(g, bundle.commit)
        for fld in ("sender", "new_epoch", "adds", "removes", "updates", "psk_ids", "custom_proposals", "new_custom_extensions", "has_path"):
            assert getattr(info, fld) == getattr(pending, fld), fld
        assert [(p.content, p.sender) for p in info.proposals] == [(p.content, p.sender) for p in pending.proposals]
        assert info.sender == mlskit.Sender.MEMBER(index=0, identity=b"alice")
        assert info.adds == [mlskit.AddedMember(identity=b"dave", signature_key=dave.signature_public_key())]
        assert info.updates == [2]
        assert info.psk_ids == [psk_id]
        assert info.custom_proposals == [mlskit.CustomProposal(proposal_type=CUSTOM_PROPOSAL_TYPE, payload=b"custom-payload")]
        assert info.new_custom_extensions == [ext]
        assert info.removes == [] and not info.removes_us
        assert g.pending_proposals() == []
    assert bundle.welcome is not None
    winfo = dave.inspect_welcome(bundle.welcome)
    assert winfo.external_psk_ids == [psk_id]
    gd = dave.join_group(bundle.welcome)
    for g in (*t.groups, gd):
        assert g.custom_extensions() == [ext]
    assert_in_sync([*t.groups, gd])

    # propose_remove by this mode, committed by someone else.
    pb = t.bob.propose_remove(3, mode)
    for g in (t.alice, t.carol, gd):
        p = process_proposal(g, pb.message)
        assert p.content == mlskit.ProposalContent.REMOVE(index=3, identity=b"dave")
    bundle = t.carol.commit_pending_proposals()
    t.carol.merge_pending_commit()
    for g in (t.alice, t.bob):
        info = process_commit(g, bundle.commit)
        assert info.removes == [mlskit.RemovedMember(index=3, identity=b"dave")]
    assert process_commit(gd, bundle.commit).removes_us
    assert_in_sync(t.groups)
    for c in (*t.clients, dave):
        c.delete_external_psk(psk_id)


def test_unknown_psk_and_custom_type_are_refused(trio: Trio) -> None:
    t = trio
    # A PSK that was never stored is refused when proposed; nothing is queued.
    with pytest.raises(mlskit.MlsError.ValidationFailed):
        t.alice.propose_external_psk(b"never-stored", mlskit.ProposalMode.BY_REFERENCE)
    assert t.alice.epoch() == 1 and t.alice.pending_commit() is None
    assert t.alice.pending_proposals() == []
    with pytest.raises(mlskit.MlsError.UnknownMember):
        t.alice.propose_remove(9, mlskit.ProposalMode.BY_VALUE)
    assert t.alice.pending_proposals() == []
    # A member that did not store the PSK can't process the commit injecting it.
    for c in t.clients[:2]:
        c.store_external_psk(b"partial", b"s" * 32)
    pb = t.alice.propose_external_psk(b"partial", mlskit.ProposalMode.BY_REFERENCE)
    process_proposal(t.bob, pb.message)
    process_proposal(t.carol, pb.message)
    bundle = t.alice.commit_pending_proposals()
    with pytest.raises(mlskit.MlsError):
        t.carol.process_message(bundle.commit)
    assert t.carol.epoch() == 1
    t.clients[2].store_external_psk(b"partial", b"s" * 32)
    commit_and_deliver(t.alice, bundle, [t.bob, t.carol])
    assert_in_sync(t.groups)


def test_clear_pending_proposals(trio: Trio) -> None:
    t = trio
    pb = t.bob.propose_self_update()
    process_proposal(t.alice, pb.message)
    assert len(t.alice.pending_proposals()) == 1
    assert len(t.bob.pending_proposals()) == 1
    t.alice.clear_pending_proposals()
    t.bob.clear_pending_proposals()
    assert t.alice.pending_proposals() == [] and t.bob.pending_proposals() == []
    assert_in_sync([t.alice, t.bob])


# --------------------------------------------------------------------------
# Staged commits
# --------------------------------------------------------------------------


def test_staged_commit_discard_then_reprocess(trio: Trio) -> None:
    t = trio
    bundle = t.alice.remove_members([2])
    t.alice.merge_pending_commit()
    auth_before = t.bob.epoch_authenticator()
    r = t.bob.process_message(bundle.commit)
    assert isinstance(r, mlskit.ReceivedMessage.COMMIT)
    info = r.commit.info()
    assert info.removes == [mlskit.RemovedMember(index=2, identity=b"carol")]
    assert info.new_epoch == 2
    r.commit.discard()
    assert t.bob.epoch() == 1 and t.bob.epoch_authenticator() == auth_before
    assert len(t.bob.members()) == 3
    with pytest.raises(mlskit.MlsError.StagedCommitOutdated):
        r.commit.merge()
    r2 = t.bob.process_message(bundle.commit)
    assert isinstance(r2, mlskit.ReceivedMessage.COMMIT)
    assert r2.commit.info() == info
    r2.commit.merge()
    assert t.bob.epoch() == 2
    with pytest.raises(mlskit.MlsError.StagedCommitOutdated):
        r2.commit.merge()
    assert_in_sync([t.alice, t.bob])


def test_two_staged_commits_only_one_merges(trio: Trio) -> None:
    t = trio
    b1 = t.alice.self_update()
    t.alice.merge_pending_commit()
    r1 = t.bob.process_message(b1.commit)
    r2 = t.bob.process_message(b1.commit)
    assert isinstance(r1, mlskit.ReceivedMessage.COMMIT) and isinstance(r2, mlskit.ReceivedMessage.COMMIT)
    r1.commit.merge()
    with pytest.raises(mlskit.MlsError.StagedCommitOutdated):
        r2.commit.merge()
    assert t.bob.epoch() == 2


# --------------------------------------------------------------------------
# Messages, secrets, exports
# --------------------------------------------------------------------------


def test_application_messages_with_aad_both_ways(trio: Trio) -> None:
    t = trio
    m1 = t.alice.encrypt(b"hello bob", aad=b"header-1")
    meta = mlskit.parse_message(m1)
    assert meta.kind == mlskit.MessageKind.PRIVATE_MESSAGE
    assert meta.content_type == mlskit.ContentType.APPLICATION
    assert meta.epoch == 1 and meta.group_id == t.alice.id()
    a = process_app(t.bob, m1)
    assert a.plaintext == b"hello bob" and a.aad == b"header-1" and a.epoch == 1
    assert a.sender == mlskit.Sender.MEMBER(index=0, identity=b"alice")
    m2 = t.bob.encrypt(b"hello alice", b"header-2")
    b = process_app(t.alice, m2)
    assert b.plaintext == b"hello alice" and b.aad == b"header-2"
    assert b.sender == mlskit.Sender.MEMBER(index=1, identity=b"bob")
    m3 = t.carol.encrypt(b"", b"")
    c = process_app(t.alice, m3)
    assert c.plaintext == b"" and c.aad == b""
    # The sender's own message echoed back.
    assert isinstance(t.alice.process_message(m1), mlskit.ReceivedMessage.OWN_MESSAGE)
    # Messages of the previous epoch still decrypt after a commit (max_past_epochs).
    late = t.carol.encrypt(b"late", b"")
    bundle = t.alice.self_update()
    commit_and_deliver(t.alice, bundle, [t.bob, t.carol])
    late_app = process_app(t.bob, late)
    assert late_app.plaintext == b"late" and late_app.epoch == 1


def test_exporter_and_authenticator(trio: Trio) -> None:
    t = trio
    s = [g.export_secret("label", b"context", 32) for g in t.groups]
    assert len(set(map(bytes, s))) == 1 and len(s[0]) == 32
    assert t.alice.export_secret("other", b"context", 32) != s[0]
    assert t.alice.export_secret("label", b"other", 32) != s[0]
    assert len(t.alice.export_secret("label", b"", 1)) == 1
    assert len(t.alice.export_secret("label", b"", 1024)) == 1024
    for bad in (0, 1025):
        with pytest.raises(mlskit.MlsError):
            t.alice.export_secret("label", b"", bad)
    auths = {bytes(g.epoch_authenticator()) for g in t.groups}
    assert len(auths) == 1
    bundle = t.bob.self_update()
    commit_and_deliver(t.bob, bundle, [t.alice, t.carol])
    assert t.alice.export_secret("label", b"context", 32) != s[0]
    assert {bytes(g.epoch_authenticator()) for g in t.groups} != auths
    assert_in_sync(t.groups)


def test_parse_message_every_kind(trio: Trio) -> None:
    t = trio
    kp = new_client(b"dave").create_key_packages(1)[0]
    k = mlskit.parse_message(kp)
    assert k.kind == mlskit.MessageKind.KEY_PACKAGE and k.ciphersuite_code == 1
    assert k.group_id is None and k.epoch is None and k.content_type is None
    prop = t.bob.propose_add(kp, mlskit.ProposalMode.BY_REFERENCE)
    p = mlskit.parse_message(prop.message)
    assert (p.kind, p.content_type, p.epoch) == (mlskit.MessageKind.PRIVATE_MESSAGE, mlskit.ContentType.PROPOSAL, 1)
    t.bob.clear_pending_proposals()
    bundle = t.alice.add_members([kp])
    c = mlskit.parse_message(bundle.commit)
    assert (c.kind, c.content_type, c.group_id) == (mlskit.MessageKind.PRIVATE_MESSAGE, mlskit.ContentType.COMMIT, t.alice.id())
    assert bundle.welcome is not None and bundle.group_info is not None
    w = mlskit.parse_message(bundle.welcome)
    assert w.kind == mlskit.MessageKind.WELCOME and w.ciphersuite_code == 1
    gi = mlskit.parse_message(bundle.group_info)
    assert gi.kind == mlskit.MessageKind.GROUP_INFO and gi.epoch == 2 and gi.group_id == t.alice.id()
    t.alice.clear_pending_commit()
    app = mlskit.parse_message(t.alice.encrypt(b"x", b""))
    assert app.content_type == mlskit.ContentType.APPLICATION
    ej = new_client(b"erin").join_by_external_commit(t.alice.export_group_info())
    pub = mlskit.parse_message(ej.commit)
    assert (pub.kind, pub.content_type, pub.epoch) == (mlskit.MessageKind.PUBLIC_MESSAGE, mlskit.ContentType.COMMIT, 1)


def test_validate_key_package() -> None:
    c = new_client(b"carol")
    kp = c.create_key_packages(1, mlskit.KeyPackageOptions(ciphersuite=mlskit.Ciphersuite.X25519_CHACHA20POLY1305_ED25519))[0]
    info = mlskit.validate_key_package(kp)
    assert info.identity == b"carol"
    assert info.ciphersuite == mlskit.Ciphersuite.X25519_CHACHA20POLY1305_ED25519
    assert info.signature_key == c.signature_public_key(mlskit.Ciphersuite.X25519_CHACHA20POLY1305_ED25519)
    assert info.not_before < info.not_after
    assert info.hash_ref == c.key_packages()[0].hash_ref
    # A flipped signature byte fails validation.
    bad = bytearray(kp)
    bad[-5] ^= 0x01
    with pytest.raises((mlskit.MlsError.InvalidKeyPackage, mlskit.MlsError.MalformedInput)):
        mlskit.validate_key_package(bytes(bad))
    # A GroupInfo is not a key package.
    g = c.create_group()
    with pytest.raises(mlskit.MlsError):
        mlskit.validate_key_package(g.export_group_info())


def test_redelivered_messages_change_nothing(trio: Trio) -> None:
    t = trio
    storage = t.storages[1]
    app = t.alice.encrypt(b"once", b"")
    process_app(t.bob, app)
    snap, epoch, auth = storage.snapshot(), t.bob.epoch(), t.bob.epoch_authenticator()
    with pytest.raises(mlskit.MlsError.DuplicateMessage):
        t.bob.process_message(app)
    assert storage.snapshot() == snap and t.bob.epoch() == epoch and t.bob.epoch_authenticator() == auth

    pb = t.alice.propose_self_update()
    process_proposal(t.bob, pb.message)
    snap = storage.snapshot()
    with pytest.raises((mlskit.MlsError.DuplicateMessage, mlskit.MlsError.WrongEpoch)):
        t.bob.process_message(pb.message)
    assert storage.snapshot() == snap
    assert len(t.bob.pending_proposals()) == 1

    bundle = t.alice.commit_pending_proposals()
    commit_and_deliver(t.alice, bundle, [t.bob, t.carol])
    snap, auth = storage.snapshot(), t.bob.epoch_authenticator()
    with pytest.raises((mlskit.MlsError.DuplicateMessage, mlskit.MlsError.WrongEpoch)) as exc:
        t.bob.process_message(bundle.commit)
    if isinstance(exc.value, mlskit.MlsError.WrongEpoch):
        assert exc.value.message_epoch == 1 and exc.value.group_epoch == 2
    assert storage.snapshot() == snap and t.bob.epoch() == 2 and t.bob.epoch_authenticator() == auth
    # A commit from a future epoch.
    b2 = t.alice.self_update()
    t.alice.merge_pending_commit()
    b3 = t.alice.self_update()
    t.alice.merge_pending_commit()
    with pytest.raises(mlskit.MlsError.WrongEpoch) as exc2:
        t.bob.process_message(b3.commit)
    assert exc2.value.message_epoch == 3 and exc2.value.group_epoch == 2
    process_commit(t.bob, b2.commit)
    process_commit(t.bob, b3.commit)
    assert t.bob.epoch() == t.alice.epoch() == 4


def test_group_registry_and_delete(trio: Trio) -> None:
    t = trio
    alice = t.clients[0]
    gid = t.alice.id()
    assert alice.group_ids() == [gid]
    again = alice.group(gid)
    assert again.epoch() == t.alice.epoch() and again.members() == t.alice.members()
    # Both handles share state.
    bundle = again.self_update()
    assert t.alice.pending_commit() is not None
    t.alice.merge_pending_commit()
    assert again.epoch() == 2
    process_commit(t.bob, bundle.commit)
    process_commit(t.carol, bundle.commit)
    other = alice.create_group()
    assert sorted(map(bytes, alice.group_ids())) == sorted([bytes(gid), bytes(other.id())])
    alice.delete_group(gid)
    assert alice.group_ids() == [other.id()]
    with pytest.raises(mlskit.MlsError.UnknownGroup):
        alice.group(gid)
    with pytest.raises(mlskit.MlsError.UnknownGroup):
        t.alice.epoch()
    with pytest.raises(mlskit.MlsError.UnknownGroup):
        alice.delete_group(gid)
    assert_in_sync([t.bob, t.carol])


def test_group_inactive_after_removal_still_readable(trio: Trio) -> None:
    t = trio
    bundle = t.alice.remove_members([1])
    commit_and_deliver(t.alice, bundle, [t.carol])
    info = process_commit(t.bob, bundle.commit)
    assert info.removes_us
    assert not t.bob.is_active()
    assert t.bob.epoch() == 2
    with pytest.raises(mlskit.MlsError.GroupInactive):
        t.bob.self_update()
    t.clients[1].delete_group(t.bob.id())
    assert t.clients[1].group_ids() == []


def test_all_three_members_full_flow() -> None:
    """A compact end-to-end run: create, add, talk, update, remove, talk."""
    t = make_trio()
    assert_in_sync(t.groups)
    msgs: List[bytes] = [g.encrypt(b"m" + bytes([i]), b"") for i, g in enumerate(t.groups)]
    for i, m in enumerate(msgs):
        for j, g in enumerate(t.groups):
            if i != j:
                assert process_app(g, m).plaintext == b"m" + bytes([i])
    bundle = t.carol.self_update()
    commit_and_deliver(t.carol, bundle, [t.alice, t.bob])
    bundle = t.bob.remove_members([0])
    commit_and_deliver(t.bob, bundle, [t.carol])
    assert process_commit(t.alice, bundle.commit).removes_us
    assert_in_sync([t.bob, t.carol])


def test_encrypt_default_aad_is_bytes() -> None:
    """SDK bug: ``encrypt(plaintext)`` without ``aad`` must use ``b""``.

    src/ffi/group.rs declares ``#[uniffi::method(default(aad = []))]``; the
    generated Python sets ``aad = []`` (a list) and raises TypeError.
    """
    t = make_trio()
    msg = t.alice.encrypt(b"no aad given")
    app = process_app(t.bob, msg)
    assert app.plaintext == b"no aad given" and app.aad == b""


def test_committed_proposal_refs_agree_for_own_by_value_proposal() -> None:
    """A proposal a commit carries by value has no reference all members agree
    on, so every member reports none for it; the standalone proposal message
    still has the reference the proposer got back."""
    t = make_trio(group_options=mlskit.GroupOptions(required_extension_types=[CUSTOM_EXTENSION_TYPE]))
    ext = mlskit.GroupExtension(extension_type=CUSTOM_EXTENSION_TYPE, data=b"by-value")
    pb = t.alice.propose_custom_extensions([ext], mlskit.ProposalMode.BY_VALUE)
    for g in (t.bob, t.carol):
        assert process_proposal(g, pb.message).proposal_ref == pb.proposal_ref
    bundle = t.alice.commit_pending_proposals()
    pending = t.alice.pending_commit()
    assert pending is not None
    t.alice.merge_pending_commit()
    info = process_commit(t.bob, bundle.commit)
    assert info.new_custom_extensions == [ext]
    assert [p.proposal_ref for p in pending.proposals] == [None]
    assert [p.proposal_ref for p in info.proposals] == [None]


def test_custom_proposal_type_must_be_supported_by_all_members() -> None:
    plain_opts = mlskit.ClientOptions()
    alice = mlskit.Client(DictStorage(), b"alice", CLIENT_OPTIONS)
    bob = mlskit.Client(DictStorage(), b"bob", CLIENT_OPTIONS)
    carol = mlskit.Client(DictStorage(), b"carol", plain_opts)
    g = alice.create_group()
    bundle = g.add_members([bob.create_key_packages(1)[0], carol.create_key_packages(1)[0]])
    g.merge_pending_commit()
    assert bundle.welcome is not None
    gb, gc = bob.join_group(bundle.welcome), carol.join_group(bundle.welcome)
    epochs = (g.epoch(), gb.epoch(), gc.epoch())
    # Carol does not support the custom proposal type: it can't be committed.
    try:
        pb = gb.propose_custom(CUSTOM_PROPOSAL_TYPE, b"x", mlskit.ProposalMode.BY_REFERENCE)
    except mlskit.MlsError:
        pass  # refused up front: fine
    else:
        process_proposal(g, pb.message)
        with pytest.raises(mlskit.MlsError):
            g.commit_pending_proposals()
        g.clear_pending_proposals()
        gb.clear_pending_proposals()
    assert (g.epoch(), gb.epoch(), gc.epoch()) == epochs
    assert g.pending_commit() is None
    assert_in_sync([g, gb, gc])
