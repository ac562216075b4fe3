#!/usr/bin/env bash
# Installs every toolchain and tool `make test` needs that a fresh Debian
# machine with Rust, Python, a JDK and Maven lacks, and says what it installs.
# Idempotent: on a machine that has everything it prints one line and exits.
# (Swift is bootstrapped by bindings/swift/swift-toolchain.sh on first use,
# zig for the mobile checks by android/check-mobile-targets.sh; the Python
# venv is `make venv`.)
set -euo pipefail

say() { echo "setup: $*"; }

apt_install() {
  if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq "$@" >/dev/null
  else sudo apt-get update -qq && sudo apt-get install -y -qq "$@" >/dev/null; fi
}

# The PostgreSQL backend's tests (bindings/python/tests/test_postgres.py)
# start a throwaway server from Debian's postgresql package.
has_postgres() { command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; }
ensure_postgres() {
  has_postgres || { say "installing postgresql (apt)"; apt_install postgresql; }
}
if [ "${1:-}" = postgres ]; then ensure_postgres; exit 0; fi

command -v cargo >/dev/null || { say "cargo not found: install Rust with rustup first" >&2; exit 1; }
command -v rustup >/dev/null || { say "rustup not found: the tests need rustup to add components" >&2; exit 1; }

has_component() { rustup component list --installed ${2:+--toolchain "$2"} 2>/dev/null | grep -q "^$1"; }

for c in rustfmt clippy; do
  has_component "$c" || { say "installing rustup component $c"; rustup component add "$c"; }
done

# Fuzzing (make test-fuzz) and the iOS-simulator compile checks (-Zbuild-std)
# need nightly with rust-src.
if ! rustup toolchain list | grep -q '^nightly'; then
  say "installing the nightly toolchain (minimal profile)"
  rustup toolchain install nightly --profile minimal
fi
has_component rust-src nightly || { say "installing rust-src for nightly"; rustup component add rust-src --toolchain nightly; }

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  say "installing cargo-fuzz (cargo install, about a minute)"
  cargo install cargo-fuzz --locked
fi

# The leak check (make test-leaks).
if ! command -v valgrind >/dev/null; then
  say "installing valgrind (apt)"
  apt_install valgrind
fi

ensure_postgres

say "every tool is there"
