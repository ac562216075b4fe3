#!/usr/bin/env bash
# Shared by run-tests.sh, cross-member.sh and bench.sh (source it; it only
# defines variables and functions): where libmlskit.so and the generated Kotlin
# live, how to (re)generate the bindings from that very library, and how to
# build once and run a `main` of the test source set as its own JVM.
#
#   source bindings/kotlin/generate.sh   # sets ROOT, TARGET, LIB_DIR, BINDGEN, GEN_DIR, MAIN_DIR
#   kotlin_generate "prefix" || ...      # builds the cdylib if missing, regenerates GEN_DIR
#   kotlin_exec_main "prefix" MAIN_CLASS [JVM_OPTION...] -- [ARG...]
#                                        # builds MAIN_DIR if stale, then execs java
#
# Environment:
#   MLSKIT_LIB_DIR  folder holding libmlskit.so (and, by default, uniffi-bindgen);
#                   default $CARGO_TARGET_DIR/debug, else <repo>/target/debug.
#   MLSKIT_BINDGEN  the uniffi-bindgen binary; default $MLSKIT_LIB_DIR/uniffi-bindgen.
#                   Set it when the library folder has no bindgen, e.g. a release
#                   build: MLSKIT_LIB_DIR=target/release MLSKIT_BINDGEN=target/debug/uniffi-bindgen.
#                   Any bindgen of the same uniffi version reads any build of the library.
#   MVN_ARGS        extra Maven arguments (e.g. "-o" offline).
#   JAVA            the java launcher of kotlin_exec_main (default: java).
#
# Generated code and compiled classes depend on the library folder, so neither is
# shared between two of them: GEN_DIR is <lib dir>/../bindings/kotlin for a
# folder named debug, else <lib dir>/../bindings/kotlin-<lib dir name>; MAIN_DIR
# is one Maven build folder per library folder.

KOTLIN_HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$KOTLIN_HERE/../.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
LIB_DIR="${MLSKIT_LIB_DIR:-$TARGET/debug}"
LIB_DIR="$(mkdir -p "$LIB_DIR" && cd "$LIB_DIR" && pwd)"
BINDGEN="${MLSKIT_BINDGEN:-$LIB_DIR/uniffi-bindgen}"
# target/debug -> target/bindings/kotlin (the path of `make bindings-kotlin` and
# pom.xml's default); any other folder, such as target/release, gets its own
# (target/bindings/kotlin-release), since regenerating wipes the folder first.
if [ "$(basename "$LIB_DIR")" = debug ]; then
    GEN_DIR="$(dirname "$LIB_DIR")/bindings/kotlin"
else
    GEN_DIR="$(dirname "$LIB_DIR")/bindings/kotlin-$(basename "$LIB_DIR")"
fi
# Build folder of kotlin_exec_main: named after the library folder plus a
# checksum of its path, so /x/debug and /y/debug don't share one either.
MAIN_DIR="$KOTLIN_HERE/target/main-$(basename "$LIB_DIR")-$(printf '%s' "$LIB_DIR" | cksum | cut -d' ' -f1)"

# $1 = prefix of the messages (the calling script's name). Returns non-zero on failure.
kotlin_generate() {
    local me=$1 log
    # 1. The cdylib and the bindgen (built only if missing; `make build` normally did it).
    if [ ! -f "$LIB_DIR/libmlskit.so" ] || [ ! -x "$BINDGEN" ]; then
        if [ -n "${MLSKIT_LIB_DIR:-}" ] || [ -n "${MLSKIT_BINDGEN:-}" ]; then
            echo "$me: no $LIB_DIR/libmlskit.so or no executable $BINDGEN" \
                "(set MLSKIT_LIB_DIR and MLSKIT_BINDGEN)" >&2
            return 1
        fi
        (cd "$ROOT" && cargo build --lib --bin uniffi-bindgen) || return 1
    fi
    # 2. Fresh Kotlin bindings from that very library (generated code is never committed).
    rm -rf "$GEN_DIR"
    UNIFFI_BINDGEN="$BINDGEN" bash "$ROOT/bindings/generate.sh" kotlin "$LIB_DIR/libmlskit.so" "$GEN_DIR" \
        || { echo "$me: generating the Kotlin bindings failed" >&2; return 1; }
    [ -f "$GEN_DIR/dev/mlskit/mlskit.kt" ] || { echo "$me: $GEN_DIR/dev/mlskit/mlskit.kt missing" >&2; return 1; }
}

# Why this is shell and not Maven: the cross-language test starts the Kotlin
# member once per protocol step (a dozen JVMs per run) and the benchmark once
# per layer; running Maven each time would add seconds per step. So the
# classes are built once per library folder and reused until an input changes.
#
# Whether MAIN_DIR must be rebuilt to run $1 (a class name): something is
# missing, it was built for another library folder, or the library, pom.xml,
# this file or a Kotlin source (ours, the cross-language member's, the
# benchmark's) changed since.
kotlin_main_stale() {
    local class_file="$MAIN_DIR/test-classes/${1//.//}.class"
    [ -f "$MAIN_DIR/stamp" ] && [ -s "$MAIN_DIR/runtime.classpath" ] && [ -f "$class_file" ] \
        && [ -f "$LIB_DIR/libmlskit.so" ] || return 0
    [ "$(cat "$MAIN_DIR/stamp")" = "$LIB_DIR" ] || return 0
    [ -n "$(find "$LIB_DIR/libmlskit.so" "$KOTLIN_HERE/pom.xml" "$KOTLIN_HERE/generate.sh" \
        "$KOTLIN_HERE/src" "$ROOT/tests/cross_language/kotlin" "$ROOT/tests/bench/kotlin" \
        -newer "$MAIN_DIR/stamp" -print -quit 2>/dev/null)" ]
}

# Builds MAIN_DIR once: bindings as in kotlin_generate, `mvn test-compile` into
# MAIN_DIR and its runtime classpath in MAIN_DIR/runtime.classpath; the stamp
# records LIB_DIR. $1 = prefix, $2 = the main class that must come out of it.
# Build output goes to stderr. Returns non-zero on failure.
kotlin_build_main() {
    local me=$1 main=$2 t0=$SECONDS
    kotlin_main_stale "$main" || return 0
    # One build at a time (the lock lives outside bindings/kotlin/target, which run-tests.sh deletes).
    mkdir -p "$TARGET"
    exec 9>"$TARGET/.kotlin-main.lock"
    flock 9
    if kotlin_main_stale "$main"; then
        echo "$me: building the Kotlin classes for $LIB_DIR (bindings + mvn test-compile)" >&2
        rm -f "$MAIN_DIR/stamp"
        kotlin_generate "$me" >&2 || { exec 9>&-; return 1; }
        # shellcheck disable=SC2086
        (cd "$KOTLIN_HERE" && mvn -B -q -Dstyle.color=never ${MVN_ARGS:-} test-compile dependency:build-classpath \
            -Dmlskit.libdir="$LIB_DIR" -Dmlskit.generated="$GEN_DIR" -Dmlskit.builddir="$MAIN_DIR" \
            -Dmdep.includeScope=runtime -Dmdep.outputFile="$MAIN_DIR/runtime.classpath") 2>&1 \
            | sed -u 's/\x1b\[[0-9;]*m//g' >&2
        if [ "${PIPESTATUS[0]}" -ne 0 ] || [ ! -f "$MAIN_DIR/test-classes/${main//.//}.class" ] \
                || [ ! -s "$MAIN_DIR/runtime.classpath" ]; then
            echo "$me: Maven build failed" >&2
            exec 9>&-
            return 1
        fi
        printf '%s\n' "$LIB_DIR" >"$MAIN_DIR/stamp"
        echo "$me: built in $((SECONDS - t0)) s" >&2
    fi
    exec 9>&-
}

# Runs MAIN_CLASS of the test source set as this process (exec), after
# kotlin_build_main; exits 1 if the build fails.
#   kotlin_exec_main PREFIX MAIN_CLASS [JVM_OPTION...] -- [ARG...]
kotlin_exec_main() {
    local me=$1 main=$2 jvm=()
    shift 2
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do jvm+=("$1"); shift; done
    [ $# -eq 0 ] || shift
    kotlin_build_main "$me" "$main" || exit 1
    exec "${JAVA:-java}" "${jvm[@]}" -Djna.library.path="$LIB_DIR" \
        -cp "$MAIN_DIR/classes:$MAIN_DIR/test-classes:$(cat "$MAIN_DIR/runtime.classpath")" \
        "$main" "$@"
}
