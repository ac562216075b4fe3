#!/usr/bin/env bash
# Shared by run-tests.sh and cross-member.sh (source it; it only defines
# functions): generates the Swift bindings from the built library into the
# package's gitignored paths, copying only files that changed so that SwiftPM
# does not rebuild everything each run.
#
#   swift_generate LIB BINDGEN TMPDIR   # returns non-zero (and prints why) on failure

SWIFT_HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)

install_if_changed() {
    mkdir -p "$(dirname "$2")"
    cmp -s "$1" "$2" || cp "$1" "$2"
}

swift_generate() {
    local lib=$1 bindgen=$2 gen=$3
    UNIFFI_BINDGEN="$bindgen" bash "$SWIFT_HERE/../generate.sh" swift "$lib" "$gen" || return 1
    # The generated modulemap says `use "Darwin"` (meaningless on Linux) and does
    # not link the library; this one works on Linux and macOS.
    cat >"$gen/module.modulemap" <<'MAP'
module MLSKitFFI {
    header "MLSKitFFI.h"
    link "mlskit"
    export *
}
MAP
    install_if_changed "$gen/MLSKit.swift" "$SWIFT_HERE/Sources/MLSKit/Generated/MLSKit.swift" || return 1
    install_if_changed "$gen/MLSKitFFI.h" "$SWIFT_HERE/Sources/MLSKitFFI/include/MLSKitFFI.h" || return 1
    install_if_changed "$gen/module.modulemap" "$SWIFT_HERE/Sources/MLSKitFFI/include/module.modulemap" || return 1
}
