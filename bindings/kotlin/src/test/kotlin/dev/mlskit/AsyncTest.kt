package dev.mlskit

import java.util.concurrent.CountDownLatch
import java.util.concurrent.TimeUnit
import kotlin.test.Test
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertNotNull
import kotlin.test.assertNull
import kotlin.test.assertTrue
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.CoroutineStart
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.delay
import kotlinx.coroutines.launch
import kotlinx.coroutines.runBlocking
import kotlinx.coroutines.withContext

// AsyncClient / AsyncGroup: a group's operations stay in call order, groups
// run in parallel, the caller's thread never blocks, cancellation never leaves
// a half-done operation, and errors keep their types (as test_async.py).

/** A MapStorage whose commits sleep [delayMs] (before applying) while it is set, and tell when one started. */
class SlowStorage(val inner: MapStorage = MapStorage()) : StorageBackend by inner {
    @Volatile var delayMs = 0L
    @Volatile var started = CountDownLatch(1)

    override fun commit(writes: List<StorageWrite>) {
        if (delayMs > 0) {
            started.countDown()
            Thread.sleep(delayMs)
        }
        inner.commit(writes)
    }
}

class AsyncTest {
    private class Duo(val a: AsyncClient, val ga: AsyncGroup, val b: Client, val gb: Group)

    private suspend fun pair(store: StorageBackend = MapStorage()): Duo {
        val a = AsyncClient.open(store, b("alice"), CLIENT_OPTIONS)
        val bob = newClient("bob")
        val ga = a.createGroup()
        val bundle = ga.addMembers(bob.createKeyPackages(1u))
        ga.mergePendingCommit()
        return Duo(a, ga, bob, bob.joinGroup(assertNotNull(bundle.welcome)))
    }

    /** Waits (without blocking the thread) until the host's commit has started. */
    private suspend fun awaitStarted(store: SlowStorage) =
        withContext(Dispatchers.IO) { assertTrue(store.started.await(5, TimeUnit.SECONDS), "no commit started") }

    @Test
    fun oneGroupsOperationsRunInCallOrderAndGroupsInParallel() = runBlocking(Dispatchers.Default) {
        val pairs = List(3) { pair() }
        // Per group, 10 rounds of encrypt, selfUpdate, merge, encrypt, all launched at once.
        val calls = pairs.flatMap { p ->
            (0 until 10).flatMap { n ->
                listOf<suspend () -> Any>(
                    { p.ga.encrypt(b("before $n")) },
                    { p.ga.selfUpdate() },
                    { p.ga.mergePendingCommit() },
                    { p.ga.encrypt(b("after $n")) },
                )
            }
        }
        // UNDISPATCHED: each call reaches its group's lock in list order.
        val results = calls.map { async(start = CoroutineStart.UNDISPATCHED) { it() } }.awaitAll()
        val perPair = results.size / pairs.size
        pairs.forEachIndexed { i, p ->
            val mine = results.subList(i * perPair, (i + 1) * perPair)
            for (n in 0 until 10) {
                val before = mine[4 * n] as ByteArray
                val update = mine[4 * n + 1] as CommitBundle
                val after = mine[4 * n + 3] as ByteArray
                // Out of order, merge would fail (NoPendingCommit) or encrypt would (PendingCommit).
                assertEquals(parseMessage(before).epoch!! + 1u, parseMessage(after).epoch)
                assertBytes("before $n", processApp(p.gb, before).plaintext)
                processCommit(p.gb, update.commit)
                assertBytes("after $n", processApp(p.gb, after).plaintext)
            }
            assertEquals(p.gb.epoch(), p.ga.epoch())
        }
    }

    @Test
    fun aSlowGroupHoldsUpNeitherAnotherGroupNorTheCallersThread() = runBlocking {
        // runBlocking's one thread: a blocking call anywhere would stop the ticker.
        val slowStore = SlowStorage()
        val slow = pair(slowStore)
        val fast = pair()
        slowStore.delayMs = 1000
        var ticks = 0
        val ticker = launch { while (true) { delay(10); ticks++ } }
        val start = System.nanoTime()
        val slowCall = async { slow.ga.encrypt(b("slow")) }
        var fastDoneMs = 0L
        val fastCalls = async {
            for (n in 0 until 5) assertBytes("fast $n", processApp(fast.gb, fast.ga.encrypt(b("fast $n"))).plaintext)
            fastDoneMs = (System.nanoTime() - start) / 1_000_000
        }
        slowCall.await()
        fastCalls.await()
        ticker.cancel()
        assertTrue(fastDoneMs < 800, "the fast group waited for the slow one (${fastDoneMs} ms)")
        assertTrue(ticks >= 30, "the caller's thread was blocked ($ticks ticks in a 1 s slow commit)")
    }

    private fun cancelInTheMiddleOfACommit(selfUpdate: Boolean) = runBlocking(Dispatchers.Default) {
        val store = SlowStorage()
        val p = pair(store)
        val before = store.inner.snapshot()
        store.delayMs = 500
        val job = async { if (selfUpdate) p.ga.selfUpdate() else p.ga.encrypt(b("cancelled")) }
        awaitStarted(store)
        job.cancel()
        assertFailsWith<CancellationException> { job.await() }
        // Cancelled while the host was inside commit: the call ran to its end
        // before the cancellation reached the caller (await returns once the
        // job is complete, and the group's lock was held until then).
        assertTrue(!store.inner.contentEquals(before), "the started call did not run to its end")
        store.delayMs = 0
        assertEquals(selfUpdate, p.ga.pendingCommit() != null)
        if (selfUpdate) {
            // The cancelled caller never saw the commit: it is still there to send.
            val commit = assertNotNull(p.ga.pendingCommitBundle()).commit
            p.ga.mergePendingCommit()
            processCommit(p.gb, commit)
        }

        // A call still waiting for its turn when cancelled never runs.
        store.delayMs = 300
        store.started = CountDownLatch(1)
        val commits = store.inner.commits
        val first = async { p.ga.encrypt(b("first")) }
        awaitStarted(store)
        val waiting = async { p.ga.encrypt(b("waiter")) }
        delay(50)
        waiting.cancel()
        assertFailsWith<CancellationException> { waiting.await() }
        first.await()
        delay(400)
        assertEquals(commits + 1, store.inner.commits, "the cancelled waiter ran")
        store.delayMs = 0

        // Memory and storage agree: a new client on a copy of the data sees what the live one sees.
        val fresh = newClient("alice", store.inner.snapshot())
        val reloaded = fresh.group(p.ga.id())
        assertEquals(p.ga.epoch(), reloaded.epoch())
        assertEquals(p.ga.pendingCommit() == null, reloaded.pendingCommit() == null)
        // The live group still works after the cancellations.
        assertBytes("still here", processApp(p.gb, p.ga.encrypt(b("still here"))).plaintext)
    }

    @Test
    fun cancellingSelfUpdateInTheMiddleOfItsCommitLeavesBeforeOrAfter() = cancelInTheMiddleOfACommit(true)

    @Test
    fun cancellingEncryptInTheMiddleOfItsCommitLeavesBeforeOrAfter() = cancelInTheMiddleOfACommit(false)

    @Test
    fun aCallerCancelledBeforeItsTurnNeverRunsItsCall() = runBlocking(Dispatchers.Default) {
        val store = SlowStorage()
        val p = pair(store)
        val commits = store.inner.commits
        // Cancelled while busy elsewhere, then calling with the group's lock free.
        val job = async {
            coroutineContext[kotlinx.coroutines.Job]!!.cancel()
            p.ga.encrypt(b("never"))
        }
        assertFailsWith<CancellationException> { job.await() }
        assertEquals(commits, store.inner.commits, "a cancelled caller's encrypt ran")
        assertBytes("next", processApp(p.gb, p.ga.encrypt(b("next"))).plaintext)
    }

    @Test
    fun aStagedCommitIsMergedInTheGroupsTurn() = runBlocking(Dispatchers.Default) {
        val p = pair()
        val bobAsync = AsyncClient(p.b)
        val gb = bobAsync.group(p.gb.id())
        val bundle = p.ga.selfUpdate()
        p.ga.mergePendingCommit()
        val staged = assertNotNull(gb.processMessage(bundle.commit).stagedCommit)
        val merge = async(start = CoroutineStart.UNDISPATCHED) { gb.mergeStagedCommit(staged) }
        val epoch = async(start = CoroutineStart.UNDISPATCHED) { gb.epoch() }
        merge.await()
        assertEquals(p.ga.epoch(), epoch.await(), "epoch() ran before the merge it was queued behind")
    }

    @Test
    fun errorsKeepTheirTypes() = runBlocking {
        val p = pair()
        assertFailsWith<MlsException.MalformedInput> { p.ga.processMessage(b("\u0000\u0001 not a message")) }
        assertFailsWith<MlsException.NoPendingCommit> { p.ga.mergePendingCommit() }
        assertFailsWith<MlsException.ValidationFailed> { AsyncClient.open(MapStorage(), ByteArray(0)) }
        assertNull(p.ga.pendingCommit())
    }
}
