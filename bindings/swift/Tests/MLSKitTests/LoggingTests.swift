// MLSKit's log lines reach a Swift Logger at the chosen level, and none of
// them holds a secret the scenario used.
import Foundation
import XCTest

@testable import MLSKit

final class CollectingLogger: Logger, @unchecked Sendable {
    // @unchecked: `lines` is only touched with `lock` held.
    private let lock = NSLock()
    private var lines: [(LogLevel, String, String)] = []

    func log(level: LogLevel, target: String, message: String) {
        lock.lock()
        lines.append((level, target, message))
        lock.unlock()
    }

    var all: [(LogLevel, String, String)] {
        lock.lock()
        defer { lock.unlock() }
        return lines
    }
}

final class LoggingTests: XCTestCase {
    private func forms(_ secret: Data) -> [String] {
        let head = secret.prefix(12)
        return [
            String(decoding: secret, as: UTF8.self),
            head.map { String(format: "%02x", $0) }.joined(),
            head.map { String($0) }.joined(separator: ", "),
        ]
    }

    func testLinesArriveAtTraceAndHoldNoSecret() throws {
        let logger = CollectingLogger()
        try setLogger(logger: logger, level: .trace)
        defer { try? setLogger(logger: nil, level: .error) }
        let plaintext = bytes("swift log scan Kd7n")
        let psk = Data(repeating: 0x6B, count: 32)
        let (alice, bob, carol) = try threeMembers()
        for party in [alice, bob, carol] {
            try party.client.storeExternalPsk(pskId: bytes("psk"), secret: psk)
        }
        let proposal = try alice.group.proposeExternalPsk(pskId: bytes("psk"), mode: .byReference)
        for party in [bob, carol] {
            _ = try party.group.processMessage(message: proposal.message)
        }
        let commit = try alice.group.commitPendingProposals()
        try alice.group.mergePendingCommit()
        for party in [bob, carol] {
            guard case let .commit(staged) = try party.group.processMessage(message: commit.commit) else {
                return XCTFail("expected a commit")
            }
            try staged.merge()
        }
        let sent = try alice.group.encrypt(plaintext: plaintext)
        guard case let .application(message) = try bob.group.processMessage(message: sent) else {
            return XCTFail("expected an application message")
        }
        XCTAssertEqual(message.plaintext, plaintext)
        XCTAssertThrowsError(try bob.group.processMessage(message: sent))  // a replay
        let exported = try alice.group.exportSecret(label: "scan", context: Data(), length: 32)

        let lines = logger.all
        XCTAssertGreaterThan(lines.count, 20)
        XCTAssertTrue(lines.contains { $0.1.hasPrefix("openmls") })
        XCTAssertTrue(lines.contains { $0.1.hasPrefix("mlskit") && $0.2.contains("already processed") })
        for (level, target, text) in lines {
            for secret in [plaintext, psk, exported] {
                for form in forms(secret) {
                    XCTAssertFalse(text.contains(form), "\(level) \(target) holds a secret: \(text)")
                }
            }
        }
        // The level filter holds.
        setLogLevel(level: .error)
        let before = logger.all.count
        _ = try alice.group.encrypt(plaintext: bytes("quiet"))
        XCTAssertEqual(logger.all.count, before)
    }
}
