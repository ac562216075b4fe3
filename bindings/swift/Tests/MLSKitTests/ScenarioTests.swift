// The shared MLSKit scenario, in Swift: three members, Welcome, messages both
// ways, membership changes, proposals, staged commits and an external join.
import Foundation
import XCTest

@testable import MLSKit

final class ScenarioTests: XCTestCase {
    /// The README's quick start, as written there: off the main thread, on the built-in stores.
    func testReadmeQuickStart() async throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let bobDatabasePath = dir.appendingPathComponent("bob.db").path
        let received = try await Task.detached { () throws -> String? in
            let alice = try Client(storage: MemoryStorage(), identity: Data("alice".utf8))
            let bob = try Client(storage: SqliteStorage(path: bobDatabasePath), identity: Data("bob".utf8))

            let group = try alice.createGroup()
            let bundle = try group.addMembers(keyPackages: try bob.createKeyPackages(count: 1))
            try group.mergePendingCommit()

            let bobGroup = try bob.joinGroup(welcome: bundle.welcome!)
            let ciphertext = try group.encrypt(plaintext: Data("hi bob".utf8), aad: Data("meta".utf8))
            if case let .application(message) = try bobGroup.processMessage(message: ciphertext) {
                return String(decoding: message.plaintext, as: UTF8.self)
            }
            return nil
        }.value
        XCTAssertEqual(received, "hi bob")
    }

    func testKeyPackagesWelcomeAndMessagesBothWaysWithAad() throws {
        let alice = try makeClient("alice")
        let bob = try makeClient("bob")
        let carol = try makeClient("carol")
        XCTAssertEqual(alice.identity(), bytes("alice"))

        // Key packages: validated by anyone, listed by their owner.
        let bobPackages = try bob.createKeyPackages(count: 3)
        XCTAssertEqual(bobPackages.count, 3)
        let facts = try validateKeyPackage(keyPackage: bobPackages[0])
        XCTAssertEqual(facts.identity, bytes("bob"))
        XCTAssertEqual(facts.signatureKey, try bob.signaturePublicKey())
        XCTAssertEqual(facts.ciphersuite, .x25519Aes128gcmEd25519)
        XCTAssertEqual(try bob.keyPackages().count, 3)
        XCTAssertEqual(try parseMessage(message: bobPackages[0]).kind, .keyPackage)

        let group = try alice.createGroup()
        XCTAssertEqual(try group.epoch(), 0)
        let bundle = try group.addMembers(keyPackages: [bobPackages[0], oneKeyPackage(carol)])
        XCTAssertNotNil(try group.pendingCommit())
        try group.mergePendingCommit()
        XCTAssertEqual(try group.epoch(), 1)
        let welcome = try XCTUnwrap(bundle.welcome)
        XCTAssertEqual(try parseMessage(message: welcome).kind, .welcome)

        // Bob reads the Welcome before joining it.
        let preview = try bob.inspectWelcome(welcome: welcome)
        XCTAssertEqual(preview.groupId, group.id())
        XCTAssertEqual(preview.epoch, 1)
        XCTAssertEqual(preview.members.map(\.identity), [bytes("alice"), bytes("bob"), bytes("carol")])

        let bobGroup = try bob.joinGroup(welcome: welcome)
        let carolGroup = try carol.joinGroup(welcome: welcome)
        XCTAssertEqual(try bob.keyPackages().count, 2, "the Welcome consumed one key package")
        XCTAssertEqual(try bobGroup.ownIndex(), 1)
        XCTAssertEqual(try carolGroup.members().map(\.identity), [bytes("alice"), bytes("bob"), bytes("carol")])

        // Alice to Bob and Carol, with authenticated data.
        let hello = try group.encrypt(plaintext: bytes("hello from alice"), aad: bytes("aad-1"))
        let info = try parseMessage(message: hello)
        XCTAssertEqual(info.kind, .privateMessage)
        XCTAssertEqual(info.contentType, .application)
        XCTAssertEqual(info.groupId, group.id())
        XCTAssertEqual(info.epoch, 1)
        for receiver in [bobGroup, carolGroup] {
            let message = try decrypt(receiver, hello)
            XCTAssertEqual(text(message.plaintext), "hello from alice")
            XCTAssertEqual(message.aad, bytes("aad-1"))
            XCTAssertEqual(message.sender, .member(index: 0, identity: bytes("alice")))
            XCTAssertEqual(message.epoch, 1)
        }

        // Bob back to Alice and Carol; the default AAD is empty.
        let reply = try bobGroup.encrypt(plaintext: bytes("hi alice"))
        for receiver in [group, carolGroup] {
            let message = try decrypt(receiver, reply)
            XCTAssertEqual(text(message.plaintext), "hi alice")
            XCTAssertEqual(message.aad, Data())
            XCTAssertEqual(message.sender, .member(index: 1, identity: bytes("bob")))
        }
        try assertAgree([group, bobGroup, carolGroup])
    }

    func testSelfUpdateRemoveAndLeave() throws {
        let (alice, bob, carol) = try threeMembers()

        // Bob refreshes his keys.
        let update = try bob.group.selfUpdate()
        // The staged commit's messages are kept with it, to send again after a crash.
        XCTAssertEqual(try bob.group.pendingCommitBundle()?.commit, update.commit)
        try bob.group.mergePendingCommit()
        XCTAssertNil(try bob.group.pendingCommitBundle())
        for receiver in [alice.group, carol.group] {
            let info = try applyCommit(receiver, update.commit)
            XCTAssertEqual(info.sender, .member(index: 1, identity: bytes("bob")))
            XCTAssertTrue(info.hasPath)
            XCTAssertEqual(info.newEpoch, 2)
        }
        try assertAgree([alice.group, bob.group, carol.group])

        // Alice removes Carol.
        let removal = try alice.group.removeMembers(indices: [2])
        try alice.group.mergePendingCommit()
        let bobView = try applyCommit(bob.group, removal.commit)
        XCTAssertEqual(bobView.removes, [RemovedMember(index: 2, identity: bytes("carol"))])
        XCTAssertFalse(bobView.removesUs)
        let carolStaged = try stage(carol.group, removal.commit)
        XCTAssertTrue(carolStaged.info().removesUs)
        try carolStaged.merge()
        XCTAssertFalse(try carol.group.isActive())
        expectMlsError("a removed member encrypts", { try carol.group.encrypt(plaintext: bytes("x")) }) {
            if case .GroupInactive = $0 { return true }
            return false
        }
        XCTAssertEqual(try alice.group.members().map(\.identity), [bytes("alice"), bytes("bob")])
        try assertAgree([alice.group, bob.group])

        // Bob leaves: he proposes his removal, Alice commits it.
        let leave = try bob.group.leave()
        let proposal = try receiveProposal(alice.group, leave)
        switch proposal.content {
        case .remove(index: 1, _), .selfRemove:
            break
        default:
            XCTFail("leave should propose Bob's removal, got \(proposal.content)")
        }
        let commit = try alice.group.commitPendingProposals()
        try alice.group.mergePendingCommit()
        let bobStaged = try stage(bob.group, commit.commit)
        XCTAssertTrue(bobStaged.info().removesUs)
        try bobStaged.merge()
        XCTAssertFalse(try bob.group.isActive())
        XCTAssertEqual(try alice.group.members().map(\.identity), [bytes("alice")])
        XCTAssertEqual(try alice.group.epoch(), 4)
    }

    func testProposalsByReferenceAndCustomProposal() throws {
        let (alice, bob, carol) = try threeMembers()
        let dave = try makeClient("dave")

        let add = try bob.group.proposeAdd(keyPackage: oneKeyPackage(dave), mode: .byReference)
        let custom = try bob.group.proposeCustom(
            proposalType: customProposalType, payload: bytes("poll: lunch?"), mode: .byReference)
        XCTAssertEqual(try bob.group.pendingProposals().count, 2)

        for receiver in [alice.group, carol.group] {
            let first = try receiveProposal(receiver, add.message)
            XCTAssertEqual(first.proposalRef, add.proposalRef)
            XCTAssertEqual(first.sender, .member(index: 1, identity: bytes("bob")))
            guard case let .add(identity, _) = first.content else {
                return XCTFail("expected an Add proposal, got \(first.content)")
            }
            XCTAssertEqual(identity, bytes("dave"))
            let second = try receiveProposal(receiver, custom.message)
            XCTAssertEqual(second.proposalRef, custom.proposalRef)
            XCTAssertEqual(second.content, .custom(proposalType: customProposalType, payload: bytes("poll: lunch?")))
            XCTAssertEqual(try receiver.pendingProposals().count, 2)
        }

        // Alice commits both by reference.
        let bundle = try alice.group.commitPendingProposals()
        try alice.group.mergePendingCommit()
        XCTAssertEqual(try alice.group.pendingProposals().count, 0)
        for receiver in [bob.group, carol.group] {
            let info = try applyCommit(receiver, bundle.commit)
            XCTAssertEqual(info.adds.map(\.identity), [bytes("dave")])
            XCTAssertEqual(info.customProposals,
                           [CustomProposal(proposalType: customProposalType, payload: bytes("poll: lunch?"))])
            XCTAssertEqual(Set(info.proposals.map(\.proposalRef)), [add.proposalRef, custom.proposalRef])
            XCTAssertEqual(try receiver.pendingProposals().count, 0)
        }
        let daveGroup = try dave.joinGroup(welcome: XCTUnwrap(bundle.welcome))
        try assertAgree([alice.group, bob.group, carol.group, daveGroup])

        let message = try daveGroup.encrypt(plaintext: bytes("thanks for adding me"))
        for receiver in [alice.group, bob.group, carol.group] {
            XCTAssertEqual(text(try decrypt(receiver, message).plaintext), "thanks for adding me")
        }
    }

    func testStagedCommitInspectedThenMergedAndAnotherDiscarded() throws {
        let (alice, bob, carol) = try threeMembers()
        let update = try alice.group.selfUpdate()
        try alice.group.mergePendingCommit()

        // Bob inspects the commit and discards it: nothing changes.
        let discarded = try stage(bob.group, update.commit)
        let info = discarded.info()
        XCTAssertEqual(info.sender, .member(index: 0, identity: bytes("alice")))
        XCTAssertEqual(info.newEpoch, 2)
        XCTAssertTrue(info.hasPath)
        XCTAssertFalse(info.removesUs)
        XCTAssertEqual(info.adds, [])
        XCTAssertEqual(info.removes, [])
        discarded.discard()
        XCTAssertEqual(try bob.group.epoch(), 1)
        expectMlsError("merge after discard", { try discarded.merge() }) {
            if case .StagedCommitOutdated = $0 { return true }
            return false
        }
        XCTAssertEqual(try bob.group.epoch(), 1)

        // Processing the same commit again stages it anew; this one is merged.
        let merged = try stage(bob.group, update.commit)
        XCTAssertEqual(merged.info(), info)
        try merged.merge()
        XCTAssertEqual(try bob.group.epoch(), 2)
        try applyCommit(carol.group, update.commit)
        try assertAgree([alice.group, bob.group, carol.group])
    }

    func testExternalJoin() throws {
        let (alice, bob, carol) = try threeMembers()
        let groupInfo = try alice.group.exportGroupInfo()
        let parsed = try parseMessage(message: groupInfo)
        XCTAssertEqual(parsed.kind, .groupInfo)
        XCTAssertEqual(parsed.epoch, 1)

        let dave = try makeClient("dave")
        let joined = try dave.joinByExternalCommit(groupInfo: groupInfo)
        XCTAssertEqual(joined.group.id(), alice.group.id())
        XCTAssertEqual(try joined.group.epoch(), 2)
        for receiver in [alice.group, bob.group, carol.group] {
            let info = try applyCommit(receiver, joined.commit)
            XCTAssertEqual(info.sender, .newMemberCommit)
        }
        try assertAgree([alice.group, bob.group, carol.group, joined.group])

        let hello = try joined.group.encrypt(plaintext: bytes("dave here"), aad: bytes("ext"))
        for receiver in [alice.group, bob.group, carol.group] {
            let message = try decrypt(receiver, hello)
            XCTAssertEqual(text(message.plaintext), "dave here")
            XCTAssertEqual(message.aad, bytes("ext"))
            XCTAssertEqual(message.sender, .member(index: 3, identity: bytes("dave")))
        }
        let welcomeBack = try carol.group.encrypt(plaintext: bytes("welcome dave"))
        XCTAssertEqual(text(try decrypt(joined.group, welcomeBack).plaintext), "welcome dave")
    }
    func testMissingRatchetTreeIsTypedAndTheTreeCanComeOutOfBand() throws {
        let alice = try makeClient("alice")
        let bob = try makeClient("bob")
        let group = try alice.createGroup(options: GroupOptions(join: JoinOptions(useRatchetTreeExtension: false)))
        let bundle = try group.addMembers(keyPackages: [oneKeyPackage(bob)])
        try group.mergePendingCommit()
        let welcome = try XCTUnwrap(bundle.welcome)
        let missingTree: (MlsError) -> Bool = {
            if case .MissingRatchetTree = $0 { return true }
            return false
        }
        expectMlsError("joinGroup without tree", { try bob.joinGroup(welcome: welcome) }, matches: missingTree)
        XCTAssertEqual(try bob.groupIds(), [])
        let joined = try bob.joinGroup(welcome: welcome, ratchetTree: group.exportRatchetTree())
        try assertAgree([group, joined])
        let carol = try makeClient("carol")
        let bareInfo = try group.exportGroupInfo(withRatchetTree: false)
        expectMlsError("joinByExternalCommit without tree", { try carol.joinByExternalCommit(groupInfo: bareInfo) },
                       matches: missingTree)
    }

    func testEchoOfOwnPendingCommitIsItsAcknowledgement() throws {
        for policy in [WireFormatPolicy.mixedCiphertext, .mixedPlaintext] {
            let alice = try makeClient("alice")
            let bob = try makeClient("bob")
            let group = try alice.createGroup(options: GroupOptions(join: JoinOptions(wireFormatPolicy: policy)))
            let bundle = try group.addMembers(keyPackages: [oneKeyPackage(bob)])
            for _ in 0..<2 {
                guard case .ownCommit(let newEpoch) = try group.processMessage(message: bundle.commit) else {
                    return XCTFail("\(policy): the echo of the pending commit was not recognised")
                }
                XCTAssertEqual(newEpoch, 1)
            }
            XCTAssertEqual(try group.epoch(), 0)
            try group.mergePendingCommit()
            let joined = try bob.joinGroup(welcome: XCTUnwrap(bundle.welcome))
            expectMlsError("echo after merge", { try group.processMessage(message: bundle.commit) }, matches: {
                if case .WrongEpoch = $0 { return true }
                return false
            })
            try assertAgree([group, joined])
        }
    }
}
