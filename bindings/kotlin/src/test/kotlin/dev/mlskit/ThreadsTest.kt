package dev.mlskit

import org.junit.jupiter.api.Test
import java.util.concurrent.ConcurrentLinkedQueue
import java.util.concurrent.CyclicBarrier
import java.util.concurrent.Executors
import java.util.concurrent.TimeUnit
import kotlin.test.assertContentEquals
import kotlin.test.assertEquals
import kotlin.test.assertNotNull
import kotlin.test.assertTrue

/**
 * Eight threads at once: four work on four different groups (all kept in the
 * same three MapStorages, so their commits race in one store), four encrypt on
 * one shared group through shared and separate handles. No deadlock, no crash,
 * no lost update: afterwards every member decrypts every message, and a
 * restarted client sees every group at its latest epoch.
 */
class ThreadsTest {
    private val pairRounds = 12
    private val sharedMessagesPerThread = 25

    @Test
    fun eightThreadsDifferentGroupsAndOneSharedGroup() {
        val stores = List(3) { MapStorage() }
        // Let late, reordered messages of one sender through (threads interleave generations).
        val tolerant = JoinOptions(outOfOrderTolerance = 1000u)
        val groupOptions = GroupOptions(join = JoinOptions(outOfOrderTolerance = 1000u))
        val (alice, bob, carol) = stores.zip(listOf("alice", "bob", "carol")).map { (s, n) -> newClient(n, s) }
        try {
            // Four two-member groups alice+bob, and one three-member shared group.
            val pairs = List(4) {
                val ga = alice.createGroup(groupOptions)
                val add = ga.addMembers(bob.createKeyPackages(1u))
                ga.mergePendingCommit()
                ga to bob.joinGroup(assertNotNull(add.welcome), null, tolerant)
            }
            val shared = alice.createGroup(groupOptions)
            val add = shared.addMembers(listOf(bob, carol).map { it.createKeyPackages(1u).single() })
            shared.mergePendingCommit()
            val sharedBob = bob.joinGroup(assertNotNull(add.welcome), null, tolerant)
            val sharedCarol = carol.joinGroup(add.welcome!!, null, tolerant)
            val sharedGid = shared.id()

            val sent = ConcurrentLinkedQueue<Pair<String, ByteArray>>()
            val barrier = CyclicBarrier(8)
            val pool = Executors.newFixedThreadPool(8)
            val tasks = mutableListOf<() -> Unit>()
            pairs.forEachIndexed { i, (ga, gb) ->
                tasks += {
                    barrier.await(30, TimeUnit.SECONDS)
                    repeat(pairRounds) { r ->
                        val m1 = ga.encrypt(b("p$i a$r"), b("aad$i"))
                        val got = processApp(gb, m1)
                        assertBytes("p$i a$r", got.plaintext)
                        assertBytes("aad$i", got.aad)
                        assertBytes("p$i b$r", processApp(ga, gb.encrypt(b("p$i b$r"), byteArrayOf())).plaintext)
                        if (r % 3 == 2) {
                            val (committer, other) = if (r % 2 == 0) ga to gb else gb to ga
                            commitAndDeliver(committer, committer.selfUpdate(), listOf(other))
                        }
                    }
                }
            }
            for (k in 0 until 4) {
                tasks += {
                    // Threads 4 and 5 share one handle; 6 and 7 open their own.
                    val handle = if (k < 2) shared else alice.group(sharedGid)
                    try {
                        barrier.await(30, TimeUnit.SECONDS)
                        repeat(sharedMessagesPerThread) { n ->
                            val text = "s$k m$n"
                            sent += text to handle.encrypt(b(text), b("t$k"))
                        }
                    } finally {
                        if (handle !== shared) handle.close()
                    }
                }
            }
            val futures = tasks.map { task -> pool.submit<Unit> { task() } }
            pool.shutdown()
            // get() rethrows a failed thread's assertion; the timeout catches a deadlock.
            futures.forEach { it.get(240, TimeUnit.SECONDS) }
            assertTrue(pool.awaitTermination(10, TimeUnit.SECONDS))

            // Every message of the shared group decrypts on every other member, exactly once.
            assertEquals(4 * sharedMessagesPerThread, sent.size)
            assertEquals(sent.size, sent.map { it.second.toList() }.toSet().size, "two identical ciphertexts")
            for (g in listOf(sharedBob, sharedCarol)) {
                val texts = sent.map { (text, ct) ->
                    val app = processApp(g, ct)
                    assertBytes(text, app.plaintext)
                    assertMemberSender(0u, "alice", app.sender)
                    text
                }
                assertEquals(sent.map { it.first }.toSet(), texts.toSet())
            }
            assertInSync(listOf(shared, sharedBob, sharedCarol))
            pairs.forEach { (ga, gb) -> assertInSync(listOf(ga, gb)) }

            // No lost update in the shared stores: restarted clients see every group as it is.
            for ((store, name, live) in listOf(
                Triple(stores[0], "alice", pairs.map { it.first } + shared),
                Triple(stores[1], "bob", pairs.map { it.second } + sharedBob),
            )) {
                Client(store, b(name), CLIENT_OPTIONS).use { restarted ->
                    assertEquals(5, restarted.groupIds().size)
                    for (g in live) {
                        restarted.group(g.id()).use { r ->
                            assertEquals(g.epoch(), r.epoch(), "$name: epoch lost")
                            assertContentEquals(g.epochAuthenticator(), r.epochAuthenticator())
                        }
                    }
                }
            }
            (pairs.flatMap { listOf(it.first, it.second) } + listOf(shared, sharedBob, sharedCarol)).forEach { it.close() }
        } finally {
            listOf(alice, bob, carol).forEach { it.close() }
        }
    }
}
