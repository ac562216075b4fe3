#!/usr/bin/env bash
# Proves that the Rust core (and the bundled SQLite C code) compiles for every
# mobile target MLSKit ships: the 4 Android ABIs of the AAR and the 5 Apple
# slices of the XCFramework. It runs on Linux with no Android NDK and no Xcode.
#
#   bash android/check-mobile-targets.sh              # all 9 targets
#   bash android/check-mobile-targets.sh aarch64-apple-ios x86_64-linux-android
#
# It lives in android/ but covers both platforms: one script, one shared target
# dir, one summary line, and ios/README.md points here.
#
# Per target: `rustup target add T`, then `cargo check -p mlskit --lib --target T`
# (first all targets in one cargo run, for speed, then one run per target for
# the verdict, which is a no-op when the first run built it).
# `cargo check` type-checks and borrow-checks all Rust code (the crate, OpenMLS,
# UniFFI scaffolding) for the target, runs every build script, and so compiles
# libsqlite3-sys's bundled sqlite3.c with a C compiler for the target. It does
# not link: linking a .so needs the NDK's Bionic, and a .a for iOS is linked
# into an app by Xcode (android/build-jni.sh and ios/build-xcframework.sh do
# that on a machine with the NDK / a Mac).
#
# The C compiler is `zig cc` from PyPI (package ziglang, pinned below), which is
# clang plus open-source libc headers, installed into <target dir>/mobile-tools.
# It compiles sqlite3.c for the real target triple (so __ANDROID__,
# TARGET_OS_IPHONE etc. are what they will be on the device):
#   - macOS:   zig's own Darwin libc headers (what zig uses to build for macOS);
#   - iOS:     the same Darwin libc headers (Apple's iOS SDK has the same libc
#              headers; zig ships no "iOS SDK", so they are passed explicitly);
#   - Android: musl's headers for the same architecture stand in for Bionic's
#              (both are Linux libcs with the same POSIX API that SQLite uses).
# What this does NOT prove: that sqlite3.c compiles against the real NDK
# sysroot / iOS SDK headers, and that the final .so/.a link. Those need the
# NDK or a Mac (see android/README.md, ios/README.md).
#
# A target whose Rust standard library rustup cannot download (this machine's
# rustup mirror answers 404 for aarch64-apple-ios-sim and x86_64-apple-ios) is
# checked with nightly and -Zbuild-std (rust-src compiles std for it); without
# nightly it is reported as skipped, not failed, unless MOBILE_TARGETS_STRICT=1.
#
# Environment:
#   CARGO_TARGET_DIR        shared target dir (default <repo>/target), also for the tools
#   ZIG                     use this zig instead of installing ziglang from PyPI
#   MOBILE_TARGETS_STRICT=1 a target that cannot be installed counts as failed
#   PYTHON                  python for the ziglang venv (default python3)
#
# Last line: `mobile-targets: N passed, N failed, N skipped`. Exit 0 iff none failed.
set -uo pipefail

ZIGLANG_VERSION=0.17.1
ANDROID_TARGETS="aarch64-linux-android armv7-linux-androideabi x86_64-linux-android i686-linux-android"
APPLE_TARGETS="aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios aarch64-apple-darwin x86_64-apple-darwin"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
mkdir -p "$TARGET_DIR"
TARGET_DIR=$(cd "$TARGET_DIR" && pwd -P)
TOOLS=$TARGET_DIR/mobile-tools
LOGS=$TOOLS/logs
mkdir -p "$TOOLS/bin" "$LOGS"

say() { echo "mobile-targets: $*"; }

if [ $# -gt 0 ]; then TARGETS="$*"; else TARGETS="$ANDROID_TARGETS $APPLE_TARGETS"; fi

# --- 1. zig (clang + libc headers), from PyPI --------------------------------
if [ -n "${ZIG:-}" ]; then
    zig=$ZIG
else
    venv=$TOOLS/zig-venv
    zig=$(ls "$venv"/lib/python3*/site-packages/ziglang/zig 2>/dev/null | head -n 1)
    if [ -z "$zig" ] || [ "$("$zig" version 2>/dev/null)" != "$ZIGLANG_VERSION" ]; then
        say "installing ziglang==$ZIGLANG_VERSION from PyPI into $venv"
        rm -rf "$venv"
        "${PYTHON:-python3}" -m venv "$venv" \
            && "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "ziglang==$ZIGLANG_VERSION" \
            || { say "could not install ziglang"; echo "mobile-targets: 0 passed, 1 failed"; exit 1; }
        zig=$(ls "$venv"/lib/python3*/site-packages/ziglang/zig | head -n 1)
    fi
fi
ZIG_LIB=$(dirname "$zig")/lib
[ -d "$ZIG_LIB/libc/include" ] || ZIG_LIB=$("$zig" env 2>/dev/null | sed -n 's/.*"lib_dir": *"\([^"]*\)".*/\1/p')
say "C compiler: zig $("$zig" version) (clang), libc headers in $ZIG_LIB/libc/include"

# `zig ar` is llvm-ar: archives ELF and Mach-O objects alike.
cat >"$TOOLS/bin/zig-ar" <<EOF
#!/usr/bin/env bash
exec "$zig" ar "\$@"
EOF
chmod +x "$TOOLS/bin/zig-ar"

# A stand-in SDK folder: the cc crate insists on an SDK path (SDKROOT or xcrun)
# for iOS and passes it as -isysroot; the wrapper drops it again. (cc ignores
# an SDKROOT only if its path names another platform's SDK; this names none.)
mkdir -p "$TOOLS/no-sdk"

# cc wrapper for one target: drops the cc crate's target/SDK flags (clang
# spellings zig cc does not take for these triples) and sets zig's own.
# $1 = rust target, $2 = zig target, $3.. = include flags
write_cc() {
    local rust=$1 ztarget=$2; shift 2
    local f=$TOOLS/bin/cc-$rust
    {
        echo '#!/usr/bin/env bash'
        echo "# generated by android/check-mobile-targets.sh: C compiler for $rust"
        echo 'args=()'
        echo 'while [ $# -gt 0 ]; do'
        echo '    case $1 in'
        echo '        --target=*|-mios-version-min=*|-miphoneos-version-min=*|-mios-simulator-version-min=*|-mmacosx-version-min=*|-mmacos-version-min=*|-mtargetos=*) ;;'
        echo '        -target|-arch|-isysroot) shift ;;'
        echo '        *) args+=("$1") ;;'
        echo '    esac'
        echo '    shift'
        echo 'done'
        printf 'exec %q cc -target %q' "$zig" "$ztarget"
        [ $# -eq 0 ] || printf ' %q' "$@"
        echo ' ${args[@]+"${args[@]}"}'
    } >"$f"
    chmod +x "$f"
}

inc=$ZIG_LIB/libc/include
android_inc() { # $1 = zig arch
    echo -nostdinc -isystem "$ZIG_LIB/include" -isystem "$inc/$1-linux-musl" -isystem "$inc/generic-musl" \
         -isystem "$inc/$1-linux-any" -isystem "$inc/any-linux-any"
}
ios_inc() { echo -nostdinc -isystem "$ZIG_LIB/include" -isystem "$inc/any-darwin-any"; }

zig_target() { # $1 = rust target -> "zig-target include-flags..."
    case $1 in
        aarch64-linux-android)   echo "aarch64-linux-android $(android_inc aarch64)" ;;
        armv7-linux-androideabi) echo "arm-linux-androideabi $(android_inc arm)" ;;
        x86_64-linux-android)    echo "x86_64-linux-android $(android_inc x86_64)" ;;
        i686-linux-android)      echo "x86-linux-android $(android_inc x86)" ;;
        aarch64-apple-ios)       echo "aarch64-ios $(ios_inc)" ;;
        aarch64-apple-ios-sim)   echo "aarch64-ios-simulator $(ios_inc)" ;;
        x86_64-apple-ios)        echo "x86_64-ios-simulator $(ios_inc)" ;;
        aarch64-apple-darwin)    echo "aarch64-macos" ;;
        x86_64-apple-darwin)     echo "x86_64-macos" ;;
        *) return 1 ;;
    esac
}

# --- 2. targets: install, then one parallel check of all, then one per target -
passed=0 failed=0 skipped=0
start_all=$(date +%s)
ready=()
from_source=()
for t in $TARGETS; do
    spec=$(zig_target "$t") || { say "FAIL $t: unknown target"; failed=$((failed+1)); continue; }
    # shellcheck disable=SC2086
    write_cc "$t" $spec
    if ! rustup target list --installed | grep -qx "$t"; then
        if ! rustup target add "$t" >"$LOGS/rustup-$t.log" 2>&1; then
            why=$(grep -m 1 -E "status code|error" "$LOGS/rustup-$t.log")
            # No prebuilt standard library (rustup answers 404 for some Apple
            # simulator targets here): build it from source with nightly.
            if cargo +nightly --version >/dev/null 2>&1 \
                    && rustup component add rust-src --toolchain nightly >>"$LOGS/rustup-$t.log" 2>&1; then
                say "$t: no prebuilt standard library ($why); checking with nightly -Zbuild-std"
                from_source+=("$t")
            elif [ "${MOBILE_TARGETS_STRICT:-0}" = 1 ]; then
                say "FAIL $t: rustup target add failed: $why"; failed=$((failed+1))
            else
                say "SKIP $t: rustup cannot install its standard library here ($why)"
                skipped=$((skipped+1))
            fi
            continue
        fi
    fi
    ready+=("$t")
done

# The environment for every target at once: CC_<t>/AR_<t> for the cc crate,
# SDKROOT for iOS (one stand-in serves device and simulator: the wrapper drops -isysroot).
cc_env=(CARGO_TARGET_DIR="$TARGET_DIR")
for t in ${ready[@]+"${ready[@]}"} ${from_source[@]+"${from_source[@]}"}; do
    u=${t//-/_}
    cc_env+=("CC_$u=$TOOLS/bin/cc-$t" "AR_$u=$TOOLS/bin/zig-ar")
done
cc_env+=(SDKROOT="$TOOLS/no-sdk")

# Phase 1: all targets in one cargo run, so that both cores stay busy (one
# target alone leaves a core idle behind OpenMLS). --keep-going: one broken
# target does not stop the others.
if [ ${#ready[@]} -gt 0 ]; then
    s=$(date +%s)
    args=()
    for t in "${ready[@]}"; do args+=(--target "$t"); done
    (cd "$ROOT" && env "${cc_env[@]}" cargo check -p mlskit --lib --keep-going "${args[@]}" --message-format short) \
        >"$LOGS/check-all.log" 2>&1
    rc=$?
    say "all ${#ready[@]} targets in one cargo run: $(( $(date +%s) - s ))s (exit $rc; verdicts per target follow)"
fi

# Reports a failed check of target $1 ($2: how it was checked) with its errors.
fail_with_log() {
    say "FAIL $1${2:-}, from $LOGS/check-$1.log:"
    grep -E "error" "$LOGS/check-$1.log" | head -n 8 | sed 's/^/    /'
    tail -n 5 "$LOGS/check-$1.log" | sed 's/^/    /'
    failed=$((failed+1))
}

# Phase 2: the verdict per target (a no-op when phase 1 built it; re-prints its errors if not).
for t in ${ready[@]+"${ready[@]}"}; do
    s=$(date +%s)
    if (cd "$ROOT" && env "${cc_env[@]}" cargo check -p mlskit --lib --target "$t" --message-format short) \
            >"$LOGS/check-$t.log" 2>&1; then
        say "ok   $t"; passed=$((passed+1))
    else
        fail_with_log "$t"
    fi
done
# Targets without a prebuilt standard library: nightly compiles std (and
# panic_unwind, which UniFFI relies on) for the target, then checks the crate.
for t in ${from_source[@]+"${from_source[@]}"}; do
    s=$(date +%s)
    if (cd "$ROOT" && env "${cc_env[@]}" cargo +nightly check -p mlskit --lib -Zbuild-std=std,panic_unwind \
            --target "$t" --message-format short) >"$LOGS/check-$t.log" 2>&1; then
        say "ok   $t (standard library built from source: $(( $(date +%s) - s ))s)"; passed=$((passed+1))
    else
        fail_with_log "$t" " (nightly -Zbuild-std)"
    fi
done
say "total $(( $(date +%s) - start_all ))s for: $TARGETS"
echo "mobile-targets: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
