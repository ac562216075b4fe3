"""mlskit.aio: a group's awaited operations stay in order, groups run in
parallel, the loop never blocks, cancellation never leaves a half-done
operation, and errors keep their types."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, List, Optional, Tuple

import mlskit
import mlskit.aio
import pytest

from conftest import DictStorage, process_app


class SlowStorage(DictStorage):
    """A DictStorage whose commits sleep `delay` seconds (before applying)
    while `delay` is set, and tell when one has started."""

    def __init__(self) -> None:
        super().__init__()
        self.delay = 0.0
        self.started = threading.Event()

    def commit(self, writes: List[mlskit.StorageWrite]) -> None:
        if self.delay:
            self.started.set()
            time.sleep(self.delay)
        super().commit(writes)


async def pair(store: Optional[DictStorage] = None) -> Tuple[mlskit.aio.AsyncClient, Any, mlskit.Client, mlskit.Group]:
    a = await mlskit.aio.AsyncClient.open(store if store is not None else DictStorage(), b"alice")
    b = mlskit.Client(DictStorage(), b"bob")
    ga = await a.create_group()
    bundle = await ga.add_members(b.create_key_packages(1))
    await ga.merge_pending_commit()
    assert bundle.welcome is not None
    return a, ga, b, b.join_group(bundle.welcome)


def test_one_groups_operations_run_in_call_order_and_groups_in_parallel() -> None:
    async def main() -> None:
        groups = [await pair() for _ in range(3)]
        # Per group, 10 rounds of encrypt, self_update, merge, encrypt, all at once.
        calls = []
        for _, ga, _, _ in groups:
            for n in range(10):
                calls += [
                    ga.encrypt(b"before %d" % n, b""),
                    ga.self_update(),
                    ga.merge_pending_commit(),
                    ga.encrypt(b"after %d" % n, b""),
                ]
        results = await asyncio.gather(*calls)
        per_group = len(results) // len(groups)
        for i, (_, ga, _, gb) in enumerate(groups):
            mine = results[i * per_group:(i + 1) * per_group]
            for n in range(10):
                before, update, _, after = mine[4 * n:4 * n + 4]
                # Out of order, merge would fail (NoPendingCommit) or encrypt
                # would (PendingCommit); in order, the epochs step by one.
                assert mlskit.parse_message(before).epoch + 1 == mlskit.parse_message(after).epoch
                assert process_app(gb, before).plaintext == b"before %d" % n
                process = gb.process_message(update.commit)
                assert isinstance(process, mlskit.ReceivedMessage.COMMIT)
                process.commit.merge()
                assert process_app(gb, after).plaintext == b"after %d" % n
            assert await ga.epoch() == gb.epoch()

    asyncio.run(main())


def test_a_slow_group_does_not_hold_up_another_group_or_the_loop() -> None:
    async def main() -> None:
        slow_store = SlowStorage()
        _, slow, _, _ = await pair(slow_store)
        _, fast, _, gb = await pair()
        slow_store.delay = 1.0
        ticks = 0
        done_fast = 0.0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        async def fast_ops() -> None:
            nonlocal done_fast
            for n in range(5):
                assert process_app(gb, await fast.encrypt(b"fast %d" % n, b"")).plaintext == b"fast %d" % n
            done_fast = time.monotonic()

        start = time.monotonic()
        tick = asyncio.ensure_future(ticker())
        await asyncio.gather(slow.encrypt(b"slow", b""), fast_ops())
        tick.cancel()
        assert done_fast - start < 0.8, "the fast group waited for the slow one"
        assert ticks >= 30, f"the loop was blocked ({ticks} ticks in a 1 s slow commit)"

    asyncio.run(main())


@pytest.mark.parametrize("operation", ["self_update", "encrypt"])
def test_cancelling_in_the_middle_of_a_commit_leaves_before_or_after(operation: str) -> None:
    async def main() -> None:
        store = SlowStorage()
        a, ga, b, gb = await pair(store)
        before = store.snapshot()
        store.delay = 0.5
        if operation == "self_update":
            task = asyncio.ensure_future(ga.self_update())
        else:
            task = asyncio.ensure_future(ga.encrypt(b"cancelled", b""))
        while not store.started.is_set():
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Cancelled while the host was inside commit: the call ran to its end
        # before the cancellation reached the caller.
        after = store.snapshot()
        assert after != before, "the started call did not run to its end"
        store.delay = 0.0
        assert (await ga.pending_commit() is not None) == (operation == "self_update")
        # A call still waiting for its turn when cancelled never runs.
        if operation == "self_update":
            await ga.merge_pending_commit()
        store.delay = 0.3
        store.started.clear()
        commits = store.commits
        first = asyncio.ensure_future(ga.encrypt(b"first", b""))
        while not store.started.is_set():
            await asyncio.sleep(0.01)
        waiting = asyncio.ensure_future(ga.encrypt(b"waiter", b""))
        await asyncio.sleep(0.05)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        await first
        await asyncio.sleep(0.4)
        assert store.commits == commits + 1, "the cancelled waiter ran"
        store.delay = 0.0
        # Memory and storage agree: a new client on the same data sees what the live one sees.
        fresh = mlskit.Client(DictStorage(store.data), b"alice")
        reloaded = fresh.group(await ga.id())
        assert reloaded.epoch() == await ga.epoch()
        assert (reloaded.pending_commit() is None) == ((await ga.pending_commit()) is None)


    asyncio.run(main())


def test_a_staged_commit_is_merged_in_the_groups_turn() -> None:
    async def main() -> None:
        _, ga, b, gb_blocking = await pair()
        gb = mlskit.aio.AsyncGroup(gb_blocking, mlskit.aio.AsyncClient(b))
        bundle = await ga.self_update()
        await ga.merge_pending_commit()
        received = await gb.process_message(bundle.commit)
        assert isinstance(received, mlskit.ReceivedMessage.COMMIT)
        merge = asyncio.ensure_future(gb.merge_staged_commit(received.commit))
        epoch = asyncio.ensure_future(gb.epoch())
        await merge
        assert await epoch == await ga.epoch(), "epoch() ran before the merge it was queued behind"

    asyncio.run(main())


def test_delete_group_waits_for_the_calls_queued_before_it() -> None:
    async def main() -> None:
        store = SlowStorage()
        a, ga, _, _ = await pair(store)
        store.delay = 0.2
        update = asyncio.ensure_future(ga.self_update())
        merge = asyncio.ensure_future(ga.merge_pending_commit())
        await asyncio.sleep(0)
        await a.delete_group(ga.blocking.id())
        # Out of turn, the delete would have run between them: merge would fail with UnknownGroup.
        await update
        await merge
        store.delay = 0.0
        with pytest.raises(mlskit.MlsError.UnknownGroup):
            await ga.epoch()
        assert await a.group_ids() == []

    asyncio.run(main())


def test_keyword_arguments_pass_through() -> None:
    async def main() -> None:
        _, ga, _, _ = await pair()
        info = await ga.export_group_info(with_ratchet_tree=False)
        assert mlskit.parse_message(info).kind == mlskit.MessageKind.GROUP_INFO

    asyncio.run(main())


def test_a_cancelled_open_runs_to_its_end_before_the_caller_returns() -> None:
    async def main() -> None:
        store = SlowStorage()
        store.delay = 0.3
        opening = asyncio.ensure_future(mlskit.aio.AsyncClient.open(store, b"alice"))
        while not store.started.is_set():
            await asyncio.sleep(0.01)
        commits = store.commits
        opening.cancel()
        with pytest.raises(asyncio.CancelledError):
            await opening
        # The open's batch (identity, keys, lease) was applied before the caller got control back.
        assert store.commits == commits + 1

    asyncio.run(main())


def test_errors_keep_their_types() -> None:
    async def main() -> None:
        _, ga, _, _ = await pair()
        with pytest.raises(mlskit.MlsError.MalformedInput):
            await ga.process_message(b"\x00\x01 not a message")
        with pytest.raises(mlskit.MlsError.NoPendingCommit):
            await ga.merge_pending_commit()
        with pytest.raises(mlskit.MlsError.ValidationFailed):
            await mlskit.aio.AsyncClient.open(DictStorage(), b"")

    asyncio.run(main())
