"""MLSKit: Messaging Layer Security (RFC 9420) for Python.

Everything is generated from the Rust core; this file only re-exports it,
adds the two built-in store names, and keeps plaintext and private keys out
of the text forms of the records that hold them. See README.md for a quick start.
"""

from typing import Any

from .mlskit import *  # noqa: F401,F403
from .mlskit import ApplicationMessage, StorageBackend, StorageWrite, memory_storage, sqlite_storage


def _application_message_text(self: ApplicationMessage) -> str:
    return "ApplicationMessage(sender={}, plaintext=<{} bytes>, aad={!r}, epoch={})".format(
        self.sender, len(self.plaintext), self.aad, self.epoch
    )


def _put_text(self: Any) -> str:
    return "StorageWrite.PUT(<{} key bytes>, <{} value bytes>)".format(len(self.key), len(self.value))


# The generated __str__ prints every field; a log line of a message or a
# storage batch must not carry plaintext or private keys.
ApplicationMessage.__str__ = ApplicationMessage.__repr__ = _application_message_text  # type: ignore[method-assign,assignment]
StorageWrite.PUT.__str__ = StorageWrite.PUT.__repr__ = _put_text  # type: ignore[method-assign,assignment]


def MemoryStorage() -> StorageBackend:  # noqa: N802 (reads like a class)
    """A store in process memory; lost when the process ends."""
    return memory_storage()


def SqliteStorage(path: str) -> StorageBackend:  # noqa: N802 (reads like a class)
    """A store in one SQLite file (WAL, one transaction per batch), created if absent."""
    return sqlite_storage(path)
