// MLSKit with Swift concurrency: the same clients and groups as `async throws`
// methods. Each blocking call runs on a Dispatch queue (never on the
// cooperative thread pool, which must not block).
import Dispatch
import Foundation

/// A `Client` whose operations are `async throws`, run on Dispatch queues
/// that target `queue` (default: the global `.userInitiated` queue).
///
/// Guarantees, the same as `mlskit.aio` in Python and `AsyncClient` in Kotlin:
/// - One group's operations run one after the other in the order they were
///   called (a serial queue per group id); different groups run in parallel.
/// - Cancelling a task never leaves a half-done operation: an operation that
///   has started runs to its end (its batch is committed or not) and holds the
///   group's queue until it has; the cancelled caller gets `CancellationError`
///   instead of the result. An operation still waiting for its turn is dropped
///   without running.
/// - Errors are the same `MlsError` values as the blocking API's.
///
/// The order holds among the `AsyncGroup`s of one `AsyncClient`; `blocking` is
/// the underlying client.
public final class AsyncClient: Sendable {
    /// The blocking client underneath.
    public let blocking: Client
    /// The queue every operation's queue targets.
    public let queue: DispatchQueue
    private let turns: GroupQueues

    /// Wraps an open client.
    public init(_ client: Client, queue: DispatchQueue = .global(qos: .userInitiated)) {
        blocking = client
        self.queue = queue
        turns = GroupQueues(target: queue)
    }

    /// Opens the client (`Client(storage:identity:options:)`) off the caller's thread.
    public static func open(
        storage: StorageBackend,
        identity: Data,
        options: ClientOptions? = nil,
        queue: DispatchQueue = .global(qos: .userInitiated)
    ) async throws -> AsyncClient {
        let client = try await runToEnd(on: queue) {
            try Client(storage: storage, identity: identity, options: options)
        }
        return AsyncClient(client, queue: queue)
    }

    func turn(of groupId: Data) -> DispatchQueue { turns.queue(of: groupId) }

    private func now<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await runToEnd(on: queue, body)
    }

    private func wrap(_ group: Group) -> AsyncGroup { AsyncGroup(group, client: self) }

    /// `Client.identity()`.
    public func identity() -> Data { blocking.identity() }

    /// `Client.signaturePublicKey(ciphersuite:)`, awaited.
    public func signaturePublicKey(ciphersuite: Ciphersuite? = nil) async throws -> Data {
        let c = blocking
        return try await now { try c.signaturePublicKey(ciphersuite: ciphersuite) }
    }

    /// `Client.createKeyPackages(count:options:)`, awaited.
    public func createKeyPackages(count: UInt32, options: KeyPackageOptions? = nil) async throws -> [Data] {
        let c = blocking
        return try await now { try c.createKeyPackages(count: count, options: options) }
    }

    /// `Client.keyPackages()`, awaited.
    public func keyPackages() async throws -> [OwnKeyPackage] {
        let c = blocking
        return try await now { try c.keyPackages() }
    }

    /// `Client.pruneExpiredKeyPackages()`, awaited.
    public func pruneExpiredKeyPackages() async throws -> UInt32 {
        let c = blocking
        return try await now { try c.pruneExpiredKeyPackages() }
    }

    /// `Client.deleteKeyPackage(hashRef:)`, awaited.
    public func deleteKeyPackage(hashRef: Data) async throws -> Bool {
        let c = blocking
        return try await now { try c.deleteKeyPackage(hashRef: hashRef) }
    }

    /// `Client.createGroup(options:)`, awaited.
    public func createGroup(options: GroupOptions? = nil) async throws -> AsyncGroup {
        let c = blocking
        return wrap(try await now { try c.createGroup(options: options) })
    }

    /// `Client.inspectWelcome(welcome:ratchetTree:)`, awaited.
    public func inspectWelcome(welcome: Data, ratchetTree: Data? = nil) async throws -> WelcomeInfo {
        let c = blocking
        return try await now { try c.inspectWelcome(welcome: welcome, ratchetTree: ratchetTree) }
    }

    /// `Client.joinGroup(welcome:ratchetTree:options:)`, awaited.
    public func joinGroup(welcome: Data, ratchetTree: Data? = nil, options: JoinOptions? = nil) async throws -> AsyncGroup {
        let c = blocking
        return wrap(try await now { try c.joinGroup(welcome: welcome, ratchetTree: ratchetTree, options: options) })
    }

    /// `Client.joinByExternalCommit(groupInfo:ratchetTree:options:)`, awaited:
    /// the joined group and the commit to send.
    public func joinByExternalCommit(
        groupInfo: Data, ratchetTree: Data? = nil, options: JoinOptions? = nil
    ) async throws -> (group: AsyncGroup, commit: Data) {
        let c = blocking
        let join = try await now {
            try c.joinByExternalCommit(groupInfo: groupInfo, ratchetTree: ratchetTree, options: options)
        }
        return (wrap(join.group), join.commit)
    }

    /// `Client.group(groupId:)`, awaited.
    public func group(groupId: Data) async throws -> AsyncGroup {
        let c = blocking
        return wrap(try await now { try c.group(groupId: groupId) })
    }

    /// `Client.groupIds()`, awaited.
    public func groupIds() async throws -> [Data] {
        let c = blocking
        return try await now { try c.groupIds() }
    }

    /// `Client.deleteGroup(groupId:)`, awaited; runs in the group's turn.
    public func deleteGroup(groupId: Data) async throws {
        let c = blocking
        try await runToEnd(on: turn(of: groupId)) { try c.deleteGroup(groupId: groupId) }
    }

    /// `Client.storeExternalPsk(pskId:secret:)`, awaited.
    public func storeExternalPsk(pskId: Data, secret: Data) async throws {
        let c = blocking
        try await now { try c.storeExternalPsk(pskId: pskId, secret: secret) }
    }

    /// `Client.deleteExternalPsk(pskId:)`, awaited.
    public func deleteExternalPsk(pskId: Data) async throws {
        let c = blocking
        try await now { try c.deleteExternalPsk(pskId: pskId) }
    }
}

/// A `Group` whose operations are `async throws`, run in call order (see
/// `AsyncClient`). `blocking` is the underlying handle.
public final class AsyncGroup: Sendable {
    /// The blocking group handle underneath.
    public let blocking: Group
    private let turn: DispatchQueue

    init(_ group: Group, client: AsyncClient) {
        blocking = group
        turn = client.turn(of: group.id())
    }

    /// Runs `body` with the blocking group in this group's turn.
    public func inTurn<T: Sendable>(_ body: @escaping @Sendable (Group) throws -> T) async throws -> T {
        let g = blocking
        return try await runToEnd(on: turn) { try body(g) }
    }

    /// `Group.id()`.
    public func id() -> Data { blocking.id() }

    /// `Group.epoch()`, awaited.
    public func epoch() async throws -> UInt64 { try await inTurn { try $0.epoch() } }

    /// `Group.ciphersuite()`, awaited.
    public func ciphersuite() async throws -> Ciphersuite { try await inTurn { try $0.ciphersuite() } }

    /// `Group.members()`, awaited.
    public func members() async throws -> [Member] { try await inTurn { try $0.members() } }

    /// `Group.ownIndex()`, awaited.
    public func ownIndex() async throws -> UInt32 { try await inTurn { try $0.ownIndex() } }

    /// `Group.isActive()`, awaited.
    public func isActive() async throws -> Bool { try await inTurn { try $0.isActive() } }

    /// `Group.customExtensions()`, awaited.
    public func customExtensions() async throws -> [GroupExtension] { try await inTurn { try $0.customExtensions() } }

    /// `Group.pendingProposals()`, awaited.
    public func pendingProposals() async throws -> [ProposalInfo] { try await inTurn { try $0.pendingProposals() } }

    /// `Group.pendingCommit()`, awaited.
    public func pendingCommit() async throws -> CommitInfo? { try await inTurn { try $0.pendingCommit() } }

    /// `Group.pendingCommitBundle()`, awaited.
    public func pendingCommitBundle() async throws -> CommitBundle? { try await inTurn { try $0.pendingCommitBundle() } }

    /// `Group.encrypt(plaintext:aad:)`, awaited.
    public func encrypt(plaintext: Data, aad: Data = Data()) async throws -> Data {
        try await inTurn { try $0.encrypt(plaintext: plaintext, aad: aad) }
    }

    /// `Group.addMembers(keyPackages:)`, awaited.
    public func addMembers(keyPackages: [Data]) async throws -> CommitBundle {
        try await inTurn { try $0.addMembers(keyPackages: keyPackages) }
    }

    /// `Group.removeMembers(indices:)`, awaited.
    public func removeMembers(indices: [UInt32]) async throws -> CommitBundle {
        try await inTurn { try $0.removeMembers(indices: indices) }
    }

    /// `Group.selfUpdate()`, awaited.
    public func selfUpdate() async throws -> CommitBundle { try await inTurn { try $0.selfUpdate() } }

    /// `Group.leave()`, awaited.
    public func leave() async throws -> Data { try await inTurn { try $0.leave() } }

    /// `Group.updateCustomExtensions(extensions:)`, awaited.
    public func updateCustomExtensions(extensions: [GroupExtension]) async throws -> CommitBundle {
        try await inTurn { try $0.updateCustomExtensions(extensions: extensions) }
    }

    /// `Group.proposeAdd(keyPackage:mode:)`, awaited.
    public func proposeAdd(keyPackage: Data, mode: ProposalMode) async throws -> ProposalBundle {
        try await inTurn { try $0.proposeAdd(keyPackage: keyPackage, mode: mode) }
    }

    /// `Group.proposeRemove(index:mode:)`, awaited.
    public func proposeRemove(index: UInt32, mode: ProposalMode) async throws -> ProposalBundle {
        try await inTurn { try $0.proposeRemove(index: index, mode: mode) }
    }

    /// `Group.proposeSelfUpdate()`, awaited.
    public func proposeSelfUpdate() async throws -> ProposalBundle { try await inTurn { try $0.proposeSelfUpdate() } }

    /// `Group.proposeExternalPsk(pskId:mode:)`, awaited.
    public func proposeExternalPsk(pskId: Data, mode: ProposalMode) async throws -> ProposalBundle {
        try await inTurn { try $0.proposeExternalPsk(pskId: pskId, mode: mode) }
    }

    /// `Group.proposeCustomExtensions(extensions:mode:)`, awaited.
    public func proposeCustomExtensions(extensions: [GroupExtension], mode: ProposalMode) async throws -> ProposalBundle {
        try await inTurn { try $0.proposeCustomExtensions(extensions: extensions, mode: mode) }
    }

    /// `Group.proposeCustom(proposalType:payload:mode:)`, awaited.
    public func proposeCustom(proposalType: UInt16, payload: Data, mode: ProposalMode) async throws -> ProposalBundle {
        try await inTurn { try $0.proposeCustom(proposalType: proposalType, payload: payload, mode: mode) }
    }

    /// `Group.commitPendingProposals()`, awaited.
    public func commitPendingProposals() async throws -> CommitBundle { try await inTurn { try $0.commitPendingProposals() } }

    /// `Group.mergePendingCommit()`, awaited.
    public func mergePendingCommit() async throws { try await inTurn { try $0.mergePendingCommit() } }

    /// `Group.clearPendingCommit()`, awaited.
    public func clearPendingCommit() async throws { try await inTurn { try $0.clearPendingCommit() } }

    /// `Group.clearPendingProposals()`, awaited.
    public func clearPendingProposals() async throws { try await inTurn { try $0.clearPendingProposals() } }

    /// `Group.processMessage(message:)`, awaited.
    public func processMessage(message: Data) async throws -> ReceivedMessage {
        try await inTurn { try $0.processMessage(message: message) }
    }

    /// `StagedCommit.merge()` of a commit `processMessage` returned, in this group's turn.
    public func mergeStagedCommit(_ commit: StagedCommit) async throws {
        try await inTurn { _ in try commit.merge() }
    }

    /// `Group.exportSecret(label:context:length:)`, awaited.
    public func exportSecret(label: String, context: Data, length: UInt32) async throws -> Data {
        try await inTurn { try $0.exportSecret(label: label, context: context, length: length) }
    }

    /// `Group.epochAuthenticator()`, awaited.
    public func epochAuthenticator() async throws -> Data { try await inTurn { try $0.epochAuthenticator() } }

    /// `Group.exportGroupInfo(withRatchetTree:)`, awaited.
    public func exportGroupInfo(withRatchetTree: Bool = true) async throws -> Data {
        try await inTurn { try $0.exportGroupInfo(withRatchetTree: withRatchetTree) }
    }

    /// `Group.exportRatchetTree()`, awaited.
    public func exportRatchetTree() async throws -> Data { try await inTurn { try $0.exportRatchetTree() } }
}

/// One serial queue per group id, made on first use.
private final class GroupQueues: @unchecked Sendable {
    // @unchecked: `queues` is only touched with `lock` held.
    private let lock = NSLock()
    private var queues: [Data: DispatchQueue] = [:]
    private let target: DispatchQueue

    init(target: DispatchQueue) { self.target = target }

    func queue(of groupId: Data) -> DispatchQueue {
        lock.lock()
        defer { lock.unlock() }
        if let queue = queues[groupId] { return queue }
        let queue = DispatchQueue(label: "dev.mlskit.group", target: target)
        queues[groupId] = queue
        return queue
    }
}

/// One call's state: waiting for its turn (holding its continuation),
/// started, or finished. Whoever moves it out of "waiting" resumes the
/// continuation, so it is resumed exactly once.
private final class Call<T: Sendable>: @unchecked Sendable {
    // @unchecked: `cancelled` and `waiting` are only touched with `lock` held.
    private let lock = NSLock()
    private var cancelled = false
    private var waiting: CheckedContinuation<Result<T, Error>, Never>?

    /// Parks the caller; false (and resumed with `CancellationError`) if the
    /// task was cancelled already.
    func park(_ continuation: CheckedContinuation<Result<T, Error>, Never>) -> Bool {
        lock.lock()
        if cancelled {
            lock.unlock()
            continuation.resume(returning: .failure(CancellationError()))
            return false
        }
        waiting = continuation
        lock.unlock()
        return true
    }

    /// The task was cancelled: a call that has not started is dropped and its
    /// caller released now; a started one runs on.
    func cancel() {
        lock.lock()
        cancelled = true
        let parked = waiting
        waiting = nil
        lock.unlock()
        parked?.resume(returning: .failure(CancellationError()))
    }

    /// The call's turn came: the continuation to resume with its result, or
    /// nil if it was dropped.
    func start() -> CheckedContinuation<Result<T, Error>, Never>? {
        lock.lock()
        defer { lock.unlock() }
        let parked = waiting
        waiting = nil
        return parked
    }
}

/// Runs `body` on `queue` to its end even if the calling task is cancelled
/// meanwhile; a cancelled caller then gets `CancellationError` instead of the
/// result. A call cancelled before `queue` reached it does not run, and its
/// caller is released at once.
private func runToEnd<T: Sendable>(
    on queue: DispatchQueue, _ body: @escaping @Sendable () throws -> T
) async throws -> T {
    let call = Call<T>()
    let result: Result<T, Error> = await withTaskCancellationHandler {
        await withCheckedContinuation { (done: CheckedContinuation<Result<T, Error>, Never>) in
            guard call.park(done) else { return }
            queue.async {
                guard let done = call.start() else { return }
                done.resume(returning: Result { try body() })
            }
        }
    } onCancel: {
        call.cancel()
    }
    try Task.checkCancellation()
    return try result.get()
}
