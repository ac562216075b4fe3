// MLSKit with coroutines: the same clients and groups as suspend functions.
// Plain Kotlin plus kotlinx-coroutines-core (also in the AAR).
package dev.mlskit

import java.nio.ByteBuffer
import java.util.concurrent.ConcurrentHashMap
import kotlinx.coroutines.CoroutineDispatcher
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.NonCancellable
import kotlinx.coroutines.currentCoroutineContext
import kotlinx.coroutines.ensureActive
import kotlinx.coroutines.sync.Mutex
import kotlinx.coroutines.sync.withLock
import kotlinx.coroutines.withContext

/**
 * A [Client] whose operations are suspend functions, each run on [dispatcher]
 * (default [Dispatchers.IO]), so a ViewModel can call them from its scope.
 *
 * Guarantees, the same as `mlskit.aio` in Python and `AsyncClient` in Swift:
 * - One group's operations run one after the other in the order they were
 *   called (a fair [Mutex] per group id); different groups run in parallel.
 * - Cancelling a caller never leaves a half-done operation: an operation that
 *   has started runs to its end (its batch is committed or not) and the group
 *   stays locked until it has; the cancelled caller gets a
 *   `CancellationException` instead of the result. An operation still waiting
 *   for its turn is dropped without running.
 * - Errors are the same [MlsException] subclasses as the blocking API's.
 *
 * The order holds among the [AsyncGroup]s of one [AsyncClient]; [blocking] is
 * the underlying client. Close the [AsyncClient] to close it.
 */
class AsyncClient(
    val blocking: Client,
    val dispatcher: CoroutineDispatcher = Dispatchers.IO,
) : AutoCloseable {
    private val locks = ConcurrentHashMap<ByteBuffer, Mutex>()

    companion object {
        /** Opens the client (`Client(storage, identity, options)`) on [dispatcher]. */
        suspend fun open(
            storage: StorageBackend,
            identity: ByteArray,
            options: ClientOptions? = null,
            dispatcher: CoroutineDispatcher = Dispatchers.IO,
        ): AsyncClient = AsyncClient(runToEnd(dispatcher) { Client(storage, identity, options) }, dispatcher)
    }

    internal fun lockOf(groupId: ByteArray): Mutex = locks.getOrPut(ByteBuffer.wrap(groupId.copyOf())) { Mutex() }

    internal suspend fun <T> now(block: () -> T): T = runToEnd(dispatcher, block)

    private fun wrap(group: Group) = AsyncGroup(group, this)

    /** [Client.identity]. */
    fun identity(): ByteArray = blocking.identity()

    /** [Client.signaturePublicKey], suspended. */
    suspend fun signaturePublicKey(ciphersuite: Ciphersuite? = null): ByteArray =
        now { blocking.signaturePublicKey(ciphersuite) }

    /** [Client.createKeyPackages], suspended. */
    suspend fun createKeyPackages(count: UInt, options: KeyPackageOptions? = null): List<ByteArray> =
        now { blocking.createKeyPackages(count, options) }

    /** [Client.keyPackages], suspended. */
    suspend fun keyPackages(): List<OwnKeyPackage> = now { blocking.keyPackages() }

    /** [Client.pruneExpiredKeyPackages], suspended. */
    suspend fun pruneExpiredKeyPackages(): UInt = now { blocking.pruneExpiredKeyPackages() }

    /** [Client.deleteKeyPackage], suspended. */
    suspend fun deleteKeyPackage(hashRef: ByteArray): Boolean = now { blocking.deleteKeyPackage(hashRef) }

    /** [Client.createGroup], suspended. */
    suspend fun createGroup(options: GroupOptions? = null): AsyncGroup = wrap(now { blocking.createGroup(options) })

    /** [Client.inspectWelcome], suspended. */
    suspend fun inspectWelcome(welcome: ByteArray, ratchetTree: ByteArray? = null): WelcomeInfo =
        now { blocking.inspectWelcome(welcome, ratchetTree) }

    /** [Client.joinGroup], suspended. */
    suspend fun joinGroup(welcome: ByteArray, ratchetTree: ByteArray? = null, options: JoinOptions? = null): AsyncGroup =
        wrap(now { blocking.joinGroup(welcome, ratchetTree, options) })

    /** [Client.joinByExternalCommit], suspended: the joined group and the commit to send. */
    suspend fun joinByExternalCommit(
        groupInfo: ByteArray,
        ratchetTree: ByteArray? = null,
        options: JoinOptions? = null,
    ): Pair<AsyncGroup, ByteArray> {
        val join = now { blocking.joinByExternalCommit(groupInfo, ratchetTree, options) }
        return wrap(join.group) to join.commit
    }

    /** [Client.group], suspended. */
    suspend fun group(groupId: ByteArray): AsyncGroup = wrap(now { blocking.group(groupId) })

    /** [Client.groupIds], suspended. */
    suspend fun groupIds(): List<ByteArray> = now { blocking.groupIds() }

    /** [Client.deleteGroup], suspended; runs in the group's turn. */
    suspend fun deleteGroup(groupId: ByteArray) = lockOf(groupId).withLock { now { blocking.deleteGroup(groupId) } }

    /** [Client.storeExternalPsk], suspended. */
    suspend fun storeExternalPsk(pskId: ByteArray, secret: ByteArray) = now { blocking.storeExternalPsk(pskId, secret) }

    /** [Client.deleteExternalPsk], suspended. */
    suspend fun deleteExternalPsk(pskId: ByteArray) = now { blocking.deleteExternalPsk(pskId) }

    /** Closes the underlying [Client]. */
    override fun close() = blocking.close()
}

/**
 * A [Group] whose operations are suspend functions run in call order (see
 * [AsyncClient]). [blocking] is the underlying handle; close the [AsyncGroup]
 * to close it.
 */
class AsyncGroup internal constructor(val blocking: Group, private val client: AsyncClient) : AutoCloseable {
    private val lock = client.lockOf(blocking.id())

    /** Runs [block] with the blocking group in this group's turn, on the client's dispatcher. */
    suspend fun <T> inTurn(block: (Group) -> T): T = lock.withLock { client.now { block(blocking) } }

    /** [Group.id]. */
    fun id(): ByteArray = blocking.id()

    /** [Group.epoch], suspended. */
    suspend fun epoch(): ULong = inTurn { it.epoch() }

    /** [Group.ciphersuite], suspended. */
    suspend fun ciphersuite(): Ciphersuite = inTurn { it.ciphersuite() }

    /** [Group.members], suspended. */
    suspend fun members(): List<Member> = inTurn { it.members() }

    /** [Group.ownIndex], suspended. */
    suspend fun ownIndex(): UInt = inTurn { it.ownIndex() }

    /** [Group.isActive], suspended. */
    suspend fun isActive(): Boolean = inTurn { it.isActive() }

    /** [Group.customExtensions], suspended. */
    suspend fun customExtensions(): List<GroupExtension> = inTurn { it.customExtensions() }

    /** [Group.pendingProposals], suspended. */
    suspend fun pendingProposals(): List<ProposalInfo> = inTurn { it.pendingProposals() }

    /** [Group.pendingCommit], suspended. */
    suspend fun pendingCommit(): CommitInfo? = inTurn { it.pendingCommit() }

    /** [Group.pendingCommitBundle], suspended. */
    suspend fun pendingCommitBundle(): CommitBundle? = inTurn { it.pendingCommitBundle() }

    /** [Group.encrypt], suspended. */
    suspend fun encrypt(plaintext: ByteArray, aad: ByteArray = ByteArray(0)): ByteArray =
        inTurn { it.encrypt(plaintext, aad) }

    /** [Group.addMembers], suspended. */
    suspend fun addMembers(keyPackages: List<ByteArray>): CommitBundle = inTurn { it.addMembers(keyPackages) }

    /** [Group.removeMembers], suspended. */
    suspend fun removeMembers(indices: List<UInt>): CommitBundle = inTurn { it.removeMembers(indices) }

    /** [Group.selfUpdate], suspended. */
    suspend fun selfUpdate(): CommitBundle = inTurn { it.selfUpdate() }

    /** [Group.leave], suspended. */
    suspend fun leave(): ByteArray = inTurn { it.leave() }

    /** [Group.updateCustomExtensions], suspended. */
    suspend fun updateCustomExtensions(extensions: List<GroupExtension>): CommitBundle =
        inTurn { it.updateCustomExtensions(extensions) }

    /** [Group.proposeAdd], suspended. */
    suspend fun proposeAdd(keyPackage: ByteArray, mode: ProposalMode): ProposalBundle =
        inTurn { it.proposeAdd(keyPackage, mode) }

    /** [Group.proposeRemove], suspended. */
    suspend fun proposeRemove(index: UInt, mode: ProposalMode): ProposalBundle = inTurn { it.proposeRemove(index, mode) }

    /** [Group.proposeSelfUpdate], suspended. */
    suspend fun proposeSelfUpdate(): ProposalBundle = inTurn { it.proposeSelfUpdate() }

    /** [Group.proposeExternalPsk], suspended. */
    suspend fun proposeExternalPsk(pskId: ByteArray, mode: ProposalMode): ProposalBundle =
        inTurn { it.proposeExternalPsk(pskId, mode) }

    /** [Group.proposeCustomExtensions], suspended. */
    suspend fun proposeCustomExtensions(extensions: List<GroupExtension>, mode: ProposalMode): ProposalBundle =
        inTurn { it.proposeCustomExtensions(extensions, mode) }

    /** [Group.proposeCustom], suspended. */
    suspend fun proposeCustom(proposalType: UShort, payload: ByteArray, mode: ProposalMode): ProposalBundle =
        inTurn { it.proposeCustom(proposalType, payload, mode) }

    /** [Group.commitPendingProposals], suspended. */
    suspend fun commitPendingProposals(): CommitBundle = inTurn { it.commitPendingProposals() }

    /** [Group.mergePendingCommit], suspended. */
    suspend fun mergePendingCommit() = inTurn { it.mergePendingCommit() }

    /** [Group.clearPendingCommit], suspended. */
    suspend fun clearPendingCommit() = inTurn { it.clearPendingCommit() }

    /** [Group.clearPendingProposals], suspended. */
    suspend fun clearPendingProposals() = inTurn { it.clearPendingProposals() }

    /** [Group.processMessage], suspended. */
    suspend fun processMessage(message: ByteArray): ReceivedMessage = inTurn { it.processMessage(message) }

    /** [StagedCommit.merge] of a commit [processMessage] returned, in this group's turn. */
    suspend fun mergeStagedCommit(commit: StagedCommit) = inTurn { commit.merge() }

    /** [Group.exportSecret], suspended. */
    suspend fun exportSecret(label: String, context: ByteArray, length: UInt): ByteArray =
        inTurn { it.exportSecret(label, context, length) }

    /** [Group.epochAuthenticator], suspended. */
    suspend fun epochAuthenticator(): ByteArray = inTurn { it.epochAuthenticator() }

    /** [Group.exportGroupInfo], suspended. */
    suspend fun exportGroupInfo(withRatchetTree: Boolean = true): ByteArray =
        inTurn { it.exportGroupInfo(withRatchetTree) }

    /** [Group.exportRatchetTree], suspended. */
    suspend fun exportRatchetTree(): ByteArray = inTurn { it.exportRatchetTree() }

    /** Closes the underlying [Group] handle. */
    override fun close() = blocking.close()
}

/**
 * Runs [block] on [dispatcher] to its end even if the caller is cancelled
 * meanwhile; a cancelled caller then gets a `CancellationException` instead of
 * the result. A caller already cancelled when its turn comes does not run it.
 */
private suspend fun <T> runToEnd(dispatcher: CoroutineDispatcher, block: () -> T): T {
    // A caller cancelled before its call starts never runs it (taking a free
    // Mutex does not check for cancellation, and NonCancellable would not either).
    currentCoroutineContext().ensureActive()
    val result = withContext(dispatcher + NonCancellable) { block() }
    // withContext skips that check when it did not need to switch threads.
    currentCoroutineContext().ensureActive()
    return result
}
