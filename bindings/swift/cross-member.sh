#!/usr/bin/env bash
# Runs the Swift member of the cross-language test (tests/cross_language/):
#
#   bash bindings/swift/cross-member.sh WIRE NAME COMMAND [ARGS...]
#
# The member is the executable target MLSKitCrossMember of Package.swift
# (Sources/MLSKitCrossMember, a link to tests/cross_language/swift/). The first call, or one after
# libmlskit.so, Package.swift or the Swift sources changed, regenerates the
# bindings like run-tests.sh and runs `swift build --product
# MLSKitCrossMember` (in the chroot of swift-toolchain.sh on Linux without
# Swift); every call then runs .build/debug/MLSKitCrossMember the same way.
# WIRE must lie under the repository (e.g. target/cross-language/...), which
# is bind-mounted; a relative WIRE is taken from the current folder.
# Build output goes to stderr; stdout is the member's own.
#
# Environment: CARGO_TARGET_DIR (default <repo>/target), UNIFFI_BINDGEN (as run-tests.sh).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd "$HERE/../.." && pwd -P)
TOOL="$HERE/swift-toolchain.sh"
[ $# -ge 1 ] || { echo "usage: cross-member.sh WIRE NAME COMMAND [ARGS...]" >&2; exit 2; }
WIRE=$(cd "$1" && pwd -P) || { echo "cross-member.sh: no folder $1" >&2; exit 2; }
shift

TARGET=${CARGO_TARGET_DIR:-$REPO/target}
mkdir -p "$TARGET"
TARGET=$(cd "$TARGET" && pwd -P)
LIBDIR="$TARGET/debug"
case "$(uname -s)" in Darwin) LIB="$LIBDIR/libmlskit.dylib" ;; *) LIB="$LIBDIR/libmlskit.so" ;; esac
BIN="$HERE/.build/debug/MLSKitCrossMember"
STAMP="$HERE/.build/cross-member.stamp"

BINDS=(-b "$REPO")
case "$TARGET/" in "$REPO"/*) ;; *) BINDS+=(-b "$TARGET") ;; esac
case "$WIRE/" in "$REPO"/* | "$TARGET"/*) ;; *) BINDS+=(-b "$WIRE") ;; esac
in_swift() { # runs "$@" with the Swift toolchain, in the package folder
    bash "$TOOL" run "${BINDS[@]}" -e MLSKIT_LIB_DIR="$LIBDIR" -e LD_LIBRARY_PATH="$LIBDIR" -C "$HERE" -- "$@"
}

stale() {
    [ -f "$STAMP" ] && [ -x "$BIN" ] && [ -f "$LIB" ] || return 0
    [ -n "$(find "$LIB" "$HERE/Package.swift" "$HERE/generate.sh" "$HERE/Sources" \
        -newer "$STAMP" -print -quit 2>/dev/null)" ]
}

if stale; then
    mkdir -p "$HERE/.build"
    exec 9>"$HERE/.build/cross-member.lock"
    flock 9
    if stale; then
        t0=$SECONDS
        echo "cross-member.sh: building the Swift member" >&2
        bash "$TOOL" install >&2 || { echo "cross-member.sh: no Swift toolchain" >&2; exit 1; }
        if [ ! -f "$LIB" ] || [ ! -x "$LIBDIR/uniffi-bindgen" ]; then
            (cd "$REPO" && cargo build --lib --bin uniffi-bindgen) >&2
        fi
        GEN=$(mktemp -d)
        trap 'rm -rf "$GEN"' EXIT
        # shellcheck source=generate.sh
        source "$HERE/generate.sh"
        swift_generate "$LIB" "${UNIFFI_BINDGEN:-$LIBDIR/uniffi-bindgen}" "$GEN" \
            || { echo "cross-member.sh: uniffi-bindgen failed" >&2; exit 1; }
        rm -f "$STAMP"
        in_swift swift build --product MLSKitCrossMember >&2 \
            || { echo "cross-member.sh: swift build failed" >&2; exit 1; }
        touch "$STAMP"
        rm -rf "$GEN"; trap - EXIT
        echo "cross-member.sh: built in $((SECONDS - t0)) s" >&2
    fi
    exec 9>&-
fi

exec bash "$TOOL" run "${BINDS[@]}" -e LD_LIBRARY_PATH="$LIBDIR" -C "$HERE" -- "$BIN" "$WIRE" "$@"
