#!/usr/bin/env bash
# Installs the Debian 12 packages Handoff's build, tests, benchmarks and demo
# need. Idempotent: when nothing is missing it runs neither apt-get update nor
# apt-get install, and finishes in well under a second.
#
# Usage: deploy/install.sh [--minimal] [--list] [--check]
#   --minimal  build tools, runtime libraries, servers and what
#              deploy/stack.sh needs (for Dockerfiles)
#   --list     print the selected packages, one a line, and exit
#   --check    report missing packages; exit 1 if any, install nothing
set -euo pipefail

readonly PROG=${0##*/}

# The package list, in one place. A group is a name and its packages.

# Compilers, build system and -dev packages (pkg-config names in
# docs and platform notes).
readonly PKGS_BUILD="
    gcc make cmake pkg-config
    libnats-dev libprotobuf-c-dev protobuf-c-compiler libpq-dev
    libevent-dev libhiredis-dev libcmocka-dev libcurl4-openssl-dev
    libjansson-dev libssl-dev libhttp-parser-dev
"
# Shared libraries the binaries load at run time (the -dev packages above
# depend on them; named so a runtime image can install just these).
readonly PKGS_RUNTIME="
    libnats3.4 libprotobuf-c1 libpq5 libevent-2.1-7 libevent-core-2.1-7
    libevent-extra-2.1-7 libevent-pthreads-2.1-7 libevent-openssl-2.1-7
    libhiredis0.14 libcurl4 libjansson4 libssl3 libhttp-parser2.9
    ca-certificates tzdata
"
# Servers deploy/stack.sh runs (postgresql-15 brings psql and pg_isready,
# redis-server brings redis-cli).
readonly PKGS_SERVERS="
    nats-server postgresql-15 redis-server
"
# Programs deploy/stack.sh itself calls: curl (NATS health check), ps
# (procps), ss (iproute2). Part of --minimal so the stack runs in a
# minimal image too.
readonly PKGS_STACK="
    curl procps iproute2
"
# Test tools: clang with the sanitizer and libFuzzer runtime (must be named
# with --no-install-recommends), clang-format (format check), docker-compose
# (validates compose files), gotestsum (reads test2json), xmllint (JUnit
# XML), promtool (metrics lint), python3 (helpers).
readonly PKGS_TEST="
    clang libclang-rt-14-dev clang-format docker-compose gotestsum
    libxml2-utils prometheus python3
"
# Load generators and a reference HTTP server for benchmarks.
readonly PKGS_BENCH="
    wrk hey nginx
"
# Browser tests: headless Chromium driven from Node (npm playwright-core,
# pointed at /usr/bin/chromium). nodejs and npm are added only when node or
# npm is not already on PATH (see node_packages).
readonly PKGS_BROWSER="
    chromium chromium-driver
"

log()
{
    printf '%s: %s\n' "$PROG" "$*"
}

die()
{
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    exit 1
}

usage()
{
    cat <<EOF
usage: $PROG [--minimal] [--list] [--check]
  --minimal  only build tools, runtime libraries, servers and the tools
             deploy/stack.sh calls (for Dockerfiles)
  --list     print the selected packages, one a line, and exit
  --check    report missing packages and exit 1 if any; install nothing
EOF
}

# A node from elsewhere (NodeSource, nvm) is common on Debian machines, and
# NodeSource's nodejs package conflicts with Debian's npm: installing either
# Debian package next to it would fail or replace it. So each is requested
# only when its command is missing.
node_packages()
{
    if ! command -v node >/dev/null 2>&1; then
        printf '%s\n' nodejs
    fi
    if command -v npm >/dev/null 2>&1; then
        return 0
    fi
    if ! command -v node >/dev/null 2>&1; then
        printf '%s\n' npm
        return 0
    fi
    local nodejs
    nodejs=$(dpkg-query -W -f='${db:Status-Status} ${Version}' nodejs \
                 2>/dev/null) || true
    case $nodejs in
    *nodesource*|"") ;;
    "installed "*) printf '%s\n' npm; return 0 ;;
    esac
    log "warning: node is on PATH but npm is not, and that node is not" \
        "Debian's: not installing Debian's npm (it needs Debian's nodejs);" \
        "install npm with that node" >&2
}

# Prints the packages of the selection, one a line.
selected_packages()
{
    local minimal=$1
    local p

    for p in $PKGS_BUILD $PKGS_RUNTIME $PKGS_SERVERS $PKGS_STACK; do
        printf '%s\n' "$p"
    done
    if [ "$minimal" = 1 ]; then
        return 0
    fi
    for p in $PKGS_TEST $PKGS_BENCH $PKGS_BROWSER; do
        printf '%s\n' "$p"
    done
    node_packages
}

# Prints the packages of "$@" that dpkg does not list as installed, in one
# dpkg-query call (one per package would take seconds).
missing_packages()
{
    # Unknown names make dpkg-query exit 1 and print nothing for them: the
    # comparison below then counts them as missing, which is what we want.
    local installed
    installed=$(dpkg-query -W -f='${Package} ${db:Status-Status}\n' "$@" \
                    2>/dev/null | awk '$2 == "installed" { print $1 }') || true
    local p
    for p in "$@"; do
        if ! grep -qxF -- "$p" <<<"$installed"; then
            printf '%s\n' "$p"
        fi
    done
}

main()
{
    local minimal=0
    local list=0
    local check=0
    local arg

    for arg in "$@"; do
        case $arg in
        --minimal) minimal=1 ;;
        --list) list=1 ;;
        --check) check=1 ;;
        -h|--help) usage; return 0 ;;
        *)
            printf '%s: unknown argument: %s\n' "$PROG" "$arg" >&2
            usage >&2
            return 2
            ;;
        esac
    done

    command -v dpkg-query >/dev/null 2>&1 ||
        die "dpkg-query not found: this script needs Debian 12 (bookworm)"

    local -a pkgs missing
    mapfile -t pkgs < <(selected_packages "$minimal")
    if [ "$list" = 1 ]; then
        printf '%s\n' "${pkgs[@]}"
        return 0
    fi

    local what=full
    if [ "$minimal" = 1 ]; then
        what=minimal
    fi
    log "checking ${#pkgs[@]} packages ($what set)"
    mapfile -t missing < <(missing_packages "${pkgs[@]}")
    if [ "${#missing[@]}" -eq 0 ]; then
        log "all packages installed, nothing to do"
        return 0
    fi
    log "missing ${#missing[@]}: ${missing[*]}"
    if [ "$check" = 1 ]; then
        return 1
    fi

    local -a sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null 2>&1 ||
            die "not root and sudo not found: run as root to install" \
                "${missing[*]}"
        sudo=(sudo)
    fi

    # apt's own output goes to a log that is shown only when it fails, so
    # a CI log gets one line per phase.
    local aptlog
    aptlog=$(mktemp "${TMPDIR:-/tmp}/handoff-install.XXXXXX") ||
        die "cannot create a temporary file"

    log "running apt-get update"
    if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get update >"$aptlog" 2>&1; then
        tail -n 30 "$aptlog" >&2
        die "apt-get update failed (network or apt sources?); log: $aptlog"
    fi

    log "installing ${missing[*]}"
    if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y --no-install-recommends "${missing[@]}" \
            >"$aptlog" 2>&1; then
        tail -n 30 "$aptlog" >&2
        die "apt-get install failed for: ${missing[*]}; log: $aptlog"
    fi
    rm -f "$aptlog"

    mapfile -t missing < <(missing_packages "${missing[@]}")
    if [ "${#missing[@]}" -ne 0 ]; then
        die "still not installed after apt-get: ${missing[*]}"
    fi
    log "done"
}

main "$@"
