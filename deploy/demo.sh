#!/usr/bin/env bash
# Handoff's demo, from a fresh Debian 12 machine: installs what is missing,
# builds, and runs the example suites with the local runner, showing every
# outcome a test can have and the report formats.
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
build=${HANDOFF_BUILD_DIR:-$root/build}
out=${HANDOFF_DEMO_OUT:-$root/build/demo}

say() {
    printf '\n\033[1m==> %s\033[0m\n' "$*"
}

say "installing missing packages"
deploy/install.sh

say "building (cmake, $(nproc) jobs)"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" >/dev/null
worker=$build/bin/handoff-example-worker
mkdir -p "$out"

say "the suites compiled into the example worker"
"$worker" list

say "selftest: one test per outcome (go test -v style)"
set +e
"$worker" run selftest -v --junit "$out/selftest.junit.xml"
status=$?
set -e
echo "(exit status $status: 1, because selftest fails on purpose)"

say "httpapi: a realistic suite testing an HTTP API with libcurl"
"$worker" run httpapi -v

say "the same selftest run as Go's test2json stream (first lines)"
"$worker" run selftest --json --run 'pass|skip' >"$out/selftest.json" || true
head -n 5 "$out/selftest.json"

say "done"
cat <<MSG
Reports written:
  JUnit XML   $out/selftest.junit.xml
  test2json   $out/selftest.json
Try:  $worker run selftest --run 'flaky|segfault' -v
      $worker run httpapi --count 3
MSG
