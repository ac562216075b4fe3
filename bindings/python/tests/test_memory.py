"""Memory stays flat while thousands of SDK objects are created and dropped.

Each round creates clients, a group, staged commits (merged and discarded),
proposals, application messages and errors, then drops everything. After a
warm-up (allocator arenas, caches, lazily built tables), the resident set size
must not keep growing.

Bound and why: after warm-up the measured growth is 0 KiB, both over the
default 150 rounds and over 400 (MLSKIT_MEMORY_ROUNDS=400): freed memory is
reused by the allocator. Calibration (keeping objects alive instead of dropping
them): holding on to the two clients of each round (with their stores) costs
about 1.6 KiB of RSS per round; a round's messages, Welcome, GroupInfo and
staged-commit writes are several KiB more. The bound of 512 KiB over 150 rounds
therefore fails for any leak of >= 3.5 KiB per round (one group state, one
Welcome plus a few messages, a staged commit's writes); leaking only the client
handles needs the 400-round setting to cross it. Byte-exact leak checking of
the Rust side is tests/leaks/run.sh (valgrind).
"""

from __future__ import annotations

import gc
import os
import resource
from typing import List

import mlskit

from conftest import DictStorage, process_app

WARMUP = 20
ROUNDS = int(os.environ.get("MLSKIT_MEMORY_ROUNDS", "150"))
BOUND_BYTES = 512 * 1024


def rss_bytes() -> int:
    """Current resident set size, from /proc/self/statm (Linux) or ru_maxrss."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # pragma: no cover - not Linux
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def one_round(i: int) -> int:
    """Creates and drops one of everything; returns how many objects it made."""
    made = 0
    store_a = mlskit.MemoryStorage() if i % 2 else DictStorage()
    if i % 3 == 0:
        store_a = mlskit.encrypted_storage(store_a, bytes([i % 256]) * 32)
    a = mlskit.Client(store_a, b"alice")
    b = mlskit.Client(mlskit.MemoryStorage(), b"bob")
    kps: List[bytes] = b.create_key_packages(2)
    ga = a.create_group()
    bundle = ga.add_members([kps[0]])
    ga.merge_pending_commit()
    assert bundle.welcome is not None
    gb = b.join_group(bundle.welcome)
    made += 6
    for n in range(3):
        msg = ga.encrypt(b"x" * 200, b"")
        assert process_app(gb, msg).plaintext == b"x" * 200
        made += 2
    # A staged commit discarded, then merged.
    upd = gb.self_update()
    gb.merge_pending_commit()
    received = ga.process_message(upd.commit)
    assert isinstance(received, mlskit.ReceivedMessage.COMMIT)
    received.commit.discard()
    received = ga.process_message(upd.commit)
    assert isinstance(received, mlskit.ReceivedMessage.COMMIT)
    received.commit.info()
    received.commit.merge()
    made += 4
    prop = ga.propose_self_update()
    gb.process_message(prop.message)
    ga.clear_pending_proposals()
    gb.clear_pending_proposals()
    made += 2
    # Errors of several kinds (exception objects cross the FFI too).
    for bad in (b"", b"\x00\x01\x00\x02", bytes(msg[:-3])):
        try:
            gb.process_message(bad)
        except mlskit.MlsError:
            made += 1
    try:
        mlskit.parse_message(b"\xff" * 10)
    except mlskit.MlsError.MalformedInput:
        made += 1
    mlskit.parse_message(msg)
    mlskit.validate_key_package(kps[1])
    ga.members()
    ga.export_group_info(True)
    return made


def test_memory_is_flat_over_thousands_of_objects() -> None:
    for i in range(WARMUP):
        one_round(i)
    gc.collect()
    start = rss_bytes()
    made = 0
    samples = []
    for i in range(ROUNDS):
        made += one_round(WARMUP + i)
        if i % 50 == 49:
            gc.collect()
            samples.append(rss_bytes() - start)
    gc.collect()
    growth = rss_bytes() - start
    assert made >= 20 * ROUNDS, made
    print(f"memory: {made} objects in {ROUNDS} rounds, RSS growth {growth / 1024:.0f} KiB, samples {samples}")
    assert growth < BOUND_BYTES, f"RSS grew by {growth} bytes over {ROUNDS} rounds: {samples}"
