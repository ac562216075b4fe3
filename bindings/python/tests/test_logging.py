"""MLSKit's log lines reach Python's `logging` (logger `mlskit`), at the
chosen level, and none of them holds a secret the scenario used."""

from __future__ import annotations

import logging
from typing import List

import mlskit
import pytest

from conftest import process_app, process_commit, process_proposal

PLAINTEXT = b"py-log-scan plaintext Hv4k"
PSK = bytes([0xB5]) * 32
KEY = bytes([0x2D]) * 32


def forms(secret: bytes) -> List[str]:
    head = secret[:12]
    return [
        secret.decode("latin-1"),
        head.hex(),
        ", ".join(str(b) for b in head),
        ", ".join(f"{b:x}" for b in head),
    ]


def test_lines_reach_logging_and_hold_no_secret(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(1, logger="mlskit")
    mlskit.log_to_python(mlskit.LogLevel.TRACE)
    try:
        a = mlskit.Client(mlskit.encrypted_storage(mlskit.MemoryStorage(), KEY), b"alice")
        b = mlskit.Client(mlskit.MemoryStorage(), b"bob")
        ga = a.create_group()
        bundle = ga.add_members(b.create_key_packages(1))
        ga.merge_pending_commit()
        assert bundle.welcome is not None
        gb = b.join_group(bundle.welcome)
        for c in (a, b):
            c.store_external_psk(b"psk", PSK)
        p = ga.propose_external_psk(b"psk", mlskit.ProposalMode.BY_REFERENCE)
        process_proposal(gb, p.message)
        commit = ga.commit_pending_proposals()
        ga.merge_pending_commit()
        process_commit(gb, commit.commit)
        sent = ga.encrypt(PLAINTEXT, b"")
        assert process_app(gb, sent).plaintext == PLAINTEXT
        with pytest.raises(mlskit.MlsError.DuplicateMessage):
            gb.process_message(sent)
        exported = [ga.export_secret("scan", b"", 32), gb.export_secret("scan", b"ctx", 32)]
    finally:
        mlskit.log_to_python()

    records = [r for r in caplog.records if r.name.startswith("mlskit.")]
    assert len(records) > 20
    assert any(r.name.startswith("mlskit.openmls") for r in records)
    assert any(
        r.name.startswith("mlskit.mlskit") and r.levelno == logging.DEBUG and "already processed" in r.getMessage()
        for r in records
    ), "MLSKit says why the replay failed"
    for r in records:
        line = r.name + " " + r.getMessage()
        for secret in [PLAINTEXT, PSK, KEY, *exported]:
            for form in forms(secret):
                assert form not in line, f"a log line holds a secret ({form}): {line}"


def test_the_default_level_follows_logging(caplog: pytest.LogCaptureFixture) -> None:
    logging.getLogger("mlskit").setLevel(logging.WARNING)
    mlskit.log_to_python()
    try:
        b = mlskit.Client(mlskit.MemoryStorage(), b"bob")
        g = b.create_group()
        with pytest.raises(mlskit.MlsError):
            g.process_message(b"\x00\x01garbage")
        assert not [r for r in caplog.records if r.name.startswith("mlskit.") and r.levelno < logging.WARNING]
    finally:
        logging.getLogger("mlskit").setLevel(logging.NOTSET)
        mlskit.log_to_python()
