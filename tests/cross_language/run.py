#!/usr/bin/env python3
"""Cross-language MLS test driver (stdlib only; see README.md and PROTOCOL.md).

A Python member creates a group, a Kotlin and a Swift member join from their
KeyPackages, each sends a message the other two decrypt, Swift commits a
self-update, Kotlin removes Python, and Kotlin and Swift must then agree on
epoch, members, exporter secret and epoch authenticator. Every member call is
a separate process; members share nothing but the files in a fresh WIRE folder
under target/cross-language/.

    python3 tests/cross_language/run.py

Member commands (split like a shell would; run from the repo root):
    PYTHON_MEMBER  default: <repo>/.venv/bin/python tests/cross_language/python/member.py
                   (python3 if there is no .venv)
    KOTLIN_MEMBER  default: bash bindings/kotlin/cross-member.sh
    SWIFT_MEMBER   default: bash bindings/swift/cross-member.sh
    KEEP_WIRE=1    keep the WIRE folder after a passing run (a failing run always keeps it)
    STEP_TIMEOUT   seconds per member call (default 1200: the first call may build)

Last line: `cross-language: N passed, N failed`; exit status 1 on any failure.
"""

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def member_commands() -> dict[str, list[str]]:
    venv_python = os.path.join(REPO, ".venv", "bin", "python")
    python = venv_python if os.access(venv_python, os.X_OK) else "python3"
    defaults = {
        "python": f"{shlex.quote(python)} tests/cross_language/python/member.py",
        "kotlin": "bash bindings/kotlin/cross-member.sh",
        "swift": "bash bindings/swift/cross-member.sh",
    }
    return {name: shlex.split(os.environ.get(f"{name.upper()}_MEMBER") or default) for name, default in defaults.items()}


# (member, command, args): the whole scenario, in order.
STEPS = [
    ("kotlin", "keypackage", []),
    ("swift", "keypackage", []),
    ("python", "create", ["kotlin", "swift"]),
    ("kotlin", "join", []),
    ("swift", "join", []),
    ("python", "send", []),
    ("kotlin", "send", []),
    ("swift", "send", []),
    ("python", "receive", ["kotlin", "swift"]),
    ("kotlin", "receive", ["python", "swift"]),
    ("swift", "receive", ["python", "kotlin"]),
    ("swift", "update", []),
    ("python", "apply", ["commit-update.bin"]),
    ("kotlin", "apply", ["commit-update.bin"]),
    ("kotlin", "remove", ["python"]),
    ("swift", "apply", ["commit-remove.bin"]),
    ("python", "apply", ["commit-remove.bin", "removed"]),
    ("kotlin", "report", []),
    ("swift", "report", []),
]
FIELDS = ["epoch", "members", "exporter", "authenticator"]
CHECKS = [f"kotlin and swift agree on {field}" for field in FIELDS] + [
    "members are kotlin and swift only",
    "epoch is 3 (create, update, remove)",
]


def indent(text: str) -> str:
    return "".join(f"      {line}\n" for line in text.rstrip("\n").splitlines())


def main() -> int:
    commands = member_commands()
    timeout = float(os.environ.get("STEP_TIMEOUT", "1200"))
    base = os.path.join(REPO, "target", "cross-language")
    os.makedirs(base, exist_ok=True)
    wire = tempfile.mkdtemp(prefix="wire-", dir=base)
    print(f"cross-language: WIRE = {os.path.relpath(wire, REPO)}")
    for name, argv in commands.items():
        print(f"cross-language: {name} member = {shlex.join(argv)}")

    total = len(STEPS) + len(CHECKS)
    passed = failed = 0
    start = time.monotonic()

    for number, (name, command, args) in enumerate(STEPS, 1):
        label = f"[{number:2}/{len(STEPS)}] {name} {shlex.join([command, *args])}"
        t0 = time.monotonic()
        try:
            result = subprocess.run(
                [*commands[name], wire, name, command, *args],
                cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
            )
            output, ok = result.stdout, result.returncode == 0
            why = "" if ok else f" (exit {result.returncode})"
        except subprocess.TimeoutExpired as e:
            output = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
            ok, why = False, f" (timed out after {timeout:.0f} s)"
        except OSError as e:
            output, ok, why = "", False, f" ({e})"
        print(f"{label}: {'ok' if ok else 'FAILED' + why} ({time.monotonic() - t0:.1f} s)")
        print(indent(output), end="")
        if ok:
            passed += 1
        else:
            failed += 1
            # Every later step builds on this one: count the rest as failed.
            failed += total - passed - failed
            print(f"cross-language: stopping; the remaining {total - number} steps and checks count as failed")
            break
    else:
        reports = {}
        for name in ("kotlin", "swift"):
            with open(os.path.join(wire, f"report-{name}.json"), encoding="utf-8") as f:
                reports[name] = json.load(f)
            print(f"report {name}: {json.dumps(reports[name], sort_keys=True)}")
        kotlin, swift = reports["kotlin"], reports["swift"]
        outcomes = [kotlin.get(field) == swift.get(field) and field in kotlin for field in FIELDS] + [
            sorted(m.split(":", 1)[1] for m in kotlin.get("members", [])) == ["kotlin", "swift"]
            and sorted(m.split(":", 1)[1] for m in swift.get("members", [])) == ["kotlin", "swift"],
            kotlin.get("epoch") == 3 and swift.get("epoch") == 3,
        ]
        for check, ok in zip(CHECKS, outcomes):
            print(f"check {check}: {'ok' if ok else 'FAILED'}")
            passed, failed = passed + ok, failed + (not ok)

    elapsed = time.monotonic() - start
    if failed == 0 and not os.environ.get("KEEP_WIRE"):
        shutil.rmtree(wire, ignore_errors=True)
    else:
        print(f"cross-language: files kept in {os.path.relpath(wire, REPO)}")
    print(f"cross-language: {elapsed:.1f} s")
    print(f"cross-language: {passed} passed, {failed} failed")
    return 0 if failed == 0 and passed == total else 1


if __name__ == "__main__":
    sys.exit(main())
