"""MLSKit: Messaging Layer Security (RFC 9420) for Python.

Everything is generated from the Rust core; this file only re-exports it,
adds the two built-in store names and sends MLSKit's log lines to Python's
`logging` (logger `mlskit`). See README.md for a quick start.
"""

import logging as _logging
from typing import Dict, Optional

from .mlskit import *  # noqa: F401,F403
from .mlskit import LogLevel, Logger, StorageBackend, memory_storage, set_logger, sqlite_storage

#: Python's level for each MLSKit level (TRACE has no name in `logging`: 5).
_PY_LEVELS: Dict[LogLevel, int] = {
    LogLevel.ERROR: _logging.ERROR,
    LogLevel.WARN: _logging.WARNING,
    LogLevel.INFO: _logging.INFO,
    LogLevel.DEBUG: _logging.DEBUG,
    LogLevel.TRACE: 5,
}


class PythonLogger(Logger):
    """Forwards MLSKit's lines to `logging`: target `openmls::group::x` goes
    to logger `mlskit.openmls.group.x` (children of `mlskit`)."""

    def log(self, level: LogLevel, target: str, message: str) -> None:
        name = "mlskit." + target.replace("::", ".")
        _logging.getLogger(name).log(_PY_LEVELS[level], "%s", message)


def _level_of(py_level: int) -> LogLevel:
    for level in (LogLevel.TRACE, LogLevel.DEBUG, LogLevel.INFO, LogLevel.WARN):
        if py_level <= _PY_LEVELS[level]:
            return level
    return LogLevel.ERROR


def log_to_python(level: Optional[LogLevel] = None) -> None:
    """Sends MLSKit's log lines to `logging` (done at import). Lines below
    `level` are not even formatted; by default the level is what the `mlskit`
    logger lets through now, so call this again after configuring `logging`,
    or call `set_log_level`."""
    if level is None:
        level = _level_of(_logging.getLogger("mlskit").getEffectiveLevel())
    set_logger(PythonLogger(), level)


log_to_python()


def MemoryStorage() -> StorageBackend:  # noqa: N802 (reads like a class)
    """A store in process memory; lost when the process ends."""
    return memory_storage()


def SqliteStorage(path: str) -> StorageBackend:  # noqa: N802 (reads like a class)
    """A store in one SQLite file (one transaction per batch, deleted values overwritten), created if absent."""
    return sqlite_storage(path)
