#!/usr/bin/env bash
# A Swift toolchain for the MLSKit Swift tests.
#
# Where `swift` is on PATH (macOS, a swift.org toolchain) it is used as is.
# Otherwise (Debian 12 has no Swift package) Debian 13 "trixie" with its
# `swiftlang` 6.0.3 is set up by debootstrap in a chroot, and commands run
# there inside a private mount namespace. Needs root, chroot, mount and,
# preferably, `unshare --mount`. The measured recipe and its pitfalls are in
# the project's research note on the Swift toolchain.
#
# Usage:
#   swift-toolchain.sh install            # idempotent; ~0.01 s when done
#   swift-toolchain.sh run [-b DIR]... [-e NAME[=VAL]]... [-C DIR] -- CMD [ARG]...
#   swift-toolchain.sh shell [-b DIR]...  # interactive bash in the chroot
#   swift-toolchain.sh verify             # prints `swiftc --version`
#   swift-toolchain.sh remove             # deletes the chroot
#
# run: -b binds host DIR at the same path inside (repeatable); -e sets a
# variable (`-e NAME` copies the host's value); -C is the working directory
# (default: $PWD when it lies under a -b folder, else /). The environment
# inside is clean: PATH, HOME=/root, LANG=LC_ALL=C.UTF-8, TERM, TMPDIR=/tmp,
# CI (if set) plus the -e variables. The exit code is the command's own.
#
# Settings (environment):
#   SWIFT_CHROOT                 chroot folder (default /opt/swift-trixie)
#   SWIFT_CHROOT_MIRROR          Debian mirror for debootstrap (default: the host's)
#   SWIFT_CHROOT_EXTRA_PACKAGES  more trixie packages (e.g. libstdc++-14-dev)
#   SWIFT_CHROOT_NO_UNSHARE=1    plain mounts undone by a trap, no namespace
#   SWIFT_USE_CHROOT=1           use the chroot even if `swift` is on PATH
set -euo pipefail
# Bash 3.2 (macOS) compatible where a host swift is used: empty arrays are
# expanded as ${a[@]+"${a[@]}"}.

SELF=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)/$(basename "${BASH_SOURCE[0]}")
ROOT=${SWIFT_CHROOT:-/opt/swift-trixie}
ROOT=${ROOT%/}
SUITE=trixie
LOCK="$ROOT.lock"
STAMP="$ROOT/var/lib/swift-toolchain/ready"
# libc6-dev is only a Recommends of gcc-14: without it swiftc cannot link (no Scrt1.o).
PACKAGES="swiftlang libc6-dev${SWIFT_CHROOT_EXTRA_PACKAGES:+ $SWIFT_CHROOT_EXTRA_PACKAGES}"
INNER_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

die() { echo "swift-toolchain: error: $*" >&2; exit 1; }
say() { echo "swift-toolchain: $*" >&2; }

host_swift() {
    [ "${SWIFT_USE_CHROOT:-0}" != 1 ] && command -v swift >/dev/null 2>&1
}

need_root() {
    [ "$(id -u)" = 0 ] || die "no 'swift' on PATH, and building the $SUITE chroot needs root"
    command -v chroot >/dev/null && command -v mount >/dev/null \
        || die "no 'swift' on PATH, and 'chroot'/'mount' are missing"
}

# Every wanted package shows "ii" in the chroot's dpkg database.
packages_ready() {
    local p status
    for p in $PACKAGES; do
        status=$(dpkg-query --admindir="$ROOT/var/lib/dpkg" -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null) || return 1
        [ "${status:0:2}" = ii ] || return 1
    done
}

ready() {
    [ -f "$STAMP" ] && [ -e "$ROOT/usr/bin/swiftc" ] && packages_ready
}

# The host's own Debian archive URL (not the security one), read at run time.
host_mirror() {
    local f=/etc/apt/sources.list.d/debian.sources url
    if [ -r "$f" ]; then
        url=$(awk 'tolower($1)=="uris:" { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' "$f")
        [ -n "$url" ] && { echo "$url"; return; }
    fi
    f=/etc/apt/sources.list
    if [ -r "$f" ]; then
        url=$(awk '$1=="deb" { for (i = 2; i <= NF; i++) if ($i ~ /^(https?|ftp):/) { if ($i !~ /security/) print $i; exit } }' "$f" | head -n1)
        [ -n "$url" ] && echo "$url"
    fi
    return 0
}

# Mount points under the chroot, as a captured string (no grep on a pipe).
mounts_under_root() {
    local m
    m=$(awk -v r="$ROOT/" 'index($2, r) == 1 { print $2 }' /proc/self/mounts)
    printf '%s' "$m"
}

can_unshare() {
    [ "${SWIFT_CHROOT_NO_UNSHARE:-0}" != 1 ] && unshare --mount --propagation private true 2>/dev/null
}

# ---- mounting and running inside the chroot --------------------------------

BINDS=()
ENVS=()
WORKDIR=""
CREATED=()   # mount-point folders this run created inside the chroot
MOUNTED=()   # fallback mode only: what to unmount, in order

refuse_bind() {
    local d=$1
    case "$d" in
        / | /root | /proc | /sys | /dev | /boot | /run | /tmp | /usr | /usr/* | /etc | /etc/* | \
        /var | /var/lib | /var/lib/* | /bin | /bin/* | /sbin | /sbin/* | /lib | /lib/* | /lib64 | /lib64/*)
            die "refusing to bind system folder '$d'" ;;
    esac
    case "$ROOT/" in "$d"/*) die "refusing to bind '$d': it contains the chroot" ;; esac
    case "$d/" in "$ROOT"/*) die "refusing to bind '$d': it lies inside the chroot" ;; esac
}

# Creates the missing folders for each bind target, remembering the new ones.
prepare_bind_targets() {
    local d path part
    for d in ${BINDS[@]+"${BINDS[@]}"}; do
        path=$ROOT
        IFS=/ read -r -a parts <<<"${d#/}"
        for part in "${parts[@]}"; do
            path="$path/$part"
            # A symlink inside the chroot could point the mount at a host folder.
            [ ! -L "$path" ] || die "refusing to bind '$d': $path is a symlink"
            if [ ! -d "$path" ]; then
                mkdir "$path"
                CREATED+=("$path")
            fi
        done
    done
}

# rmdir only (never deletes contents), and only when no other run is active:
# removing a folder that is a mount point in another namespace would detach it.
remove_created() {
    local i
    [ ${#CREATED[@]} -gt 0 ] || return 0
    exec 8>"$ROOT.runs"
    if flock -xn 8; then
        for ((i = ${#CREATED[@]} - 1; i >= 0; i--)); do
            rmdir "${CREATED[$i]}" 2>/dev/null || true
        done
    fi
    exec 8>&-
}

# Mounts proc, /dev and the binds. In the namespace these vanish with it; in
# fallback mode they are recorded in MOUNTED and undone by undo_mounts.
do_mounts() {
    local d
    mount -t proc proc "$ROOT/proc"; MOUNTED+=("$ROOT/proc")
    mount --rbind /dev "$ROOT/dev"; MOUNTED+=("$ROOT/dev")
    mount --make-rslave "$ROOT/dev"
    for d in ${BINDS[@]+"${BINDS[@]}"}; do
        mount --rbind "$d" "$ROOT$d"; MOUNTED+=("$ROOT$d")
        mount --make-rslave "$ROOT$d"
    done
}

undo_mounts() {
    local i
    for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do
        umount -R "${MOUNTED[$i]}" 2>/dev/null || umount -Rl "${MOUNTED[$i]}" 2>/dev/null || true
    done
    MOUNTED=()
}

chroot_command() {
    local env=(PATH="$INNER_PATH" HOME=/root LANG=C.UTF-8 LC_ALL=C.UTF-8 TERM="${TERM:-dumb}" TMPDIR=/tmp)
    [ -n "${CI:-}" ] && env+=(CI="$CI")
    env+=(${ENVS[@]+"${ENVS[@]}"})
    # shellcheck disable=SC2016
    exec chroot "$ROOT" /usr/bin/env -i "${env[@]}" /bin/sh -c 'cd "$0" || exit 125; exec "$@"' "${WORKDIR:-/}" "$@"
}

# Runs "$@" in the chroot with mounts; returns the command's exit code.
in_chroot() {
    local rc=0
    prepare_bind_targets
    exec 7>"$ROOT.runs"; flock -s 7   # shared: marks this run as active
    if can_unshare; then
        # The child mounts in its own namespace; nothing reaches the host and
        # everything vanishes when it ends, even on kill -9.
        unshare --mount --propagation private -- "$BASH" "$SELF" __inner "$ROOT" \
            "${#BINDS[@]}" ${BINDS[@]+"${BINDS[@]}"} "${#ENVS[@]}" ${ENVS[@]+"${ENVS[@]}"} "$WORKDIR" "$@" || rc=$?
    else
        trap 'undo_mounts' EXIT
        trap 'undo_mounts; exit 130' INT
        trap 'undo_mounts; exit 143' TERM
        do_mounts
        ( chroot_command "$@" ) || rc=$?
        undo_mounts
        trap - EXIT INT TERM
    fi
    exec 7>&-
    remove_created
    return "$rc"
}

# Entered in the new mount namespace: mount, then exec the command.
inner() {
    ROOT=$1; shift
    local n=$1; shift
    BINDS=("${@:1:$n}"); shift "$n"
    n=$1; shift
    ENVS=("${@:1:$n}"); shift "$n"
    WORKDIR=$1; shift
    do_mounts
    chroot_command "$@"
}

# ---- modes ------------------------------------------------------------------

install_chroot() {
    if host_swift; then
        say "using the host's $(command -v swift)"
        return 0
    fi
    ready && return 0
    need_root
    mkdir -p "$(dirname "$ROOT")"
    exec 9>"$LOCK"
    flock 9                           # one install at a time
    if ready; then exec 9>&-; return 0; fi
    local t0=$SECONDS
    if ! command -v debootstrap >/dev/null; then
        say "installing debootstrap on the host"
        DEBIAN_FRONTEND=noninteractive apt-get install -y debootstrap >/dev/null \
            || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y debootstrap >/dev/null; } \
            || die "cannot install debootstrap"
    fi
    if [ -d "$ROOT/debootstrap" ]; then
        [ -z "$(mounts_under_root)" ] || die "$ROOT is unfinished but has mounts; run '$0 umount' first"
        say "removing an unfinished debootstrap in $ROOT"
        rm -rf --one-file-system "$ROOT"
    fi
    if [ ! -x "$ROOT/usr/bin/apt-get" ]; then
        local mirror=${SWIFT_CHROOT_MIRROR:-$(host_mirror)}
        say "debootstrap $SUITE into $ROOT (mirror: ${mirror:-debootstrap default})"
        if ! debootstrap --variant=minbase "$SUITE" "$ROOT" ${mirror:+"$mirror"} >"$ROOT.debootstrap.log" 2>&1; then
            [ -n "$mirror" ] || { tail -n 20 "$ROOT.debootstrap.log" >&2; die "debootstrap failed"; }
            say "debootstrap with $mirror failed; retrying with debootstrap's default mirror"
            [ -z "$(mounts_under_root)" ] || die "$ROOT has mounts; run '$0 umount' first"
            rm -rf --one-file-system "$ROOT"
            debootstrap --variant=minbase "$SUITE" "$ROOT" >"$ROOT.debootstrap.log" 2>&1 \
                || { tail -n 20 "$ROOT.debootstrap.log" >&2; die "debootstrap failed"; }
        fi
    fi
    say "installing $PACKAGES in the chroot"
    ENVS=(DEBIAN_FRONTEND=noninteractive)
    local v
    for v in http_proxy https_proxy no_proxy; do [ -n "${!v:-}" ] && ENVS+=("$v=${!v}"); done
    # shellcheck disable=SC2086
    in_chroot /bin/sh -c 'apt-get update -q && apt-get install -y -q --no-install-recommends "$@" && apt-get clean' \
        sh $PACKAGES >"$ROOT.apt.log" 2>&1 \
        || { tail -n 30 "$ROOT.apt.log" >&2; die "apt-get in the chroot failed (log: $ROOT.apt.log)"; }
    ENVS=()
    # /proc is needed even for `swiftc --version` ($ORIGIN RUNPATH via /proc/self/exe).
    in_chroot swiftc --version >/dev/null 2>&1 || die "swiftc does not run in $ROOT"
    mkdir -p "$(dirname "$STAMP")"
    date -u +%FT%TZ >"$STAMP"
    exec 9>&-
    say "ready in $((SECONDS - t0)) s: $ROOT"
}

parse_run_args() {
    local d
    while [ $# -gt 0 ]; do
        case "$1" in
            -b) [ $# -ge 2 ] || die "-b needs a folder"
                [ -d "$2" ] || die "-b $2: no such folder"
                d=$(cd "$2" && pwd -P)
                refuse_bind "$d"
                BINDS+=("$d"); shift 2 ;;
            -e) [ $# -ge 2 ] || die "-e needs NAME or NAME=VALUE"
                case "$2" in
                    *=*) ENVS+=("$2") ;;
                    *) [ -n "${!2+x}" ] || die "-e $2: not set on the host"
                       ENVS+=("$2=${!2}") ;;
                esac
                shift 2 ;;
            -C) [ $# -ge 2 ] || die "-C needs a folder"
                WORKDIR=$2; shift 2 ;;
            --) shift; break ;;
            *) break ;;
        esac
    done
    ARGS=("$@")
    if [ -z "$WORKDIR" ]; then
        local here
        here=$(pwd -P)
        for d in ${BINDS[@]+"${BINDS[@]}"}; do
            case "$here/" in "$d"/*) WORKDIR=$here ;; esac
        done
    fi
}

run_mode() {
    ARGS=()
    parse_run_args "$@"
    [ ${#ARGS[@]} -gt 0 ] || die "run: no command given"
    if host_swift; then
        # The host has Swift: run directly, with its environment plus -e.
        cd "${WORKDIR:-.}"
        exec env ${ENVS[@]+"${ENVS[@]}"} "${ARGS[@]}"
    fi
    need_root
    ready || install_chroot
    local rc=0
    in_chroot "${ARGS[@]}" || rc=$?
    return "$rc"
}

case "${1:-}" in
    install) install_chroot ;;
    run) shift; run_mode "$@" ;;
    shell) shift; run_mode "$@" -- bash ;;
    verify) run_mode -- swiftc --version ;;
    umount)
        for m in $(mounts_under_root | sort -r); do umount -Rl "$m" || true; done ;;
    remove)
        [ -z "$(mounts_under_root)" ] || die "mounts remain under $ROOT; run '$0 umount' first"
        rm -rf --one-file-system "$ROOT" "$ROOT.debootstrap.log" "$ROOT.apt.log" ;;
    __inner) shift; inner "$@" ;;
    *) sed -n '2,/^set -euo/p' "$SELF" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
