#!/usr/bin/env bash
# Builds ios/MLSKitFFI.xcframework and ios/Sources/MLSKit/ (the Swift package
# in ios/Package.swift), on a Mac with Xcode and rustup:
#   1. libmlskit.a for aarch64-apple-ios (device), aarch64-apple-ios-sim and
#      x86_64-apple-ios (simulator, combined with lipo), aarch64-apple-darwin and
#      x86_64-apple-darwin (macOS, combined with lipo);
#   2. the Swift bindings, generated from the macOS library: MLSKit.swift, the C
#      header MLSKitFFI.h and a module.modulemap for module MLSKitFFI;
#   3. xcodebuild -create-xcframework with the 3 static libraries + headers;
#   4. Sources/MLSKit/: generated MLSKit.swift + bindings/swift/Sources/MLSKit/*.swift.
#
# Environment:
#   MLSKIT_PROFILE    cargo profile (default release-small, the size profile in Cargo.toml)
#   IPHONEOS_DEPLOYMENT_TARGET   default 15.0 (= Package.swift's .iOS(.v15))
#   MACOSX_DEPLOYMENT_TARGET     default 12.0 (= Package.swift's .macOS(.v12))
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
ROOT=$(cd "$HERE/.." && pwd -P)
PROFILE=${MLSKIT_PROFILE:-release-small}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
export IPHONEOS_DEPLOYMENT_TARGET=${IPHONEOS_DEPLOYMENT_TARGET:-15.0}
export MACOSX_DEPLOYMENT_TARGET=${MACOSX_DEPLOYMENT_TARGET:-12.0}
OUT=$TARGET_DIR/xcframework        # intermediate files
XCF=$HERE/MLSKitFFI.xcframework    # the product (gitignored)
SWIFT_SRC=$HERE/Sources/MLSKit     # the package's Swift sources (gitignored)

[ "$(uname -s)" = Darwin ] || { echo "build-xcframework: needs macOS with Xcode (lipo, xcodebuild)." \
    "On Linux, android/check-mobile-targets.sh checks that the core compiles for these targets." >&2; exit 1; }
for tool in xcodebuild lipo cargo rustup; do
    command -v "$tool" >/dev/null || { echo "build-xcframework: $tool not found" >&2; exit 1; }
done

IOS=aarch64-apple-ios
SIM="aarch64-apple-ios-sim x86_64-apple-ios"
MAC="aarch64-apple-darwin x86_64-apple-darwin"
rustup target add $IOS $SIM $MAC

cd "$ROOT"
# 1. Static libraries. `cargo rustc --crate-type staticlib` builds only the .a
#    (no dylib to link per target). The macOS targets also get the dylib,
#    from which the bindings are generated.
# The device build also prints what an app must link besides the .a
# (rustc's native-static-libs; expected: only libSystem, which Xcode links).
cargo rustc -p mlskit --lib --crate-type staticlib --profile "$PROFILE" --target "$IOS" -- --print native-static-libs
for t in $SIM; do
    cargo rustc -p mlskit --lib --crate-type staticlib --profile "$PROFILE" --target "$t"
done
for t in $MAC; do
    cargo build -p mlskit --lib --profile "$PROFILE" --target "$t"
done
lib() { echo "$TARGET_DIR/$1/$PROFILE/libmlskit.a"; }

rm -rf "$OUT" && mkdir -p "$OUT/ios-device" "$OUT/ios-simulator" "$OUT/macos" "$OUT/headers" "$OUT/bindings"
cp "$(lib $IOS)" "$OUT/ios-device/libmlskit.a"
# shellcheck disable=SC2046
lipo -create $(for t in $SIM; do lib "$t"; done) -output "$OUT/ios-simulator/libmlskit.a"
# shellcheck disable=SC2046
lipo -create $(for t in $MAC; do lib "$t"; done) -output "$OUT/macos/libmlskit.a"
for d in ios-device ios-simulator macos; do lipo -info "$OUT/$d/libmlskit.a"; done

# 2. Swift bindings (library mode reads the UniFFI metadata from the library).
bash "$ROOT/bindings/generate.sh" swift \
    "$TARGET_DIR/aarch64-apple-darwin/$PROFILE/libmlskit.dylib" "$OUT/bindings"
cp "$OUT/bindings/MLSKitFFI.h" "$OUT/headers/"
# The generated MLSKitFFI.modulemap is for a Clang module next to the header;
# an xcframework wants a module.modulemap in its Headers folder. The static
# library is linked by the binary target itself, so no `link` line.
cat >"$OUT/headers/module.modulemap" <<'MAP'
module MLSKitFFI {
    header "MLSKitFFI.h"
    export *
}
MAP

# 3. The XCFramework.
rm -rf "$XCF"
xcodebuild -create-xcframework \
    -library "$OUT/ios-device/libmlskit.a" -headers "$OUT/headers" \
    -library "$OUT/ios-simulator/libmlskit.a" -headers "$OUT/headers" \
    -library "$OUT/macos/libmlskit.a" -headers "$OUT/headers" \
    -output "$XCF"

# 4. Swift sources of the package.
rm -rf "$SWIFT_SRC" && mkdir -p "$SWIFT_SRC"
cp "$OUT/bindings/MLSKit.swift" "$SWIFT_SRC/MLSKit.swift"
# Every hand-written Swift file (Extensions, Logging, Async) goes with it.
cp "$ROOT"/bindings/swift/Sources/MLSKit/*.swift "$SWIFT_SRC/"

echo "build-xcframework: done"
du -sh "$XCF" "$OUT"/*/libmlskit.a
echo "next: swift build --package-path ios   # or add ios/ to an Xcode project as a local package"
