#!/usr/bin/env python3
"""MLSKit demo: three members with SQLite storage, a staged-commit inspection,
a removal, and a restart of one member in a new process.

Run:  python bindings/python/examples/demo.py
Exits non-zero if any check fails.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, List

SRC = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
if SRC not in sys.path:
    sys.path.insert(0, SRC)

import mlskit  # noqa: E402

FAILURES: List[str] = []


def say(who: str, text: str) -> None:
    print(f"[{who:>5}] {text}", flush=True)


def check(cond: bool, what: str) -> None:
    if cond:
        print(f"        ok: {what}", flush=True)
    else:
        print(f"      FAIL: {what}", flush=True)
        FAILURES.append(what)


def hexp(b: bytes, n: int = 8) -> str:
    return bytes(b).hex()[: 2 * n]


def sender_name(sender: Any) -> str:
    if isinstance(sender, mlskit.Sender.MEMBER):
        return f"{bytes(sender.identity).decode()} (leaf {sender.index})"
    if isinstance(sender, mlskit.Sender.NEW_MEMBER_COMMIT):
        return "a new member (external commit)"
    return str(sender)


def describe(info: Any) -> str:
    parts = [f"by {sender_name(info.sender)} -> epoch {info.new_epoch}"]
    if info.adds:
        parts.append("adds " + ", ".join(bytes(a.identity).decode() for a in info.adds))
    if info.removes:
        parts.append(
            "removes " + ", ".join(f"{bytes(r.identity or b'?').decode()} (leaf {r.index})" for r in info.removes)
        )
    if info.updates:
        parts.append(f"updates leaves {list(info.updates)}")
    if info.psk_ids:
        parts.append(f"injects PSKs {[bytes(p).decode() for p in info.psk_ids]}")
    if info.has_path:
        parts.append("committer refreshes its keys")
    if info.removes_us:
        parts.append("REMOVES US")
    return "; ".join(parts)


def receive(who: str, group: Any, message: bytes, inspect: bool = False) -> Any:
    """Processes one incoming message and prints what it was."""
    r = group.process_message(message)
    if isinstance(r, mlskit.ReceivedMessage.APPLICATION):
        say(who, f"got from {sender_name(r.message.sender)}: {bytes(r.message.plaintext).decode()!r}"
            + (f" (aad {bytes(r.message.aad).decode()!r})" if r.message.aad else ""))
        return r.message
    if isinstance(r, mlskit.ReceivedMessage.COMMIT):
        info = r.commit.info()
        if inspect:
            say(who, f"staged commit, inspecting before merge: {describe(info)}")
        r.commit.merge()
        say(who, f"merged commit, now at epoch {group.epoch()}")
        return info
    if isinstance(r, mlskit.ReceivedMessage.PROPOSAL):
        say(who, f"got a proposal from {sender_name(r.proposal.sender)}")
        return r.proposal
    say(who, "own message echoed back, nothing to do")
    return None


# --------------------------------------------------------------------------
# Child process: bob restarts from his SQLite file.
# --------------------------------------------------------------------------


def child_main(workdir: Path, gid_hex: str) -> int:
    who = "bob*"
    say(who, f"new process pid {os.getpid()}: reopening {workdir / 'bob.sqlite'}")
    bob = mlskit.Client(mlskit.SqliteStorage(str(workdir / "bob.sqlite")), b"bob")
    gid = bytes.fromhex(gid_hex)
    check(bob.group_ids() == [gid], "bob's database lists the group")
    group = bob.group(gid)
    say(who, f"group loaded at epoch {group.epoch()} with {[bytes(m.identity).decode() for m in group.members()]}")
    inbox = sorted((workdir / "inbox").iterdir())
    for path in inbox:
        say(who, f"processing pending {path.name}")
        receive(who, group, path.read_bytes(), inspect=True)
    reply = group.encrypt(b"back after a restart, all caught up", b"from-new-process")
    (workdir / "reply.bin").write_bytes(reply)
    say(who, f"wrote a reply to reply.bin at epoch {group.epoch()}")
    return 1 if FAILURES else 0


# --------------------------------------------------------------------------
# Main process
# --------------------------------------------------------------------------


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="mlskit-demo-") as tmp:
        workdir = Path(tmp)
        say("demo", f"MLSKit, ciphersuites {[mlskit.ciphersuite_code(c) for c in mlskit.supported_ciphersuites()]}; databases in {workdir}")
        alice = mlskit.Client(mlskit.SqliteStorage(str(workdir / "alice.sqlite")), b"alice")
        bob = mlskit.Client(mlskit.SqliteStorage(str(workdir / "bob.sqlite")), b"bob")
        carol = mlskit.Client(mlskit.SqliteStorage(str(workdir / "carol.sqlite")), b"carol")
        for c in (alice, bob, carol):
            say(bytes(c.identity()).decode(), f"signature key {hexp(c.signature_public_key())}...")

        bob_kp = bob.create_key_packages(2)
        carol_kp = carol.create_key_packages(1, mlskit.KeyPackageOptions(lifetime_seconds=7 * 24 * 3600))
        say("bob", f"published {len(bob_kp)} key packages")
        say("carol", "published 1 key package, valid 7 days")
        kp_info = mlskit.validate_key_package(carol_kp[0])
        check(kp_info.identity == b"carol", "carol's key package validates and names carol")

        ga = alice.create_group()
        gid = ga.id()
        say("alice", f"created group {hexp(gid)}... at epoch {ga.epoch()}")

        bundle = ga.add_members([bob_kp[0]])
        ga.merge_pending_commit()
        assert bundle.welcome is not None
        winfo = bob.inspect_welcome(bundle.welcome)
        say("bob", f"Welcome would put me at leaf {winfo.own_index} of {[bytes(m.identity).decode() for m in winfo.members]}")
        gb = bob.join_group(bundle.welcome)
        say("bob", f"joined at epoch {gb.epoch()}")

        bundle = gb.add_members(carol_kp)
        gb.merge_pending_commit()
        say("bob", "added carol")
        receive("alice", ga, bundle.commit, inspect=True)
        assert bundle.welcome is not None
        gc_ = carol.join_group(bundle.welcome)
        say("carol", f"joined at epoch {gc_.epoch()} as leaf {gc_.own_index()}")
        check(ga.epoch() == gb.epoch() == gc_.epoch() == 2, "everyone is at epoch 2")

        for sender, g, text in (("alice", ga, "hi all"), ("bob", gb, "hello!"), ("carol", gc_, "hey there")):
            msg = g.encrypt(text.encode(), b"")
            say(sender, f"sent {text!r} ({len(msg)} bytes)")
            for name, other in (("alice", ga), ("bob", gb), ("carol", gc_)):
                if other is not g:
                    got = receive(name, other, msg)
                    check(bytes(got.plaintext) == text.encode(), f"{name} decrypted {sender}'s message")

        bundle = gc_.self_update()
        gc_.merge_pending_commit()
        say("carol", "refreshed her keys (self update)")
        for name, g in (("alice", ga), ("bob", gb)):
            info = receive(name, g, bundle.commit, inspect=True)
            check(info.has_path and not info.adds and not info.removes, f"{name} saw a pure key refresh")

        bundle = ga.remove_members([gc_.own_index()])
        ga.merge_pending_commit()
        say("alice", "removed carol")
        info = receive("bob", gb, bundle.commit, inspect=True)
        check([bytes(r.identity or b"") for r in info.removes] == [b"carol"], "bob saw carol's removal")
        info = receive("carol", gc_, bundle.commit, inspect=True)
        check(info.removes_us and not gc_.is_active(), "carol knows she was removed")
        carol.delete_group(gid)
        say("carol", "deleted her copy of the group")

        # Bob goes offline; alice keeps talking and changes the epoch.
        say("bob", "goes offline (process state dropped; only bob.sqlite remains)")
        # Every reference goes (the loop above left one in `g`): SqliteStorage
        # keeps its file locked while any object of bob's lives, and bob's new
        # process would get MlsError.StorageInUse.
        del gb, bob, g
        gc.collect()
        inbox = workdir / "inbox"
        inbox.mkdir()
        (inbox / "01-message.bin").write_bytes(ga.encrypt(b"bob, are you there?", b""))
        bundle = ga.self_update()
        ga.merge_pending_commit()
        (inbox / "02-commit.bin").write_bytes(bundle.commit)
        (inbox / "03-message.bin").write_bytes(ga.encrypt(b"new epoch, same group", b"note"))
        say("alice", f"queued 3 messages for bob; alice now at epoch {ga.epoch()}")

        say("demo", "restarting bob in a new process")
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--bob-child", str(workdir), gid.hex()])
        check(proc.returncode == 0, "bob's new process finished its checks")
        reply = (workdir / "reply.bin").read_bytes()
        got = receive("alice", ga, reply)
        check(bytes(got.plaintext) == b"back after a restart, all caught up", "alice read bob's reply from the new process")

        # Bob reopens here too, and alice brings carol back with a new key package.
        bob = mlskit.Client(mlskit.SqliteStorage(str(workdir / "bob.sqlite")), b"bob")
        gb = bob.group(gid)
        say("bob", f"reopened in this process at epoch {gb.epoch()}")
        bundle = ga.add_members(carol.create_key_packages(1))
        ga.merge_pending_commit()
        say("alice", "re-added carol from a fresh key package")
        receive("bob", gb, bundle.commit, inspect=True)
        assert bundle.welcome is not None
        gc_ = carol.join_group(bundle.welcome)
        say("carol", f"re-joined at epoch {gc_.epoch()}")

        msg = gb.encrypt(b"welcome back carol", b"")
        for name, g in (("alice", ga), ("carol", gc_)):
            got = receive(name, g, msg)
            check(bytes(got.plaintext) == b"welcome back carol", f"{name} read bob's message")

        groups = {"alice": ga, "bob": gb, "carol": gc_}
        secrets = {n: bytes(g.export_secret("demo-exporter", b"context", 32)) for n, g in groups.items()}
        auths = {n: bytes(g.epoch_authenticator()) for n, g in groups.items()}
        for n in groups:
            say(n, f"epoch {groups[n].epoch()}  exporter {hexp(secrets[n])}...  authenticator {hexp(auths[n])}...")
        check(len(set(secrets.values())) == 1, "all members derive the same exporter secret")
        check(len(set(auths.values())) == 1, "all members share the epoch authenticator")
        check(len({g.epoch() for g in groups.values()}) == 1, "all members are at the same epoch")

    if FAILURES:
        print(f"demo FAILED: {len(FAILURES)} check(s): {FAILURES}", flush=True)
        return 1
    print("demo finished: every check passed", flush=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--bob-child":
        sys.exit(child_main(Path(sys.argv[2]), sys.argv[3]))
    sys.exit(main())
