#!/usr/bin/env bash
# Handoff's demo, from a fresh Debian 12 machine: installs what is missing,
# builds, runs the example suites with the local runner (every outcome a
# test can have, the report formats), then the distributed path: the local
# stack (NATS JetStream, PostgreSQL, Redis on 127.0.0.1), one controller and
# two example workers, the example suites triggered over HTTP, their
# results read back from the API, and the URL to open.
#
#   deploy/demo.sh          everything above; the controller and workers
#                           keep running afterwards for you to try
#   deploy/demo.sh down     stops the controller, workers and stack
#
# Settings: HANDOFF_BUILD_DIR, HANDOFF_DEMO_OUT, HANDOFF_DEMO_PORT
# (controller HTTP, default 8080); the stack's HANDOFF_STACK_* (stack.sh).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
build=${HANDOFF_BUILD_DIR:-$root/build}
out=${HANDOFF_DEMO_OUT:-$root/build/demo}

port=${HANDOFF_DEMO_PORT:-8080}
url=http://127.0.0.1:$port
export HANDOFF_STACK_DIR=${HANDOFF_STACK_DIR:-$out/stack}

say() {
    printf '\n\033[1m==> %s\033[0m\n' "$*"
}

# Stops what a previous demo started: the programs by their pid files
# (SIGTERM: workers drain, the controller finishes requests), then the
# stack.
demo_down() {
    local f pid
    for f in "$out"/*.pid; do
        [ -e "$f" ] || continue
        pid=$(cat "$f")
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 50); do
                kill -0 "$pid" 2>/dev/null || break
                sleep 0.1
            done
            kill -KILL "$pid" 2>/dev/null || true
        fi
        rm -f "$f"
    done
    if [ -d "$HANDOFF_STACK_DIR" ]; then
        deploy/stack.sh down
    fi
}

if [ "${1:-}" = "down" ]; then
    demo_down
    exit 0
elif [ -n "${1:-}" ]; then
    echo "usage: deploy/demo.sh [down]" >&2
    exit 2
fi

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

say "distributed: the stack (nats-server, PostgreSQL, Redis on 127.0.0.1)"
demo_down >/dev/null 2>&1 || true
deploy/stack.sh up
eval "$(deploy/stack.sh env)"

# start NAME COMMAND...: runs COMMAND in the background, log and pid in $out.
start() {
    local name=$1
    shift
    "$@" >"$out/$name.log" 2>&1 &
    echo $! >"$out/$name.pid"
}

say "distributed: one controller on $url and two example workers"
HANDOFF_HTTP_ADDR=127.0.0.1:$port start controller "$build/bin/handoff-controller"
start worker-1 "$worker" serve --id demo-worker-1 --concurrency 2
start worker-2 "$worker" serve --id demo-worker-2 --concurrency 2
# Ready when the controller answers /readyz and both workers are in its
# catalog.
for i in $(seq 150); do
    if curl -fsS "$url/readyz" >/dev/null 2>&1 &&
        [ "$(curl -fsS "$url/api/v1/workers" 2>/dev/null |
            grep -o '"demo-worker-[12]"' | sort -u | wc -l)" = 2 ]; then
        break
    fi
    if [ "$i" = 150 ]; then
        echo "the controller or the workers did not come up; logs in $out" >&2
        tail -n 20 "$out"/controller.log "$out"/worker-*.log >&2
        exit 1
    fi
    sleep 0.2
done
curl -fsS "$url/api/v1/workers"
echo

say "distributed: POST /api/v1/runs for both example suites"
ids=()
for body in '{"suite":"httpapi","initiated_by":"demo"}' \
    '{"suite":"selftest","skip":"hang|timeout","initiated_by":"demo"}'; do
    echo "\$ curl -X POST $url/api/v1/runs -d '$body'"
    reply=$(curl -fsS -X POST -H 'Content-Type: application/json' \
        -d "$body" "$url/api/v1/runs")
    echo "$reply"
    ids+=("$(printf '%s' "$reply" | sed -n 's/^{"id": *\([0-9]*\).*/\1/p')")
done

say "distributed: handoffctl follows a third run live, as CI would"
set +e
"$build/bin/handoffctl" --url "$url" run httpapi --wait -v
echo "(handoffctl exit status $?)"
set -e

say "distributed: the results, from the API"
for id in "${ids[@]}"; do
    for _ in $(seq 300); do
        state=$(curl -fsS "$url/api/v1/runs/$id" |
            sed -n 's/.*"state": *"\([a-z_]*\)".*/\1/p' | head -n 1)
        case $state in queued | running) sleep 0.2 ;; *) break ;; esac
    done
    "$build/bin/handoffctl" --url "$url" show "$id" || true
done
"$build/bin/handoffctl" --url "$url" runs

say "done"
cat <<MSG
Local reports written:
  JUnit XML   $out/selftest.junit.xml
  test2json   $out/selftest.json
Try:  $worker run selftest --run 'flaky|segfault' -v
      $worker run httpapi --count 3

The controller and two workers are still running (logs in $out):
  open        $url/api/v1/runs/${ids[0]}
  runs        $build/bin/handoffctl --url $url runs
  run         $build/bin/handoffctl --url $url run selftest --wait
  live        curl -N $url/api/v1/runs/ID/events
  metrics     $url/metrics
Stop them and the stack:  deploy/demo.sh down
MSG
