"""Shared fixtures for the MLSKit Python tests.

Puts ``../src`` on ``sys.path`` so ``import mlskit`` finds the generated
bindings, and provides host storage backends plus helpers to build a
three-member group (alice, bob, carol).
"""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Dict, Iterator, List, Optional, Sequence

SRC = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
if SRC not in sys.path:
    sys.path.insert(0, SRC)

import mlskit  # noqa: E402
import pytest  # noqa: E402


def _shared_constants() -> Dict[str, int]:
    """The values every language's tests share (tests/common/constants.txt)."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "tests", "common", "constants.txt")
    values: Dict[str, int] = {}
    with open(path) as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                name, value = line.split("=")
                values[name.strip()] = int(value.strip(), 16)
    return values


_SHARED = _shared_constants()
CUSTOM_PROPOSAL_TYPE = _SHARED["CUSTOM_PROPOSAL_TYPE"]
CUSTOM_EXTENSION_TYPE = _SHARED["CUSTOM_EXTENSION_TYPE"]
CLIENT_OPTIONS = mlskit.ClientOptions(
    custom_extension_types=[CUSTOM_EXTENSION_TYPE],
    custom_proposal_types=[CUSTOM_PROPOSAL_TYPE],
)


if TYPE_CHECKING:
    _StorageBase = object
else:
    _StorageBase = mlskit.StorageBackend


class DictStorage(_StorageBase):
    """A host backend over a dict; ``commit`` is atomic (all writes or none)."""

    def __init__(self, data: Optional[Dict[bytes, bytes]] = None) -> None:
        self.data: Dict[bytes, bytes] = {} if data is None else data
        self.commits = 0
        self.reads = 0
        self._lock = threading.Lock()

    def read(self, key: bytes) -> Optional[bytes]:
        with self._lock:
            self.reads += 1
            return self.data.get(bytes(key))

    def commit(self, writes: List[mlskit.StorageWrite]) -> None:
        with self._lock:
            staged = dict(self.data)
            for w in writes:
                if isinstance(w, mlskit.StorageWrite.PUT):
                    staged[bytes(w.key)] = bytes(w.value)
                elif isinstance(w, mlskit.StorageWrite.DELETE):
                    staged.pop(bytes(w.key), None)
                else:  # pragma: no cover - would be an SDK bug
                    raise mlskit.StorageError.Backend(f"unknown write {w!r}")
            self.data.clear()
            self.data.update(staged)
            self.commits += 1

    def snapshot(self) -> Dict[bytes, bytes]:
        with self._lock:
            return dict(self.data)


class FailingStorage(DictStorage):
    """A DictStorage that can be told to fail the next commit, or to return
    garbage for reads of some keys."""

    def __init__(self, data: Optional[Dict[bytes, bytes]] = None) -> None:
        super().__init__(data)
        self.fail_reason: Optional[str] = None
        self.raise_plain: bool = False
        self.failures = 0
        self.garbage_for: Optional[Callable[[bytes], bool]] = None

    def fail_next_commit(self, reason: str, plain_exception: bool = False) -> None:
        self.fail_reason = reason
        self.raise_plain = plain_exception

    def read(self, key: bytes) -> Optional[bytes]:
        value = super().read(key)
        if value is not None and self.garbage_for is not None and self.garbage_for(bytes(key)):
            return b"\xff\xfe garbage \x00\x01"
        return value

    def commit(self, writes: List[mlskit.StorageWrite]) -> None:
        if self.fail_reason is not None:
            reason = self.fail_reason
            self.fail_reason = None
            self.failures += 1
            if self.raise_plain:
                raise RuntimeError(reason)
            raise mlskit.StorageError.Backend(reason)
        super().commit(writes)


@dataclass
class Trio:
    """Three clients in one group at the same epoch."""

    storages: List[Any]  # DictStorage / FailingStorage / built-in stores
    clients: List[mlskit.Client]
    groups: List[mlskit.Group]
    extra: Dict[str, bytes] = field(default_factory=dict)

    @property
    def alice(self) -> mlskit.Group:
        return self.groups[0]

    @property
    def bob(self) -> mlskit.Group:
        return self.groups[1]

    @property
    def carol(self) -> mlskit.Group:
        return self.groups[2]


def process_commit(group: mlskit.Group, message: bytes) -> mlskit.CommitInfo:
    """Processes an incoming commit and merges it; returns what it did."""
    received = group.process_message(message)
    assert isinstance(received, mlskit.ReceivedMessage.COMMIT), received
    info: mlskit.CommitInfo = received.commit.info()
    received.commit.merge()
    return info


def process_proposal(group: mlskit.Group, message: bytes) -> mlskit.ProposalInfo:
    received = group.process_message(message)
    assert isinstance(received, mlskit.ReceivedMessage.PROPOSAL), received
    proposal: mlskit.ProposalInfo = received.proposal
    return proposal


def process_app(group: mlskit.Group, message: bytes) -> mlskit.ApplicationMessage:
    received = group.process_message(message)
    assert isinstance(received, mlskit.ReceivedMessage.APPLICATION), received
    app: mlskit.ApplicationMessage = received.message
    return app


def commit_and_deliver(sender: mlskit.Group, bundle: mlskit.CommitBundle, receivers: Sequence[mlskit.Group]) -> None:
    """Merges the sender's pending commit and delivers it to the receivers."""
    sender.merge_pending_commit()
    for r in receivers:
        process_commit(r, bundle.commit)


def assert_in_sync(groups: Sequence[mlskit.Group]) -> None:
    """All groups share epoch, authenticator, exporter and member list, and can talk."""
    epochs = {g.epoch() for g in groups}
    assert len(epochs) == 1, epochs
    auths = {bytes(g.epoch_authenticator()) for g in groups}
    assert len(auths) == 1
    secrets = {bytes(g.export_secret("sync", b"ctx", 32)) for g in groups}
    assert len(secrets) == 1
    rosters = {tuple((m.index, bytes(m.identity)) for m in g.members()) for g in groups}
    assert len(rosters) == 1
    for i, g in enumerate(groups):
        msg = g.encrypt(f"ping from {i}".encode(), b"")
        for j, other in enumerate(groups):
            if i != j:
                assert process_app(other, msg).plaintext == f"ping from {i}".encode()


def make_trio(
    storage_factory: Callable[[], Any] = DictStorage,
    group_options: Optional[mlskit.GroupOptions] = None,
    client_options: Optional[mlskit.ClientOptions] = CLIENT_OPTIONS,
) -> Trio:
    storages = [storage_factory() for _ in range(3)]
    clients = [
        mlskit.Client(s, name, client_options)
        for s, name in zip(storages, [b"alice", b"bob", b"carol"])
    ]
    cs = group_options.ciphersuite if group_options is not None else None
    kps = [c.create_key_packages(1, mlskit.KeyPackageOptions(ciphersuite=cs))[0] for c in clients[1:]]
    ga = clients[0].create_group(group_options)
    bundle = ga.add_members(kps)
    ga.merge_pending_commit()
    assert bundle.welcome is not None
    tree = None if (group_options is None or group_options.join.use_ratchet_tree_extension) else ga.export_ratchet_tree()
    gb = clients[1].join_group(bundle.welcome, tree)
    gc = clients[2].join_group(bundle.welcome, tree)
    return Trio(storages, clients, [ga, gb, gc])


@pytest.fixture
def trio() -> Iterator[Trio]:
    yield make_trio()


@pytest.fixture
def failing_trio() -> Iterator[Trio]:
    yield make_trio(FailingStorage)
