// Hostile and out-of-order input: every failure is a typed MlsError and
// leaves the group usable.
import Foundation
import XCTest

@testable import MLSKit

final class ErrorsTests: XCTestCase {
    private func isMalformed(_ error: MlsError) -> Bool {
        if case .MalformedInput = error { return true }
        return false
    }

    func testMalformedInputIsTyped() throws {
        let (alice, bob, _) = try threeMembers()
        let garbage = Data([0xDE, 0xAD, 0xBE, 0xEF, 0x00, 0x01])
        let valid = try alice.group.encrypt(plaintext: bytes("real"))
        let truncated = valid.prefix(valid.count / 2)

        for (name, input) in [("empty", Data()), ("garbage", garbage), ("truncated", Data(truncated))] {
            expectMlsError("processMessage(\(name))", { try bob.group.processMessage(message: input) },
                           matches: isMalformed)
            expectMlsError("parseMessage(\(name))", { try parseMessage(message: input) }, matches: isMalformed)
            expectMlsError("validateKeyPackage(\(name))", { try validateKeyPackage(keyPackage: input) },
                           matches: isMalformed)
            expectMlsError("joinGroup(\(name))", { try bob.client.joinGroup(welcome: input) },
                           matches: isMalformed)
            expectMlsError("inspectWelcome(\(name))", { try bob.client.inspectWelcome(welcome: input) },
                           matches: isMalformed)
            expectMlsError("joinByExternalCommit(\(name))", {
                try makeClient("dave").joinByExternalCommit(groupInfo: input)
            }, matches: isMalformed)
        }
        expectMlsError("addMembers(garbage)", { try alice.group.addMembers(keyPackages: [garbage]) }) {
            switch $0 {
            case .MalformedInput, .InvalidKeyPackage: return true
            default: return false
            }
        }

        // Nothing changed: the real message still decrypts, the group still works.
        XCTAssertNil(try alice.group.pendingCommit())
        XCTAssertEqual(text(try decrypt(bob.group, valid).plaintext), "real")
        let reply = try bob.group.encrypt(plaintext: bytes("still here"))
        XCTAssertEqual(text(try decrypt(alice.group, reply).plaintext), "still here")
    }

    func testMessageFromAFutureEpochIsWrongEpoch() throws {
        let (alice, bob, carol) = try threeMembers()
        var commits: [Data] = []
        for _ in 0..<2 {
            commits.append(try alice.group.selfUpdate().commit)
            try alice.group.mergePendingCommit()
        }
        let future = try alice.group.encrypt(plaintext: bytes("from epoch 3"))
        expectMlsError("a message from epoch 3 at epoch 1", { try bob.group.processMessage(message: future) }) {
            if case let .WrongEpoch(messageEpoch, groupEpoch) = $0 {
                return messageEpoch == 3 && groupEpoch == 1
            }
            return false
        }
        // A commit for epoch 2 while still at 1 is out of order too.
        expectMlsError("the second commit first", { try carol.group.processMessage(message: commits[1]) }) {
            if case let .WrongEpoch(messageEpoch, groupEpoch) = $0 {
                return messageEpoch == 2 && groupEpoch == 1
            }
            return false
        }
        XCTAssertEqual(try bob.group.epoch(), 1)

        // Delivered in order, everything is fine.
        for receiver in [bob.group, carol.group] {
            for commit in commits { try applyCommit(receiver, commit) }
            XCTAssertEqual(text(try decrypt(receiver, future).plaintext), "from epoch 3")
        }
        try assertAgree([alice.group, bob.group, carol.group])
    }

    func testMessageForAnotherGroupIsWrongGroup() throws {
        let first = try threeMembers(groupId: bytes("group-one"))
        let second = try threeMembers(groupId: bytes("group-two"))
        let message = try second.alice.group.encrypt(plaintext: bytes("wrong room"))
        expectMlsError("a message of another group", { try first.bob.group.processMessage(message: message) }) {
            if case .WrongGroup = $0 { return true }
            return false
        }
    }

    func testRedeliveredMessageIsDuplicate() throws {
        let (alice, bob, _) = try threeMembers()
        let message = try alice.group.encrypt(plaintext: bytes("once"))
        try decrypt(bob.group, message)
        expectMlsError("the same message twice", { try bob.group.processMessage(message: message) }) {
            if case .DuplicateMessage = $0 { return true }
            return false
        }
    }

    func testApplicationMessageDescriptionPrintsNoPlaintext() throws {
        let (alice, bob, _) = try threeMembers()
        let secret = "PLAINTEXT-Sw3j-never-printed"
        let message = try decrypt(bob.group, try alice.group.encrypt(plaintext: bytes(secret)))
        XCTAssertEqual(text(message.plaintext), secret)
        // Data describes itself by its size, never its bytes.
        for description in [String(describing: message), String(reflecting: message)] {
            XCTAssertFalse(description.contains(secret), description)
            XCTAssertFalse(description.contains(bytes(secret).map { String($0) }.joined(separator: ", ")), description)
        }
    }
}
