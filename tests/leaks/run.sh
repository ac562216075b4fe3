#!/usr/bin/env bash
# Leak check: runs the full-scenario loop (tests/leak_loop.rs) under valgrind
# (as cargo's test runner) and fails on any definitely-lost byte or memory
# error; valgrind's report is the output.
#   tests/leaks/run.sh            # LEAK_LOOP_ITERS=2 (about a minute)
#   LEAK_LOOP_ITERS=5 tests/leaks/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

command -v valgrind >/dev/null || { echo "leaks: valgrind not found" >&2; exit 2; }
export LEAK_LOOP_ITERS="${LEAK_LOOP_ITERS:-2}"
# cargo runs the test binary through the runner, so no path to find. With
# --quiet valgrind reports only problems, and exits 1 on any of them.
triple=$(rustc -vV | sed -n 's/^host: //p' | tr 'a-z-' 'A-Z_')
export "CARGO_TARGET_${triple}_RUNNER=valgrind --quiet --leak-check=full --show-leak-kinds=definite --errors-for-leak-kinds=definite --error-exitcode=1"
cargo test --quiet --test leak_loop -- --test-threads=1
echo "leaks: no definitely-lost bytes and no memory errors in ${LEAK_LOOP_ITERS} iterations"
