// Shared helpers for the MLSKit Swift tests: clients, a three-member group,
// message delivery, and a storage backend that fails on demand.
import Foundation
import XCTest

@testable import MLSKit

/// The custom proposal type every test client supports (private-use range).
let customProposalType: UInt16 = sharedConstants["CUSTOM_PROPOSAL_TYPE"]!

/// The values every language's tests share (tests/common/constants.txt).
let sharedConstants: [String: UInt16] = {
    let path = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent()
        .appendingPathComponent("../../../../tests/common/constants.txt").standardized.path
    let text = (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
    var values: [String: UInt16] = [:]
    for line in text.split(separator: "\n") where !line.hasPrefix("#") {
        let parts = line.split(separator: "=").map { $0.trimmingCharacters(in: .whitespaces) }
        if parts.count == 2, let value = UInt16(parts[1].dropFirst(2), radix: 16) {
            values[parts[0]] = value
        }
    }
    return values
}()

/// Every test client advertises `customProposalType`.
let clientOptions = ClientOptions(customExtensionTypes: [], customProposalTypes: [customProposalType])

func bytes(_ text: String) -> Data { Data(text.utf8) }

func text(_ data: Data) -> String { String(decoding: data, as: UTF8.self) }

func makeClient(_ name: String, storage: StorageBackend = MapStorage()) throws -> Client {
    try Client(storage: storage, identity: bytes(name), options: clientOptions)
}

func oneKeyPackage(_ client: Client) throws -> Data {
    let packages = try client.createKeyPackages(count: 1)
    XCTAssertEqual(packages.count, 1)
    return packages[0]
}

struct UnexpectedMessage: Error, CustomStringConvertible {
    let description: String
}

/// Decrypts an application message or fails.
@discardableResult
func decrypt(_ group: Group, _ message: Data) throws -> ApplicationMessage {
    switch try group.processMessage(message: message) {
    case let .application(received):
        return received
    case let other:
        throw UnexpectedMessage(description: "expected an application message, got \(other)")
    }
}

/// Processes a commit and returns it staged (not merged).
func stage(_ group: Group, _ message: Data) throws -> StagedCommit {
    switch try group.processMessage(message: message) {
    case let .commit(staged):
        return staged
    case let other:
        throw UnexpectedMessage(description: "expected a commit, got \(other)")
    }
}

/// Processes and merges a commit; returns what it did.
@discardableResult
func applyCommit(_ group: Group, _ message: Data) throws -> CommitInfo {
    let staged = try stage(group, message)
    let info = staged.info()
    try staged.merge()
    return info
}

/// Processes a proposal and returns what it proposes.
@discardableResult
func receiveProposal(_ group: Group, _ message: Data) throws -> ProposalInfo {
    switch try group.processMessage(message: message) {
    case let .proposal(proposal):
        return proposal
    case let other:
        throw UnexpectedMessage(description: "expected a proposal, got \(other)")
    }
}

/// One member's view: its client, its storage and its group handle.
struct Party {
    let name: String
    let client: Client
    let storage: StorageBackend
    let group: Group
}

/// Alice creates a group and adds Bob and Carol in one commit; everyone is at epoch 1.
func threeMembers(
    alice aliceStorage: StorageBackend = MapStorage(),
    bob bobStorage: StorageBackend = MapStorage(),
    carol carolStorage: StorageBackend = MapStorage(),
    groupId: Data? = nil
) throws -> (alice: Party, bob: Party, carol: Party) {
    let alice = try makeClient("alice", storage: aliceStorage)
    let bob = try makeClient("bob", storage: bobStorage)
    let carol = try makeClient("carol", storage: carolStorage)
    let aliceGroup = try alice.createGroup(options: GroupOptions(groupId: groupId))
    let bundle = try aliceGroup.addMembers(keyPackages: [oneKeyPackage(bob), oneKeyPackage(carol)])
    try aliceGroup.mergePendingCommit()
    let welcome = try XCTUnwrap(bundle.welcome)
    let bobGroup = try bob.joinGroup(welcome: welcome)
    let carolGroup = try carol.joinGroup(welcome: welcome)
    return (
        Party(name: "alice", client: alice, storage: aliceStorage, group: aliceGroup),
        Party(name: "bob", client: bob, storage: bobStorage, group: bobGroup),
        Party(name: "carol", client: carol, storage: carolStorage, group: carolGroup)
    )
}

/// Asserts that all groups agree: epoch, exporter secret and epoch authenticator.
func assertAgree(_ groups: [Group], file: StaticString = #filePath, line: UInt = #line) throws {
    let first = try XCTUnwrap(groups.first, file: file, line: line)
    let epoch = try first.epoch()
    let secret = try first.exportSecret(label: "test", context: bytes("ctx"), length: 32)
    let authenticator = try first.epochAuthenticator()
    XCTAssertEqual(secret.count, 32, file: file, line: line)
    for group in groups.dropFirst() {
        XCTAssertEqual(try group.epoch(), epoch, "epoch", file: file, line: line)
        XCTAssertEqual(try group.exportSecret(label: "test", context: bytes("ctx"), length: 32), secret,
                       "exporter secret", file: file, line: line)
        XCTAssertEqual(try group.epochAuthenticator(), authenticator, "epoch authenticator", file: file, line: line)
    }
}

/// The reason the failing backend gives; it must reach the app unchanged.
let diskFullReason = "disk full (injected by the Swift test)"

/// A Swift error that is not a `StorageError`, to check how MLSKit reports it.
struct HostFailure: Error, CustomStringConvertible {
    var description: String { "host failure (a plain Swift error)" }
}

/// A MapStorage whose `commit` throws while `failing` is set, without writing anything.
final class FlakyStorage: StorageBackend, @unchecked Sendable {
    enum Mode { case none, storageError, plainSwiftError }

    let inner = MapStorage()
    private let lock = NSLock()
    private var mode = Mode.none
    private var failed = 0

    func fail(_ mode: Mode) {
        lock.lock()
        defer { lock.unlock() }
        self.mode = mode
    }

    var failures: Int {
        lock.lock()
        defer { lock.unlock() }
        return failed
    }

    func read(key: Data) throws -> Data? {
        try inner.read(key: key)
    }

    func commit(writes: [StorageWrite]) throws {
        lock.lock()
        let mode = self.mode
        if mode != .none { failed += 1 }
        lock.unlock()
        switch mode {
        case .none: try inner.commit(writes: writes)
        case .storageError: throw StorageError.Backend(reason: diskFullReason)
        case .plainSwiftError: throw HostFailure()
        }
    }
}

/// Runs `body`, expecting it to throw an `MlsError` that `matches` accepts.
func expectMlsError<T>(
    _ what: String,
    file: StaticString = #filePath,
    line: UInt = #line,
    _ body: () throws -> T,
    matches: (MlsError) -> Bool
) {
    do {
        _ = try body()
        XCTFail("\(what): expected an MlsError, nothing was thrown", file: file, line: line)
    } catch let error as MlsError {
        XCTAssertTrue(matches(error), "\(what): unexpected \(error)", file: file, line: line)
    } catch {
        XCTFail("\(what): expected an MlsError, got \(type(of: error)): \(error)", file: file, line: line)
    }
}
