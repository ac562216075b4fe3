"""The Python member of the cross-language test (see PROTOCOL.md)."""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "bindings", "python", "src"))

import mlskit  # noqa: E402

GROUP_ID = b"cross-language-group"


def fail(message: str) -> None:
    print(f"FAIL: {message}")
    sys.exit(1)


def main(argv: list[str]) -> None:
    wire, name, command, args = argv[0], argv[1], argv[2], argv[3:]

    def path(file: str) -> str:
        return os.path.join(wire, file)

    def read(file: str) -> bytes:
        with open(path(file), "rb") as f:
            return f.read()

    def write(file: str, data: bytes) -> None:
        with open(path(file), "wb") as f:
            f.write(data)

    client = mlskit.Client(mlskit.SqliteStorage(path(f"{name}.sqlite")), name.encode())

    if command == "keypackage":
        write(f"{name}.kp", client.create_key_packages(1)[0])
    elif command == "create":
        group = client.create_group(mlskit.GroupOptions(group_id=GROUP_ID))
        bundle = group.add_members([read(f"{kp}.kp") for kp in args])
        group.merge_pending_commit()
        if bundle.welcome is None:
            fail("no welcome")
        else:
            write("welcome.bin", bundle.welcome)
        write("commit-create.bin", bundle.commit)
    elif command == "join":
        client.join_group(read("welcome.bin"))
    elif command == "send":
        write(f"msg-{name}.bin", client.group(GROUP_ID).encrypt(f"hello from {name}".encode(), name.encode()))
    elif command == "receive":
        group = client.group(GROUP_ID)
        for sender in args:
            received = group.process_message(read(f"msg-{sender}.bin"))
            if not isinstance(received, mlskit.ReceivedMessage.APPLICATION):
                fail(f"expected an application message from {sender}")
                return
            message = received.message
            if message.plaintext != f"hello from {sender}".encode() or message.aad != sender.encode():
                fail(f"wrong content from {sender}")
            if not isinstance(message.sender, mlskit.Sender.MEMBER) or message.sender.identity != sender.encode():
                fail(f"wrong sender for {sender}")
            print(f"{name} read {message.plaintext.decode()!r}")
    elif command == "update":
        group = client.group(GROUP_ID)
        write("commit-update.bin", group.self_update().commit)
        group.merge_pending_commit()
    elif command == "remove":
        group = client.group(GROUP_ID)
        index = next(m.index for m in group.members() if m.identity == args[0].encode())
        write("commit-remove.bin", group.remove_members([index]).commit)
        group.merge_pending_commit()
    elif command == "apply":
        group = client.group(GROUP_ID)
        received = group.process_message(read(args[0]))
        if not isinstance(received, mlskit.ReceivedMessage.COMMIT):
            fail("expected a commit")
            return
        removed = received.commit.info().removes_us
        if removed != (args[1:] == ["removed"]):
            fail(f"removes_us is {removed}")
        received.commit.merge()
        if group.is_active() == removed:
            fail("activity does not match the removal")
    elif command == "report":
        group = client.group(GROUP_ID)
        report = {
            "epoch": group.epoch(),
            "members": sorted(f"{m.index}:{m.identity.decode()}" for m in group.members()),
            "exporter": group.export_secret("cross-language", b"", 32).hex(),
            "authenticator": group.epoch_authenticator().hex(),
        }
        write(f"report-{name}.json", json.dumps(report).encode())
    else:
        fail(f"unknown command {command}")
    print(f"{name}: {command} done")


if __name__ == "__main__":
    main(sys.argv[1:])
