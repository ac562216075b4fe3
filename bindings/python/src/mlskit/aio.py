"""MLSKit for asyncio: the same clients and groups, awaited.

Every call runs the blocking MLSKit call in a thread (the loop's default
executor, or the one you pass), so the event loop never waits for storage or
crypto::

    client = await mlskit.aio.AsyncClient.open(mlskit.SqliteStorage(path), b"alice")
    group = await client.create_group()
    ciphertext = await group.encrypt(b"hello", b"")

Guarantees:
- One group's operations run one after the other, in the order they were
  awaited (a FIFO lock per group); different groups run in parallel.
- Cancelling a caller never leaves a half-done operation: a call that has
  started runs to its end (its batch is committed or not, as always) and the
  group stays locked until it has; the cancelled caller simply does not get
  the result. A call still waiting for its turn is dropped without running.
- Errors are the same `MlsError` subclasses as the blocking API's.

`AsyncClient` and `AsyncGroup` expose every method of `Client` and `Group`
under the same name, as coroutines; methods that return a `Group` return an
`AsyncGroup`. `AsyncGroup.merge_staged_commit(commit)` merges a commit that
`process_message` returned in the group's turn. The blocking object is at
`.blocking`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
from typing import Any, Awaitable, Callable, Dict, Optional

from . import mlskit as _m

__all__ = ["AsyncClient", "AsyncGroup"]


async def _run_to_end(executor: Optional[concurrent.futures.Executor], fn: Callable[..., Any], *args: Any) -> Any:
    """Runs `fn` in a thread; if the caller is cancelled meanwhile, waits
    for the call to end before letting the cancellation through."""
    loop = asyncio.get_running_loop()
    future = loop.run_in_executor(executor, functools.partial(fn, *args))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        while not future.done():
            try:
                await asyncio.wait({future})
            except asyncio.CancelledError:
                continue
        raise


def _awaitable(blocking: Any, name: str, run: Callable[[Callable[[], Any]], Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """`blocking.name` as a coroutine function that calls it through `run`."""
    method = getattr(blocking, name)
    if not callable(method):
        raise AttributeError(name)

    @functools.wraps(method)
    async def call(*args: Any, **kwargs: Any) -> Any:
        return await run(functools.partial(method, *args, **kwargs))

    return call


class AsyncGroup:
    """A `Group` whose methods are coroutines, run in call order."""

    def __init__(self, group: _m.Group, client: "AsyncClient") -> None:
        self.blocking = group
        self._client = client
        self._lock = client._lock_of(bytes(group.id()))

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        return _awaitable(self.blocking, name, self._in_turn)

    async def merge_staged_commit(self, commit: _m.StagedCommit) -> None:
        """`commit.merge()` of a commit `process_message` returned, in this group's turn."""
        await self._in_turn(commit.merge)

    async def _in_turn(self, call: Callable[[], Any]) -> Any:
        async with self._lock:
            result = await _run_to_end(self._client.executor, call)
        return self._client._wrap(result)


class AsyncClient:
    """A `Client` whose methods are coroutines (see the module docs)."""

    def __init__(self, client: _m.Client, executor: Optional[concurrent.futures.Executor] = None) -> None:
        self.blocking = client
        self.executor = executor
        self._locks: Dict[bytes, asyncio.Lock] = {}

    @classmethod
    async def open(
        cls,
        storage: _m.StorageBackend,
        identity: bytes,
        options: Optional[_m.ClientOptions] = None,
        executor: Optional[concurrent.futures.Executor] = None,
    ) -> "AsyncClient":
        """Opens the client (`Client(storage, identity, options)`) in a thread;
        a cancelled caller waits for the open to end (it takes the store over)."""
        client = await _run_to_end(executor, _m.Client, storage, identity, options)
        return cls(client, executor)

    def _lock_of(self, group_id: bytes) -> asyncio.Lock:
        lock = self._locks.get(group_id)
        if lock is None:
            lock = self._locks[group_id] = asyncio.Lock()
        return lock

    def _wrap(self, result: Any) -> Any:
        if isinstance(result, _m.Group):
            return AsyncGroup(result, self)
        if isinstance(result, _m.ExternalJoin):
            return _m.ExternalJoin(group=AsyncGroup(result.group, self), commit=result.commit)  # type: ignore[arg-type]
        return result

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        return _awaitable(self.blocking, name, self._now)

    async def delete_group(self, group_id: bytes) -> None:
        """`Client.delete_group`, in the group's turn (after the calls queued before it)."""
        async with self._lock_of(bytes(group_id)):
            await _run_to_end(self.executor, self.blocking.delete_group, group_id)

    async def _now(self, call: Callable[[], Any]) -> Any:
        return self._wrap(await _run_to_end(self.executor, call))
