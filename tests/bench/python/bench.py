"""Benchmark harness for the Python layers of MLSKit.

Runs the scenario of ``tests/bench/README.md`` through the Python bindings,
over a counting dict store (``python-dict``) or the built-in SQLite store
(``python-sqlite``), and prints one JSON object per (op, size) on stdout.
Progress goes to stderr. A wrong result raises, so the process exits non-zero.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence, TypeVar

SRC = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "bindings", "python", "src"))
if SRC not in sys.path:
    sys.path.append(SRC)  # after PYTHONPATH and site-packages: an installed wheel wins

import mlskit  # noqa: E402

LAYERS = ("python-dict", "python-sqlite")
OPS = (
    "create",
    "add",
    "process_add",
    "join",
    "remove",
    "process_remove",
    "update",
    "process_update",
    "msg_100",
    "msg_1k",
    "msg_64k",
    "load",
)
# Add J, J joins, remove J: the group returns to N members, so these run together.
CYCLE_OPS = frozenset({"add", "process_add", "join", "remove", "process_remove"})
UPDATE_OPS = frozenset({"update", "process_update"})
PAYLOAD_SIZES = {"msg_100": 100, "msg_1k": 1024, "msg_64k": 65536}
ALICE = b"alice"
BOB = b"bob"

T = TypeVar("T")


class BenchError(RuntimeError):
    """The SDK did not do what the scenario expects."""


def check(ok: bool, what: str) -> None:
    """Raises `BenchError` unless `ok` (unlike `assert`, survives `python -O`)."""
    if not ok:
        raise BenchError(what)


def log(message: str) -> None:
    print(f"bench.py: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Usage:
    """Storage callbacks of one store, or the sum over several."""

    reads: int = 0
    commits: int = 0
    bytes_written: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.reads + other.reads, self.commits + other.commits, self.bytes_written + other.bytes_written)

    def __sub__(self, other: Usage) -> Usage:
        return Usage(self.reads - other.reads, self.commits - other.commits, self.bytes_written - other.bytes_written)


# Without MYPYPATH=src, mypy sees `mlskit` as Any, and subclassing Any is an error.
class DictStorage(mlskit.StorageBackend):  # type: ignore[misc, unused-ignore]
    """A `StorageBackend` over a dict that counts its callbacks. Used from one thread."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.reads = 0
        self.commits = 0
        self.bytes_written = 0

    def read(self, key: bytes) -> Optional[bytes]:
        self.reads += 1
        return self.data.get(key)

    def commit(self, writes: list[mlskit.StorageWrite]) -> None:
        """Applies the batch atomically: every write is checked before any is applied."""
        changes: list[tuple[bytes, Optional[bytes]]] = []
        written = 0
        for write in writes:
            if isinstance(write, mlskit.StorageWrite.PUT):
                changes.append((write.key, write.value))
                written += len(write.key) + len(write.value)
            elif isinstance(write, mlskit.StorageWrite.DELETE):
                changes.append((write.key, None))
                written += len(write.key)
            else:
                raise TypeError(f"unknown write {write!r}")  # an SDK bug
        for key, value in changes:
            if value is None:
                self.data.pop(key, None)
            else:
                self.data[key] = value
        self.commits += 1
        self.bytes_written += written

    def usage(self) -> Usage:
        return Usage(self.reads, self.commits, self.bytes_written)


def usage_of(stores: Sequence[mlskit.StorageBackend]) -> Optional[Usage]:
    """The summed usage of `stores`, or None if one of them does not count."""
    total = Usage()
    for store in stores:
        if not isinstance(store, DictStorage):
            return None
        total = total + store.usage()
    return total


class Layer:
    """Opens the measured stores of one layer: counted dicts, or one SQLite file per client."""

    def __init__(self, name: str, folder: str) -> None:
        self.name = name
        self.folder = folder
        self.opened = 0

    def open(self, label: str) -> mlskit.StorageBackend:
        self.opened += 1
        if self.name == "python-dict":
            return DictStorage()
        return mlskit.SqliteStorage(os.path.join(self.folder, f"{self.opened:06d}-{label}.sqlite"))


@dataclass
class Series:
    """The samples of one (op, size) and their summed storage usage."""

    samples_us: list[float] = field(default_factory=list)
    usage: Optional[Usage] = None


class Recorder:
    """Times ops and keeps the samples of the requested ones, unless warming up."""

    def __init__(self, layer: str, size: int, ops: frozenset[str]) -> None:
        self.layer = layer
        self.size = size
        self.ops = ops
        self.recording = False
        self.series: dict[str, Series] = {}

    def timed(self, op: str, stores: Sequence[mlskit.StorageBackend], run: Callable[[], T]) -> T:
        """Runs `run` as one sample of `op`, counting the callbacks of `stores`."""
        before = usage_of(stores)
        start = time.perf_counter_ns()
        result = run()
        elapsed_ns = time.perf_counter_ns() - start
        after = usage_of(stores)
        if self.recording and op in self.ops:
            series = self.series.setdefault(op, Series(usage=None if before is None else Usage()))
            series.samples_us.append(elapsed_ns / 1000.0)
            if series.usage is not None and before is not None and after is not None:
                series.usage = series.usage + (after - before)
        return result

    def emit(self) -> None:
        """Prints one JSON line per recorded op, in the order of `OPS`."""
        for op in OPS:
            series = self.series.get(op)
            if series is None:
                continue
            n = len(series.samples_us)
            usage = series.usage
            line = {
                "layer": self.layer,
                "op": op,
                "size": self.size,
                "samples_us": [round(s, 3) for s in series.samples_us],
                "reads": None if usage is None else usage.reads / n,
                "commits": None if usage is None else usage.commits / n,
                "bytes_written": None if usage is None else usage.bytes_written / n,
            }
            print(json.dumps(line), flush=True)


@dataclass
class Member:
    """A client that acts in the scenario, with its store and its view of the group."""

    storage: mlskit.StorageBackend
    client: mlskit.Client
    group: mlskit.Group


def merged(group: mlskit.Group, bundle: mlskit.CommitBundle) -> mlskit.CommitBundle:
    """Merges `group`'s pending commit, the one `bundle` carries."""
    group.merge_pending_commit()
    return bundle


def welcome_of(bundle: mlskit.CommitBundle, what: str) -> bytes:
    welcome: Optional[bytes] = bundle.welcome
    if welcome is None:
        raise BenchError(f"{what}: the commit has no Welcome")
    return welcome


def process_commit(group: mlskit.Group, message: bytes) -> mlskit.StagedCommit:
    """Processes an incoming commit and merges it."""
    received = group.process_message(message)
    if not isinstance(received, mlskit.ReceivedMessage.COMMIT):
        raise BenchError(f"expected a commit, got {received}")
    received.commit.merge()
    return received.commit


def check_in_sync(a: mlskit.Group, other: mlskit.Group, what: str) -> None:
    """Both views of the group are at the same epoch with the same authenticator."""
    check(a.epoch() == other.epoch(), f"{what}: epochs differ ({a.epoch()} vs {other.epoch()})")
    check(a.epoch_authenticator() == other.epoch_authenticator(), f"{what}: epoch authenticators differ")


def setup_group(layer: Layer, size: int) -> tuple[Member, Member]:
    """A creates the group and adds B and `size - 2` fillers in one commit; B joins."""
    a_store, b_store = layer.open("a"), layer.open("b")
    a_client, b_client = mlskit.Client(a_store, ALICE), mlskit.Client(b_store, BOB)
    kps = b_client.create_key_packages(1)
    kps += [mlskit.Client(mlskit.MemoryStorage(), b"filler-%d" % i).create_key_packages(1)[0] for i in range(size - 2)]
    a_group = a_client.create_group()
    bundle = merged(a_group, a_group.add_members(kps))
    b_group = b_client.join_group(welcome_of(bundle, "setup"))
    check_in_sync(a_group, b_group, "setup")
    check(len(a_group.members()) == size, f"setup: {len(a_group.members())} members, expected {size}")
    check(b_group.own_index() == 1, f"setup: B at leaf {b_group.own_index()}")
    return Member(a_store, a_client, a_group), Member(b_store, b_client, b_group)


def run_cycle(rec: Recorder, layer: Layer, a: Member, b: Member, serial: int) -> None:
    """`add`, `process_add`, `join`, `remove`, `process_remove` of a new client J."""
    j_identity = b"joiner-%d" % serial
    j_store = layer.open("j")
    j_client = mlskit.Client(j_store, j_identity)
    kp = j_client.create_key_packages(1)[0]
    epoch = a.group.epoch()

    bundle = rec.timed("add", [a.storage], lambda: merged(a.group, a.group.add_members([kp])))
    check(a.group.epoch() == epoch + 1, "add: A did not advance its epoch")
    welcome = welcome_of(bundle, "add")
    staged = rec.timed("process_add", [b.storage], lambda: process_commit(b.group, bundle.commit))
    check([m.identity for m in staged.info().adds] == [j_identity], "process_add: B did not see J added")
    check_in_sync(a.group, b.group, "process_add")

    j_group = rec.timed("join", [j_store], lambda: j_client.join_group(welcome))
    check_in_sync(a.group, j_group, "join")
    leaf = j_group.own_index()

    bundle = rec.timed("remove", [a.storage], lambda: merged(a.group, a.group.remove_members([leaf])))
    check(a.group.epoch() == epoch + 2, "remove: A did not advance its epoch")
    staged = rec.timed("process_remove", [b.storage], lambda: process_commit(b.group, bundle.commit))
    removes = [(m.index, m.identity) for m in staged.info().removes]
    check(removes == [(leaf, j_identity)], f"process_remove: B saw {removes}")
    check_in_sync(a.group, b.group, "process_remove")


def run_update(rec: Recorder, a: Member, b: Member) -> None:
    """`update` by A, `process_update` by B."""
    epoch = a.group.epoch()
    bundle = rec.timed("update", [a.storage], lambda: merged(a.group, a.group.self_update()))
    check(a.group.epoch() == epoch + 1, "update: A did not advance its epoch")
    staged = rec.timed("process_update", [b.storage], lambda: process_commit(b.group, bundle.commit))
    check(staged.info().has_path, "process_update: commit has no path")
    check_in_sync(a.group, b.group, "process_update")


def run_message(rec: Recorder, op: str, payload: bytes, a: Member, b: Member) -> None:
    """A encrypts `payload`, B decrypts it."""
    received = rec.timed(op, [a.storage, b.storage], lambda: b.group.process_message(a.group.encrypt(payload, b"")))
    if not isinstance(received, mlskit.ReceivedMessage.APPLICATION):
        raise BenchError(f"{op}: expected an application message, got {received}")
    check(received.message.plaintext == payload, f"{op}: plaintext differs")


def run_load(rec: Recorder, a: Member) -> None:
    """A new client over A's store opens the group and reads its epoch."""
    group_id = a.group.id()

    group_client: list[mlskit.Client] = []

    def reopen() -> tuple[mlskit.Group, int]:
        client = mlskit.Client(a.storage, ALICE)
        group_client.append(client)
        group = client.group(group_id)
        return group, group.epoch()

    group, epoch = rec.timed("load", [a.storage], reopen)
    check(epoch == a.group.epoch(), f"load: epoch {epoch}, expected {a.group.epoch()}")
    check(group.epoch_authenticator() == a.group.epoch_authenticator(), "load: epoch authenticator differs")
    # The restarted client took the store over: it is A from now on.
    a.client, a.group = group_client[0], group


def bench_size(layer: Layer, size: int, iterations: int, ops: frozenset[str]) -> None:
    """Sets up a group of `size` members, runs one warm-up and `iterations` measured iterations."""
    started = time.monotonic()
    a, b = setup_group(layer, size)
    log(f"{layer.name} size {size}: setup {time.monotonic() - started:.1f}s")
    payloads = {op: os.urandom(n) for op, n in PAYLOAD_SIZES.items() if op in ops}
    rec = Recorder(layer.name, size, ops)
    for n in range(iterations + 1):
        rec.recording = n > 0
        if ops & CYCLE_OPS:
            run_cycle(rec, layer, a, b, n)
        if ops & UPDATE_OPS:
            run_update(rec, a, b)
        for op, payload in payloads.items():
            run_message(rec, op, payload, a, b)
    # Restarts last: each new client takes A's store over, and no other
    # operation is measured on the cold cache of a just-restarted client.
    for n in range(iterations + 1 if "load" in ops else 0):
        rec.recording = n > 0
        run_load(rec, a)
    check(len(a.group.members()) == size, f"size {size}: the group did not return to {size} members")
    log(f"{layer.name} size {size}: warm-up + {iterations} measured in {time.monotonic() - started:.1f}s")
    rec.emit()


def bench_create(layer: Layer, iterations: int) -> None:
    """`create`: a fresh client creates a group; reported at size 1."""
    rec = Recorder(layer.name, 1, frozenset({"create"}))
    for n in range(iterations + 1):
        rec.recording = n > 0
        store = layer.open("create")
        client = mlskit.Client(store, b"creator")
        group = rec.timed("create", [store], client.create_group)
        check(group.epoch() == 0 and len(group.members()) == 1, "create: not a one-member group at epoch 0")
    rec.emit()


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="MLSKit benchmark harness for the Python layers (tests/bench/README.md).")
    parser.add_argument("--layer", required=True, choices=LAYERS)
    parser.add_argument("--sizes", required=True, help="comma-separated group sizes, each at least 2")
    parser.add_argument("--iterations", required=True, type=int, help="measured iterations per size (after one warm-up)")
    parser.add_argument("--ops", default=",".join(OPS), help="comma-separated ops (default: all)")
    args = parser.parse_args(argv)
    try:
        args.sizes = [int(s) for s in args.sizes.split(",")]
    except ValueError:
        parser.error(f"--sizes: not a list of integers: {args.sizes!r}")
    if any(s < 2 for s in args.sizes):
        parser.error("--sizes: a group has at least 2 members (A and B)")
    if args.iterations < 1:
        parser.error("--iterations: at least 1")
    ops = [op for op in args.ops.split(",") if op]
    unknown = sorted(set(ops) - set(OPS))
    if unknown or not ops:
        parser.error(f"--ops: unknown {unknown}; known: {','.join(OPS)}")
    args.ops = frozenset(ops)
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mlskit-bench-") as folder:
        layer = Layer(args.layer, folder)
        if "create" in args.ops:
            bench_create(layer, args.iterations)
        size_ops = args.ops - {"create"}
        if size_ops:
            for size in args.sizes:
                bench_size(layer, size, args.iterations, size_ops)
    return 0


if __name__ == "__main__":
    sys.exit(main())
