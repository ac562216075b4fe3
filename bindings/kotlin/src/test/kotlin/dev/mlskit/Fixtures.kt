package dev.mlskit

import kotlin.test.assertEquals
import kotlin.test.assertNotNull
import kotlin.test.assertTrue
import kotlin.test.fail

// Shared helpers for the MLSKit JVM tests: host storage backends and a
// three-member group (alice, bob, carol), mirroring bindings/python/tests/conftest.py.

/** The values every language's tests share (tests/common/constants.txt; Maven runs in bindings/kotlin). */
private val SHARED: Map<String, UShort> =
    java.io.File(System.getProperty("user.dir"), "../../tests/common/constants.txt").readLines()
        .filter { it.isNotBlank() && !it.startsWith("#") }
        .associate { line ->
            val (name, value) = line.split("=").map { it.trim() }
            name to value.removePrefix("0x").toInt(16).toUShort()
        }

val CUSTOM_PROPOSAL_TYPE: UShort = SHARED.getValue("CUSTOM_PROPOSAL_TYPE")
val CUSTOM_EXTENSION_TYPE: UShort = SHARED.getValue("CUSTOM_EXTENSION_TYPE")

/** Every member supports the custom proposal and extension types. */
val CLIENT_OPTIONS = ClientOptions(
    customExtensionTypes = listOf(CUSTOM_EXTENSION_TYPE),
    customProposalTypes = listOf(CUSTOM_PROPOSAL_TYPE),
)

fun b(s: String): ByteArray = s.encodeToByteArray()

fun assertBytes(expected: ByteArray, actual: ByteArray?, message: String? = null) {
    assertNotNull(actual, message)
    assertTrue(
        expected.contentEquals(actual),
        "${message ?: "bytes differ"}: expected ${expected.decodeToString()} but was ${actual.decodeToString()}",
    )
}

fun assertBytes(expected: String, actual: ByteArray?, message: String? = null) =
    assertBytes(b(expected), actual, message)

fun assertMemberSender(index: UInt, identity: String, sender: Sender) {
    val m = sender as? Sender.Member ?: fail("expected a member sender, got $sender")
    assertEquals(index, m.index)
    assertBytes(identity, m.identity)
}

/**
 * A MapStorage whose next commit can be told to fail, with a typed
 * [StorageException.Backend] or with a plain exception.
 */
class FailingStorage(val inner: MapStorage = MapStorage()) : StorageBackend {
    @Volatile private var failReason: String? = null
    @Volatile private var plain = false
    @Volatile var failures = 0
        private set
    @Volatile var commitCalls = 0
        private set

    fun failNextCommit(reason: String, plainException: Boolean = false) {
        plain = plainException
        failReason = reason
    }

    val armed: Boolean get() = failReason != null

    override fun read(key: ByteArray): ByteArray? = inner.read(key)

    override fun commit(writes: List<StorageWrite>) {
        synchronized(this) { commitCalls++ }
        val reason = failReason
        if (reason != null) {
            failReason = null
            failures++
            if (plain) throw IllegalStateException(reason)
            throw StorageException.Backend(reason)
        }
        inner.commit(writes)
    }
}

/** Three clients in one group at the same epoch. Close it to free every handle. */
class Trio(
    val storages: List<StorageBackend>,
    val clients: List<Client>,
    val groups: List<Group>,
) : AutoCloseable {
    val alice get() = groups[0]
    val bob get() = groups[1]
    val carol get() = groups[2]

    override fun close() {
        groups.forEach { it.close() }
        clients.forEach { it.close() }
    }
}

fun newClient(name: String, storage: StorageBackend = MapStorage()): Client =
    Client(storage, b(name), CLIENT_OPTIONS)

fun makeTrio(
    storageFactory: () -> StorageBackend = { MapStorage() },
    groupOptions: GroupOptions? = null,
    joinOptions: JoinOptions? = null,
): Trio {
    val storages = List(3) { storageFactory() }
    val clients = storages.zip(listOf("alice", "bob", "carol")).map { (s, n) -> newClient(n, s) }
    val kps = clients.drop(1).map {
        it.createKeyPackages(1u, KeyPackageOptions(ciphersuite = groupOptions?.ciphersuite)).single()
    }
    val ga = clients[0].createGroup(groupOptions)
    val bundle = ga.addMembers(kps)
    ga.mergePendingCommit()
    val welcome = assertNotNull(bundle.welcome)
    val gb = clients[1].joinGroup(welcome, null, joinOptions)
    val gc = clients[2].joinGroup(welcome, null, joinOptions)
    return Trio(storages, clients, listOf(ga, gb, gc))
}

/** Processes an incoming commit and merges it; returns what it did. */
fun processCommit(group: Group, message: ByteArray): CommitInfo {
    val received = group.processMessage(message)
    val staged = (received as? ReceivedMessage.Commit)?.commit ?: fail("expected a commit, got $received")
    return staged.use {
        val info = it.info()
        it.merge()
        info
    }
}

fun processProposal(group: Group, message: ByteArray): ProposalInfo =
    group.processMessage(message).proposalInfo ?: fail("expected a proposal")

fun processApp(group: Group, message: ByteArray): ApplicationMessage =
    group.processMessage(message).applicationMessage ?: fail("expected an application message")

/** Merges the sender's pending commit and delivers it to the receivers. */
fun commitAndDeliver(sender: Group, bundle: CommitBundle, receivers: List<Group>) {
    sender.mergePendingCommit()
    receivers.forEach { processCommit(it, bundle.commit) }
}

private fun ByteArray.key(): String = joinToString("") { "%02x".format(it) }

/** All groups share epoch, authenticator, exporter secret and roster, and can talk. */
fun assertInSync(groups: List<Group>) {
    assertEquals(1, groups.map { it.epoch() }.toSet().size, "epochs differ")
    assertEquals(1, groups.map { it.epochAuthenticator().key() }.toSet().size, "epoch authenticators differ")
    assertEquals(1, groups.map { it.exportSecret("sync", b("ctx"), 32u).key() }.toSet().size, "exporter secrets differ")
    assertEquals(
        1,
        groups.map { g -> g.members().map { it.index to it.identity.decodeToString() } }.toSet().size,
        "rosters differ",
    )
    groups.forEachIndexed { i, g ->
        val msg = g.encrypt(b("ping from $i"), byteArrayOf())
        groups.forEachIndexed { j, other ->
            if (i != j) assertBytes("ping from $i", processApp(other, msg).plaintext)
        }
    }
}
