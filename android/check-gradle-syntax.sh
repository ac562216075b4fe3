#!/usr/bin/env bash
# Syntax check of the Gradle Kotlin DSL files (build.gradle.kts,
# settings.gradle.kts) without Gradle or the Android SDK, which cannot be
# downloaded here: the Kotlin compiler (from Maven Central, the version in
# gradle.properties) compiles each file as a script. Without Gradle's API on the
# classpath every Gradle call is an "unresolved reference", which is expected
# and ignored; a *syntax* error is reported as "syntax error:" and fails.
# A deliberately broken snippet is checked first, so a compiler that reports
# nothing cannot pass silently. Last line: `gradle-syntax: N passed, N failed`.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
ROOT=$(cd "$HERE/.." && pwd -P)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
WORK=$TARGET_DIR/gradle-syntax
KOTLIN=$(sed -n 's/^mlskit.kotlinVersion=//p' "$HERE/gradle.properties")
mkdir -p "$WORK"

# The compiler and its scripting plugin, resolved by Maven (cached in ~/.m2).
cat >"$WORK/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.mlskit</groupId><artifactId>gradle-syntax</artifactId><version>0</version>
  <dependencies>
    <dependency><groupId>org.jetbrains.kotlin</groupId><artifactId>kotlin-compiler-embeddable</artifactId><version>$KOTLIN</version></dependency>
    <dependency><groupId>org.jetbrains.kotlin</groupId><artifactId>kotlin-scripting-compiler-embeddable</artifactId><version>$KOTLIN</version></dependency>
  </dependencies>
</project>
POM
if ! mvn -q -B -f "$WORK/pom.xml" dependency:build-classpath -Dmdep.outputFile="$WORK/cp.txt" >"$WORK/mvn.log" 2>&1; then
    tail -n 20 "$WORK/mvn.log" >&2
    echo "gradle-syntax: 0 passed, 1 failed"; exit 1
fi
CP=$(cat "$WORK/cp.txt")

syntax_errors() { # $1 = .kts file; prints the syntax errors, returns their count via stdout last line
    java -cp "$CP" org.jetbrains.kotlin.cli.jvm.K2JVMCompiler -no-stdlib -no-reflect -script "$1" 2>&1 \
        | grep "syntax error" || true
}

printf 'val x = listOf(1\nfun f() {}\n' >"$WORK/broken.gradle.kts"
if [ -z "$(syntax_errors "$WORK/broken.gradle.kts")" ]; then
    echo "check-gradle-syntax: the compiler did not flag a broken script; the check is not working" >&2
    echo "gradle-syntax: 0 passed, 1 failed"; exit 1
fi

passed=0 failed=0
for f in "$HERE/settings.gradle.kts" "$HERE/build.gradle.kts"; do
    errs=$(syntax_errors "$f")
    if [ -z "$errs" ]; then
        echo "check-gradle-syntax: ok   ${f#$ROOT/}"; passed=$((passed+1))
    else
        echo "check-gradle-syntax: FAIL ${f#$ROOT/}"; printf '%s\n' "$errs" | sed 's/^/    /'; failed=$((failed+1))
    fi
done
echo "gradle-syntax: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
