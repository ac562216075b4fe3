#!/usr/bin/env bash
# Builds the Rust library, generates the Swift bindings and runs the Swift
# package's tests; on Linux without Swift, inside the trixie chroot of
# swift-toolchain.sh. Run from anywhere: `bash bindings/swift/run-tests.sh`.
# Ends with XCTest's own summary (`Executed N tests, with M failures`); exits
# non-zero when a test failed, the build failed, or no test ran.
#
# Environment: CARGO_TARGET_DIR (default <repo>/target), SWIFT_TEST_ARGS
# (extra `swift test` arguments, e.g. "--filter ThreadsTests"), UNIFFI_BINDGEN
# (another uniffi-bindgen 0.32.2 binary; default: the crate's own).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO=$(cd "$HERE/../.." && pwd -P)
TOOL="$HERE/swift-toolchain.sh"
cd "$REPO"

fail() { echo "run-tests: $*" >&2; exit 1; }

t0=$SECONDS
bash "$TOOL" install || fail "no Swift toolchain"
echo "run-tests: toolchain ready ($((SECONDS - t0)) s)" >&2

# 1. The Rust library and the bindgen of the same build (cargo skips what is up to date).
cargo build --lib --bin uniffi-bindgen || fail "cargo build failed"
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
TARGET=$(cd "$TARGET" && pwd -P)
LIBDIR="$TARGET/debug"
case "$(uname -s)" in Darwin) LIB="$LIBDIR/libmlskit.dylib" ;; *) LIB="$LIBDIR/libmlskit.so" ;; esac
[ -f "$LIB" ] || fail "$LIB was not built"

# 2. Generated code goes to gitignored paths only (see bindings/swift/.gitignore).
GEN=$(mktemp -d)
trap 'rm -rf "$GEN"' EXIT
BINDGEN=${UNIFFI_BINDGEN:-$TARGET/debug/uniffi-bindgen}
# shellcheck source=generate.sh
source "$HERE/generate.sh"   # swift_generate, shared with cross-member.sh
swift_generate "$LIB" "$BINDGEN" "$GEN" || fail "uniffi-bindgen failed"

# 3. swift build + swift test, in the chroot (or with the host's swift).
BINDS=(-b "$REPO")
case "$TARGET/" in "$REPO"/*) ;; *) BINDS+=(-b "$TARGET") ;; esac
LOG="$GEN/swift-test.log"
rc=0
# shellcheck disable=SC2016
bash "$TOOL" run "${BINDS[@]}" -e MLSKIT_LIB_DIR="$LIBDIR" -e LD_LIBRARY_PATH="$LIBDIR" \
    -e SWIFT_TEST_ARGS="${SWIFT_TEST_ARGS:-}" -C "$HERE" -- \
    bash -c 'swift build --build-tests && swift test --skip-build --disable-swift-testing $SWIFT_TEST_ARGS' 2>&1 | tee "$LOG" \
    || rc=$?

# (All tests are XCTest: --disable-swift-testing keeps Swift Testing from
# printing a "0 tests" run that log readers could take for an empty suite.)
# 4. XCTest's own summary is the result; a crash makes `swift test` fail.
echo "run-tests: $((SECONDS - t0)) s in all" >&2
grep -E "Executed [0-9]+ tests?, with" "$LOG" | tail -1
[ "$rc" -eq 0 ] && grep -qE "Executed [1-9][0-9]* tests?, with 0 failures" "$LOG"
