"""encrypted_storage: the inner store only ever sees ciphertext and keyed hashes;
tampering, swapping and a wrong key are StorageCorrupt; the right key reopens."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Tuple

import mlskit
import pytest

from conftest import DictStorage, process_app, process_commit

KEY = bytes(range(32))
ALICE = b"alice-Pq7w-identity"
BOB = b"bob-Mn3z-identity"
GROUP_ID = b"group-id-Vx8k-secret"
PLAIN = [b"plaintext-Jd4r-one", b"plaintext-Tg6s-two", b"plaintext-Wc2e-three"]
NEEDLES = [ALICE, BOB, GROUP_ID, b"Pq7w", b"Mn3z", b"Vx8k", b"Jd4r", b"Tg6s", b"Wc2e", b"mlskit\x00\x01"]


def assert_clean(blob: bytes, what: str) -> None:
    for n in NEEDLES:
        assert n not in blob, f"{what} contains {n!r} in the clear"


def assert_store_clean(raw: DictStorage) -> None:
    snap = raw.snapshot()
    assert len(snap) > 5
    for k, v in snap.items():
        assert_clean(k, "a raw key")
        assert_clean(v, "a raw value")


def enc(inner: mlskit.StorageBackend, key: bytes = KEY) -> mlskit.StorageBackend:
    return mlskit.encrypted_storage(inner, key)


def conversation(
    inner_a: mlskit.StorageBackend, inner_b: mlskit.StorageBackend
) -> Tuple[mlskit.Client, mlskit.Group, mlskit.Client, mlskit.Group]:
    a = mlskit.Client(enc(inner_a), ALICE)
    b = mlskit.Client(enc(inner_b), BOB)
    kp = b.create_key_packages(2)[0]
    ga = a.create_group(mlskit.GroupOptions(group_id=GROUP_ID))
    bundle = ga.add_members([kp])
    ga.merge_pending_commit()
    assert bundle.welcome is not None
    gb = b.join_group(bundle.welcome)
    assert process_app(gb, ga.encrypt(PLAIN[0], b"")).plaintext == PLAIN[0]
    upd = gb.self_update()
    gb.merge_pending_commit()
    process_commit(ga, upd.commit)
    assert process_app(ga, gb.encrypt(PLAIN[1], b"")).plaintext == PLAIN[1]
    return a, ga, b, gb


def test_dict_store_sees_no_plaintext_and_restart_works() -> None:
    raw_a, raw_b = DictStorage(), DictStorage()
    a, ga, b, gb = conversation(raw_a, raw_b)
    epoch = ga.epoch()
    del a, ga
    assert_store_clean(raw_a)
    assert_store_clean(raw_b)
    a2 = mlskit.Client(enc(raw_a), ALICE)
    assert a2.group_ids() == [GROUP_ID]
    ga2 = a2.group(GROUP_ID)
    assert ga2.epoch() == epoch
    assert process_app(ga2, gb.encrypt(PLAIN[2], b"")).plaintext == PLAIN[2]
    assert_store_clean(raw_a)


def test_sqlite_files_hold_no_plaintext(tmp_path: Path) -> None:
    pa, pb = str(tmp_path / "a.db"), str(tmp_path / "b.db")
    a, ga, b, gb = conversation(mlskit.SqliteStorage(pa), mlskit.SqliteStorage(pb))
    epoch = ga.epoch()
    del a, ga

    def files() -> bytes:
        return b"".join(p.read_bytes() for p in tmp_path.iterdir())

    assert_clean(files(), "the SQLite files")
    with pytest.raises(mlskit.MlsError.StorageCorrupt):
        enc(mlskit.SqliteStorage(pa), os.urandom(32))
    a2 = mlskit.Client(enc(mlskit.SqliteStorage(pa)), ALICE)
    ga2 = a2.group(GROUP_ID)
    assert ga2.epoch() == epoch
    assert process_app(ga2, gb.encrypt(PLAIN[2], b"")).plaintext == PLAIN[2]
    assert_clean(files(), "the SQLite files")


@pytest.mark.parametrize("length", [0, 16, 31, 33, 64])
def test_key_must_be_32_bytes(length: int) -> None:
    with pytest.raises(mlskit.MlsError.ValidationFailed):
        enc(mlskit.MemoryStorage(), b"k" * length)


def test_wrong_key_is_storage_corrupt_and_writes_nothing() -> None:
    raw = DictStorage()
    a = mlskit.Client(enc(raw), ALICE)
    a.create_group(mlskit.GroupOptions(group_id=GROUP_ID))
    del a
    before = raw.snapshot()
    flipped = bytes([KEY[0] ^ 1]) + KEY[1:]
    for wrong in [os.urandom(32), flipped, bytes(32)]:
        with pytest.raises(mlskit.MlsError.StorageCorrupt) as exc:
            enc(raw, wrong)
        assert KEY.hex() not in str(exc.value) and wrong.hex() not in str(exc.value)
    assert raw.snapshot() == before
    assert mlskit.Client(enc(raw), ALICE).group_ids() == [GROUP_ID]


def probe(raw: DictStorage, gb: mlskit.Group) -> bool:
    """Reopens alice and uses her group; True if that failed with StorageCorrupt.
    Any failure must leave the raw store unchanged."""
    msg = gb.encrypt(b"probe", b"")
    before = raw.snapshot()
    try:
        a = mlskit.Client(enc(raw), ALICE)
        before = raw.snapshot()  # opening wrote the lease; nothing more may change
        ga = a.group(GROUP_ID)
        ga.members()
        assert process_app(ga, msg).plaintext == b"probe"
        ga.encrypt(b"reply", b"")
        a.key_packages()
    except mlskit.MlsError.StorageCorrupt as e:
        assert raw.snapshot() == before, "a failed call changed the store"
        assert_clean(str(e).encode(), "the error")
        return True
    return False


def test_tampered_and_swapped_values_are_storage_corrupt() -> None:
    raw_a = DictStorage()
    a, ga, b, gb = conversation(raw_a, mlskit.MemoryStorage())
    del a, ga
    good: Dict[bytes, bytes] = raw_a.snapshot()

    def restore(data: Dict[bytes, bytes]) -> None:
        raw_a.data.clear()
        raw_a.data.update(data)

    assert not probe(raw_a, gb)
    restore(good)
    records: List[bytes] = [k for k in good if len(k) == 32]  # not the key check
    noticed = 0
    for i, k in enumerate(records):
        bad = dict(good)
        v = bytearray(bad[k])
        v[min(len(v) - 1, 13 + i)] ^= 0x80
        bad[k] = bytes(v)
        restore(bad)
        noticed += probe(raw_a, gb)
        restore(good)
    assert noticed >= 5, f"{noticed} of {len(records)} tampered records noticed"
    swaps = 0
    for x, y in zip(records, records[1:]):
        bad = dict(good)
        bad[x], bad[y] = good[y], good[x]
        restore(bad)
        swaps += probe(raw_a, gb)
        restore(good)
    assert swaps >= 5
    assert not probe(raw_a, gb)


def test_encrypted_store_over_memory_storage_and_a_host_store() -> None:
    a, ga, b, gb = conversation(mlskit.MemoryStorage(), DictStorage())
    assert [m.identity for m in ga.members()] == [ALICE, BOB]


def test_rekey_moves_the_store_to_the_new_key() -> None:
    raw_a, raw_b = DictStorage(), DictStorage()
    a, ga, b, gb = conversation(raw_a, raw_b)
    new_key = bytes(range(100, 132))
    with pytest.raises(mlskit.MlsError.StorageCorrupt):
        mlskit.rekey_encrypted_storage(raw_a, new_key, KEY)  # not its key
    with pytest.raises(mlskit.MlsError.ValidationFailed):
        mlskit.rekey_encrypted_storage(raw_a, KEY, b"short")
    before = raw_a.snapshot()
    mlskit.rekey_encrypted_storage(raw_a, KEY, new_key)
    changed = [k for k, v in raw_a.snapshot().items() if before.get(k) != v]
    assert len(changed) == 1, "only the key-check record is rewritten"
    # The open client keeps working; a reopen needs the new key.
    assert process_app(gb, ga.encrypt(PLAIN[2], b"")).plaintext == PLAIN[2]
    del a, ga
    with pytest.raises(mlskit.MlsError.StorageCorrupt):
        mlskit.Client(enc(raw_a), ALICE)
    a2 = mlskit.Client(enc(raw_a, new_key), ALICE)
    ga2 = a2.group(GROUP_ID)
    assert process_app(ga2, gb.encrypt(b"after rekey", b"")).plaintext == b"after rekey"


def test_two_stores_under_one_key_share_nothing() -> None:
    check = b"mlskit\x00encrypted\x00key-check"
    one, two = DictStorage(), DictStorage()
    a = mlskit.Client(enc(one), ALICE)
    b = mlskit.Client(enc(two), ALICE)
    a.create_key_packages(1)
    b.create_key_packages(1)
    assert set(one.snapshot()) & set(two.snapshot()) == {check}, "record names differ per store"
    assert one.data[check] != two.data[check], "salts and data keys differ"
    # Values copied from one store into the other do not open there.
    del b
    from_one = [v for k, v in one.snapshot().items() if k != check]
    for i, k in enumerate(k for k in list(two.data) if k != check):
        two.data[k] = from_one[i % len(from_one)]
    with pytest.raises(mlskit.MlsError.StorageCorrupt):
        mlskit.Client(enc(two), ALICE)
