package dev.mlskit

import org.junit.jupiter.api.Test
import org.junit.jupiter.api.io.TempDir
import java.nio.file.Path
import kotlin.test.assertContentEquals
import kotlin.test.assertEquals
import kotlin.test.assertFailsWith
import kotlin.test.assertFalse
import kotlin.test.assertNotNull
import kotlin.test.assertNull
import kotlin.test.assertTrue

/** Host and built-in storage: atomic batches, restarts, failing backends. */
class StorageTest {

    @Test
    fun mapStorageCommitIsAtomicAndCopyOnWrite() {
        val s = MapStorage()
        assertNull(s.read(b("k")))
        s.commit(listOf(StorageWrite.Put(b("k"), b("v1")), StorageWrite.Put(b("j"), b("x"))))
        assertBytes("v1", s.read(b("k")))
        val snap = s.snapshot()
        s.commit(listOf(StorageWrite.Put(b("k"), b("v2")), StorageWrite.Delete(b("j")), StorageWrite.Delete(b("absent"))))
        assertBytes("v2", s.read(b("k")))
        assertNull(s.read(b("j")))
        assertEquals(1, s.size)
        assertEquals(2L, s.commits)
        // The snapshot is unaffected by later commits.
        assertBytes("v1", snap.read(b("k")))
        assertBytes("x", snap.read(b("j")))
        assertFalse(s.contentEquals(snap))
        assertTrue(snap.contentEquals(snap.snapshot()))
        // Later writes in a batch win.
        s.commit(listOf(StorageWrite.Put(b("z"), b("1")), StorageWrite.Delete(b("z")), StorageWrite.Put(b("z"), b("2"))))
        assertBytes("2", s.read(b("z")))
    }

    @Test
    fun restartFromSharedMapStorage() {
        val aliceStore = MapStorage()
        makeTrio(storageFactory = { MapStorage() }).use { t0 ->
            // Alice's storage is a MapStorage of her own, shared by two Client instances in turn.
            newClient("alice", aliceStore).use { alice ->
                val kp = t0.clients[1].createKeyPackages(1u).single()
                val gid = alice.createGroup().use { g ->
                    val add = g.addMembers(listOf(kp))
                    g.mergePendingCommit()
                    t0.clients[1].joinGroup(assertNotNull(add.welcome)).use { gb ->
                        assertInSync(listOf(g, gb))
                        // A pending commit survives the restart too.
                        g.selfUpdate()
                    }
                    g.id()
                }
                checkRestart(aliceStore, gid, t0.clients[1])
            }
        }
    }

    /** Reopens alice on [store]: same identity, same group, pending commit kept, still talks to bob. */
    private fun checkRestart(store: StorageBackend, gid: ByteArray, bobClient: Client) {
        Client(store, b("alice"), CLIENT_OPTIONS).use { alice2 ->
            assertBytes("alice", alice2.identity())
            assertEquals(listOf(gid.toList()), alice2.groupIds().map { it.toList() })
            alice2.group(gid).use { g ->
                bobClient.group(gid).use { gb ->
                    assertEquals(gb.epoch(), g.epoch())
                    assertContentEquals(gb.epochAuthenticator(), g.epochAuthenticator())
                    val pending = assertNotNull(g.pendingCommit(), "pending commit lost on restart")
                    assertEquals(g.epoch() + 1uL, pending.newEpoch)
                    g.clearPendingCommit()
                    val m = gb.encrypt(b("after restart"), b("aad"))
                    val app = processApp(g, m)
                    assertBytes("after restart", app.plaintext)
                    assertBytes("aad", app.aad)
                    commitAndDeliver(g, g.selfUpdate(), listOf(gb))
                    assertInSync(listOf(g, gb))
                }
            }
            // Another identity is refused on this storage.
            assertFailsWith<MlsException.IdentityMismatch> { Client(store, b("mallory")) }
        }
    }

    @Test
    fun restartFromSqliteStorage(@TempDir dir: Path) {
        val path = dir.resolve("alice.db").toString()
        newClient("bob").use { bob ->
            // The built-in stores are typed StorageBackend; closing the object
            // (it is AutoCloseable) releases the file lock at once, instead of
            // when the generated Cleaner runs.
            val first = SqliteStorage(path)
            val gid = newClient("alice", first).use { alice ->
                alice.createGroup().use { g ->
                    val add = g.addMembers(bob.createKeyPackages(1u))
                    g.mergePendingCommit()
                        bob.joinGroup(assertNotNull(add.welcome)).use { gb ->
                            assertInSync(listOf(g, gb))
                            g.selfUpdate()
                        }
                        g.id()
                }
            }
            // While it is open, nobody else may open the file.
            assertFailsWith<MlsException.StorageInUse> { SqliteStorage(path) }
            (first as AutoCloseable).close()
            // A new storage object on the same file, as after a process restart.
            checkRestart(SqliteStorage(path), gid, bob)
        }
        assertFailsWith<MlsException.StorageBackend> { SqliteStorage(dir.resolve("missing/dir/x.db").toString()) }
    }

    @Test
    fun memoryStorageWorksLikeAHostStore() {
        val store = MemoryStorage()
        Client(store, b("alice"), CLIENT_OPTIONS).use { c ->
            val gid = c.createGroup().use { it.id() }
            Client(store, b("alice"), CLIENT_OPTIONS).use { c2 ->
                assertEquals(listOf(gid.toList()), c2.groupIds().map { it.toList() })
            }
        }
        // The built-in store is a generated object: closable when its concrete type is known.
        (store as AutoCloseable).close()
    }

    @Test
    fun aSecondClientOnOneStoreTakesItOver() {
        val store = MapStorage()
        newClient("dave", store).use { app ->
            app.createGroup().use { g ->
                newClient("dave", store).use { extension ->
                    // The app's client writes nothing any more; the extension's works.
                    assertFailsWith<MlsException.StorageTakenOver> { g.encrypt(b("stale"), byteArrayOf()) }
                    assertFailsWith<MlsException.StorageTakenOver> { app.createKeyPackages(1u) }
                    extension.group(g.id()).use { eg ->
                        eg.selfUpdate()
                        eg.mergePendingCommit()
                        assertEquals(1uL, eg.epoch())
                    }
                }
            }
        }
    }

    @Test
    fun anEncryptedStoreMovesToANewKey() {
        val inner = MapStorage()
        val oldKey = ByteArray(32) { 1 }
        val newKey = ByteArray(32) { 2 }
        val gid = Client(encryptedStorage(inner, oldKey), b("alice"), CLIENT_OPTIONS).use { c ->
            c.createGroup().use { it.id() }
        }
        assertFailsWith<MlsException.StorageCorrupt> { rekeyEncryptedStorage(inner, newKey, oldKey) }
        rekeyEncryptedStorage(inner, oldKey, newKey)
        assertFailsWith<MlsException.StorageCorrupt> { encryptedStorage(inner, oldKey) }
        Client(encryptedStorage(inner, newKey), b("alice"), CLIENT_OPTIONS).use { c ->
            assertEquals(listOf(gid.toList()), c.groupIds().map { it.toList() })
        }
    }

    private data class Observed(val epoch: ULong, val auth: List<Byte>, val pending: Boolean, val members: Int)

    private fun observe(g: Group) =
        Observed(g.epoch(), g.epochAuthenticator().toList(), g.pendingCommit() != null, g.members().size)

    /**
     * Runs [op] with the next commit of [store] failing: it must throw
     * MlsException.StorageBackend carrying the host's reason, write nothing
     * and leave [group] unchanged; then the retry must succeed.
     */
    private fun <T> faulted(what: String, store: FailingStorage, group: Group, plain: Boolean = false, op: () -> T): T {
        val before = store.inner.snapshot()
        val observed = observe(group)
        val reason = "disk full during $what"
        store.failNextCommit(reason, plain)
        val e = assertFailsWith<MlsException.StorageBackend>(what) { op() }
        if (plain) {
            assertTrue(e.reason.contains(reason), "$what: reason was '${e.reason}'")
        } else {
            assertEquals(reason, e.reason, what)
        }
        assertFalse(store.armed, "$what: the fault was never hit")
        assertTrue(store.inner.contentEquals(before), "$what: storage changed after a failed commit")
        assertEquals(observed, observe(group), "$what: group changed after a failed commit")
        return op()
    }

    @Test
    fun backendWhoseCommitThrows() {
        makeTrio(storageFactory = { FailingStorage() }).use { t ->
            val sa = t.storages[0] as FailingStorage
            val sb = t.storages[1] as FailingStorage

            val ct = faulted("encrypt", sa, t.alice) { t.alice.encrypt(b("x"), b("a")) }
            val app = faulted("process_message(application)", sb, t.bob) { processApp(t.bob, ct) }
            assertBytes("x", app.plaintext)
            processApp(t.carol, ct)

            val up = faulted("self_update", sa, t.alice) { t.alice.selfUpdate() }
            faulted("merge_pending_commit", sa, t.alice) { t.alice.mergePendingCommit() }
            // An incoming commit: processing writes nothing; a failed merge can be retried.
            val staged = assertNotNull(t.bob.processMessage(up.commit).stagedCommit)
            staged.use { sc -> faulted("StagedCommit.merge", sb, t.bob) { sc.merge() } }
            processCommit(t.carol, up.commit)
            assertInSync(t.groups)

            // A plain (untyped) host exception also arrives as StorageBackend with its message.
            val up2 = faulted("self_update (plain exception)", sa, t.alice, plain = true) { t.alice.selfUpdate() }
            commitAndDeliver(t.alice, up2, listOf(t.bob, t.carol))
            val kp = newClient("dave").use { it.createKeyPackages(1u).single() }
            faulted("add_members", sa, t.alice) { t.alice.addMembers(listOf(kp)) }
            t.alice.clearPendingCommit()
            assertInSync(t.groups)
            assertTrue(sa.failures >= 5 && sb.failures >= 2)
        }
    }

    @Test
    fun mapStorageLosesNoUpdateUnderConcurrentCommits() {
        val s = MapStorage()
        val threads = List(8) { t ->
            Thread {
                repeat(200) { i -> s.commit(listOf(StorageWrite.Put(b("t$t-$i"), b("$i")), StorageWrite.Put(b("last-$t"), b("$i")))) }
            }
        }
        threads.forEach { it.start() }
        threads.forEach { it.join(60_000) }
        assertEquals(8 * 200 + 8, s.size)
        assertEquals(1600L, s.commits)
        for (t in 0 until 8) assertBytes("199", s.read(b("last-$t")))
    }

    /** A backend that hands back garbage for every stored value, or throws on read. */
    private class HostileReads(val inner: MapStorage, val throwOnRead: Boolean) : StorageBackend {
        override fun read(key: ByteArray): ByteArray? {
            if (throwOnRead) throw StorageException.Backend("read failed: io error")
            return inner.read(key)?.let { byteArrayOf(0xFF.toByte(), 0xFE.toByte(), 1, 2, 3) }
        }
        override fun commit(writes: List<StorageWrite>) = inner.commit(writes)
    }

    @Test
    fun hostileReadsAreTypedErrors() {
        val store = MapStorage()
        newClient("alice", store).use { it.createGroup().close() }
        val e = assertFailsWith<MlsException>("garbage values") { Client(HostileReads(store, false), b("alice"), CLIENT_OPTIONS).use { c -> c.groupIds().forEach { c.group(it).use { g -> g.epoch() } } } }
        assertTrue(e is MlsException.StorageCorrupt, "garbage values: got $e")
        val r = assertFailsWith<MlsException.StorageBackend> { Client(HostileReads(store, true), b("alice"), CLIENT_OPTIONS) }
        assertEquals("read failed: io error", r.reason)
    }
}
