// The Swift member of the cross-language test (tests/cross_language/PROTOCOL.md).
// Run through bindings/swift/cross-member.sh:
//
//     MLSKitCrossMember WIRE NAME COMMAND [ARGS...]
//
// Same commands as tests/cross_language/python/member.py; state in WIRE/NAME.sqlite.
import Foundation
import MLSKit

let groupId = Data("cross-language-group".utf8)

func fail(_ message: String) -> Never {
    print("FAIL: \(message)")
    exit(1)
}

func bytes(_ text: String) -> Data { Data(text.utf8) }

func hex(_ data: Data) -> String { data.map { String(format: "%02x", $0) }.joined() }

/// A JSON string literal (the values here are plain ASCII, but escape anyway).
func jsonString(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
        default: out.unicodeScalars.append(scalar)
        }
    }
    return out + "\""
}

func run(_ argv: [String]) throws {
    guard argv.count >= 3 else { fail("usage: WIRE NAME COMMAND [ARGS...]") }
    let wire = argv[0], name = argv[1], command = argv[2]
    let args = Array(argv.dropFirst(3))

    func path(_ file: String) -> URL { URL(fileURLWithPath: wire).appendingPathComponent(file) }
    func read(_ file: String) throws -> Data { try Data(contentsOf: path(file)) }
    func write(_ file: String, _ data: Data) throws { try data.write(to: path(file)) }

    let client = try Client(storage: try SqliteStorage(path: path("\(name).sqlite").path), identity: bytes(name))

    switch command {
    case "keypackage":
        try write("\(name).kp", try client.createKeyPackages(count: 1)[0])
    case "create":
        let group = try client.createGroup(options: GroupOptions(groupId: groupId))
        let bundle = try group.addMembers(keyPackages: try args.map { try read("\($0).kp") })
        try group.mergePendingCommit()
        guard let welcome = bundle.welcome else { fail("no welcome") }
        try write("welcome.bin", welcome)
        try write("commit-create.bin", bundle.commit)
    case "join":
        _ = try client.joinGroup(welcome: try read("welcome.bin"))
    case "send":
        let group = try client.group(groupId: groupId)
        try write("msg-\(name).bin", try group.encrypt(plaintext: bytes("hello from \(name)"), aad: bytes(name)))
    case "receive":
        let group = try client.group(groupId: groupId)
        for sender in args {
            guard case let .application(message) = try group.processMessage(message: try read("msg-\(sender).bin")) else {
                fail("expected an application message from \(sender)")
            }
            if message.plaintext != bytes("hello from \(sender)") || message.aad != bytes(sender) {
                fail("wrong content from \(sender)")
            }
            guard case let .member(_, identity) = message.sender, identity == bytes(sender) else {
                fail("wrong sender for \(sender)")
            }
            print("\(name) read '\(String(decoding: message.plaintext, as: UTF8.self))'")
        }
    case "update":
        let group = try client.group(groupId: groupId)
        try write("commit-update.bin", try group.selfUpdate().commit)
        try group.mergePendingCommit()
    case "remove":
        guard let identity = args.first else { fail("remove needs an identity") }
        let group = try client.group(groupId: groupId)
        guard let member = try group.members().first(where: { $0.identity == bytes(identity) }) else {
            fail("no member \(identity)")
        }
        try write("commit-remove.bin", try group.removeMembers(indices: [member.index]).commit)
        try group.mergePendingCommit()
    case "apply":
        guard let file = args.first else { fail("apply needs a file") }
        let group = try client.group(groupId: groupId)
        guard case let .commit(staged) = try group.processMessage(message: try read(file)) else {
            fail("expected a commit")
        }
        let expectRemoved = Array(args.dropFirst()) == ["removed"]
        let removed = staged.info().removesUs
        if removed != expectRemoved { fail("removes_us is \(removed)") }
        try staged.merge()
        if try group.isActive() == removed { fail("activity does not match the removal") }
    case "report":
        let group = try client.group(groupId: groupId)
        let members = try group.members()
            .map { "\($0.index):\(String(decoding: $0.identity, as: UTF8.self))" }
            .sorted()
        let json = "{\"epoch\": \(try group.epoch())"
            + ", \"members\": [\(members.map(jsonString).joined(separator: ", "))]"
            + ", \"exporter\": \(jsonString(hex(try group.exportSecret(label: "cross-language", context: Data(), length: 32))))"
            + ", \"authenticator\": \(jsonString(hex(try group.epochAuthenticator())))}"
        try write("report-\(name).json", bytes(json))
    default:
        fail("unknown command \(command)")
    }
    print("\(name): \(command) done")
}

do {
    try run(Array(CommandLine.arguments.dropFirst()))
} catch {
    fail("\(CommandLine.arguments.dropFirst(3).first ?? "?") threw \(error)")
}
