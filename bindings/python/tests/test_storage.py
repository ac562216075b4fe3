"""Persistence: restarts (SQLite, host dict, new process) and storage failures."""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import mlskit
import pytest

from conftest import (
    CLIENT_OPTIONS,
    CUSTOM_EXTENSION_TYPE,
    CUSTOM_PROPOSAL_TYPE,
    SRC,
    DictStorage,
    FailingStorage,
    Trio,
    assert_in_sync,
    commit_and_deliver,
    make_trio,
    process_app,
    process_commit,
    process_proposal,
)

NAMES = [b"alice", b"bob", b"carol"]
MLS_NAMESPACE_PREFIX = b"mlskit\x00\x01mls\x00"


def sqlite_trio(tmp_path: Path) -> Tuple[Trio, List[str]]:
    paths = [str(tmp_path / f"{n.decode()}.sqlite") for n in NAMES]
    it = iter(paths)
    t = make_trio(lambda: mlskit.SqliteStorage(next(it)))
    return t, paths


# --------------------------------------------------------------------------
# Restarts
# --------------------------------------------------------------------------


def test_restart_from_sqlite(tmp_path: Path) -> None:
    t, paths = sqlite_trio(tmp_path)
    gid = t.alice.id()
    msg = t.alice.encrypt(b"while bob was away", b"aad")
    bundle = t.carol.self_update()
    t.carol.merge_pending_commit()
    process_commit(t.alice, bundle.commit)
    after = t.alice.encrypt(b"after the commit", b"")
    # Alice also has a pending commit when she "crashes".
    pending = t.alice.remove_members([2])
    auth_alice = t.alice.epoch_authenticator()
    carol = t.carol

    # Close bob and alice completely.
    del t.groups[0:2]
    del t.clients[0:2]
    del t.storages[0:2]
    gc.collect()

    bob = mlskit.Client(mlskit.SqliteStorage(paths[1]), b"bob", CLIENT_OPTIONS)
    assert bob.group_ids() == [gid]
    gb = bob.group(gid)
    assert gb.epoch() == 1 and gb.own_index() == 1
    assert [m.identity for m in gb.members()] == NAMES
    assert process_app(gb, msg).plaintext == b"while bob was away"
    process_commit(gb, bundle.commit)
    assert process_app(gb, after).plaintext == b"after the commit"

    alice = mlskit.Client(mlskit.SqliteStorage(paths[0]), b"alice", CLIENT_OPTIONS)
    ga = alice.group(gid)
    assert ga.epoch_authenticator() == auth_alice
    info = ga.pending_commit()
    assert info is not None and info.removes == [mlskit.RemovedMember(index=2, identity=b"carol")]
    ga.merge_pending_commit()
    process_commit(gb, pending.commit)
    assert process_commit(carol, pending.commit).removes_us
    assert_in_sync([ga, gb])
    # While alice's store lives, nobody else may open her file...
    with pytest.raises(mlskit.MlsError.StorageInUse):
        mlskit.SqliteStorage(paths[0])
    # ...and once it is closed, a wrong identity on it is refused.
    del ga, alice
    gc.collect()
    with pytest.raises(mlskit.MlsError.IdentityMismatch):
        mlskit.Client(mlskit.SqliteStorage(paths[0]), b"not-alice")


def test_restart_from_shared_dict_storage() -> None:
    t = make_trio()
    gid = t.bob.id()
    data = t.storages[1].data
    kp_count = len(t.clients[1].key_packages())
    msg = t.carol.encrypt(b"for the new bob", b"")
    alice, carol = t.alice, t.carol
    del t.groups[1], t.clients[1]
    gc.collect()
    storage2 = DictStorage(data)
    bob = mlskit.Client(storage2, b"bob", CLIENT_OPTIONS)
    assert bob.group_ids() == [gid]
    assert len(bob.key_packages()) == kp_count
    gb = bob.group(gid)
    assert process_app(gb, msg).plaintext == b"for the new bob"
    bundle = gb.self_update()
    commit_and_deliver(gb, bundle, [alice, carol])
    assert_in_sync([alice, gb, carol])
    # A second live client over the same data (an app extension) takes the
    # store over: it sees the same state, and the first one writes nothing.
    bob2 = mlskit.Client(DictStorage(data), b"bob", CLIENT_OPTIONS)
    g2 = bob2.group(gid)
    assert g2.epoch() == gb.epoch()
    before = dict(data)
    with pytest.raises(mlskit.MlsError.StorageTakenOver):
        gb.encrypt(b"stale", b"")
    with pytest.raises(mlskit.MlsError.StorageTakenOver):
        bob.create_key_packages(1, None)
    with pytest.raises(mlskit.MlsError.StorageTakenOver):
        gb.self_update()
    assert data == before
    assert process_app(alice, g2.encrypt(b"from the extension", b"")).plaintext == b"from the extension"
    # Hand-back: the app opens a new client, which takes the store back.
    del gb, bob
    gc.collect()
    bob3 = mlskit.Client(DictStorage(data), b"bob", CLIENT_OPTIONS)
    with pytest.raises(mlskit.MlsError.StorageTakenOver):
        g2.encrypt(b"late", b"")
    g3 = bob3.group(gid)
    for i in range(3):
        text = b"app again %d" % i
        assert process_app(alice, g3.encrypt(text, b"")).plaintext == text


def test_sqlite_bad_path_is_typed_error(tmp_path: Path) -> None:
    not_a_db = tmp_path / "garbage.sqlite"
    not_a_db.write_bytes(b"this is not a sqlite database at all" * 100)
    with pytest.raises(mlskit.MlsError.StorageBackend):
        c = mlskit.Client(mlskit.SqliteStorage(str(not_a_db)), b"x")
        c.create_key_packages(1)
    with pytest.raises(mlskit.MlsError.StorageBackend):
        mlskit.SqliteStorage(str(tmp_path / "no" / "such" / "dir" / "db.sqlite"))


CHILD = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, sys.argv[1])
    import mlskit
    args = json.loads(sys.argv[2])
    opts = mlskit.ClientOptions(custom_extension_types=args["ext"], custom_proposal_types=args["prop"])
    client = mlskit.Client(mlskit.SqliteStorage(args["db"]), b"bob", opts)
    gid = bytes.fromhex(args["gid"])
    assert client.group_ids() == [gid], client.group_ids()
    group = client.group(gid)
    out = {"epoch_before": group.epoch(), "plaintexts": []}
    for path in args["inbox"]:
        r = group.process_message(open(path, "rb").read())
        if isinstance(r, mlskit.ReceivedMessage.APPLICATION):
            out["plaintexts"].append(r.message.plaintext.decode())
        elif isinstance(r, mlskit.ReceivedMessage.COMMIT):
            r.commit.merge()
    open(args["outbox"], "wb").write(group.encrypt(b"reply from the new process", b""))
    out["epoch"] = group.epoch()
    out["auth"] = group.epoch_authenticator().hex()
    out["secret"] = group.export_secret("child", b"", 16).hex()
    print(json.dumps(out))
    """
)


def test_restart_in_a_new_process(tmp_path: Path) -> None:
    t, paths = sqlite_trio(tmp_path)
    gid = t.alice.id()
    inbox: List[str] = []
    m1 = t.alice.encrypt(b"first", b"")
    bundle = t.carol.self_update()
    commit_and_deliver(t.carol, bundle, [t.alice])
    m2 = t.alice.encrypt(b"second", b"")
    for i, m in enumerate([m1, bundle.commit, m2]):
        p = tmp_path / f"in{i}.bin"
        p.write_bytes(m)
        inbox.append(str(p))
    alice, carol = t.alice, t.carol
    del t.groups[1], t.clients[1], t.storages[1]
    gc.collect()
    outbox = tmp_path / "out.bin"
    args = {
        "db": paths[1],
        "gid": bytes(gid).hex(),
        "inbox": inbox,
        "outbox": str(outbox),
        "ext": [CUSTOM_EXTENSION_TYPE],
        "prop": [CUSTOM_PROPOSAL_TYPE],
    }
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, SRC, json.dumps(args)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    out: Dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["epoch_before"] == 1
    assert out["plaintexts"] == ["first", "second"]
    assert out["epoch"] == 2 == alice.epoch()
    assert out["auth"] == bytes(alice.epoch_authenticator()).hex()
    assert out["secret"] == bytes(carol.export_secret("child", b"", 16)).hex()
    reply = outbox.read_bytes()
    for g in (alice, carol):
        app = process_app(g, reply)
        assert app.plaintext == b"reply from the new process"
        assert app.sender == mlskit.Sender.MEMBER(index=1, identity=b"bob")
    # And bob, reopened here again, continues from where the child left off.
    bob = mlskit.Client(mlskit.SqliteStorage(paths[1]), b"bob", CLIENT_OPTIONS)
    gb = bob.group(gid)
    assert isinstance(gb.process_message(reply), mlskit.ReceivedMessage.OWN_MESSAGE)
    assert_in_sync([alice, gb, carol])


# --------------------------------------------------------------------------
# Failing commits
# --------------------------------------------------------------------------


@dataclass
class Case:
    """One mutating operation prepared on a fresh trio.

    ``storage`` fails; ``observe`` captures the state that must not change;
    ``action`` is the operation; ``finish`` completes the protocol with peers
    and returns the groups that must then be in sync.
    """

    storage: FailingStorage
    observe: Callable[[], object]
    action: Callable[[], Any]
    finish: Callable[[Any], List[mlskit.Group]]


def group_state(g: mlskit.Group) -> Tuple[object, ...]:
    pc = g.pending_commit()
    return (
        g.epoch(),
        tuple((m.index, bytes(m.identity), bytes(m.signature_key)) for m in g.members()),
        bytes(g.epoch_authenticator()),
        None if pc is None else (pc.new_epoch, len(pc.proposals)),
        tuple(bytes(p.proposal_ref) for p in g.pending_proposals()),
        g.is_active(),
        tuple((e.extension_type, bytes(e.data)) for e in g.custom_extensions()),
    )


def client_state(c: mlskit.Client) -> Tuple[object, ...]:
    return (
        tuple(sorted(bytes(i) for i in c.group_ids())),
        tuple(sorted(bytes(k.hash_ref) for k in c.key_packages())),
    )


def everything(t: Trio, *extra: mlskit.Client) -> Callable[[], object]:
    def obs() -> object:
        return (
            [group_state(g) for g in t.groups],
            [client_state(c) for c in (*t.clients, *extra)],
        )

    return obs


#: The store the failing-commit cases make (run_failing_case sets it).
STORE_FACTORY: List[Callable[[], Any]] = [FailingStorage]


def new_failing_client(name: bytes) -> Tuple[mlskit.Client, Any]:
    s = STORE_FACTORY[0]()
    return mlskit.Client(s, name, CLIENT_OPTIONS), s


def propose_and_commit(t: Trio, proposer: int) -> Callable[[Any], List[mlskit.Group]]:
    def finish(pb: Any) -> List[mlskit.Group]:
        for i, g in enumerate(t.groups):
            if i != proposer:
                process_proposal(g, pb.message)
        committer = t.groups[(proposer + 1) % 3]
        bundle = committer.commit_pending_proposals()
        commit_and_deliver(committer, bundle, [g for g in t.groups if g is not committer])
        return [g for g in t.groups if g.is_active()]

    return finish


def merge_and_deliver(t: Trio, committer: int) -> Callable[[Any], List[mlskit.Group]]:
    def finish(bundle: Any) -> List[mlskit.Group]:
        g = t.groups[committer]
        commit_and_deliver(g, bundle, [o for o in t.groups if o is not g])
        return [g for g in t.groups if g.is_active()]

    return finish


def all_groups(t: Trio) -> Callable[[Any], List[mlskit.Group]]:
    return lambda _r: list(t.groups)


def case_create_key_packages(t: Trio) -> Case:
    c = t.clients[0]
    def finish(kps: Any) -> List[mlskit.Group]:
        assert len(kps) == 2 and len(c.key_packages()) == 2
        return list(t.groups)
    return Case(t.storages[0], everything(t), lambda: c.create_key_packages(2), finish)


def case_create_group(t: Trio) -> Case:
    c = t.clients[0]
    def finish(g: Any) -> List[mlskit.Group]:
        assert len(c.group_ids()) == 2 and g.epoch() == 0
        return list(t.groups)
    return Case(t.storages[0], everything(t), lambda: c.create_group(mlskit.GroupOptions(group_id=b"second")), finish)


def case_join_group(t: Trio) -> Case:
    dave, ds = new_failing_client(b"dave")
    bundle = t.alice.add_members(dave.create_key_packages(1))
    commit_and_deliver(t.alice, bundle, [t.bob, t.carol])
    welcome = bundle.welcome
    return Case(ds, everything(t, dave), lambda: dave.join_group(welcome), lambda gd: [*t.groups, gd])


def case_join_by_external_commit(t: Trio) -> Case:
    dave, ds = new_failing_client(b"dave")
    gi = t.alice.export_group_info()
    def finish(ej: Any) -> List[mlskit.Group]:
        for g in t.groups:
            process_commit(g, ej.commit)
        return [*t.groups, ej.group]
    return Case(ds, everything(t, dave), lambda: dave.join_by_external_commit(gi), finish)


def case_add_members(t: Trio) -> Case:
    dave = mlskit.Client(DictStorage(), b"dave", CLIENT_OPTIONS)
    kp = dave.create_key_packages(1)
    def finish(bundle: Any) -> List[mlskit.Group]:
        commit_and_deliver(t.alice, bundle, [t.bob, t.carol])
        return [*t.groups, dave.join_group(bundle.welcome)]
    return Case(t.storages[0], everything(t), lambda: t.alice.add_members(kp), finish)


def case_merge_pending_commit(t: Trio) -> Case:
    bundle = t.alice.self_update()
    def finish(_r: Any) -> List[mlskit.Group]:
        process_commit(t.bob, bundle.commit)
        process_commit(t.carol, bundle.commit)
        return list(t.groups)
    return Case(t.storages[0], everything(t), t.alice.merge_pending_commit, finish)


def case_clear_pending_commit(t: Trio) -> Case:
    t.alice.self_update()
    def finish(_r: Any) -> List[mlskit.Group]:
        assert t.alice.pending_commit() is None
        return list(t.groups)
    return Case(t.storages[0], everything(t), t.alice.clear_pending_commit, finish)


def case_clear_pending_proposals(t: Trio) -> Case:
    pb = t.alice.propose_self_update()
    process_proposal(t.bob, pb.message)
    def finish(_r: Any) -> List[mlskit.Group]:
        t.alice.clear_pending_proposals()
        return [t.alice, t.bob]
    return Case(t.storages[1], everything(t), t.bob.clear_pending_proposals, finish)


def case_remove_members(t: Trio) -> Case:
    return Case(t.storages[0], everything(t), lambda: t.alice.remove_members([2]), merge_and_deliver(t, 0))


def case_self_update(t: Trio) -> Case:
    return Case(t.storages[1], everything(t), t.bob.self_update, merge_and_deliver(t, 1))


def case_update_custom_extensions(t: Trio) -> Case:
    ext = mlskit.GroupExtension(extension_type=CUSTOM_EXTENSION_TYPE, data=b"changed")
    return Case(t.storages[2], everything(t), lambda: t.carol.update_custom_extensions([ext]), merge_and_deliver(t, 2))


def case_leave(t: Trio) -> Case:
    def finish(msg: Any) -> List[mlskit.Group]:
        for g in (t.alice, t.carol):
            process_proposal(g, msg)
        bundle = t.alice.commit_pending_proposals()
        commit_and_deliver(t.alice, bundle, [t.bob, t.carol])
        assert not t.bob.is_active()
        return [t.alice, t.carol]
    return Case(t.storages[1], everything(t), t.bob.leave, finish)


def case_propose_add(t: Trio) -> Case:
    dave = mlskit.Client(DictStorage(), b"dave", CLIENT_OPTIONS)
    kp = dave.create_key_packages(1)[0]
    return Case(t.storages[0], everything(t), lambda: t.alice.propose_add(kp, mlskit.ProposalMode.BY_REFERENCE), propose_and_commit(t, 0))


def case_propose_remove(t: Trio) -> Case:
    return Case(t.storages[0], everything(t), lambda: t.alice.propose_remove(2, mlskit.ProposalMode.BY_VALUE), propose_and_commit(t, 0))


def case_propose_self_update(t: Trio) -> Case:
    return Case(t.storages[1], everything(t), t.bob.propose_self_update, propose_and_commit(t, 1))


def case_propose_external_psk(t: Trio) -> Case:
    for c in t.clients:
        c.store_external_psk(b"psk", b"k" * 32)
    return Case(t.storages[2], everything(t), lambda: t.carol.propose_external_psk(b"psk", mlskit.ProposalMode.BY_REFERENCE), propose_and_commit(t, 2))


def case_propose_custom_extensions(t: Trio) -> Case:
    ext = mlskit.GroupExtension(extension_type=CUSTOM_EXTENSION_TYPE, data=b"proposed")
    return Case(t.storages[0], everything(t), lambda: t.alice.propose_custom_extensions([ext], mlskit.ProposalMode.BY_VALUE), propose_and_commit(t, 0))


def case_propose_custom(t: Trio) -> Case:
    return Case(t.storages[1], everything(t), lambda: t.bob.propose_custom(CUSTOM_PROPOSAL_TYPE, b"pl", mlskit.ProposalMode.BY_REFERENCE), propose_and_commit(t, 1))


def case_commit_pending_proposals(t: Trio) -> Case:
    pb = t.bob.propose_self_update()
    process_proposal(t.alice, pb.message)
    process_proposal(t.carol, pb.message)
    return Case(t.storages[0], everything(t), t.alice.commit_pending_proposals, merge_and_deliver(t, 0))


def case_encrypt(t: Trio) -> Case:
    def finish(msg: Any) -> List[mlskit.Group]:
        assert process_app(t.bob, msg).plaintext == b"secret"
        return list(t.groups)
    return Case(t.storages[0], everything(t), lambda: t.alice.encrypt(b"secret", b"aad"), finish)


def case_process_application(t: Trio) -> Case:
    msg = t.alice.encrypt(b"hello", b"")
    def finish(r: Any) -> List[mlskit.Group]:
        assert r.message.plaintext == b"hello"
        with pytest.raises(mlskit.MlsError.DuplicateMessage):
            t.bob.process_message(msg)
        return list(t.groups)
    return Case(t.storages[1], everything(t), lambda: t.bob.process_message(msg), finish)


def case_process_proposal(t: Trio) -> Case:
    pb = t.alice.propose_self_update()
    process_proposal(t.carol, pb.message)
    def finish(r: Any) -> List[mlskit.Group]:
        assert r.proposal.proposal_ref == pb.proposal_ref
        bundle = t.bob.commit_pending_proposals()
        commit_and_deliver(t.bob, bundle, [t.alice, t.carol])
        return list(t.groups)
    return Case(t.storages[1], everything(t), lambda: t.bob.process_message(pb.message), finish)


def case_staged_commit_merge(t: Trio) -> Case:
    bundle = t.alice.self_update()
    t.alice.merge_pending_commit()
    r = t.carol.process_message(bundle.commit)
    assert isinstance(r, mlskit.ReceivedMessage.COMMIT)
    def finish(_r: Any) -> List[mlskit.Group]:
        process_commit(t.bob, bundle.commit)
        return list(t.groups)
    return Case(t.storages[2], everything(t), r.commit.merge, finish)


def case_delete_group(t: Trio) -> Case:
    gid = t.carol.id()
    def finish(_r: Any) -> List[mlskit.Group]:
        assert t.clients[2].group_ids() == []
        bundle = t.alice.remove_members([2])
        commit_and_deliver(t.alice, bundle, [t.bob])
        return [t.alice, t.bob]
    return Case(t.storages[2], everything(t), lambda: t.clients[2].delete_group(gid), finish)


def case_store_external_psk(t: Trio) -> Case:
    for c in t.clients[1:]:
        c.store_external_psk(b"late-psk", b"p" * 32)
    def finish(_r: Any) -> List[mlskit.Group]:
        pb = t.alice.propose_external_psk(b"late-psk", mlskit.ProposalMode.BY_VALUE)
        return propose_and_commit(t, 0)(pb)
    return Case(t.storages[0], everything(t), lambda: t.clients[0].store_external_psk(b"late-psk", b"p" * 32), finish)


def case_delete_external_psk(t: Trio) -> Case:
    t.clients[0].store_external_psk(b"gone", b"g" * 32)
    def finish(_r: Any) -> List[mlskit.Group]:
        # The PSK is really gone: proposing it is refused.
        with pytest.raises(mlskit.MlsError.ValidationFailed):
            t.alice.propose_external_psk(b"gone", mlskit.ProposalMode.BY_REFERENCE)
        return list(t.groups)
    return Case(t.storages[0], everything(t), lambda: t.clients[0].delete_external_psk(b"gone"), finish)


def case_delete_key_package(t: Trio) -> Case:
    c = t.clients[1]
    ref = mlskit.validate_key_package(c.create_key_packages(1)[0]).hash_ref
    def finish(existed: Any) -> List[mlskit.Group]:
        assert existed is True and c.key_packages() == []
        return list(t.groups)
    return Case(t.storages[1], everything(t), lambda: c.delete_key_package(ref), finish)


CASES: Dict[str, Callable[[Trio], Case]] = {
    name[len("case_"):]: fn for name, fn in list(globals().items()) if name.startswith("case_") and callable(fn)
}


def failing_trio(storage_factory: Callable[[], Any] = FailingStorage) -> Trio:
    return make_trio(storage_factory, mlskit.GroupOptions(required_extension_types=[CUSTOM_EXTENSION_TYPE]))


@pytest.mark.parametrize("name", sorted(CASES))
def test_failed_commit_changes_nothing_then_retry_succeeds(name: str) -> None:
    run_failing_case(name, FailingStorage)


def run_failing_case(name: str, storage_factory: Callable[[], Any]) -> None:
    """Case `name` over stores from `storage_factory`, which have
    `fail_next_commit(reason)`, `failures` and `snapshot()` (also used by
    test_postgres.py for the PostgreSQL backend)."""
    STORE_FACTORY[0] = storage_factory
    try:
        _run_failing_case(name, failing_trio(storage_factory))
    finally:
        STORE_FACTORY[0] = FailingStorage


def _run_failing_case(name: str, t: Trio) -> None:
    case = CASES[name](t)
    snap = case.storage.snapshot()
    before = case.observe()
    reason = f"disk full while {name} \u2603"
    case.storage.fail_next_commit(reason)
    with pytest.raises(mlskit.MlsError.StorageBackend) as exc:
        case.action()
    assert reason in exc.value.reason
    assert case.storage.failures == 1
    assert case.storage.snapshot() == snap, "stored bytes changed after a failed commit"
    assert case.observe() == before, "in-memory state changed after a failed commit"
    result = case.action()
    assert case.storage.snapshot() != snap
    groups = case.finish(result)
    assert_in_sync(groups)


def test_any_exception_from_commit_becomes_storage_backend() -> None:
    t = failing_trio()
    st: FailingStorage = t.storages[0]
    before = everything(t)()
    snap = st.snapshot()
    st.fail_next_commit("plain RuntimeError text", plain_exception=True)
    with pytest.raises(mlskit.MlsError.StorageBackend) as exc:
        t.alice.self_update()
    assert "plain RuntimeError text" in exc.value.reason
    assert st.snapshot() == snap and everything(t)() == before
    bundle = t.alice.self_update()
    commit_and_deliver(t.alice, bundle, [t.bob, t.carol])
    assert_in_sync(t.groups)


class ReadFailingStorage(DictStorage):
    def __init__(self, data: Dict[bytes, bytes]) -> None:
        super().__init__(data)
        self.fail_reads = False

    def read(self, key: bytes) -> Optional[bytes]:
        if self.fail_reads:
            raise mlskit.StorageError.Backend("read path offline")
        return super().read(key)


def test_failing_read_is_storage_backend() -> None:
    t = make_trio()
    gid = t.bob.id()
    st = ReadFailingStorage(t.storages[1].data)
    bob = mlskit.Client(st, b"bob", CLIENT_OPTIONS)
    st.fail_reads = True
    with pytest.raises(mlskit.MlsError.StorageBackend) as exc:
        bob.group(gid).epoch()
    assert "read path offline" in exc.value.reason
    st.fail_reads = False
    assert bob.group(gid).epoch() == 1


def test_garbage_bytes_are_storage_corrupt() -> None:
    t = make_trio(FailingStorage)
    gid = t.bob.id()
    st: FailingStorage = t.storages[1]
    # Every value garbage: opening the client fails cleanly.
    st2 = FailingStorage(st.data)
    st2.garbage_for = lambda _k: True
    with pytest.raises(mlskit.MlsError.StorageCorrupt) as exc:
        mlskit.Client(st2, b"bob", CLIENT_OPTIONS)
    assert exc.value.key and exc.value.reason
    # Only OpenMLS group records garbage: the client opens, the group fails cleanly.
    st3 = FailingStorage(st.data)
    st3.garbage_for = lambda k: k.startswith(MLS_NAMESPACE_PREFIX)
    bob = mlskit.Client(st3, b"bob", CLIENT_OPTIONS)
    assert bob.group_ids() == [gid]
    with pytest.raises(mlskit.MlsError.StorageCorrupt):
        bob.group(gid).epoch()
    # The original storage is untouched and still works (from a new client:
    # the ones opened above took the store over).
    del bob
    gc.collect()
    bob_again = mlskit.Client(FailingStorage(st.data), b"bob", CLIENT_OPTIONS)
    assert_in_sync([t.alice, bob_again.group(gid), t.carol])


def test_garbage_value_in_place_is_storage_corrupt() -> None:
    t = make_trio()
    data: Dict[bytes, bytes] = t.storages[1].data
    gid = t.bob.id()
    for k in [k for k in data if k.startswith(MLS_NAMESPACE_PREFIX)]:
        data[k] = b"\x00" + data[k][:3]
    # Someone using the old handle on the corrupted store gets a typed error, never a crash.
    try:
        t.bob.encrypt(b"x", b"")
    except mlskit.MlsError as e:
        assert isinstance(e, mlskit.MlsError.StorageCorrupt)
    bob = mlskit.Client(DictStorage(data), b"bob", CLIENT_OPTIONS)
    with pytest.raises(mlskit.MlsError.StorageCorrupt):
        bob.group(gid).epoch()


def test_second_sqlite_store_on_a_live_file_is_refused_until_the_first_is_gone(tmp_path: Path) -> None:
    path = str(tmp_path / "alice.db")
    app = mlskit.Client(mlskit.SqliteStorage(path), b"alice")
    gid = app.create_group().id()
    started = time.monotonic()
    with pytest.raises(mlskit.MlsError.StorageInUse) as e:
        mlskit.SqliteStorage(path)
    assert e.value.path == path and time.monotonic() - started < 1
    del app
    gc.collect()
    extension = mlskit.Client(mlskit.SqliteStorage(path), b"alice")
    assert extension.group(gid).epoch() == 0


class SlowAfterCommit(DictStorage):
    """Applies a batch, then sleeps once: the window in which a committed
    group is not yet registered with its client."""

    def __init__(self) -> None:
        super().__init__()
        self.armed = False

    def commit(self, writes: List[mlskit.StorageWrite]) -> None:
        super().commit(writes)
        if self.armed:
            self.armed = False
            time.sleep(0.3)


def test_group_loaded_while_its_creation_commits_is_the_same_group() -> None:
    store = SlowAfterCommit()
    client = mlskit.Client(store, b"alice")
    gid = b"raced group"
    loaded: List[mlskit.Group] = []

    def load() -> None:
        while not loaded:
            try:
                loaded.append(client.group(gid))
            except mlskit.MlsError:
                time.sleep(0.005)

    store.armed = True
    loader = threading.Thread(target=load)
    loader.start()
    created = client.create_group(mlskit.GroupOptions(group_id=gid))
    loader.join(10)
    assert loaded, "the loader never saw the group"
    created.self_update()
    created.merge_pending_commit()
    assert loaded[0].epoch() == 1 == client.group(gid).epoch()


def test_group_with_a_damaged_record_can_be_deleted_and_joined_again() -> None:
    t = make_trio()
    store, gid = t.storages[1], t.bob.id()
    tree_keys = [k for k in store.data if b"\x00tree@" in k]
    assert tree_keys, "the tree record is found"
    store.data[tree_keys[0]] = store.data[tree_keys[0]][:5]
    bob = mlskit.Client(store, b"bob", CLIENT_OPTIONS)
    with pytest.raises(mlskit.MlsError.StorageCorrupt):
        bob.group(gid)
    bob.delete_group(gid)
    assert bob.group_ids() == []
    assert not [k for k in store.data if gid in k], "every record of the group is gone"
    bundle = t.alice.remove_members([1])
    t.alice.merge_pending_commit()
    process_commit(t.carol, bundle.commit)
    bundle = t.alice.add_members(bob.create_key_packages(1))
    t.alice.merge_pending_commit()
    process_commit(t.carol, bundle.commit)
    assert bundle.welcome is not None
    again = bob.join_group(bundle.welcome)
    assert again.epoch_authenticator() == t.alice.epoch_authenticator()
