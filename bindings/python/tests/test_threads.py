"""Threads: many threads on many groups and several on one group, over host
storage that is slow and fails at a seeded rate; and storage callbacks that
call back into MLSKit (refused with ReentrantCall instead of deadlocking).

Every test joins its threads with a timeout: a deadlock fails the test.
"""

from __future__ import annotations

import os
import random
import threading
import time
from typing import Callable, Dict, List, Optional, Tuple, TypeVar

import mlskit
import pytest

from conftest import CLIENT_OPTIONS, DictStorage, process_commit

INJECTED = "disk full (injected)"
WATCHDOG_SECONDS = 180.0
OPS = int(os.environ.get("MLSKIT_STRESS_OPS", "30"))
T = TypeVar("T")


class SlowFlakyStorage(DictStorage):
    """Sleeps in every callback and refuses a seeded share of commits."""

    def __init__(self, seed: int, fail_percent: int = 0, max_sleep: float = 0.0005) -> None:
        super().__init__()
        self.rng = random.Random(seed)
        self.rng_lock = threading.Lock()
        self.fail_percent = fail_percent
        self.max_sleep = max_sleep
        self.refused = 0

    def _nap(self) -> bool:
        with self.rng_lock:
            pause = self.rng.random() * self.max_sleep
            fail = self.rng.randrange(100) < self.fail_percent
        time.sleep(pause)
        return fail

    def read(self, key: bytes) -> Optional[bytes]:
        self._nap()
        return super().read(key)

    def commit(self, writes: List[mlskit.StorageWrite]) -> None:
        if self._nap():
            with self.rng_lock:
                self.refused += 1
            raise mlskit.StorageError.Backend(INJECTED)
        super().commit(writes)


def injected(e: BaseException) -> bool:
    return isinstance(e, mlskit.MlsError.StorageBackend) and INJECTED in e.reason


def retry(call: Callable[[], T]) -> T:
    """Repeats ``call`` while it fails with an injected storage error."""
    while True:
        try:
            return call()
        except mlskit.MlsError.StorageBackend as e:
            if not injected(e):
                raise


def run_threads(targets: List[Callable[[], None]]) -> None:
    """Runs the targets on threads; re-raises the first failure; fails on a hang."""
    errors: List[BaseException] = []

    def wrap(target: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                target()
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        return run

    threads = [threading.Thread(target=wrap(t), daemon=True) for t in targets]
    for t in threads:
        t.start()
    deadline = time.monotonic() + WATCHDOG_SECONDS
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "watchdog: threads still running (deadlock)"
    if errors:
        raise errors[0]


class Peer:
    def __init__(self, name: bytes, seed: int) -> None:
        self.name = name
        self.storage = SlowFlakyStorage(seed)
        self.client = mlskit.Client(self.storage, name, CLIENT_OPTIONS)
        # Successful SDK writes; each must be exactly one storage commit.
        self.writes = self.storage.commits
        self.lock = threading.Lock()

    def wrote(self) -> None:
        with self.lock:
            self.writes += 1


def build(peers: List[Peer], gid: bytes, tolerance: int = 5) -> List[mlskit.Group]:
    creator = peers[0]
    g = creator.client.create_group(mlskit.GroupOptions(group_id=gid, join=mlskit.JoinOptions(out_of_order_tolerance=tolerance)))
    kps = [p.client.create_key_packages(1)[0] for p in peers[1:]]
    bundle = g.add_members(kps)
    g.merge_pending_commit()
    assert bundle.welcome is not None
    joined = [
        p.client.join_group(bundle.welcome, None, mlskit.JoinOptions(out_of_order_tolerance=tolerance))
        for p in peers[1:]
    ]
    for p in peers:
        p.writes = p.storage.commits
    return [g] + joined


def deliver(peer: Peer, group: mlskit.Group, message: bytes) -> Optional[bytes]:
    received = retry(lambda: group.process_message(message))
    if isinstance(received, mlskit.ReceivedMessage.APPLICATION):
        peer.wrote()
        return bytes(received.message.plaintext)
    assert isinstance(received, mlskit.ReceivedMessage.COMMIT), received
    staged = received.commit
    retry(staged.merge)
    peer.wrote()
    return None


def assert_reload_equals(peer: Peer, group: mlskit.Group) -> None:
    # Opening takes the store over (one commit); the peer's own client
    # writes nothing after this.
    fresh = mlskit.Client(peer.storage, peer.name, CLIENT_OPTIONS)
    peer.wrote()
    reloaded = fresh.group(group.id())
    assert reloaded.epoch() == group.epoch()
    assert reloaded.members() == group.members()
    assert reloaded.epoch_authenticator() == group.epoch_authenticator()


def test_many_threads_on_many_groups() -> None:
    peers = [Peer(n, 11 + i) for i, n in enumerate([b"alice", b"bob", b"carol"])]
    n_groups = 6
    groups = [build([peers[(g + i) % 3] for i in range(3)], f"py-{g}".encode()) for g in range(n_groups)]
    # groups[g][k] belongs to peers[(g + k) % 3].
    for p in peers:
        p.storage.fail_percent = 7
        p.storage.max_sleep = 0.001
    start = [g[0].epoch() for g in groups]
    commits = [0] * n_groups
    messages = [0] * n_groups

    def worker(g: int) -> Callable[[], None]:
        def run() -> None:
            rng = random.Random(1000 + g)
            hs = groups[g]
            owner = [peers[(g + k) % 3] for k in range(3)]
            for op in range(OPS):
                s = rng.randrange(3)
                if rng.randrange(100) < 80:
                    text = f"group {g} op {op}".encode()
                    try:
                        ct = hs[s].encrypt(text, b"")
                    except mlskit.MlsError.StorageBackend as e:
                        assert injected(e)
                        continue
                    owner[s].wrote()
                    messages[g] += 1
                    for r in range(3):
                        if r != s:
                            assert deliver(owner[r], hs[r], ct) == text
                            if rng.randrange(4) == 0:
                                with pytest.raises(mlskit.MlsError.DuplicateMessage):
                                    hs[r].process_message(ct)
                else:
                    try:
                        bundle = hs[s].self_update()
                    except mlskit.MlsError.StorageBackend as e:
                        assert injected(e)
                        assert hs[s].pending_commit() is None
                        continue
                    owner[s].wrote()
                    retry(hs[s].merge_pending_commit)
                    owner[s].wrote()
                    for r in range(3):
                        if r != s:
                            deliver(owner[r], hs[r], bundle.commit)
                    commits[g] += 1

        return run

    started = time.monotonic()
    run_threads([worker(g) for g in range(n_groups)])
    for p in peers:
        p.storage.fail_percent = 0
    for g, hs in enumerate(groups):
        for k, h in enumerate(hs):
            assert h.epoch() == start[g] + commits[g]
            assert h.epoch_authenticator() == hs[0].epoch_authenticator()
            assert_reload_equals(peers[(g + k) % 3], h)
    for p in peers:
        assert p.storage.commits == p.writes, f"{p.name!r}: a write was lost or duplicated"
    assert sum(p.storage.refused for p in peers) > 0
    print(
        f"python threads/many groups: {n_groups} threads x {OPS} ops: {sum(messages)} messages, "
        f"{sum(commits)} commits, {sum(p.storage.refused for p in peers)} commits refused, "
        f"{time.monotonic() - started:.1f}s"
    )


def test_several_threads_on_one_group() -> None:
    peers = [Peer(n, 21 + i) for i, n in enumerate([b"alice", b"bob", b"carol"])]
    hs = build(peers, b"py one group", tolerance=100)
    for p in peers:
        p.storage.fail_percent = 7
    log: List[Tuple[int, bytes, bytes]] = []
    log_lock = threading.Lock()
    counter = [0]
    refused = [0]

    def sender(t: int) -> Callable[[], None]:
        def run() -> None:
            for _ in range(OPS):
                with log_lock:
                    counter[0] += 1
                    mid = counter[0]
                text = f"message {mid} from thread {t}".encode()
                try:
                    ct = hs[0].encrypt(text, b"")
                except mlskit.MlsError.StorageBackend as e:
                    assert injected(e)
                    with log_lock:
                        refused[0] += 1
                    continue
                peers[0].wrote()
                with log_lock:
                    log.append((mid, text, ct))

        return run

    stop = threading.Event()
    reads = [0]

    def reader(h: mlskit.Group) -> Callable[[], None]:
        def run() -> None:
            while not stop.is_set():
                assert len(h.members()) == 3
                h.export_secret("py-stress", b"", 32)
                h.epoch()
                reads[0] += 1
                time.sleep(0.002)

        return run

    started = time.monotonic()
    readers = [threading.Thread(target=reader(h), daemon=True) for h in hs]
    for r in readers:
        r.start()
    run_threads([sender(t) for t in range(4)])
    received: Dict[Tuple[int, int], int] = {}

    def consumer(r: int) -> Callable[[], None]:
        def run() -> None:
            for mid, text, ct in list(log):
                assert deliver(peers[r], hs[r], ct) == text
                received[(r, mid)] = received.get((r, mid), 0) + 1

        return run

    run_threads([consumer(1), consumer(2)])
    stop.set()
    for r in readers:
        r.join(WATCHDOG_SECONDS)
        assert not r.is_alive()
    for p in peers:
        p.storage.fail_percent = 0
    assert len(log) + refused[0] == 4 * OPS
    assert all(received.get((r, mid)) == 1 for mid, _, _ in log for r in (1, 2))
    assert len(received) == 2 * len(log)
    for p, h in zip(peers, hs):
        assert_reload_equals(p, h)
        assert p.storage.commits == p.writes, f"{p.name!r}: a write was lost or duplicated"
    print(
        f"python threads/one group: 4 senders + 2 receivers + 3 readers, {len(log)} messages "
        f"decrypted exactly once by 2 peers, {refused[0]} refused, {reads[0]} read rounds, "
        f"{time.monotonic() - started:.1f}s"
    )


class ReentrantStorage(DictStorage):
    """Calls back into the SDK from inside ``commit``."""

    def __init__(self) -> None:
        super().__init__()
        self.client: Optional[mlskit.Client] = None
        self.propagate = False
        self.seen: List[BaseException] = []

    def commit(self, writes: List[mlskit.StorageWrite]) -> None:
        if self.client is not None:
            try:
                self.client.group_ids()
            except mlskit.MlsError.ReentrantCall as e:
                self.seen.append(e)
                if self.propagate:
                    raise mlskit.StorageError.Backend(f"callback failed: {type(e).__name__}")
        super().commit(writes)


def test_storage_callback_calling_the_sdk_gets_reentrant_call() -> None:
    done: List[str] = []

    def body() -> None:
        storage = ReentrantStorage()
        alice = mlskit.Client(storage, b"alice", CLIENT_OPTIONS)
        bob = mlskit.Client(DictStorage(), b"bob", CLIENT_OPTIONS)
        ga = alice.create_group(None)
        bundle = ga.add_members([bob.create_key_packages(1)[0]])
        ga.merge_pending_commit()
        assert bundle.welcome is not None
        gb = bob.join_group(bundle.welcome)
        storage.client = alice

        # The callback swallows the refusal: the outer call completes.
        started = time.monotonic()
        ct = ga.encrypt(b"hello", b"")
        assert len(storage.seen) == 1
        assert time.monotonic() - started < 5
        msg = gb.process_message(ct)
        assert isinstance(msg, mlskit.ReceivedMessage.APPLICATION)
        assert msg.message.plaintext == b"hello"

        # The callback reports it: the outer call fails cleanly, nothing written.
        storage.propagate = True
        snap = storage.snapshot()
        epoch = ga.epoch()
        with pytest.raises(mlskit.MlsError.StorageBackend) as exc:
            ga.self_update()
        assert "ReentrantCall" in exc.value.reason
        assert storage.snapshot() == snap
        assert ga.epoch() == epoch and ga.pending_commit() is None

        storage.client = None
        bundle = ga.self_update()
        ga.merge_pending_commit()
        process_commit(gb, bundle.commit)
        assert ga.epoch_authenticator() == gb.epoch_authenticator()
        assert alice.group_ids() == [ga.id()]
        done.append("ok")

    run_threads([body])
    assert done == ["ok"]
