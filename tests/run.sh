#!/usr/bin/env bash
# Runs every test, from a fresh Debian 12 machine to a verdict:
#   1. installs the Debian packages that are missing (deploy/install.sh),
#   2. checks formatting (clang-format),
#   3. builds with warnings as errors and runs every test against a local
#      stack of real servers (deploy/stack.sh: nats-server, PostgreSQL,
#      Redis on 127.0.0.1), stopped afterwards whatever happens,
#   4. builds again with AddressSanitizer + UndefinedBehaviorSanitizer and
#      runs every test again,
#   5. builds the fuzz targets with clang and runs each for a short time.
# Benchmarks are separate commands (README, "Performance").
#
# Usage: tests/run.sh [--quick]   (--quick: step 3 only)
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
quick=0
[ "${1:-}" = "--quick" ] && quick=1
jobs=$(nproc)

step() {
    printf '\n==> %s\n' "$*"
}

step "install missing packages"
deploy/install.sh

step "format check"
mapfile -t sources < <(git ls-files '*.c' '*.h')
clang-format --dry-run --Werror "${sources[@]}"

# One stack for the whole run, in a private directory, on ports of its own
# so a developer's stack is left alone. Below Linux's ephemeral range
# (32768-60999): a port there can be taken by any outgoing connection of
# the moment, and the stack then refuses to start (seen once).
export HANDOFF_STACK_DIR
HANDOFF_STACK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/handoff-test-stack-XXXXXX")
chmod 755 "$HANDOFF_STACK_DIR"
export HANDOFF_STACK_NATS_PORT=${HANDOFF_STACK_NATS_PORT:-23222}
export HANDOFF_STACK_NATS_MONITOR_PORT=${HANDOFF_STACK_NATS_MONITOR_PORT:-23822}
export HANDOFF_STACK_PG_PORT=${HANDOFF_STACK_PG_PORT:-23432}
export HANDOFF_STACK_REDIS_PORT=${HANDOFF_STACK_REDIS_PORT:-23379}
cleanup() {
    deploy/stack.sh down --purge >/dev/null 2>&1 || true
    rm -rf "$HANDOFF_STACK_DIR"
}
trap cleanup EXIT

step "stack up"
deploy/stack.sh up
eval "$(deploy/stack.sh env)"

# build_and_test DIR [cmake args...]: configure, build, run every test.
# Unit tests run in parallel; tests against the shared stack one at a time.
build_and_test() {
    local dir=$1
    shift
    step "build $dir ($*)"
    cmake -S "$root" -B "$dir" -DHANDOFF_WERROR=ON "$@" >/dev/null
    cmake --build "$dir" -j"$jobs"
    step "unit tests ($dir)"
    ctest --test-dir "$dir" -L unit --output-on-failure -j"$jobs"
    step "integration, e2e and browser tests ($dir)"
    ctest --test-dir "$dir" -L 'integration|e2e|browser' \
        --output-on-failure --no-tests=ignore
}

build_and_test build/ci-release -DCMAKE_BUILD_TYPE=RelWithDebInfo
[ "$quick" = 1 ] && exit 0

ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    build_and_test build/ci-asan -DCMAKE_BUILD_TYPE=Debug \
    -DHANDOFF_SANITIZE=address,undefined

step "fuzz targets (clang, libFuzzer)"
cmake -S "$root" -B build/ci-fuzz -DCMAKE_C_COMPILER=clang -DHANDOFF_FUZZ=ON \
    -DHANDOFF_WERROR=ON >/dev/null
cmake --build build/ci-fuzz -j"$jobs"
ctest --test-dir build/ci-fuzz -L fuzz --output-on-failure

step "all tests passed"
