#!/usr/bin/env bash
# Runs the Kotlin member of the cross-language test (tests/cross_language/) as
# its own JVM:
#
#   bash bindings/kotlin/cross-member.sh WIRE NAME COMMAND [ARGS...]
#
# The member (src/test/kotlin/dev/mlskit/crosslang/Member.kt) is compiled by
# the ordinary Maven build (test source set, no @Test). The first call, or one
# after libmlskit.so, pom.xml or the Kotlin sources changed (or after
# run-tests.sh wiped target/), regenerates the bindings like run-tests.sh,
# runs `mvn test-compile` and caches the runtime classpath in
# target/cross-member.classpath; later calls start `java` directly, no Maven.
# Build output goes to stderr; stdout is the member's own.
#
# Environment: MLSKIT_LIB_DIR, CARGO_TARGET_DIR (as run-tests.sh), MVN_ARGS
# (extra Maven arguments, e.g. "-o"), JAVA (default: java).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# ROOT, TARGET, LIB_DIR, GEN_DIR and kotlin_generate (shared with run-tests.sh).
# shellcheck source=generate.sh
source "$HERE/generate.sh"
OUT="$HERE/target"
CP_FILE="$OUT/cross-member.classpath"
STAMP="$OUT/cross-member.stamp"
MAIN_CLASS="$OUT/test-classes/dev/mlskit/crosslang/MemberKt.class"

stale() {
    [ -f "$STAMP" ] && [ -f "$CP_FILE" ] && [ -f "$MAIN_CLASS" ] && [ -f "$LIB_DIR/libmlskit.so" ] || return 0
    [ -n "$(find "$LIB_DIR/libmlskit.so" "$HERE/pom.xml" "$HERE/generate.sh" "$HERE/src" \
        -newer "$STAMP" -print -quit 2>/dev/null)" ]
}

if stale; then
    # One build at a time (the lock lives outside bindings/kotlin/target, which run-tests.sh deletes).
    mkdir -p "$TARGET"
    exec 9>"$TARGET/.kotlin-cross-member.lock"
    flock 9
    if stale; then
        t0=$SECONDS
        echo "cross-member.sh: building the Kotlin member (bindings + mvn test-compile)" >&2
        kotlin_generate cross-member.sh >&2
        rm -f "$STAMP"
        # shellcheck disable=SC2086
        (cd "$HERE" && mvn -B -q -Dstyle.color=never ${MVN_ARGS:-} test-compile dependency:build-classpath \
            -Dmlskit.libdir="$LIB_DIR" -Dmlskit.generated="$GEN_DIR" \
            -Dmdep.includeScope=runtime -Dmdep.outputFile="$CP_FILE") 2>&1 \
            | sed -u 's/\x1b\[[0-9;]*m//g' >&2
        [ "${PIPESTATUS[0]}" -eq 0 ] && [ -f "$MAIN_CLASS" ] && [ -s "$CP_FILE" ] \
            || { echo "cross-member.sh: Maven build failed" >&2; exit 1; }
        touch "$STAMP"
        echo "cross-member.sh: built in $((SECONDS - t0)) s" >&2
    fi
    exec 9>&-
fi

# Quick start: one short-lived process per step, so C1 only and the serial GC.
exec "${JAVA:-java}" -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xshare:auto \
    -Djna.library.path="$LIB_DIR" \
    -cp "$OUT/classes:$OUT/test-classes:$(cat "$CP_FILE")" \
    dev.mlskit.crosslang.MemberKt "$@"
