// Eight threads at once: four on one shared group (each through its own
// handle; one of them also commits midway) and four each on their own group
// (each commits midway). No deadlock, no crash, no lost update: afterwards
// every member decrypts every message, and a restart from storage continues
// where the threads stopped.
import Foundation
import XCTest

@testable import MLSKit

/// Messages and errors the threads report, guarded by a lock.
private final class Recorder: @unchecked Sendable {
    private let lock = NSLock()
    private var messages: [Data: [Data]] = [:]   // group id -> messages, in send order
    private var errors: [String] = []

    func record(_ groupId: Data, _ message: Data) {
        lock.lock()
        defer { lock.unlock() }
        messages[groupId, default: []].append(message)
    }

    func fail(_ what: String) {
        lock.lock()
        defer { lock.unlock() }
        errors.append(what)
    }

    var allErrors: [String] {
        lock.lock()
        defer { lock.unlock() }
        return errors
    }

    func sent(_ groupId: Data) -> [Data] {
        lock.lock()
        defer { lock.unlock() }
        return messages[groupId] ?? []
    }
}

/// Releases all threads at the same moment.
private final class StartLine: @unchecked Sendable {
    private let condition = NSCondition()
    private var waiting = 0
    private let count: Int

    init(count: Int) { self.count = count }

    func arriveAndWait() {
        condition.lock()
        defer { condition.unlock() }
        waiting += 1
        if waiting == count {
            condition.broadcast()
        } else {
            while waiting < count { condition.wait() }
        }
    }
}

final class ThreadsTests: XCTestCase {
    private static let perThread = 12

    func testEightThreadsOnSharedAndSeparateGroups() throws {
        let aliceStorage = MapStorage()
        let alice = try makeClient("alice", storage: aliceStorage)
        let bob = try makeClient("bob")
        let carol = try makeClient("carol")

        // Five groups of alice, bob and carol: one shared by four threads, four solo.
        var receivers: [Data: [Group]] = [:]
        var groupIds: [Data] = []
        for n in 0..<5 {
            let group = try alice.createGroup(options: GroupOptions(groupId: bytes("group-\(n)")))
            let bundle = try group.addMembers(keyPackages: [oneKeyPackage(bob), oneKeyPackage(carol)])
            try group.mergePendingCommit()
            let welcome = try XCTUnwrap(bundle.welcome)
            // The threads may record messages a little out of send order (a thread can
            // be descheduled between encrypt and record), so receivers accept any order.
            let anyOrder = JoinOptions(outOfOrderTolerance: 1000)
            receivers[group.id()] = [
                try bob.joinGroup(welcome: welcome, options: anyOrder),
                try carol.joinGroup(welcome: welcome, options: anyOrder),
            ]
            groupIds.append(group.id())
        }
        let sharedId = groupIds[0]

        let recorder = Recorder()
        let start = StartLine(count: 8)
        let done = DispatchGroup()
        let perThread = Self.perThread
        var expected: [Data: Set<String>] = [:]

        for t in 0..<8 {
            done.enter()
            // Threads 0-3 use the shared group, each through its own handle;
            // threads 4-7 each own one group.
            let groupId = t < 4 ? sharedId : groupIds[t - 3]
            expected[groupId, default: []].formUnion((0..<perThread).map { "t\(t)-m\($0)" })
            let thread = Thread {
                defer { done.leave() }
                start.arriveAndWait()
                do {
                    let group = try alice.group(groupId: groupId)
                    for k in 0..<perThread {
                        if (t == 3 || t >= 4) && k == perThread / 2 {
                            // A commit in the middle: other threads keep encrypting.
                            let update = try group.selfUpdate()
                            try group.mergePendingCommit()
                            recorder.record(groupId, update.commit)
                        }
                        let message = try group.encrypt(plaintext: bytes("t\(t)-m\(k)"), aad: bytes("thread \(t)"))
                        recorder.record(groupId, message)
                        // Readers run between writers.
                        _ = try group.members()
                        _ = try group.exportSecret(label: "thread", context: Data(), length: 16)
                    }
                } catch {
                    recorder.fail("thread \(t): \(error)")
                }
            }
            thread.stackSize = 4 << 20
            thread.start()
        }

        XCTAssertEqual(done.wait(timeout: .now() + 300), .success, "threads did not finish: deadlock?")
        XCTAssertEqual(recorder.allErrors, [])

        // Every member decrypts every message: each epoch's messages in record
        // order, then the commit that ends the epoch.
        for groupId in groupIds {
            let sent = recorder.sent(groupId)
            let expectedTexts = expected[groupId]!
            XCTAssertEqual(sent.count, expectedTexts.count + 1, "the messages and one commit")
            for receiver in receivers[groupId]! {
                var texts: Set<String> = []
                for (position, message) in try deliveryOrder(sent).enumerated() {
                    do {
                        switch try receiver.processMessage(message: message) {
                        case let .application(app):
                            XCTAssertTrue(texts.insert(text(app.plaintext)).inserted, "decrypted twice")
                        case let .commit(staged):
                            try staged.merge()
                        case let other:
                            XCTFail("unexpected \(other)")
                        }
                    } catch {
                        let info = try parseMessage(message: message)
                        XCTFail("\(text(groupId)) member \(try receiver.ownIndex()): message \(position) of \(sent.count) "
                                + "(epoch \(info.epoch ?? 0), \(String(describing: info.contentType))): \(error)")
                    }
                }
                XCTAssertEqual(texts.count, expectedTexts.count)
                XCTAssertEqual(expectedTexts.subtracting(texts), [], "not decrypted")
            }
            let group = try alice.group(groupId: groupId)
            try assertAgree([group] + receivers[groupId]!)
        }

        // A restart from Alice's store continues without reusing any key.
        let restarted = try makeClient("alice", storage: aliceStorage)
        for groupId in groupIds {
            let message = try restarted.group(groupId: groupId).encrypt(plaintext: bytes("after restart"))
            for receiver in receivers[groupId]! {
                XCTAssertEqual(text(try decrypt(receiver, message).plaintext), "after restart")
            }
        }
    }

    /// Orders messages by epoch (stable within an epoch), each epoch's commit last.
    private func deliveryOrder(_ messages: [Data]) throws -> [Data] {
        let tagged = try messages.enumerated().map { index, message -> (UInt64, Int, Int, Data) in
            let info = try parseMessage(message: message)
            let epoch = try XCTUnwrap(info.epoch)
            return (epoch, info.contentType == .commit ? 1 : 0, index, message)
        }
        return tagged.sorted { ($0.0, $0.1, $0.2) < ($1.0, $1.1, $1.2) }.map(\.3)
    }
}
