#!/usr/bin/env bash
# Tests deploy/stack.sh against the real servers: up, idempotent up, status,
# env, stop-service/start-service keeping data, refusing a taken port, down.
# Uses a private stack dir and non-default ports; leaves nothing behind.
# Exit 0 when all checks pass; otherwise prints the failed check and exits 1.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
STACK=$ROOT/deploy/stack.sh

export HANDOFF_STACK_NATS_PORT=${HANDOFF_TEST_NATS_PORT:-24222}
export HANDOFF_STACK_NATS_MONITOR_PORT=${HANDOFF_TEST_NATS_MONITOR_PORT:-28222}
export HANDOFF_STACK_PG_PORT=${HANDOFF_TEST_PG_PORT:-25432}
export HANDOFF_STACK_REDIS_PORT=${HANDOFF_TEST_REDIS_PORT:-26379}
export HANDOFF_STACK_TIMEOUT=20
# Under /tmp: PostgreSQL runs as the postgres user, which must be able to
# traverse every parent directory.
HANDOFF_STACK_DIR=$(mktemp -d /tmp/handoff-stack-test.XXXXXX)
export HANDOFF_STACK_DIR

OUT=$HANDOFF_STACK_DIR.out
FOREIGN_PID=
T0=$(date +%s%N)

cleanup()
{
    local rc=$?
    if [ -n "$FOREIGN_PID" ]; then
        kill "$FOREIGN_PID" 2>/dev/null || true
        wait "$FOREIGN_PID" 2>/dev/null || true
    fi
    if [ -d "$HANDOFF_STACK_DIR" ]; then
        "$STACK" down --purge >/dev/null 2>&1 || rc=1
    fi
    rm -rf "$HANDOFF_STACK_DIR" "$OUT"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ok()
{
    printf 'ok - %s\n' "$*"
}

fail()
{
    printf 'FAIL - %s\n' "$*" >&2
    if [ -s "$OUT" ]; then
        printf '  output of the last command:\n' >&2
        sed 's/^/    /' "$OUT" >&2
    fi
    exit 1
}

# run EXPECTED_STATUS CMD...: runs CMD with its output in $OUT and fails
# the test unless it exits with EXPECTED_STATUS.
run()
{
    local want=$1
    shift
    local rc=0
    "$@" >"$OUT" 2>&1 || rc=$?
    if [ "$rc" -ne "$want" ]; then
        fail "'$*' exited $rc, expected $want"
    fi
}

expect_output()
{
    grep -qE -- "$1" "$OUT" || fail "output lacks /$1/ ($2)"
}

port_listening()
{
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# wait_for SECONDS CMD...: polls CMD until it succeeds or time runs out.
wait_for()
{
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.05
    done
}

pids()
{
    cat "$HANDOFF_STACK_DIR"/run/*.pid 2>/dev/null | awk '{ print $1 }' |
        sort | tr '\n' ' '
}

# no_process_left PIDS: none of PIDS is alive (zombies waiting to be reaped
# by init count as gone).
no_process_left()
{
    local pid
    local stat
    for pid in "$@"; do
        stat=$(ps -o stat= -p "$pid" 2>/dev/null) || continue
        case $stat in
        Z*) ;;
        *) return 1 ;;
        esac
    done
}

nats_answers()
{
    local code
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 \
               "$HANDOFF_NATS_MONITOR_URL/healthz?js-enabled-only=true") ||
        return 1
    [ "$code" = 200 ] || return 1
    # nats-server 2.9 answers 200 above even without JetStream.
    curl -fsS --max-time 2 "$HANDOFF_NATS_MONITOR_URL/jsz" >"$OUT" || return 1
    grep -q '"store_dir"' "$OUT" || return 1
    ! grep -q '"disabled": *true' "$OUT" || return 1
    # The client port greets with INFO.
    local greeting=
    exec 3<>"/dev/tcp/127.0.0.1/$HANDOFF_STACK_NATS_PORT" || return 1
    read -r -t 2 greeting <&3 || true
    exec 3<&-
    [ "${greeting:0:5}" = "INFO " ]
}

# nats_pub SUBJECT PAYLOAD: publishes with the raw protocol on a fresh
# connection and waits for the PONG that answers a trailing PING, so the
# server has read it all.
nats_pub()
{
    local line=
    exec 3<>"/dev/tcp/127.0.0.1/$HANDOFF_STACK_NATS_PORT" || return 1
    printf 'CONNECT {"verbose":false}\r\nPUB %s %d\r\n%s\r\nPING\r\n' \
        "$1" "${#2}" "$2" >&3
    while read -r -t 5 line <&3; do
        [ "${line%$'\r'}" != PONG ] || break
    done
    exec 3<&-
    [ "${line%$'\r'}" = PONG ]
}

# jsz_has REGEX: the server's JetStream summary matches REGEX.
jsz_has()
{
    curl -fsS --max-time 2 "$HANDOFF_NATS_MONITOR_URL/jsz" 2>/dev/null |
        grep -qE -- "$1"
}

psql_q()
{
    psql "$HANDOFF_PG_DSN" -X -q -v ON_ERROR_STOP=1 -tAc "$1"
}

check_all_answer()
{
    nats_answers || fail "NATS does not answer with JetStream enabled"
    local db
    db=$(psql_q 'select current_database()') ||
        fail "psql cannot query database handoff"
    [ "$db" = handoff ] || fail "connected to database '$db', not handoff"
    local pong
    pong=$(redis-cli -u "$HANDOFF_REDIS_URL" ping) ||
        fail "redis-cli ping failed"
    [ "$pong" = PONG ] || fail "redis answered '$pong' to PING"
}

for p in "$HANDOFF_STACK_NATS_PORT" "$HANDOFF_STACK_NATS_MONITOR_PORT" \
         "$HANDOFF_STACK_PG_PORT" "$HANDOFF_STACK_REDIS_PORT"; do
    if port_listening "$p"; then
        fail "port $p is already taken; set HANDOFF_TEST_*_PORT"
    fi
done

run 2 "$STACK" bogus
expect_output 'usage:' "usage on an unknown command"
ok "unknown command prints usage and exits 2"

run 0 "$STACK" up
expect_output 'nats: started' "nats started"
expect_output 'postgres: started' "postgres started"
expect_output 'redis: started' "redis started"
eval "$("$STACK" env)"
[ "$HANDOFF_NATS_URL" = "nats://127.0.0.1:$HANDOFF_STACK_NATS_PORT" ] ||
    fail "HANDOFF_NATS_URL is $HANDOFF_NATS_URL"
[ "$HANDOFF_REDIS_URL" = "redis://127.0.0.1:$HANDOFF_STACK_REDIS_PORT" ] ||
    fail "HANDOFF_REDIS_URL is $HANDOFF_REDIS_URL"
case $HANDOFF_PG_DSN in
*"port=$HANDOFF_STACK_PG_PORT "*"dbname=handoff"*) ;;
*) fail "HANDOFF_PG_DSN is $HANDOFF_PG_DSN" ;;
esac
check_all_answer
ok "up starts nats (JetStream), postgres (database handoff) and redis"

first_pids=$(pids)
run 0 "$STACK" up
[ "$(grep -c 'already running' "$OUT")" = 3 ] ||
    fail "second up did not report three running services"
[ "$(pids)" = "$first_pids" ] || fail "second up changed pids"
ok "up again leaves the running services alone"

run 0 "$STACK" status
[ "$(grep -c ' running ' "$OUT")" = 3 ] || fail "status lacks 3 running lines"
ok "status exits 0 with all running"

psql_q "create table kept (v text); insert into kept values ('before')" ||
    fail "cannot create a table"
run 0 "$STACK" stop-service postgres
run 3 "$STACK" status
expect_output '^postgres +stopped' "postgres shown stopped"
expect_output '^nats +running' "nats still running"
if psql_q 'select 1' >/dev/null 2>&1; then
    fail "postgres still answers after stop-service"
fi
run 0 "$STACK" start-service postgres
[ "$(psql_q 'select v from kept')" = before ] ||
    fail "table kept lost its row across stop-service/start-service"
ok "stop-service/start-service postgres keeps data"

redis-cli -u "$HANDOFF_REDIS_URL" set kept before >/dev/null
# A file-backed stream with one message, made with the raw protocol (no
# NATS client here): it must survive the restart.
stream='{"name":"KEPT","subjects":["kept.>"],"storage":"file"}'
nats_pub "\$JS.API.STREAM.CREATE.KEPT" "$stream" ||
    fail "cannot create a stream"
wait_for 5 jsz_has '"streams": 1,' || fail "stream KEPT not created"
nats_pub kept.a before || fail "cannot publish"
wait_for 5 jsz_has '"messages": 1,' || fail "message not stored in KEPT"
nats_pid=$(awk '{ print $1 }' "$HANDOFF_STACK_DIR/run/nats.pid")
run 0 "$STACK" stop-service nats
no_process_left "$nats_pid" || fail "nats pid $nats_pid still alive"
run 0 "$STACK" stop-service redis
# Without the port variables: the stack dir remembers its ports.
run 0 env -u HANDOFF_STACK_NATS_PORT -u HANDOFF_STACK_NATS_MONITOR_PORT \
    -u HANDOFF_STACK_REDIS_PORT "$STACK" start-service nats
run 0 "$STACK" start-service redis
[ "$(redis-cli -u "$HANDOFF_REDIS_URL" get kept)" = before ] ||
    fail "redis lost its data across stop-service/start-service"
check_all_answer
if ! jsz_has '"streams": 1,' || ! jsz_has '"messages": 1,'; then
    fail "JetStream lost stream KEPT or its message across the restart"
fi
ok "stop-service/start-service nats and redis keep their data"

all_pids=$(pids)
run 0 "$STACK" down
# shellcheck disable=SC2086 # a list of pids
no_process_left $all_pids || fail "a process of $all_pids survived down"
run 3 "$STACK" status
[ "$(grep -c ' stopped ' "$OUT")" = 3 ] || fail "status lacks 3 stopped lines"
run 0 "$STACK" down
ok "down stops everything, status exits 3, down twice is fine"

# A foreign listener on the Redis port: up must refuse it (nats and postgres
# come up first, so this is also an up that fails halfway).
python=python3
if [ -x /usr/bin/python3 ]; then
    python=/usr/bin/python3
fi
"$python" -m http.server --bind 127.0.0.1 "$HANDOFF_STACK_REDIS_PORT" \
    </dev/null >/dev/null 2>&1 &
FOREIGN_PID=$!
wait_for 10 port_listening "$HANDOFF_STACK_REDIS_PORT" ||
    fail "the foreign listener did not start"
run 1 "$STACK" up
expect_output "port $HANDOFF_STACK_REDIS_PORT .*in use" "names the port"
expect_output 'HANDOFF_STACK_REDIS_PORT' "says how to change it"
run 3 "$STACK" status
expect_output '^redis +stopped' "redis not started"
half_pids=$(pids)
run 0 "$STACK" down
# shellcheck disable=SC2086 # a list of pids
no_process_left $half_pids || fail "a process of $half_pids survived down"
run 3 "$STACK" status
port_listening "$HANDOFF_STACK_REDIS_PORT" ||
    fail "down touched the foreign listener"
kill "$FOREIGN_PID"
wait "$FOREIGN_PID" 2>/dev/null || true
FOREIGN_PID=
ok "up refuses a port taken by another program; down after a failed up"

run 0 "$STACK" down --purge
[ ! -e "$HANDOFF_STACK_DIR" ] || fail "down --purge left $HANDOFF_STACK_DIR"
run 0 "$STACK" down
ok "down --purge deletes the stack dir; down afterwards is fine"

printf 'all passed in %d ms\n' $((($(date +%s%N) - T0) / 1000000))
