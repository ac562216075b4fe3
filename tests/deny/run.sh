#!/usr/bin/env bash
# cargo-deny over the library's crate graph (dev-dependencies included; the
# mls-rs interop suite excluded): RustSec advisories, licenses, duplicate
# versions (warned: they come from OpenMLS's own dependencies), sources.
# CI has no network, so the advisories come from the vendored snapshot in
# advisory-db/ (SNAPSHOT says which); cargo-deny only reads a database that is
# a git checkout, so it is served as one under target/deny. Refresh the
# snapshot with: tests/deny/update-advisories.sh PATH-TO-advisory-db-CHECKOUT
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
deny="${CARGO_DENY:-$root/.venv/bin/cargo-deny}"
[ -x "$deny" ] || { echo "deny: $deny missing (make venv installs it)" >&2; exit 2; }

# The directory name cargo-deny derives from the db URL in deny.toml.
db="$root/target/deny/advisory-db-3157b0e258782691"
date=$(sed -n 's/^date //p' "$here/SNAPSHOT")
rm -rf "$db" && mkdir -p "$db"
cp -r "$here/advisory-db/crates" "$db/"
git -C "$db" init -q
git -C "$db" add -A
GIT_AUTHOR_DATE="$date" GIT_COMMITTER_DATE="$date" \
  git -C "$db" -c user.name=mlskit -c user.email=mlskit@localhost commit -qm "vendored snapshot"

cd "$root"
"$deny" --workspace --exclude mlskit-interop --config tests/deny/deny.toml --offline check
