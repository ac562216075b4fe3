"""Hostile input: every function taking bytes answers with a typed MlsError,
never another exception, and changes nothing."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import mlskit
import pytest

from conftest import (
    CLIENT_OPTIONS,
    DictStorage,
    Trio,
    assert_in_sync,
    commit_and_deliver,
    make_trio,
    process_app,
    process_commit,
    process_proposal,
)


def mutations(msg: bytes, seed: int, flips: int = 40) -> Iterator[Tuple[str, bytes]]:
    """Empty, truncated (every short prefix, then a stride), bit-flipped and garbage variants."""
    rng = random.Random(seed)
    n = len(msg)
    yield "empty", b""
    step = max(1, n // 40)
    for length in sorted(set(range(1, min(n, 24))) | set(range(1, n, step)) | {n - 1}):
        yield f"prefix[{length}]", msg[:length]
    for pos in sorted(rng.sample(range(n), min(n, flips))):
        bit = rng.randrange(8)
        b = bytearray(msg)
        b[pos] ^= 1 << bit
        yield f"flip[{pos}.{bit}]", bytes(b)
    yield "random", bytes(rng.randrange(256) for _ in range(n))
    yield "zeros", bytes(n)
    yield "ones", b"\xff" * n
    yield "one-byte", b"\x01"
    yield "huge-length", b"\x00\x01\x00\x02" + b"\xff" * 8


class Checker:
    """Feeds hostile inputs and records every answer that is not an MlsError.

    Problems are collected (not raised at once) so one test reports every
    offending input and still checks the state afterwards."""

    def __init__(self) -> None:
        self.problems: List[str] = []
        self.calls = 0

    def check(self, fn: Callable[[bytes], object], data: bytes, label: str, may_succeed: bool = False) -> Optional[BaseException]:
        self.calls += 1
        try:
            fn(data)
        except mlskit.MlsError as e:
            err: BaseException = e
            return err
        except BaseException as e:  # noqa: BLE001 - that is the point of the test
            self.problems.append(f"{label}: {type(e).__qualname__}: {str(e)[:120]!r} (not an MlsError)")
            return e
        if not may_succeed:
            self.problems.append(f"{label}: hostile input accepted")
        return None

    def assert_clean(self) -> None:
        assert self.calls > 0
        assert not self.problems, f"{len(self.problems)} of {self.calls} hostile inputs mishandled:\n" + "\n".join(self.problems[:40])


@dataclass
class Corpus:
    t: Trio
    dave: mlskit.Client
    dave_storage: DictStorage
    app: bytes
    proposal: bytes
    commit: bytes
    public_commit: bytes
    welcome: bytes
    welcome_no_tree: bytes
    tree: bytes
    group_info: bytes
    group_info_no_tree: bytes
    key_package: bytes
    other_group_app: bytes
    other_group_commit: bytes


def build_corpus() -> Corpus:
    t = make_trio()
    # Messages of epoch 1 that bob has not processed yet.
    app = t.alice.encrypt(b"hostile corpus", b"aad")
    prop = t.carol.propose_self_update().message
    t.carol.clear_pending_proposals()
    commit = t.alice.self_update().commit
    t.alice.clear_pending_commit()
    dave_storage = DictStorage()
    dave = mlskit.Client(dave_storage, b"dave", CLIENT_OPTIONS)
    kp = dave.create_key_packages(1)[0]
    # Welcome for dave from a separate group so the trio stays at epoch 1.
    erin = mlskit.Client(DictStorage(), b"erin", CLIENT_OPTIONS)
    side = erin.create_group(mlskit.GroupOptions(join=mlskit.JoinOptions(use_ratchet_tree_extension=False)))
    b = side.add_members(dave.create_key_packages(1))
    side.merge_pending_commit()
    assert b.welcome is not None
    side2 = erin.create_group()
    b2 = side2.add_members(dave.create_key_packages(1))
    side2.merge_pending_commit()
    assert b2.welcome is not None
    public = mlskit.Client(DictStorage(), b"frank").join_by_external_commit(t.alice.export_group_info()).commit
    return Corpus(
        t=t,
        dave=dave,
        dave_storage=dave_storage,
        app=app,
        proposal=prop,
        commit=commit,
        public_commit=public,
        welcome=b2.welcome,
        welcome_no_tree=b.welcome,
        tree=side.export_ratchet_tree(),
        group_info=t.alice.export_group_info(),
        group_info_no_tree=t.alice.export_group_info(False),
        key_package=kp,
        other_group_app=side.encrypt(b"other group", b""),
        other_group_commit=side.self_update().commit,
    )


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return build_corpus()


def real_messages(c: Corpus) -> Dict[str, bytes]:
    return {
        "app": c.app,
        "proposal": c.proposal,
        "commit": c.commit,
        "public_commit": c.public_commit,
        "welcome": c.welcome,
        "group_info": c.group_info,
        "key_package": c.key_package,
        "tree": c.tree,
    }


def test_process_message_hostile(corpus: Corpus) -> None:
    ck = Checker()
    t = corpus.t
    bob = t.bob
    storage: DictStorage = t.storages[1]
    snap, epoch, auth = storage.snapshot(), bob.epoch(), bob.epoch_authenticator()
    for name, msg in (("app", corpus.app), ("proposal", corpus.proposal), ("commit", corpus.commit), ("public", corpus.public_commit)):
        for label, data in mutations(msg, seed=len(name)):
            ck.check(bob.process_message, data, f"process_message({name} {label})")
    # Other kinds of valid MLS messages are not group messages.
    for name, data in real_messages(corpus).items():
        if name not in ("app", "proposal", "commit", "public_commit"):
            ck.check(bob.process_message, data, f"process_message({name})")
    # Wrong group.
    for data in (corpus.other_group_app, corpus.other_group_commit):
        with pytest.raises(mlskit.MlsError.WrongGroup):
            bob.process_message(data)
    assert storage.snapshot() == snap
    assert bob.epoch() == epoch and bob.epoch_authenticator() == auth
    assert bob.pending_proposals() == []
    # The real messages still work afterwards.
    assert process_app(bob, corpus.app).plaintext == b"hostile corpus"
    ck.assert_clean()


def test_trailing_bytes_rejected(corpus: Corpus) -> None:
    """Extra bytes after a complete message are refused as MalformedInput."""
    t = corpus.t
    epoch = t.carol.epoch()
    for fn in (t.carol.process_message, mlskit.parse_message):
        with pytest.raises(mlskit.MlsError.MalformedInput):
            fn(corpus.commit + b"\x00junk")
    with pytest.raises(mlskit.MlsError.MalformedInput):
        mlskit.validate_key_package(corpus.key_package + b"\x00")
    assert t.carol.epoch() == epoch


def test_welcome_mutations(corpus: Corpus) -> None:
    ck = Checker()
    dave = corpus.dave
    snap = corpus.dave_storage.snapshot()
    kps = dave.key_packages()
    for label, data in mutations(corpus.welcome, seed=7, flips=30):
        ck.check(dave.inspect_welcome, data, f"inspect_welcome({label})")
    for label, data in list(mutations(corpus.welcome, seed=8, flips=15))[::2]:
        ck.check(dave.join_group, data, f"join_group({label})")
    for name, data in real_messages(corpus).items():
        if name != "welcome":
            ck.check(dave.join_group, data, f"join_group({name})")
            ck.check(dave.inspect_welcome, data, f"inspect_welcome({name})")
    # A Welcome for someone else.
    other = mlskit.Client(DictStorage(), b"other", CLIENT_OPTIONS)
    with pytest.raises(mlskit.MlsError.NoMatchingKeyPackage):
        other.join_group(corpus.welcome)
    assert corpus.dave_storage.snapshot() == snap
    assert dave.key_packages() == kps and dave.group_ids() == []
    ck.assert_clean()


def test_welcome_ratchet_tree_argument_hostile(corpus: Corpus) -> None:
    ck = Checker()
    dave = corpus.dave
    snap = corpus.dave_storage.snapshot()
    # Garbage trees, and the wrong group's tree.
    wrong_tree = corpus.t.alice.export_ratchet_tree()
    for label, tree in [*mutations(corpus.tree, seed=9, flips=20), ("wrong-group-tree", wrong_tree)]:
        ck.check(lambda w: dave.inspect_welcome(w, tree), corpus.welcome_no_tree, f"inspect_welcome(tree {label})")
        ck.check(lambda w: dave.join_group(w, tree), corpus.welcome_no_tree, f"join_group(tree {label})")
    assert corpus.dave_storage.snapshot() == snap
    assert dave.group_ids() == []
    ck.assert_clean()


def test_genuine_welcome_after_hostile_ones(corpus: Corpus) -> None:
    dave = corpus.dave
    assert dave.inspect_welcome(corpus.welcome_no_tree, corpus.tree).own_index == 1
    g = dave.join_group(corpus.welcome)
    assert g.epoch() == 1
    assert dave.join_group(corpus.welcome_no_tree, corpus.tree).own_index() == 1


def test_external_commit_group_info_hostile(corpus: Corpus) -> None:
    ck = Checker()
    frank_storage = DictStorage()
    frank = mlskit.Client(frank_storage, b"frank2", CLIENT_OPTIONS)
    snap = frank_storage.snapshot()
    for label, data in mutations(corpus.group_info, seed=11, flips=30):
        ck.check(frank.join_by_external_commit, data, f"join_by_external_commit({label})")
    ck.check(frank.join_by_external_commit, corpus.group_info_no_tree, "no tree at all")
    for name, data in real_messages(corpus).items():
        if name != "group_info":
            ck.check(frank.join_by_external_commit, data, f"join_by_external_commit({name})")
    assert frank_storage.snapshot() == snap and frank.group_ids() == []
    ck.assert_clean()


def test_external_commit_ratchet_tree_argument_hostile(corpus: Corpus) -> None:
    ck = Checker()
    frank_storage = DictStorage()
    frank = mlskit.Client(frank_storage, b"frank3", CLIENT_OPTIONS)
    snap = frank_storage.snapshot()
    for label, tree in mutations(corpus.t.alice.export_ratchet_tree(), seed=12, flips=20):
        ck.check(lambda gi: frank.join_by_external_commit(gi, tree), corpus.group_info_no_tree, f"join_by_external_commit(tree {label})")
    ck.check(lambda gi: frank.join_by_external_commit(gi, corpus.tree), corpus.group_info_no_tree, "wrong-group tree")
    assert frank_storage.snapshot() == snap and frank.group_ids() == []
    ck.assert_clean()


def test_validate_key_package_hostile(corpus: Corpus) -> None:
    ck = Checker()
    for label, data in mutations(corpus.key_package, seed=13):
        ck.check(mlskit.validate_key_package, data, f"validate_key_package({label})")
    for name, data in real_messages(corpus).items():
        if name != "key_package":
            ck.check(mlskit.validate_key_package, data, f"validate_key_package({name})")
    ck.assert_clean()


def test_add_members_and_propose_add_hostile(corpus: Corpus) -> None:
    ck = Checker()
    t = corpus.t
    carol = t.carol
    storage: DictStorage = t.storages[2]
    snap, epoch = storage.snapshot(), carol.epoch()
    for label, data in list(mutations(corpus.key_package, seed=14, flips=20))[::2]:
        ck.check(lambda kp: carol.add_members([kp]), data, f"add_members({label})")
        ck.check(lambda kp: carol.propose_add(kp, mlskit.ProposalMode.BY_REFERENCE), data, f"propose_add({label})")
    for name, data in real_messages(corpus).items():
        if name != "key_package":
            ck.check(lambda kp: carol.add_members([kp]), data, f"add_members({name})")
            ck.check(lambda kp: carol.propose_add(kp, mlskit.ProposalMode.BY_VALUE), data, f"propose_add({name})")
    # A good key package next to a bad one: nothing is staged.
    ck.check(lambda kp: carol.add_members([corpus.key_package, kp]), corpus.key_package[:-3], "add_members(good+bad)")
    ck.check(lambda _kp: carol.add_members([]), b"", "add_members([])")
    assert storage.snapshot() == snap and carol.epoch() == epoch
    assert carol.pending_commit() is None and carol.pending_proposals() == []
    ck.assert_clean()


def test_parse_message_hostile(corpus: Corpus) -> None:
    ck = Checker()
    for name, msg in real_messages(corpus).items():
        if name == "tree":
            continue
        for label, data in mutations(msg, seed=len(name) + 100):
            # A flipped bit may still parse (parsing needs no keys and checks no
            # signature); truncations and garbage may not. Never a non-MlsError.
            accept = label.startswith("flip")
            e = ck.check(mlskit.parse_message, data, f"parse_message({name} {label})", may_succeed=accept)
            if e is not None and not isinstance(e, mlskit.MlsError.MalformedInput):
                ck.problems.append(f"parse_message({name} {label}): {e!r} is not MalformedInput")
    with pytest.raises(mlskit.MlsError.MalformedInput):
        mlskit.parse_message(corpus.tree)
    ck.assert_clean()


def test_other_bytes_arguments(corpus: Corpus) -> None:
    c = mlskit.Client(DictStorage(), b"someone", CLIENT_OPTIONS)
    with pytest.raises(mlskit.MlsError.UnknownGroup):
        c.group(b"\x00" * 16)
    with pytest.raises(mlskit.MlsError.UnknownGroup):
        c.group(b"")
    with pytest.raises(mlskit.MlsError.UnknownGroup):
        c.delete_group(b"nope")
    assert c.delete_key_package(b"") is False
    assert c.delete_key_package(b"\xff" * 300) is False
    # Non-bytes values are refused by the binding before reaching Rust.
    with pytest.raises(TypeError):
        corpus.t.alice.process_message("not bytes")
    # A group id of another group.
    with pytest.raises(mlskit.MlsError.UnknownGroup):
        c.group(corpus.t.alice.id())


def test_state_intact_after_hostile_run(corpus: Corpus) -> None:
    """After all the hostile input above, the trio still agrees and talks."""
    t = corpus.t
    # Bring everyone to the same point: carol's earlier proposal and alice's
    # cleared commit were never sent; bob may already have read corpus.app.
    bundle = t.carol.self_update()
    commit_and_deliver(t.carol, bundle, [t.alice, t.bob])
    assert_in_sync(t.groups)


def test_input_limit_is_the_apps_choice_and_refuses_before_decoding() -> None:
    small = mlskit.ClientOptions(max_input_bytes=64 * 1024)
    alice = mlskit.Client(DictStorage(), b"alice", small)
    group = alice.create_group()
    blank_tree = bytes([0x80, 0x01, 0x00, 0x00]) + bytes(0x10000)  # 65,536 blank nodes
    calls: List[Callable[[], object]] = [
        lambda: group.process_message(blank_tree),
        lambda: alice.join_by_external_commit(blank_tree),
        lambda: alice.join_by_external_commit(group.export_group_info(False), blank_tree),
    ]
    for call in calls:
        with pytest.raises(mlskit.MlsError.MalformedInput) as e:
            call()
        assert "limit" in str(e.value)
    assert group.epoch() == 0 and alice.group_ids() == [group.id()]
    # The default limit (4 MiB) takes the same tree up to the decoder, which refuses it.
    default = mlskit.Client(DictStorage(), b"bob")
    with pytest.raises(mlskit.MlsError):
        default.join_by_external_commit(group.export_group_info(False), blank_tree)
    with pytest.raises(mlskit.MlsError.ValidationFailed):
        mlskit.Client(DictStorage(), b"carol", mlskit.ClientOptions(max_input_bytes=1024))
