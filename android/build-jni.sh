#!/usr/bin/env bash
# Builds what the AAR packages, on a machine with the Android NDK:
#   1. libmlskit.so for the 4 ABIs, with cargo-ndk, into android/src/main/jniLibs/<abi>/
#   2. the Android-flavoured Kotlin bindings (uniffi-android.toml), generated
#      from the arm64 library itself, into android/src/generated/kotlin/
# Then `gradle assembleRelease` in android/ packs the AAR (README.md).
#
# Needs: rustup, the NDK (ANDROID_NDK_HOME, or ANDROID_HOME/ndk/<version>,
# which cargo-ndk finds itself), cargo-ndk 4 (installed here if missing).
#
# Environment:
#   MLSKIT_PROFILE   cargo profile (default release-small, the size profile in
#                    Cargo.toml; `release` works too)
#   ANDROID_API      minimum API level the .so is linked for (default 21, = minSdk)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
ROOT=$(cd "$HERE/.." && pwd -P)
PROFILE=${MLSKIT_PROFILE:-release-small}
API=${ANDROID_API:-21}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
JNI=$HERE/src/main/jniLibs
GEN=$HERE/src/generated/kotlin

command -v cargo-ndk >/dev/null 2>&1 || cargo install cargo-ndk --version '^4' --locked
rustup target add aarch64-linux-android armv7-linux-androideabi x86_64-linux-android i686-linux-android

cd "$ROOT"
# 1. Native libraries. cargo-ndk sets CC/AR/linker for each target from the
#    NDK (so the bundled SQLite is compiled against Bionic), builds, and copies
#    each libmlskit.so to $JNI/<abi>/.
rm -rf "$JNI"
cargo ndk \
    -t arm64-v8a -t armeabi-v7a -t x86_64 -t x86 \
    --platform "$API" \
    -o "$JNI" \
    build -p mlskit --lib --profile "$PROFILE"
for abi in arm64-v8a armeabi-v7a x86_64 x86; do
    [ -f "$JNI/$abi/libmlskit.so" ] || { echo "build-jni: $JNI/$abi/libmlskit.so missing" >&2; exit 1; }
done

# 2. Kotlin bindings, from the very library the AAR ships (library mode reads
#    the UniFFI metadata symbols from it; any ABI would do).
rm -rf "$GEN"
bash "$ROOT/bindings/generate.sh" kotlin \
    "$TARGET_DIR/aarch64-linux-android/$PROFILE/libmlskit.so" "$GEN" \
    --config "$HERE/uniffi-android.toml"
[ -f "$GEN/dev/mlskit/mlskit.kt" ] || { echo "build-jni: $GEN/dev/mlskit/mlskit.kt missing" >&2; exit 1; }

echo "build-jni: done"
ls -l "$JNI"/*/libmlskit.so
echo "next: cd android && gradle assembleRelease   # -> build/outputs/aar/mlskit-android-release.aar"
