#!/usr/bin/env bash
# Fuzzing MLSKit with cargo-fuzz (libFuzzer; nightly toolchain).
#   tests/fuzz/run.sh quick           build every target, run each for QUICK_SECONDS (10)
#   tests/fuzz/run.sh long SECONDS    run each target for SECONDS
#   tests/fuzz/run.sh gen             regenerate corpus/ and fixtures/ (examples/gen_corpus.rs)
# Targets: parse_message validate_key_package process_message join_welcome
# external_join storage_decode (or set TARGETS="a b"). The seed corpus is
# corpus/<target> (read-only); what a long run adds goes to corpus-run/<target>
# (quick runs use a temporary directory);
# crashes go to artifacts/<target>/. FUZZ_SANITIZER=address builds with ASan
# (default none: the code under test is safe Rust plus SQLite, and builds and
# runs are several times faster). Extra libFuzzer flags: FUZZ_ARGS.
# Last line: `fuzz: N passed, M failed` (a target passes if it ran without a crash).
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cd "$root"

mode="${1:-quick}"
case "$mode" in
  quick) seconds="${QUICK_SECONDS:-10}" ;;
  long) seconds="${2:?usage: run.sh long SECONDS}" ;;
  gen)
    (cd "$here" && cargo run --quiet --example gen_corpus)
    exit $?
    ;;
  *) echo "usage: run.sh quick | long SECONDS | gen" >&2; exit 2 ;;
esac

targets="${TARGETS:-parse_message validate_key_package process_message join_welcome external_join storage_decode}"
sanitizer="${FUZZ_SANITIZER:-none}"
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz: the nightly toolchain is missing (rustup toolchain install nightly)" >&2; exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "fuzz: cargo-fuzz is missing (cargo install cargo-fuzz --locked)" >&2; exit 2
fi

start=$(date +%s)
echo "== build ($sanitizer sanitizer, release with debug assertions)"
if ! cargo +nightly fuzz build --fuzz-dir "$here" -s "$sanitizer"; then
  echo "fuzz: 0 passed, $(wc -w <<<"$targets") failed (build failed)"; exit 1
fi
built=$(date +%s)
echo "build: $((built - start))s"

passed=0; failed=0
for t in $targets; do
  # quick: a throw-away corpus (bounded, same work every time); long: corpus-run/ grows.
  if [ "$mode" = quick ]; then work=$(mktemp -d); else work="$here/corpus-run/$t"; fi
  mkdir -p "$work" "$here/artifacts/$t"
  log="$here/artifacts/$t/last-run.log"
  t0=$(date +%s)
  # -timeout: one input may take at most 30 s (a hang is a failure too).
  # seeds/<target>: hand-made hostile shapes (seeds/make_amplifying.py).
  seeds=(); [ -d "$here/seeds/$t" ] && seeds=("$here/seeds/$t")
  cargo +nightly fuzz run --fuzz-dir "$here" -s "$sanitizer" "$t" \
    "$work" "$here/corpus/$t" "${seeds[@]}" -- \
    -max_total_time="$seconds" -timeout=30 -print_final_stats=1 ${FUZZ_ARGS:-} >"$log" 2>&1
  rc=$?
  if [ "$mode" = quick ]; then rm -rf "$work"; fi
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -Eo 'cov: [0-9]+' "$log" | tail -1)
  notes=$(grep -c '^note:' "$log")
  if [ $rc -eq 0 ]; then
    passed=$((passed + 1)); verdict=ok
  else
    failed=$((failed + 1)); verdict="CRASH (exit $rc; see $log and $here/artifacts/$t/)"
    grep -E 'CRASH|panicked|ERROR: libFuzzer|Test unit written' "$log" | head -5
  fi
  echo "$t: $verdict, ${execs:-0} execs in $(( $(date +%s) - t0 ))s, ${cov:-cov: ?}, $notes distinct notes (caught panics / Internal errors)"
done
echo "total: $(( $(date +%s) - start ))s"
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
