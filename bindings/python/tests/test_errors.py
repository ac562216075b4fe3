"""Errors raised to Python never carry plaintext or key material in str() or
repr(), whatever failed; writes reaching a host store under encrypted_storage
print no secrets either."""

from __future__ import annotations

from typing import Callable, List, Optional

import mlskit
import pytest

from conftest import DictStorage, FailingStorage, process_app

PLAINTEXT = b"PLAINTEXT-Qm4v-never-in-an-error"
PSK = b"PSK-SECRET-Zr8d-key-material-32b"
KEY = b"STORAGE-KEY-Hs3k-32-bytes-long!!"


def forms(secret: bytes) -> List[str]:
    part = secret[:12]
    return [part.decode("latin-1"), part.hex(), part.hex().upper(), repr(part)[2:-1], str(list(part))[1:-1]]


def assert_clean(text: str) -> None:
    for secret in (PLAINTEXT, PSK, KEY):
        for form in forms(secret):
            assert form not in text, f"{form!r} in {text!r}"


class Recording(DictStorage):
    def __init__(self) -> None:
        super().__init__()
        self.seen: List[mlskit.StorageWrite] = []

    def commit(self, writes: List[mlskit.StorageWrite]) -> None:
        self.seen.extend(writes)
        super().commit(writes)


def test_errors_on_every_path_are_clean() -> None:
    errors: List[BaseException] = []

    def expect(fn: Callable[[], object]) -> None:
        try:
            fn()
        except mlskit.MlsError as e:
            errors.append(e)

    store = FailingStorage()
    a = mlskit.Client(store, b"alice")
    b = mlskit.Client(mlskit.MemoryStorage(), b"bob")
    a.store_external_psk(b"psk", PSK)
    ga = a.create_group(mlskit.GroupOptions(group_id=b"g"))
    kp = b.create_key_packages(1)[0]
    bundle = ga.add_members([kp])
    ga.merge_pending_commit()
    assert bundle.welcome is not None
    welcome = bundle.welcome
    gb = b.join_group(welcome)
    ct = ga.encrypt(PLAINTEXT, PLAINTEXT)
    assert process_app(gb, ct).plaintext == PLAINTEXT
    expect(lambda: gb.process_message(ct))  # duplicate
    for i in (len(ct) - 1, len(ct) // 2, 20):
        t = bytearray(ct)
        t[i] ^= 0x40
        expect(lambda: gb.process_message(bytes(t)))
    expect(lambda: gb.process_message(ct[:-5]))
    expect(lambda: mlskit.parse_message(ct[: len(ct) // 2]))
    expect(lambda: b.create_group().process_message(ct))
    expect(lambda: b.join_group(welcome))
    expect(lambda: b.join_group(welcome[:-9]))
    expect(lambda: mlskit.validate_key_package(kp[:-3]))
    gi = ga.export_group_info(True)
    expect(lambda: b.join_by_external_commit(gi[:-7]))
    ga.propose_self_update()
    expect(lambda: ga.encrypt(PLAINTEXT, b""))
    expect(lambda: a.group(PLAINTEXT))
    store.fail_next_commit("disk full")
    expect(lambda: ga.self_update())
    expect(lambda: mlskit.Client(store, b"mallory"))
    store.garbage_for = lambda k: True
    expect(lambda: mlskit.Client(store, b"alice"))
    store.garbage_for = None
    inner = mlskit.MemoryStorage()
    mlskit.Client(mlskit.encrypted_storage(inner, KEY), b"carol")
    expect(lambda: mlskit.encrypted_storage(inner, bytes(32)))
    expect(lambda: mlskit.encrypted_storage(inner, KEY[:31]))
    assert len(errors) >= 15
    assert len({type(e).__name__ for e in errors}) >= 7, {type(e).__name__ for e in errors}
    for e in errors:
        assert_clean(str(e))
        assert_clean(repr(e))


def test_writes_under_encrypted_storage_print_no_secrets() -> None:
    rec = Recording()
    a = mlskit.Client(mlskit.encrypted_storage(rec, KEY), b"alice")
    a.store_external_psk(PLAINTEXT, PSK)
    g = a.create_group(mlskit.GroupOptions(group_id=PLAINTEXT))
    g.encrypt(PLAINTEXT, b"")
    assert len(rec.seen) > 3
    for w in rec.seen:
        assert_clean(str(w))
        assert_clean(repr(w))


def test_application_message_and_storage_write_text_print_no_secrets() -> None:
    alice, bob = mlskit.Client(DictStorage(), b"alice"), mlskit.Client(DictStorage(), b"bob")
    ga = alice.create_group()
    bundle = ga.add_members(bob.create_key_packages(1))
    ga.merge_pending_commit()
    assert bundle.welcome is not None
    gb = bob.join_group(bundle.welcome)
    message = process_app(gb, ga.encrypt(PLAINTEXT))
    assert message.plaintext == PLAINTEXT
    for text in (str(message), repr(message)):
        assert f"<{len(PLAINTEXT)} bytes>" in text
        assert_clean(text)
    write = mlskit.StorageWrite.PUT(key=b"k", value=PSK)
    for text in (str(write), repr(write)):
        assert_clean(text)
