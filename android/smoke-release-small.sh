#!/usr/bin/env bash
# Proves that the size profile (`[profile.release-small]` in Cargo.toml) still
# yields a working UniFFI library: builds libmlskit.so for the host with it,
# generates Python bindings from that very library (library mode needs the
# UNIFFI_META_* symbols), and runs two clients through a Welcome and a message
# each way. Prints the library's size and `release-small: N passed, N failed`.
#
# The same profile builds the Android .so (build-jni.sh) and the iOS .a
# (ios/build-xcframework.sh); this host build is the one this machine can run.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
PROFILE=release-small
OUT=$TARGET_DIR/$PROFILE-smoke

fail() { echo "smoke-release-small: $*" >&2; echo "release-small: 0 passed, 1 failed"; exit 1; }

cd "$ROOT" || fail "no repo"
s=$(date +%s)
cargo build -p mlskit --lib --profile "$PROFILE" || fail "cargo build --lib --profile $PROFILE failed"
echo "smoke-release-small: build $(( $(date +%s) - s ))s"
# The bindgen itself needs no size profile: the dev build (`make build`) reads the same metadata.
cargo build --bin uniffi-bindgen || fail "cargo build --bin uniffi-bindgen failed"
LIB=$TARGET_DIR/$PROFILE/libmlskit.so

# The exported FFI functions and the metadata must have survived strip/LTO.
nfn=$(nm -D --defined-only "$LIB" | grep -c ' T uniffi_mlskit_fn_') || true
nmeta=$(nm "$LIB" 2>/dev/null | grep -c 'UNIFFI_META_') || true
echo "smoke-release-small: $nfn exported uniffi_mlskit_fn_* functions, $nmeta UNIFFI_META_* symbols"
[ "$nfn" -gt 0 ] && [ "$nmeta" -gt 0 ] || fail "UniFFI symbols missing from $LIB"

rm -rf "$OUT" && mkdir -p "$OUT"
bash "$ROOT/bindings/generate.sh" python "$LIB" "$OUT" || fail "bindgen failed"
cp "$LIB" "$OUT/"
cat >"$OUT/smoke.py" <<'PY'
import mlskit as m

alice = m.Client(m.memory_storage(), b"alice")
bob = m.Client(m.memory_storage(), b"bob")
group = alice.create_group()
bundle = group.add_members(bob.create_key_packages(1))
group.merge_pending_commit()
assert bundle.welcome is not None
bob_group = bob.join_group(bundle.welcome)
got = bob_group.process_message(group.encrypt(b"hi bob", b""))
assert isinstance(got, m.ReceivedMessage.APPLICATION) and got.message.plaintext == b"hi bob"
got = group.process_message(bob_group.encrypt(b"hi alice", b""))
assert isinstance(got, m.ReceivedMessage.APPLICATION) and got.message.plaintext == b"hi alice"
assert group.epoch_authenticator() == bob_group.epoch_authenticator()
# An error crosses the boundary as a Python exception (panic = "unwind" kept).
try:
    bob.join_group(b"not a welcome")
    raise SystemExit("expected an MlsError")
except m.MlsError:
    pass
print("smoke-release-small: two clients, Welcome, a message each way: ok")
PY
(cd "$OUT" && "${PYTHON:-python3}" smoke.py) || fail "Python smoke against $LIB failed"

size=$(stat -c %s "$LIB")
echo "smoke-release-small: $LIB $size bytes ($(( (size + 524288) / 1048576 )) MiB), debug build: $(stat -c %s "$TARGET_DIR/debug/libmlskit.so" 2>/dev/null || echo '?') bytes"
echo "release-small: 1 passed, 0 failed"
