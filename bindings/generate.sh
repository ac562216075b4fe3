#!/usr/bin/env bash
# The one recipe that runs uniffi-bindgen for MLSKit: the make targets and
# every script that needs bindings (Kotlin and Swift runners, the Android and
# Apple builds, the release smoke test) call it.
#
#   bash bindings/generate.sh LANGUAGE LIBRARY OUT_DIR [uniffi-bindgen options...]
#
# LANGUAGE is python, kotlin or swift; LIBRARY a built libmlskit (.so, .dylib
# or .a: library mode reads the UniFFI metadata from it, any target will do);
# extra options (such as `--config android/uniffi-android.toml`) are passed on.
# The bindgen is $UNIFFI_BINDGEN, else <target dir>/debug/uniffi-bindgen,
# built first if missing. OUT_DIR is not emptied (the Python package keeps its
# own files there); callers that want a clean folder remove it first. On
# failure the bindgen's first error lines go to stderr.
set -euo pipefail

[ $# -ge 3 ] || { echo "usage: $0 python|kotlin|swift LIBRARY OUT_DIR [options]" >&2; exit 2; }
language=$1 library=$2 out=$3
shift 3
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BINDGEN=${UNIFFI_BINDGEN:-$TARGET/debug/uniffi-bindgen}
if [ ! -x "$BINDGEN" ]; then
    [ -z "${UNIFFI_BINDGEN:-}" ] || { echo "generate.sh: UNIFFI_BINDGEN=$BINDGEN is not executable" >&2; exit 1; }
    (cd "$ROOT" && cargo build --quiet --bin uniffi-bindgen)
fi
[ -f "$library" ] || { echo "generate.sh: no library at $library (cargo build --lib first)" >&2; exit 1; }
mkdir -p "$out"
# --no-format: the generated code is never committed, and the formatters
# (ktlint, swiftformat, black) are not needed to build it.
if ! log=$("$BINDGEN" generate --library "$library" --language "$language" --no-format \
        --out-dir "$out" "$@" 2>&1); then
    echo "generate.sh: uniffi-bindgen failed to generate $language bindings:" >&2
    printf '%s\n' "$log" | grep -m 3 -A 2 -E "panicked|^Error|error:" >&2 || printf '%s\n' "$log" | tail -n 20 >&2
    exit 1
fi
