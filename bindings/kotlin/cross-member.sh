#!/usr/bin/env bash
# Runs the Kotlin member of the cross-language test (tests/cross_language/) as
# its own JVM:
#
#   bash bindings/kotlin/cross-member.sh WIRE NAME COMMAND [ARGS...]
#
# The member (tests/cross_language/kotlin/Member.kt, a test source of the pom) is compiled by
# the ordinary Maven build (test source set, no @Test). The first call, or one
# after libmlskit.so, pom.xml or the Kotlin sources changed (or after
# run-tests.sh wiped target/), regenerates the bindings like run-tests.sh,
# runs `mvn test-compile` into target/main-<lib dir>-<checksum>/ and caches the
# runtime classpath there; later calls start `java` directly, no Maven. The
# build is generate.sh's kotlin_exec_main, shared with bench.sh.
# Build output goes to stderr; stdout is the member's own.
#
# Environment: MLSKIT_LIB_DIR, MLSKIT_BINDGEN, CARGO_TARGET_DIR (see
# generate.sh), MVN_ARGS (extra Maven arguments, e.g. "-o"), JAVA (default: java).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# ROOT, TARGET, LIB_DIR, GEN_DIR, MAIN_DIR and kotlin_exec_main (shared with run-tests.sh and bench.sh).
# shellcheck source=generate.sh
source "$HERE/generate.sh"

# Quick start: one short-lived process per step, so C1 only and the serial GC.
kotlin_exec_main cross-member.sh dev.mlskit.crosslang.MemberKt \
    -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xshare:auto -- "$@"
