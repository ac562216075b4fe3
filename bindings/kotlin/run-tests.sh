#!/usr/bin/env bash
# Runs the MLSKit Kotlin/JVM tests: (re)generates the Kotlin bindings from the
# built cdylib, compiles them with the helpers and tests (Maven), runs JUnit 5
# under Surefire (its "Tests run: ..." lines are the summary).
#
#   bash bindings/kotlin/run-tests.sh          # from the repo root (or anywhere)
#
# Environment:
#   MLSKIT_LIB_DIR  folder holding libmlskit.so and uniffi-bindgen
#                   (default: $CARGO_TARGET_DIR/debug, else <repo>/target/debug).
#                   Built with `cargo build --lib --bin uniffi-bindgen` if missing
#                   and neither variable is set.
#   MLSKIT_BINDGEN  the uniffi-bindgen binary (default: $MLSKIT_LIB_DIR/uniffi-bindgen).
#   MVN_ARGS        extra Maven arguments (e.g. "-o" offline, "-Dtest=ThreadsTest").
#
# The generated Kotlin goes to <lib dir>/../bindings/kotlin (target/bindings/kotlin
# by default; <lib dir>/../bindings/kotlin-<name> for a lib dir not named debug,
# see generate.sh; never committed). The JVM finds libmlskit.so through
# -Djna.library.path=<lib dir>, which Surefire passes (see pom.xml).
# Exit status: Maven's (non-zero if generation, compilation or any test fails;
# Surefire also fails a run that finds no test, see pom.xml).
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# ROOT, TARGET, LIB_DIR, GEN_DIR and kotlin_generate (shared with cross-member.sh and bench.sh).
# shellcheck source=generate.sh
source "$HERE/generate.sh"

# Start from a clean Maven output: the Kotlin plugin leaves classes of deleted
# sources behind, and Surefire would still run them.
rm -rf "$HERE/target"
for tool in java mvn; do
    command -v "$tool" >/dev/null || { echo "run-tests.sh: '$tool' not found (needs JDK 17+ and Maven 3.8+)" >&2; exit 1; }
done

# 1. The cdylib (built only if missing) and 2. fresh Kotlin bindings from it.
kotlin_generate run-tests.sh || exit 1

# 3. Compile and test (-ntp: no download progress; Surefire's summary stays).
# shellcheck disable=SC2086
cd "$HERE" && exec mvn -B -ntp -Dstyle.color=never ${MVN_ARGS:-} test \
    -Dmlskit.libdir="$LIB_DIR" -Dmlskit.generated="$GEN_DIR"
