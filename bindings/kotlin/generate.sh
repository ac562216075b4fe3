#!/usr/bin/env bash
# Shared by run-tests.sh and cross-member.sh (source it; it only defines
# variables and a function): where libmlskit.so and the generated Kotlin live,
# and how to (re)generate the bindings from that very library.
#
#   source bindings/kotlin/generate.sh   # sets ROOT, TARGET, LIB_DIR, GEN_DIR
#   kotlin_generate "prefix" || ...      # builds the cdylib if missing, regenerates GEN_DIR
#
# Environment: MLSKIT_LIB_DIR (folder holding libmlskit.so and uniffi-bindgen;
# default $CARGO_TARGET_DIR/debug, else <repo>/target/debug).

KOTLIN_HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$KOTLIN_HERE/../.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
LIB_DIR="${MLSKIT_LIB_DIR:-$TARGET/debug}"
LIB_DIR="$(mkdir -p "$LIB_DIR" && cd "$LIB_DIR" && pwd)"
GEN_DIR="$(dirname "$LIB_DIR")/bindings/kotlin"

# $1 = prefix of the messages (the calling script's name). Returns non-zero on failure.
kotlin_generate() {
    local me=$1 log
    # 1. The cdylib and the bindgen (built only if missing; `make build` normally did it).
    if [ ! -f "$LIB_DIR/libmlskit.so" ] || [ ! -x "$LIB_DIR/uniffi-bindgen" ]; then
        if [ -n "${MLSKIT_LIB_DIR:-}" ]; then
            echo "$me: no libmlskit.so or uniffi-bindgen in $LIB_DIR" >&2; return 1
        fi
        (cd "$ROOT" && cargo build --lib --bin uniffi-bindgen) || return 1
    fi
    # 2. Fresh Kotlin bindings from that very library (generated code is never committed).
    rm -rf "$GEN_DIR"
    if ! log="$("$LIB_DIR/uniffi-bindgen" generate --library "$LIB_DIR/libmlskit.so" --language kotlin \
            --no-format --out-dir "$GEN_DIR" 2>&1)"; then
        echo "$me: uniffi-bindgen failed to generate Kotlin:" >&2
        printf '%s\n' "$log" | sed -n '1,4p' >&2
        return 1
    fi
    [ -f "$GEN_DIR/dev/mlskit/mlskit.kt" ] || { echo "$me: $GEN_DIR/dev/mlskit/mlskit.kt missing" >&2; return 1; }
}
