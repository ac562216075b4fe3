#!/usr/bin/env bash
# Runs the MLSKit Kotlin/JVM tests: (re)generates the Kotlin bindings from the
# built cdylib, compiles them with the helpers and tests (Maven), runs JUnit 5
# under Surefire, and prints one closing line: `kotlin: N passed, N failed`.
#
#   bash bindings/kotlin/run-tests.sh          # from the repo root (or anywhere)
#
# Environment:
#   MLSKIT_LIB_DIR  folder holding libmlskit.so and uniffi-bindgen
#                   (default: $CARGO_TARGET_DIR/debug, else <repo>/target/debug).
#                   Built with `cargo build --lib --bin uniffi-bindgen` if missing
#                   and neither variable is set.
#   MLSKIT_BINDGEN  the uniffi-bindgen binary (default: $MLSKIT_LIB_DIR/uniffi-bindgen).
#   MVN_ARGS        extra Maven arguments (e.g. "-o" offline, "-Dtest=ThreadTest").
#
# The generated Kotlin goes to <lib dir>/../bindings/kotlin (target/bindings/kotlin
# by default; <lib dir>/../bindings/kotlin-<name> for a lib dir not named debug,
# see generate.sh; never committed). The JVM finds libmlskit.so through
# -Djna.library.path=<lib dir>, which Surefire passes (see pom.xml).
# Exit status: non-zero if generation, compilation or any test fails, or if no test passed.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# ROOT, TARGET, LIB_DIR, GEN_DIR and kotlin_generate (shared with cross-member.sh and bench.sh).
# shellcheck source=generate.sh
source "$HERE/generate.sh"
REPORTS="$HERE/target/surefire-reports"
start=$SECONDS

finish() { # $1 = exit status wanted before counting
    local rc=$1 tests=0 failures=0 errors=0 skipped=0 f
    if compgen -G "$REPORTS/TEST-*.xml" >/dev/null; then
        for f in "$REPORTS"/TEST-*.xml; do
            # The <testsuite ...> element carries the counts of one test class.
            read -r t fl e s < <(grep -m1 -o '<testsuite [^>]*' "$f" | awk '{
                n = split("tests failures errors skipped", k, " ")
                for (i = 1; i <= n; i++) { v[i] = 0; if (match($0, " " k[i] "=\"[0-9]+\"")) { x = substr($0, RSTART, RLENGTH); gsub(/[^0-9]/, "", x); v[i] = x } }
                print v[1], v[2], v[3], v[4] }')
            tests=$((tests + t)); failures=$((failures + fl)); errors=$((errors + e)); skipped=$((skipped + s))
        done
    fi
    local passed=$((tests - failures - errors - skipped)) failed=$((failures + errors))
    [ "$passed" -gt 0 ] || rc=1
    [ "$failed" -eq 0 ] || rc=1
    echo "run-tests.sh: $((SECONDS - start)) s" >&2
    if [ "$skipped" -gt 0 ]; then
        echo "kotlin: $passed passed, $failed failed, $skipped skipped"
    else
        echo "kotlin: $passed passed, $failed failed"
    fi
    exit "$rc"
}

# Start from a clean Maven output: the Kotlin plugin leaves classes of deleted
# sources behind, and Surefire would still run them.
rm -rf "$HERE/target"
for tool in java mvn; do
    command -v "$tool" >/dev/null || { echo "run-tests.sh: '$tool' not found (needs JDK 17+ and Maven 3.8+)" >&2; finish 1; }
done

# 1. The cdylib (built only if missing) and 2. fresh Kotlin bindings from it.
kotlin_generate run-tests.sh || finish 1

# 3. Compile and test. Surefire fails when no test runs; the counts come from its reports.
# Maven 3.8's jansi writes colour resets even in batch mode: strip them so the
# closing line stays alone on its line.
# shellcheck disable=SC2086
(cd "$HERE" && mvn -B -q -Dstyle.color=never ${MVN_ARGS:-} test \
    -Dmlskit.libdir="$LIB_DIR" -Dmlskit.generated="$GEN_DIR") 2>&1 | sed -u 's/\x1b\[[0-9;]*m//g'
finish "${PIPESTATUS[0]}"
