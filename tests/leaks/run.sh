#!/usr/bin/env bash
# Leak check: runs the full-scenario loop (tests/leak_loop.rs) under valgrind
# and fails on any definitely-lost byte or memory error.
#   tests/leaks/run.sh            # LEAK_LOOP_ITERS=2 (about a minute)
#   LEAK_LOOP_ITERS=5 tests/leaks/run.sh
# Prints a final line: `leaks: OK (...)` or `leaks: FAILED (...)`.
set -euo pipefail
cd "$(dirname "$0")/../.."

command -v valgrind >/dev/null || { echo "leaks: valgrind not found" >&2; exit 2; }
start=$(date +%s)
bin=$(cargo test --test leak_loop --no-run --message-format=json 2>/dev/null \
  | sed -n 's/.*"executable":"\([^"]*leak_loop[^"]*\)".*/\1/p' | tail -1)
[ -x "$bin" ] || { echo "leaks: could not build tests/leak_loop.rs" >&2; exit 2; }

log=$(mktemp /tmp/mlskit-leaks.XXXXXX.log)
export LEAK_LOOP_ITERS="${LEAK_LOOP_ITERS:-2}"
status=0
valgrind --quiet --leak-check=full --show-leak-kinds=definite \
  --errors-for-leak-kinds=definite --error-exitcode=1 \
  --log-file="$log" "$bin" --test-threads=1 --quiet >/dev/null 2>&1 || status=$?
# With --quiet valgrind only logs problems; show them.
if [ -s "$log" ]; then cat "$log" >&2; fi
# grep finds nothing in a clean log: that is success, not an error.
definite=$({ grep -Eo '[0-9,]+ bytes in [0-9,]+ blocks are definitely lost' "$log" || true; } \
  | tr -d , | awk '{b+=$1; n++} END {if (n) printf "%d bytes definitely lost in %d records", b, n}')
elapsed=$(( $(date +%s) - start ))
if [ "$status" -eq 0 ]; then
  echo "leaks: OK (${LEAK_LOOP_ITERS} iterations, 0 bytes definitely lost, no memory errors, ${elapsed}s)"
  rm -f "$log"
else
  echo "leaks: FAILED (exit $status; ${definite:-memory errors}; log $log; ${elapsed}s)"
  exit 1
fi
