// Storage: the Swift MapStorage, the built-in stores, restarts, and a host
// backend whose commit throws.
import Foundation
import XCTest

@testable import MLSKit

final class StorageTests: XCTestCase {
    func testMapStorageAppliesBatchesInOrder() throws {
        let storage = MapStorage()
        XCTAssertNil(try storage.read(key: bytes("k1")))
        try storage.commit(writes: [
            .put(key: bytes("k1"), value: bytes("v1")),
            .put(key: bytes("k2"), value: bytes("v2")),
            .put(key: bytes("k1"), value: bytes("v1b")),
            .delete(key: bytes("k2")),
            .delete(key: bytes("absent")),
        ])
        XCTAssertEqual(try storage.read(key: bytes("k1")), bytes("v1b"))
        XCTAssertNil(try storage.read(key: bytes("k2")))
        XCTAssertEqual(storage.count, 1)
        XCTAssertEqual(storage.snapshot(), [bytes("k1"): bytes("v1b")])
    }

    func testBuiltInStoresThroughTheSwiftHelpers() throws {
        let memory = MemoryStorage()
        try memory.commit(writes: [.put(key: bytes("k"), value: bytes("v"))])
        XCTAssertEqual(try memory.read(key: bytes("k")), bytes("v"))

        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let sqlite = try SqliteStorage(path: dir.appendingPathComponent("kv.db").path)
        try sqlite.commit(writes: [.put(key: bytes("k"), value: bytes("v")), .delete(key: bytes("gone"))])
        XCTAssertEqual(try sqlite.read(key: bytes("k")), bytes("v"))

        // A client on each built-in store works end to end.
        let alice = try makeClient("alice", storage: MemoryStorage())
        let bob = try makeClient("bob", storage: SqliteStorage(path: dir.appendingPathComponent("bob.db").path))
        let group = try alice.createGroup()
        let bundle = try group.addMembers(keyPackages: [oneKeyPackage(bob)])
        try group.mergePendingCommit()
        let bobGroup = try bob.joinGroup(welcome: XCTUnwrap(bundle.welcome))
        XCTAssertEqual(text(try decrypt(bobGroup, group.encrypt(plaintext: bytes("hi"))).plaintext), "hi")
    }

    func testSqliteStorageErrorsAreTyped() throws {
        expectMlsError("a folder that does not exist", {
            try SqliteStorage(path: "/nonexistent-mlskit-folder/sub/kv.db")
        }) {
            if case .StorageBackend = $0 { return true }
            return false
        }
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("garbage.db")
        try Data(repeating: 0x5A, count: 4096).write(to: path)
        expectMlsError("a file that is not a database", {
            let storage = try SqliteStorage(path: path.path)
            return try storage.read(key: bytes("k"))
        }) {
            if case .StorageBackend = $0 { return true }
            return false
        }
    }

    /// A second client on one store takes it over: the first writes nothing more.
    func testASecondClientOnOneStoreTakesItOver() throws {
        let storage = MapStorage()
        let app = try makeClient("dave", storage: storage)
        let group = try app.createGroup()
        let extensionClient = try makeClient("dave", storage: storage)
        expectMlsError("encrypt", { _ = try group.encrypt(plaintext: bytes("stale")) }) {
            if case .StorageTakenOver = $0 { return true }
            return false
        }
        let taken = try extensionClient.group(groupId: group.id())
        _ = try taken.selfUpdate()
        try taken.mergePendingCommit()
        XCTAssertEqual(try taken.epoch(), 1)
    }

    /// An encrypted store moves to a new key; the old one no longer opens it.
    func testAnEncryptedStoreMovesToANewKey() throws {
        let inner = MapStorage()
        let oldKey = Data(repeating: 1, count: 32)
        let newKey = Data(repeating: 2, count: 32)
        let groupId = try makeClient("alice", storage: try encryptedStorage(inner: inner, key: oldKey))
            .createGroup().id()
        try rekeyEncryptedStorage(inner: inner, oldKey: oldKey, newKey: newKey)
        XCTAssertThrowsError(try encryptedStorage(inner: inner, key: oldKey))
        let reopened = try makeClient("alice", storage: try encryptedStorage(inner: inner, key: newKey))
        XCTAssertEqual(try reopened.groupIds(), [groupId])
    }

    /// A restart: the first Client is freed, a second one opens the same MapStorage.
    func testRestartFromSharedMapStorage() throws {
        let storage = MapStorage()
        try restartScenario(first: { storage }, reopen: { storage })
    }

    /// A restart from a SQLite file: a new store object on the same file.
    func testRestartFromSqliteStorage() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("alice.db").path
        // The first store is made inside the scenario, so ARC frees it (and its
        // file lock) with alice's client before the reopen.
        try restartScenario(first: { try SqliteStorage(path: path) }, reopen: { try SqliteStorage(path: path) })
    }

    private func restartScenario(first: () throws -> StorageBackend, reopen: () throws -> StorageBackend) throws {
        let bob: Party
        let carol: Party
        let groupId: Data
        let fromBob: Data
        let pending: CommitBundle
        do {
            let (alice, b, c) = try threeMembers(alice: first())
            (bob, carol) = (b, c)
            groupId = alice.group.id()
            fromBob = try bob.group.encrypt(plaintext: bytes("sent while alice was away"))
            // A staged commit of ours survives the restart.
            pending = try alice.group.selfUpdate()
            // alice, her Client and her Group handle are freed here (ARC).
        }

        do {
            let alice = try makeClient("alice", storage: reopen())
            XCTAssertEqual(try alice.groupIds(), [groupId])
            let group = try alice.group(groupId: groupId)
            XCTAssertEqual(try group.epoch(), 1)
            XCTAssertEqual(try group.members().map(\.identity), [bytes("alice"), bytes("bob"), bytes("carol")])
            XCTAssertEqual(text(try decrypt(group, fromBob).plaintext), "sent while alice was away")

            let stillPending = try XCTUnwrap(try group.pendingCommit())
            XCTAssertEqual(stillPending.newEpoch, 2)
            try group.mergePendingCommit()
            try applyCommit(bob.group, pending.commit)
            try applyCommit(carol.group, pending.commit)
            try assertAgree([group, bob.group, carol.group])

            let reply = try group.encrypt(plaintext: bytes("back again"))
            XCTAssertEqual(text(try decrypt(bob.group, reply).plaintext), "back again")
            XCTAssertEqual(text(try decrypt(carol.group, reply).plaintext), "back again")

            // alice's client and group are freed here (and a SQLite store's file lock).
        }

        // The store belongs to Alice: another identity is refused.
        expectMlsError("another identity on Alice's store", { try makeClient("mallory", storage: reopen()) }) {
            if case .IdentityMismatch = $0 { return true }
            return false
        }
    }

    func testFailingCommitIsTypedLeavesGroupUnchangedAndRetryWorks() throws {
        let flaky = FlakyStorage()
        let (alice, bob, carol) = try threeMembers(alice: flaky)
        let before = flaky.inner.snapshot()
        let authenticator = try alice.group.epochAuthenticator()

        flaky.fail(.storageError)
        let isDiskFull: (MlsError) -> Bool = {
            if case let .StorageBackend(reason) = $0 { return reason == diskFullReason }
            return false
        }
        expectMlsError("self update with a failing store", { try alice.group.selfUpdate() }, matches: isDiskFull)
        expectMlsError("encrypt with a failing store", { try alice.group.encrypt(plaintext: bytes("lost")) },
                       matches: isDiskFull)
        expectMlsError("remove with a failing store", { try alice.group.removeMembers(indices: [2]) },
                       matches: isDiskFull)
        XCTAssertGreaterThanOrEqual(flaky.failures, 3)

        // Nothing was written and the group is as it was.
        XCTAssertEqual(flaky.inner.snapshot(), before)
        XCTAssertEqual(try alice.group.epoch(), 1)
        XCTAssertNil(try alice.group.pendingCommit())
        XCTAssertEqual(try alice.group.members().count, 3)
        XCTAssertEqual(try alice.group.epochAuthenticator(), authenticator)

        // Retry once the store works again.
        flaky.fail(.none)
        let update = try alice.group.selfUpdate()
        try alice.group.mergePendingCommit()
        try applyCommit(bob.group, update.commit)
        try applyCommit(carol.group, update.commit)
        try assertAgree([alice.group, bob.group, carol.group])
        let message = try alice.group.encrypt(plaintext: bytes("after the retry"))
        XCTAssertEqual(text(try decrypt(bob.group, message).plaintext), "after the retry")
    }

    func testFailingMergeOfAnIncomingCommitCanBeRetried() throws {
        let flaky = FlakyStorage()
        let (alice, bob, carol) = try threeMembers(bob: flaky)
        let update = try alice.group.selfUpdate()
        try alice.group.mergePendingCommit()

        let staged = try stage(bob.group, update.commit)
        flaky.fail(.storageError)
        expectMlsError("merge with a failing store", { try staged.merge() }) {
            if case let .StorageBackend(reason) = $0 { return reason == diskFullReason }
            return false
        }
        XCTAssertEqual(try bob.group.epoch(), 1)

        flaky.fail(.none)
        try staged.merge()
        XCTAssertEqual(try bob.group.epoch(), 2)
        try applyCommit(carol.group, update.commit)
        try assertAgree([alice.group, bob.group, carol.group])
    }

    func testPlainSwiftErrorFromTheBackendIsTyped() throws {
        let flaky = FlakyStorage()
        let (alice, bob, _) = try threeMembers(alice: flaky)
        flaky.fail(.plainSwiftError)
        expectMlsError("a backend throwing a non-StorageError", { try alice.group.encrypt(plaintext: bytes("x")) }) {
            if case let .StorageBackend(reason) = $0 { return reason.contains("host failure") }
            return false
        }
        flaky.fail(.none)
        let message = try alice.group.encrypt(plaintext: bytes("fine again"))
        XCTAssertEqual(text(try decrypt(bob.group, message).plaintext), "fine again")
    }
}

func temporaryDirectory() throws -> URL {
    let dir = FileManager.default.temporaryDirectory
        .appendingPathComponent("mlskit-swift-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}
