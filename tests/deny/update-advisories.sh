#!/usr/bin/env bash
# Refreshes tests/deny/advisory-db from a checkout of the RustSec advisory
# database: copies the entries of every crate named in the lock files and
# records the checkout's commit in SNAPSHOT.
#   tests/deny/update-advisories.sh ~/src/advisory-db
set -euo pipefail
src="${1:?usage: update-advisories.sh PATH-TO-advisory-db-CHECKOUT}"
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
rm -rf "$here/advisory-db" && mkdir -p "$here/advisory-db/crates"
sed -n 's/^name = "\(.*\)"/\1/p' "$root/Cargo.lock" "$root/tests/fuzz/Cargo.lock" | sort -u |
  while read -r name; do
    if [ -d "$src/crates/$name" ]; then cp -r "$src/crates/$name" "$here/advisory-db/crates/"; fi
  done
{
  echo "RustSec advisory database, entries for the crates in Cargo.lock and tests/fuzz/Cargo.lock"
  echo "commit $(git -C "$src" rev-parse HEAD)"
  echo "date $(git -C "$src" show -s --format=%cI HEAD)"
} > "$here/SNAPSHOT"
echo "advisory-db: $(find "$here/advisory-db" -name '*.md' | wc -l) advisories for $(ls "$here/advisory-db/crates" | wc -l) crates"
