#!/usr/bin/env bash
# Runs the Kotlin/JVM benchmark harness (layer `kotlin-map`, the spec is
# tests/bench/README.md) as its own JVM:
#
#   bash bindings/kotlin/bench.sh --layer kotlin-map --sizes 2,10 --iterations 2 [--ops add,join]
#   MLSKIT_LIB_DIR=$PWD/target/release MLSKIT_BINDGEN=$PWD/target/debug/uniffi-bindgen \
#       bash bindings/kotlin/bench.sh --layer kotlin-map --sizes 100 --iterations 20
#
# The harness (tests/bench/kotlin/Bench.kt, a test source of the pom) is compiled by the
# ordinary Maven build (test source set, no @Test), once per library folder
# and again only after the library or the Kotlin sources change: generate.sh's
# kotlin_exec_main, shared with cross-member.sh. stdout carries the harness's
# JSON lines only; build output and progress go to stderr.
#
# The JVM runs with its default tiered compilation (C1, then C2), unlike the
# quick-start flags of cross-member.sh: the timed code must reach C2.
#
# Environment:
#   MLSKIT_LIB_DIR  folder holding libmlskit.so (default: $CARGO_TARGET_DIR/debug,
#                   else <repo>/target/debug); a release build for real numbers.
#   MLSKIT_BINDGEN  the uniffi-bindgen binary (default: $MLSKIT_LIB_DIR/uniffi-bindgen;
#                   target/release holds none, so point it at target/debug's).
#   MVN_ARGS        extra Maven arguments (e.g. "-o" offline).
#   JAVA            the java launcher (default: java).
#   BENCH_JVM_OPTS  extra JVM options, split on spaces (e.g. "-Xmx4g").
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# ROOT, TARGET, LIB_DIR, GEN_DIR, MAIN_DIR and kotlin_exec_main (shared with cross-member.sh).
# shellcheck source=generate.sh
source "$HERE/generate.sh"

# shellcheck disable=SC2086
kotlin_exec_main bench.sh dev.mlskit.bench.BenchKt -Xshare:auto ${BENCH_JVM_OPTS:-} -- "$@"
