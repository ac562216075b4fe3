#!/usr/bin/env python3
"""Runs every benchmark harness and prints one Markdown report (tests/bench/README.md).

    python3 tests/bench/run.py                 # release build: what `make bench` runs
    python3 tests/bench/run.py --smoke         # debug build, sizes 2 and 10, 2 iterations

Each harness runs as its own process per layer and group of sizes; the sizes
1 000 and 10 000 get a process each, so the peak RSS of that child (from
`wait4`) is the peak memory at that size. The report goes to stdout and, with
--markdown, to a file; the raw samples go to --json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")).resolve()

LAYERS = ["raw-openmls", "rust-memory", "rust-sqlite", "python-dict", "python-sqlite", "kotlin-map"]
RUST_LAYERS = {"raw-openmls", "rust-memory", "rust-sqlite"}
OPS = [
    "create", "add", "process_add", "join", "remove", "process_remove",
    "update", "process_update", "msg_100", "msg_1k", "msg_64k", "load",
]
# Operations on the group's membership or keys (the targets' "group operations").
GROUP_OPS = ["add", "process_add", "join", "remove", "process_remove", "update", "process_update", "load"]
# API calls that each op makes, and how many of them write (one commit each).
API_CALLS = {
    "create": (1, 1), "add": (2, 2), "process_add": (2, 1), "join": (1, 1),
    "remove": (2, 2), "process_remove": (2, 1), "update": (2, 2), "process_update": (2, 1),
    "msg_100": (2, 2), "msg_1k": (2, 2), "msg_64k": (2, 2), "load": (2, 1),
}
# Ops on a group already in memory: their only reads are the store lease
# record, read once before each commit (opening a client writes the lease:
# the one commit of "load").
LOADED_OPS = ["add", "process_add", "remove", "process_remove", "update", "process_update",
              "msg_100", "msg_1k", "msg_64k"]
LARGE_OPS = ["add", "process_add", "join"]


@dataclass
class Run:
    """One harness process: a layer, its sizes and how often to repeat."""

    layer: str
    sizes: list[int]
    iterations: int
    ops: list[str] = field(default_factory=lambda: list(OPS))


@dataclass
class Result:
    layer: str
    op: str
    size: int
    samples_us: list[float]
    reads: float | None
    commits: float | None
    bytes_written: float | None

    @property
    def median(self) -> float:
        return statistics.median(self.samples_us)

    def quantile(self, q: float) -> float:
        s = sorted(self.samples_us)
        return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def rust_executable(profile: str) -> Path:
    """Builds the Rust harness (`cargo bench`/`cargo test` profile) and returns its path."""
    # Release: the library alone (`-p mlskit`, without the bindgen's uniffi/cli), as
    # `make bench` builds it; debug: both workspace members, as `make build` does.
    mode = ["bench", "-p", "mlskit"] if profile == "release" else ["test"]
    cmd = ["cargo", *mode, "--no-run", "--bench", "layers", "--message-format=json-render-diagnostics"]
    out = subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True).stdout
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg["target"]["name"] == "layers" and msg.get("executable"):
            return Path(msg["executable"])
    raise SystemExit("run.py: cargo did not report the layers executable")


def python_package(profile: str) -> Path:
    """A copy of the Python package around the library of `profile`; returns its parent folder."""
    lib = TARGET / profile / "libmlskit.so"
    bindgen = TARGET / "debug" / "uniffi-bindgen"
    if not lib.is_file() or not bindgen.is_file():
        raise SystemExit(f"run.py: {lib} or {bindgen} missing (make build; cargo build -p mlskit --release --lib)")
    parent = TARGET / "bench" / f"python-{profile}"
    pkg = parent / "mlskit"
    shutil.rmtree(pkg, ignore_errors=True)
    pkg.mkdir(parents=True)
    src = ROOT / "bindings" / "python" / "src" / "mlskit"
    for name in ("__init__.py", "py.typed"):
        shutil.copy(src / name, pkg / name)
    subprocess.run(
        ["bash", str(ROOT / "bindings" / "generate.sh"), "python", str(lib), str(pkg)],
        check=True, stdout=subprocess.DEVNULL, env={**os.environ, "UNIFFI_BINDGEN": str(bindgen)},
    )
    shutil.copy(lib, pkg / "libmlskit.so")
    return parent


def command(layer: str, profile: str, rust_bin: Path | None, py_path: Path | None) -> tuple[list[str], dict[str, str]]:
    env = dict(os.environ)
    if layer in RUST_LAYERS:
        assert rust_bin is not None
        return [str(rust_bin)], env
    if layer.startswith("python-"):
        assert py_path is not None
        env["PYTHONPATH"] = str(py_path)
        return [sys.executable, str(ROOT / "tests" / "bench" / "python" / "bench.py")], env
    env["MLSKIT_LIB_DIR"] = str(TARGET / profile)
    env["MLSKIT_BINDGEN"] = str(TARGET / "debug" / "uniffi-bindgen")
    return ["bash", str(ROOT / "bindings" / "kotlin" / "bench.sh")], env


def run_harness(run: Run, cmd: list[str], env: dict[str, str]) -> tuple[list[Result], int]:
    """Runs one harness process; returns its results and its peak RSS in KiB."""
    args = [*cmd, "--layer", run.layer, "--sizes", ",".join(map(str, run.sizes)),
            "--iterations", str(run.iterations), "--ops", ",".join(run.ops)]
    log(f"run.py: {run.layer} sizes {run.sizes} x{run.iterations}")
    start = time.monotonic()
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"run.py: {run.layer} failed with exit code {proc.returncode}")
    results = []
    for line in out.splitlines():
        d: dict[str, Any] = json.loads(line)
        results.append(Result(d["layer"], d["op"], d["size"], d["samples_us"],
                              d["reads"], d["commits"], d["bytes_written"]))
    expected = {(op, 1 if op == "create" else n) for op in run.ops for n in run.sizes}
    got = {(r.op, r.size) for r in results}
    if got != expected:
        raise SystemExit(f"run.py: {run.layer} reported {sorted(got)}, expected {sorted(expected)}")
    log(f"run.py: {run.layer} done in {time.monotonic() - start:.0f} s, peak RSS {usage.ru_maxrss / 1024:.0f} MiB")
    return results, usage.ru_maxrss


def plan(layers: list[str], smoke: bool, large: bool) -> list[Run]:
    runs = []
    for layer in layers:
        if smoke:
            runs.append(Run(layer, [2, 10], 2))
            continue
        runs.append(Run(layer, [2, 10, 100], 50))
        runs.append(Run(layer, [1000], 20, [op for op in OPS if op != "create"]))
        if large:
            runs.append(Run(layer, [10000], 3, LARGE_OPS))
    return runs


def fmt_time(us: float) -> str:
    if us >= 1e6:
        return f"{us / 1e6:.2f} s"
    if us >= 1e3:
        return f"{us / 1e3:.2f} ms"
    return f"{us:.0f} µs"


def fmt_count(n: float | None) -> str:
    return "–" if n is None else f"{n:g}"


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "–"
    return f"{n / 1024:.1f} KiB" if n >= 1024 else f"{n:.0f} B"


class Report:
    def __init__(self, results: list[Result], peaks: dict[tuple[str, int], int], layers: list[str]) -> None:
        self.by_key = {(r.layer, r.op, r.size): r for r in results}
        self.peaks = peaks
        self.layers = layers
        self.sizes = sorted({r.size for r in results if r.op != "create"})
        self.misses: list[str] = []
        self.checks: list[str] = []
        # Misses of the storage-call targets, which hold in any build.
        self.storage_misses: list[str] = []

    def ratio(self, layer: str, op: str, size: int) -> float | None:
        r, raw = self.by_key.get((layer, op, size)), self.by_key.get(("raw-openmls", op, size))
        return r.median / raw.median if r and raw else None

    def table(self) -> list[str]:
        lines = []
        for size in [1, *self.sizes]:
            ops = [op for op in OPS if (self.layers[0], op, size) in self.by_key or
                   any((layer, op, size) in self.by_key for layer in self.layers)]
            if not ops:
                continue
            title = "create (one member)" if size == 1 else f"{size} members"
            lines += [f"### {title}: median (ratio to raw OpenMLS)", ""]
            lines.append("| op | " + " | ".join(self.layers) + " |")
            lines.append("|---|" + "---:|" * len(self.layers))
            for op in ops:
                cells = []
                for layer in self.layers:
                    r = self.by_key.get((layer, op, size))
                    ratio = self.ratio(layer, op, size)
                    if r is None:
                        cells.append("–")
                    elif layer == "raw-openmls" or ratio is None:
                        cells.append(fmt_time(r.median))
                    else:
                        cells.append(f"{fmt_time(r.median)} (×{ratio:.2f})")
                lines.append(f"| {op} | " + " | ".join(cells) + " |")
            lines.append("")
        return lines

    def details(self) -> list[str]:
        lines = ["### Every measurement", "",
                 "| layer | size | op | n | median | p10 | p90 | ×raw | reads | commits | written |",
                 "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for layer in self.layers:
            for size in [1, *self.sizes]:
                for op in OPS:
                    r = self.by_key.get((layer, op, size))
                    if r is None:
                        continue
                    ratio = self.ratio(layer, op, size)
                    lines.append(
                        f"| {layer} | {size} | {op} | {len(r.samples_us)} | {fmt_time(r.median)} | "
                        f"{fmt_time(r.quantile(0.1))} | {fmt_time(r.quantile(0.9))} | "
                        f"{'–' if ratio is None else f'{ratio:.2f}'} | {fmt_count(r.reads)} | {fmt_count(r.commits)} | "
                        f"{fmt_bytes(r.bytes_written)} |")
        lines.append("")
        return lines

    def memory(self) -> list[str]:
        sizes = sorted({s for (_, s) in self.peaks})
        if not sizes:
            return []
        lines = ["### Peak memory (RSS of the harness process, whole run at that size)", "",
                 "| layer | " + " | ".join(f"{s} members" for s in sizes) + " |",
                 "|---|" + "---:|" * len(sizes)]
        for layer in self.layers:
            cells = [f"{self.peaks[(layer, s)] / 1024:.0f} MiB" if (layer, s) in self.peaks else "–" for s in sizes]
            lines.append(f"| {layer} | " + " | ".join(cells) + " |")
        lines.append("")
        return lines

    def check(self, ok: bool, text: str, storage: bool = False) -> None:
        (self.checks if ok else self.misses).append(text)
        if storage and not ok:
            self.storage_misses.append(text)

    def targets(self) -> list[str]:
        for size in [s for s in self.sizes if s >= 10]:
            for op in GROUP_OPS:
                ratio = self.ratio("rust-memory", op, size)
                if ratio is not None:
                    self.check(ratio <= 1.10, f"rust-memory {op} @{size}: ×{ratio:.2f} (target ≤ 1.10)")
        for layer in ("python-dict", "kotlin-map"):
            for op in GROUP_OPS:
                ratio = self.ratio(layer, op, 100)
                if ratio is not None:
                    self.check(ratio <= 1.25, f"{layer} {op} @100: ×{ratio:.2f} (target ≤ 1.25)")
            for size in self.sizes:
                ratio = self.ratio(layer, "msg_1k", size)
                if ratio is not None:
                    self.check(ratio <= 2.0, f"{layer} msg_1k @{size}: ×{ratio:.2f} (target ≤ 2)")
        for r in self.by_key.values():
            if r.commits is not None:
                _, writes = API_CALLS[r.op]
                self.check(r.commits == writes, f"{r.layer} {r.op} @{r.size}: {r.commits:g} commits "
                           f"in {API_CALLS[r.op][0]} calls (expected {writes})", storage=True)
            if r.reads is not None and r.op in LOADED_OPS:
                _, writes = API_CALLS[r.op]
                self.check(r.reads == writes, f"{r.layer} {r.op} @{r.size}: {r.reads:g} storage reads "
                           f"(expected {writes}: the lease before each commit)", storage=True)
        lines = [f"### Targets: {len(self.checks)} met, {len(self.misses)} missed", ""]
        lines += [f"- MISSED {m}" for m in self.misses]
        if not self.misses:
            lines.append("- every target met")
        lines.append("")
        return lines


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kib / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    return f"{cpu}, {os.cpu_count()} cores{mem}, {platform.system()} {platform.release()}, Python {platform.python_version()}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="debug build, sizes 2 and 10, 2 iterations")
    parser.add_argument("--layers", default=",".join(LAYERS), help="comma-separated subset of " + ", ".join(LAYERS))
    parser.add_argument("--no-10000", dest="large", action="store_false", help="skip the 10 000-member runs")
    parser.add_argument("--json", type=Path, help="write every sample here")
    parser.add_argument("--markdown", type=Path, help="write the report here too")
    args = parser.parse_args()
    layers = [layer for layer in args.layers.split(",") if layer]
    if unknown := set(layers) - set(LAYERS):
        parser.error(f"unknown layers: {sorted(unknown)}")
    if "raw-openmls" not in layers:
        layers.insert(0, "raw-openmls")
    profile = "debug" if args.smoke else "release"

    rust_bin = rust_executable(profile) if RUST_LAYERS & set(layers) else None
    py_path = python_package(profile) if any(x.startswith("python-") for x in layers) else None
    results: list[Result] = []
    peaks: dict[tuple[str, int], int] = {}
    started = time.monotonic()
    for run in plan(layers, args.smoke, args.large):
        cmd, env = command(run.layer, profile, rust_bin, py_path)
        got, peak = run_harness(run, cmd, env)
        results += got
        if len(run.sizes) == 1 and run.sizes[0] >= 1000:
            peaks[(run.layer, run.sizes[0])] = peak

    report = Report(results, peaks, layers)
    lines = [f"## MLSKit benchmarks ({'smoke, debug build' if args.smoke else 'release build'})", "",
             f"Machine: {machine()}. Run took {time.monotonic() - started:.0f} s.", ""]
    lines += report.targets() + report.table() + report.memory() + report.details()
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")
    if args.json:
        args.json.write_text(json.dumps([r.__dict__ for r in results], indent=0))
    if args.smoke:
        # Ratios mean nothing in a debug build; the storage-call targets hold in any build.
        log(f"bench: smoke run of {len(layers)} layers, {len(results)} series; "
            f"{len(report.storage_misses)} storage-call targets missed (ratios not checked: debug build)")
        for miss in report.storage_misses:
            log(f"bench: MISSED {miss}")
        return 1 if report.storage_misses else 0
    log(f"bench: {len(layers)} layers, {len(results)} series, {len(report.misses)} targets missed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
