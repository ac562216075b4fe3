"""Thin wrapper over a blocking export vs UniFFI's async export, in asyncio.

Prints per-call cost, throughput of many concurrent 10 ms operations, what a
cancelled caller leaves behind, and whether the event loop stayed free.
Run by run.sh, which builds the probe library and generates its bindings.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import time
from typing import Any, Awaitable, Callable

import async_probe as p  # type: ignore[import-not-found]

CALLS = 20_000
CONCURRENT = 200
MILLIS = 10


async def wrapper_work(pool: concurrent.futures.Executor, millis: int) -> int:
    """The design MLSKit ships: the blocking export run in a thread pool."""
    loop = asyncio.get_running_loop()
    return int(await loop.run_in_executor(pool, p.work, millis))


async def wrapper_to_end(pool: concurrent.futures.Executor, millis: int) -> int:
    """As mlskit.aio: a cancelled caller waits for the started call to end."""
    loop = asyncio.get_running_loop()
    future = loop.run_in_executor(pool, p.work, millis)
    try:
        return int(await asyncio.shield(future))
    except asyncio.CancelledError:
        while not future.done():
            try:
                await asyncio.wait({future})
            except asyncio.CancelledError:
                continue
        raise


async def per_call_us(call: Callable[[], Awaitable[Any]]) -> float:
    for _ in range(200):
        await call()
    start = time.perf_counter()
    for _ in range(CALLS):
        await call()
    return (time.perf_counter() - start) / CALLS * 1e6


async def concurrent_ms(call: Callable[[], Awaitable[Any]]) -> float:
    start = time.perf_counter()
    await asyncio.gather(*(call() for _ in range(CONCURRENT)))
    return (time.perf_counter() - start) * 1e3


async def cancelled(call: Callable[[], Awaitable[Any]]) -> str:
    """Cancels a 200 ms operation after 50 ms; reports when the caller got
    control back and whether the operation still ran to its end."""
    started, finished = p.counters()
    task = asyncio.ensure_future(call())
    await asyncio.sleep(0.05)
    t0 = time.perf_counter()
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    back_ms = (time.perf_counter() - t0) * 1e3
    await asyncio.sleep(0.3)
    s, f = p.counters()
    return f"caller back after {back_ms:.0f} ms; operation started {s - started}, finished {f - finished}"


async def main() -> None:
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=CONCURRENT)
    rows = [
        ("blocking call, no asyncio", None),
        ("wrapper: run_in_executor(work)", lambda: wrapper_work(pool, 0)),
        ("UniFFI async export, ready at once", lambda: p.ready_async(0)),
        ("UniFFI async export, Rust thread per call", lambda: p.work_async(0)),
    ]
    print(f"per call, {CALLS} sequential calls of a 0 ms operation:")
    start = time.perf_counter()
    for _ in range(CALLS):
        p.work(0)
    print(f"  {rows[0][0]:<44} {(time.perf_counter() - start) / CALLS * 1e6:8.1f} us")
    for name, call in rows[1:]:
        assert call is not None
        print(f"  {name:<44} {await per_call_us(call):8.1f} us")
    print(f"{CONCURRENT} concurrent {MILLIS} ms operations (ideal {MILLIS} ms):")
    print(f"  {'wrapper, pool of ' + str(CONCURRENT):<44} {await concurrent_ms(lambda: wrapper_work(pool, MILLIS)):8.1f} ms")
    default_pool = concurrent.futures.ThreadPoolExecutor()
    print(f"  {'wrapper, default pool (' + str(default_pool._max_workers) + ' threads)':<44} {await concurrent_ms(lambda: wrapper_work(default_pool, MILLIS)):8.1f} ms")
    print(f"  {'UniFFI async export, Rust thread per call':<44} {await concurrent_ms(lambda: p.work_async(MILLIS)):8.1f} ms")
    print(f"  {'UniFFI async export, work inside poll':<44} {await concurrent_ms(lambda: p.work_inline(MILLIS)):8.1f} ms")
    print("cancelling the caller of a 200 ms operation after 50 ms:")
    print(f"  {'wrapper, plain run_in_executor':<44} {await cancelled(lambda: wrapper_work(pool, 200))}")
    print(f"  {'wrapper that waits for the end (mlskit.aio)':<44} {await cancelled(lambda: wrapper_to_end(pool, 200))}")
    print(f"  {'UniFFI async export, Rust thread per call':<44} {await cancelled(lambda: p.work_async(200))}")
    sys.stdout.flush()


asyncio.run(main())
