#!/usr/bin/env bash
# Builds the async probe (its own workspace, the shared target dir), generates
# its Python bindings with MLSKit's uniffi-bindgen and prints the comparison
# (probe.py). Results and the decision they led to: tests/bench/BENCHMARKS.md.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../../.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
PY=${PYTHON:-python3}
cargo build --release --manifest-path "$HERE/Cargo.toml" --target-dir "$TARGET" --quiet
cargo build --manifest-path "$ROOT/Cargo.toml" --bin uniffi-bindgen --target-dir "$TARGET" --quiet
OUT=$TARGET/async_probe
mkdir -p "$OUT"
# Not bindings/generate.sh: this is the probe's own library, not libmlskit.
"$TARGET/debug/uniffi-bindgen" generate --library "$TARGET/release/libasync_probe.so" \
    --language python --no-format --out-dir "$OUT"
cp "$TARGET/release/libasync_probe.so" "$OUT/"
PYTHONPATH=$OUT "$PY" "$HERE/probe.py"
