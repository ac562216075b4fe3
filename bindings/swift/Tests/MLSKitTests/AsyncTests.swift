// AsyncClient / AsyncGroup: a group's operations stay in call order, groups
// run in parallel, the cooperative pool never blocks, cancellation never
// leaves a half-done operation, and errors keep their types (as test_async.py
// and AsyncTest.kt).
import Dispatch
import Foundation
import XCTest

@testable import MLSKit

/// A MapStorage whose commits sleep `delay` seconds (before applying) while it
/// is set, and count the commits that started sleeping.
final class SlowStorage: StorageBackend, @unchecked Sendable {
    let inner = MapStorage()
    private let lock = NSLock()
    private var delaySeconds = 0.0
    private var slowStarts = 0
    private var committed = 0

    var delay: Double {
        get { lock.lock(); defer { lock.unlock() }; return delaySeconds }
        set { lock.lock(); delaySeconds = newValue; lock.unlock() }
    }

    /// How many slow commits have started.
    var started: Int { lock.lock(); defer { lock.unlock() }; return slowStarts }

    /// How many batches were applied.
    var commits: Int { lock.lock(); defer { lock.unlock() }; return committed }

    func read(key: Data) throws -> Data? { try inner.read(key: key) }

    func commit(writes: [StorageWrite]) throws {
        let pause = delay
        if pause > 0 {
            lock.lock(); slowStarts += 1; lock.unlock()
            Thread.sleep(forTimeInterval: pause)
        }
        try inner.commit(writes: writes)
        lock.lock(); committed += 1; lock.unlock()
    }

    /// Waits (without blocking a thread) until `count` slow commits have started.
    func waitForStart(_ count: Int) async throws {
        for _ in 0..<500 where started < count { try await Task.sleep(nanoseconds: 10_000_000) }
        XCTAssertGreaterThanOrEqual(started, count, "no slow commit started")
    }
}

/// A MapStorage holding a copy of `entries`.
func storeWith(_ entries: [Data: Data]) throws -> MapStorage {
    let store = MapStorage()
    try store.commit(writes: entries.map { .put(key: $0.key, value: $0.value) })
    return store
}

struct AsyncPair {
    let a: AsyncClient
    let ga: AsyncGroup
    let b: Client
    let gb: Group
}

func asyncPair(_ store: StorageBackend = MapStorage()) async throws -> AsyncPair {
    let a = try await AsyncClient.open(storage: store, identity: bytes("alice"), options: clientOptions)
    let b = try makeClient("bob")
    let ga = try await a.createGroup()
    let bundle = try await ga.addMembers(keyPackages: [try oneKeyPackage(b)])
    try await ga.mergePendingCommit()
    let gb = try b.joinGroup(welcome: XCTUnwrap(bundle.welcome))
    return AsyncPair(a: a, ga: ga, b: b, gb: gb)
}

/// What one round of calls returned.
enum Outcome: Sendable {
    case message(Data)
    case commit(CommitBundle)
    case done
}

final class AsyncTests: XCTestCase {
    func testOneGroupsOperationsRunInCallOrderAndGroupsInParallel() async throws {
        var pairs: [AsyncPair] = []
        for _ in 0..<3 { pairs.append(try await asyncPair()) }
        // Per group, 10 rounds of encrypt, selfUpdate, merge, encrypt, all in flight at once.
        // Each task is started only once the previous one has reached its group's queue.
        var tasks: [(Int, Task<Outcome, Error>)] = []
        for (p, pair) in pairs.enumerated() {
            for n in 0..<10 {
                let ga = pair.ga
                let calls: [@Sendable () async throws -> Outcome] = [
                    { .message(try await ga.encrypt(plaintext: bytes("before \(n)"))) },
                    { .commit(try await ga.selfUpdate()) },
                    { try await ga.mergePendingCommit(); return .done },
                    { .message(try await ga.encrypt(plaintext: bytes("after \(n)"))) },
                ]
                for call in calls {
                    tasks.append((p, Task { try await call() }))
                    // Dispatch queues are FIFO in enqueue order: give the task time to enqueue.
                    try await Task.sleep(nanoseconds: 1_000_000)
                }
            }
        }
        var results: [[Outcome]] = Array(repeating: [], count: pairs.count)
        for (p, task) in tasks { results[p].append(try await task.value) }
        for (p, pair) in pairs.enumerated() {
            for n in 0..<10 {
                guard case let .message(before) = results[p][4 * n],
                      case let .commit(update) = results[p][4 * n + 1],
                      case let .message(after) = results[p][4 * n + 3]
                else { return XCTFail("round \(n) of group \(p) returned the wrong kinds") }
                // Out of order, merge would fail (NoPendingCommit) or encrypt would (PendingCommit).
                XCTAssertEqual(try XCTUnwrap(parseMessage(message: before).epoch) + 1, try parseMessage(message: after).epoch)
                XCTAssertEqual(text(try decrypt(pair.gb, before).plaintext), "before \(n)")
                try applyCommit(pair.gb, update.commit)
                XCTAssertEqual(text(try decrypt(pair.gb, after).plaintext), "after \(n)")
            }
            let epoch = try await pair.ga.epoch()
            XCTAssertEqual(epoch, try pair.gb.epoch())
        }
    }

    func testASlowGroupHoldsUpNeitherAnotherGroupNorTheCaller() async throws {
        let slowStore = SlowStorage()
        let slow = try await asyncPair(slowStore)
        let fast = try await asyncPair()
        slowStore.delay = 1.0
        let start = Date()
        let slowCall = Task { try await slow.ga.encrypt(plaintext: bytes("slow")) }
        try await slowStore.waitForStart(1)
        for n in 0..<5 {
            let message = try await fast.ga.encrypt(plaintext: bytes("fast \(n)"))
            XCTAssertEqual(text(try decrypt(fast.gb, message).plaintext), "fast \(n)")
        }
        let fastDone = Date().timeIntervalSince(start)
        _ = try await slowCall.value
        XCTAssertLessThan(fastDone, 0.8, "the fast group waited for the slow one")
        XCTAssertGreaterThanOrEqual(Date().timeIntervalSince(start), 1.0)
    }

    private func cancelInTheMiddleOfACommit(selfUpdate: Bool) async throws {
        let store = SlowStorage()
        let p = try await asyncPair(store)
        let before = store.inner.snapshot()
        store.delay = 0.5
        let ga = p.ga
        let job = Task { () async throws -> Outcome in
            selfUpdate ? .commit(try await ga.selfUpdate()) : .message(try await ga.encrypt(plaintext: bytes("cancelled")))
        }
        try await store.waitForStart(1)
        job.cancel()
        do {
            _ = try await job.value
            XCTFail("a cancelled caller got the result")
        } catch is CancellationError {}
        // Cancelled while the host was inside commit: the call ran to its end
        // before the cancellation reached the caller.
        XCTAssertNotEqual(store.inner.snapshot(), before, "the started call did not run to its end")
        store.delay = 0
        let pending = try await ga.pendingCommit()
        XCTAssertEqual(pending != nil, selfUpdate)
        if selfUpdate {
            // The cancelled caller never saw the commit: it is still there to send.
            let bundle = try await ga.pendingCommitBundle()
            try await ga.mergePendingCommit()
            try applyCommit(p.gb, XCTUnwrap(bundle).commit)
        }

        // A call still waiting for its turn when cancelled never runs.
        store.delay = 0.3
        let commits = store.commits
        let first = Task { try await ga.encrypt(plaintext: bytes("first")) }
        try await store.waitForStart(2)
        let waiting = Task { try await ga.encrypt(plaintext: bytes("waiter")) }
        try await Task.sleep(nanoseconds: 50_000_000)
        waiting.cancel()
        let cancelledAt = Date()
        do {
            _ = try await waiting.value
            XCTFail("a cancelled waiter got a result")
        } catch is CancellationError {}
        // Released at once, not when the call ahead of it ends (0.3 s commit).
        XCTAssertLessThan(Date().timeIntervalSince(cancelledAt), 0.15, "the cancelled waiter was held")
        _ = try await first.value
        try await Task.sleep(nanoseconds: 400_000_000)
        XCTAssertEqual(store.commits, commits + 1, "the cancelled waiter ran")
        store.delay = 0

        // Memory and storage agree: a new client on a copy of the data sees what the live one sees.
        let fresh = try makeClient("alice", storage: storeWith(store.inner.snapshot()))
        let reloaded = try fresh.group(groupId: ga.id())
        let epoch = try await ga.epoch()
        XCTAssertEqual(try reloaded.epoch(), epoch)
        let livePending = try await ga.pendingCommit()
        XCTAssertEqual(try reloaded.pendingCommit() == nil, livePending == nil)
        // The live group still works after the cancellations.
        let message = try await ga.encrypt(plaintext: bytes("still here"))
        XCTAssertEqual(text(try decrypt(p.gb, message).plaintext), "still here")
    }

    func testCancellingSelfUpdateInTheMiddleOfItsCommitLeavesBeforeOrAfter() async throws {
        try await cancelInTheMiddleOfACommit(selfUpdate: true)
    }

    func testCancellingEncryptInTheMiddleOfItsCommitLeavesBeforeOrAfter() async throws {
        try await cancelInTheMiddleOfACommit(selfUpdate: false)
    }

    func testATaskCancelledBeforeItsTurnNeverRunsItsCall() async throws {
        let store = SlowStorage()
        let p = try await asyncPair(store)
        let commits = store.commits
        let ga = p.ga
        let job = Task {
            withUnsafeCurrentTask { $0?.cancel() }
            return try await ga.encrypt(plaintext: bytes("never"))
        }
        do {
            _ = try await job.value
            XCTFail("a cancelled task's encrypt returned")
        } catch is CancellationError {}
        XCTAssertEqual(store.commits, commits, "a cancelled task's encrypt ran")
    }

    func testAStagedCommitIsMergedInTheGroupsTurn() async throws {
        let p = try await asyncPair()
        let gb = try await AsyncClient(p.b).group(groupId: p.gb.id())
        let bundle = try await p.ga.selfUpdate()
        try await p.ga.mergePendingCommit()
        guard case let .commit(staged) = try await gb.processMessage(message: bundle.commit) else {
            return XCTFail("expected a commit")
        }
        let merge = Task { try await gb.mergeStagedCommit(staged) }
        try await Task.sleep(nanoseconds: 1_000_000)
        let epoch = Task { try await gb.epoch() }
        try await merge.value
        let aliceEpoch = try await p.ga.epoch()
        let seen = try await epoch.value
        XCTAssertEqual(seen, aliceEpoch, "epoch() ran before the merge it was queued behind")
    }

    func testErrorsKeepTheirTypes() async throws {
        let p = try await asyncPair()
        do {
            _ = try await p.ga.processMessage(message: Data([0, 1]) + bytes(" not a message"))
            XCTFail("garbage was accepted")
        } catch MlsError.MalformedInput {}
        do {
            try await p.ga.mergePendingCommit()
            XCTFail("merged a commit that was never made")
        } catch MlsError.NoPendingCommit {}
        do {
            _ = try await AsyncClient.open(storage: MapStorage(), identity: Data())
            XCTFail("an empty identity was accepted")
        } catch MlsError.ValidationFailed {}
        let pending = try await p.ga.pendingCommit()
        XCTAssertNil(pending)
    }
}
