#!/usr/bin/env bash
# One command per distributed-run benchmark: brings a stack of real servers
# up in a private directory on ports of its own (deploy/stack.sh), runs
# handoff-bench-dist MODE against it, and stops the stack whatever happens.
# The last line is the benchmark's `bench dist_<mode>: ...`.
#
#   tests/bench/dist_bench.sh throughput|latency|footprint|schedules [BUILD_DIR]
#
# BUILD_DIR defaults to build/ (built with cmake --build if the benchmark
# is missing). Measure a release build (the default of cmake here is
# RelWithDebInfo via tests/run.sh; a plain `cmake -B build` has no -O).
set -euo pipefail

mode=${1:-}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
build=${2:-$root/build}
case $mode in
throughput | latency | footprint | schedules) ;;
*)
    echo "usage: tests/bench/dist_bench.sh throughput|latency|footprint|schedules [BUILD_DIR]" >&2
    exit 2
    ;;
esac
if [ ! -x "$build/tests/bench/handoff-bench-dist" ] && [ ! -x "$build/bin/handoff-bench-dist" ]; then
    cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    cmake --build "$build" -j"$(nproc)" --target handoff-bench-dist >/dev/null
fi
bench=$build/bin/handoff-bench-dist
[ -x "$bench" ] || bench=$build/tests/bench/handoff-bench-dist

# Ports below Linux's ephemeral range (32768-60999), where an outgoing
# connection could hold one when the stack starts.
export HANDOFF_STACK_DIR
HANDOFF_STACK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/handoff-bench-stack-XXXXXX")
chmod 755 "$HANDOFF_STACK_DIR"
export HANDOFF_STACK_NATS_PORT=${HANDOFF_BENCH_NATS_PORT:-22222}
export HANDOFF_STACK_NATS_MONITOR_PORT=${HANDOFF_BENCH_NATS_MONITOR_PORT:-22822}
export HANDOFF_STACK_PG_PORT=${HANDOFF_BENCH_PG_PORT:-22432}
export HANDOFF_STACK_REDIS_PORT=${HANDOFF_BENCH_REDIS_PORT:-22379}
cleanup() {
    "$root/deploy/stack.sh" down --purge >/dev/null 2>&1 || true
    rm -rf "$HANDOFF_STACK_DIR"
}
trap cleanup EXIT
"$root/deploy/stack.sh" up >&2
eval "$("$root/deploy/stack.sh" env)"
"$bench" "$mode"
