"""MLSKit: Messaging Layer Security (RFC 9420) for Python.

Everything is generated from the Rust core; this file only re-exports it and
adds the two built-in store names. See README.md for a quick start.
"""

from .mlskit import *  # noqa: F401,F403
from .mlskit import StorageBackend, memory_storage, sqlite_storage


def MemoryStorage() -> StorageBackend:  # noqa: N802 (reads like a class)
    """A store in process memory; lost when the process ends."""
    return memory_storage()


def SqliteStorage(path: str) -> StorageBackend:  # noqa: N802 (reads like a class)
    """A store in one SQLite file (one transaction per batch, deleted values overwritten), created if absent."""
    return sqlite_storage(path)
