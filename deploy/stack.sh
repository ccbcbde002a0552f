#!/usr/bin/env bash
# A local stack of real servers from the Debian packages, on 127.0.0.1, for
# development and the integration and end-to-end tests: nats-server with
# JetStream, PostgreSQL 15 and Redis. No systemd, no Docker.
#
# Usage: deploy/stack.sh up | down [--purge] | status | env
#                        | stop-service SERVICE | start-service SERVICE
#
# Settings (environment):
#   HANDOFF_STACK_DIR               data, logs and pids
#                                   (default ${TMPDIR:-/tmp}/handoff-stack-UID)
#   HANDOFF_STACK_NATS_PORT         NATS clients (default 14222)
#   HANDOFF_STACK_NATS_MONITOR_PORT NATS monitoring HTTP (default 18222)
#   HANDOFF_STACK_PG_PORT           PostgreSQL (default 15432)
#   HANDOFF_STACK_REDIS_PORT        Redis (default 16379)
#   HANDOFF_STACK_TIMEOUT           seconds to wait for a server to be ready
#                                   or gone (default 30)
# A port not set in the environment is the one this stack dir used last, so
# start-service, status and env need only HANDOFF_STACK_DIR.
#
# Layout of the stack dir: nats/ (jetstream/, nats.log), postgres/ (data/,
# postgres.log), redis/ (dump.rdb, redis.log), run/ (SERVICE.pid holding
# "pid start-time", NAME.port with the port last used). Data survives
# down/up and stop-service/start-service; down --purge deletes the stack dir.
set -euo pipefail

readonly PROG=${0##*/}
readonly SERVICES="nats postgres redis"
readonly PG_BIN=/usr/lib/postgresql/15/bin
# Marks a directory as a stack dir, so --purge never deletes anything else.
readonly MARKER=.handoff-stack

STACK_DIR=${HANDOFF_STACK_DIR:-${TMPDIR:-/tmp}/handoff-stack-$(id -u)}
STACK_DIR=${STACK_DIR%/}
case $STACK_DIR in
/*) ;;
*) STACK_DIR=$PWD/$STACK_DIR ;;
esac
readonly STACK_DIR
readonly RUN_DIR=$STACK_DIR/run
TIMEOUT_S=${HANDOFF_STACK_TIMEOUT:-30}
readonly TIMEOUT_S
case $TIMEOUT_S in
''|*[!0-9]*|0)
    printf '%s: error: HANDOFF_STACK_TIMEOUT: not a number of seconds: %s\n' \
        "$PROG" "$TIMEOUT_S" >&2
    exit 1
    ;;
esac

usage()
{
    cat <<EOF
usage: $PROG COMMAND
  up                      start nats, postgres and redis (idempotent)
  down [--purge]          stop what this stack started; --purge also
                          deletes the stack dir with all data
  status                  one line per service; exit 0 if all run, else 3
  env                     print export lines: eval "\$($PROG env)"
  stop-service SERVICE    stop one of: $SERVICES (data kept)
  start-service SERVICE   start one of them again
Stack dir: $STACK_DIR (HANDOFF_STACK_DIR)
EOF
}

say()
{
    printf '%s: %s\n' "$PROG" "$*"
}

warn()
{
    printf '%s: %s\n' "$PROG" "$*" >&2
}

die()
{
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    exit 1
}

# --- Configuration ----------------------------------------------------------

# port_setting NAME DEFAULT: the port from HANDOFF_STACK_NAME, else the one
# recorded by the last start, else DEFAULT.
port_setting()
{
    local name=$1
    local def=$2
    local var=HANDOFF_STACK_$name
    local val=${!var:-}
    local file=$RUN_DIR/$name.port

    if [ -z "$val" ] && [ -r "$file" ]; then
        val=$(<"$file")
    fi
    val=${val:-$def}
    case $val in
    ''|*[!0-9]*) die "$var: not a port number: '$val'" ;;
    esac
    if [ "$val" -lt 1 ] || [ "$val" -gt 65535 ]; then
        die "$var: port out of range: $val"
    fi
    printf '%s\n' "$val"
}

# service_port SERVICE NAME DEFAULT: a running service keeps the port it
# was started with, whatever the environment asks for now.
service_port()
{
    local want
    want=$(port_setting "$2" "$3")
    local file=$RUN_DIR/$2.port
    if [ -r "$file" ] && service_pid "$1" >/dev/null; then
        local have
        have=$(<"$file")
        if [ "$have" != "$want" ]; then
            warn "$1 runs on port $have, not $want (HANDOFF_STACK_$2):" \
                "stop-service $1 first to move it"
        fi
        want=$have
    fi
    printf '%s\n' "$want"
}

load_ports()
{
    NATS_PORT=$(service_port nats NATS_PORT 14222)
    NATS_MON_PORT=$(service_port nats NATS_MONITOR_PORT 18222)
    PG_PORT=$(service_port postgres PG_PORT 15432)
    REDIS_PORT=$(service_port redis REDIS_PORT 16379)
    if [ "$NATS_PORT" = "$NATS_MON_PORT" ]; then
        die "NATS client and monitor ports are both $NATS_PORT"
    fi
}

record_port()
{
    printf '%s\n' "$2" >"$RUN_DIR/$1.port"
}

check_service_name()
{
    case " $SERVICES " in
    *" $1 "*) ;;
    *) warn "unknown service '$1' (one of: $SERVICES)"; usage >&2; exit 2 ;;
    esac
}

# --- Time -------------------------------------------------------------------

now_ms()
{
    local t=${EPOCHREALTIME//[!0-9]/}
    printf '%s\n' $((10#$t / 1000))
}

# --- Processes --------------------------------------------------------------

# The program name the kernel shows for each service's main process.
service_comm()
{
    case $1 in
    nats) printf 'nats-server\n' ;;
    postgres) printf 'postgres\n' ;;
    redis) printf 'redis-server\n' ;;
    esac
}

# proc_stat PID: prints "state start-time comm" of a process from
# /proc/PID/stat, or fails if there is none. The start time (clock ticks
# since boot) tells a process from a later one that reuses its pid.
proc_stat()
{
    local stat
    { read -r stat <"/proc/$1/stat"; } 2>/dev/null || return 1
    local comm=${stat#*(}
    comm=${comm%)*}
    local -a f
    read -r -a f <<<"${stat##*) }"
    # f[0] is field 3 (state), so field 22 (starttime) is f[19].
    printf '%s %s %s\n' "${f[0]}" "${f[19]}" "$comm"
}

# record_pid SERVICE PID: remembers the process we started, before it is
# ready, so that down can stop it even when up fails halfway.
record_pid()
{
    local st
    st=$(proc_stat "$2") || return 1
    local -a f
    read -r -a f <<<"$st"
    printf '%s %s\n' "$2" "${f[1]}" >"$RUN_DIR/$1.pid"
}

# service_pid SERVICE: prints the pid of the service's process when the pid
# file names a live process that still is the one we started; else fails.
# A zombie counts as gone: on these machines orphans are reaped late, and
# kill -0 would report a stopped server as alive for seconds.
service_pid()
{
    local file=$RUN_DIR/$1.pid
    local pid
    local start
    if [ "$1" = postgres ] && [ ! -s "$file" ]; then
        adopt_postmaster || true
    fi
    [ -r "$file" ] || return 1
    read -r pid start <"$file" || return 1
    [ -n "$pid" ] || return 1
    process_matches "$pid" "$start" "$(service_comm "$1")" || return 1
    printf '%s\n' "$pid"
}

# We learn the postmaster's pid only when pg_ctl returns: if up was killed
# while pg_ctl waited, take the pid from postmaster.pid, provided that
# process is a postgres serving our data dir.
adopt_postmaster()
{
    local data=$STACK_DIR/postgres/data
    local pid=
    { read -r pid <"$data/postmaster.pid"; } 2>/dev/null || return 1
    case $pid in
    ''|*[!0-9]*) return 1 ;;
    esac
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = postgres ] || return 1
    tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | grep -qxF -- "$data" ||
        return 1
    record_pid postgres "$pid"
}

# process_matches PID START COMM: is PID alive (not a zombie), started at
# START, and running COMM? A process that has just been forked to exec COMM
# may still show the shell's name: the start time alone decides then.
process_matches()
{
    local st
    st=$(proc_stat "$1") || return 1
    local state
    local start
    local comm
    read -r state start comm <<<"$st"
    [ "$start" = "$2" ] || return 1
    case $state in
    Z|X) return 1 ;;
    esac
    [ "$comm" = "$3" ] || [ "$comm" = "${PROG:0:15}" ] || [ "$comm" = bash ]
}

# wait_gone PID START COMM SECONDS: polls until the process is gone.
wait_gone()
{
    local deadline=$(($(now_ms) + $4 * 1000))
    while process_matches "$1" "$2" "$3"; do
        if [ "$(now_ms)" -ge "$deadline" ]; then
            return 1
        fi
        sleep 0.02
    done
}

# --- Ports ------------------------------------------------------------------

# port_owner PORT: prints who listens on PORT on any address, or nothing.
port_owner()
{
    local port=$1
    if command -v ss >/dev/null 2>&1; then
        local line
        line=$(ss -Hltnp "sport = :$port" 2>/dev/null | head -n 1) || true
        if [ -n "$line" ]; then
            local who
            local re='users:\(\("([^"]*)",pid=([0-9]+).*'
            who=$(grep -o 'users:(([^)]*))' <<<"$line" |
                      sed -E "s/$re/\\1 pid \\2/") || true
            printf '%s\n' "${who:-unknown program}"
        fi
        return 0
    fi
    # Without ss: a connection that succeeds means a listener.
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        printf 'unknown program\n'
    fi
}

# require_free_port PORT WHAT VAR: a foreign server on our port would pass
# the readiness check, so refuse to start instead.
require_free_port()
{
    local owner
    owner=$(port_owner "$1")
    if [ -n "$owner" ]; then
        die "port $1 ($2) is already in use by $owner;" \
            "stop it or choose another port with $3=PORT"
    fi
}

# --- Stack dir --------------------------------------------------------------

# Creates the stack dir, or checks that an existing one is ours. It lives in
# a shared /tmp by default, so refuse symlinks and other users' directories.
prepare_stack_dir()
{
    local created=0
    if [ -L "$STACK_DIR" ]; then
        die "$STACK_DIR is a symlink; refusing to use it"
    fi
    if [ -e "$STACK_DIR" ]; then
        [ -d "$STACK_DIR" ] || die "$STACK_DIR exists and is not a directory"
        [ -O "$STACK_DIR" ] ||
            die "$STACK_DIR belongs to another user; set HANDOFF_STACK_DIR"
        if [ ! -e "$STACK_DIR/$MARKER" ] &&
           [ -n "$(ls -A "$STACK_DIR")" ]; then
            die "$STACK_DIR is not empty and not a stack dir;" \
                "set HANDOFF_STACK_DIR to a new or empty directory"
        fi
    else
        mkdir -p "$STACK_DIR" || die "cannot create $STACK_DIR"
        created=1
    fi
    # The postgres user must be able to traverse it (as root, PostgreSQL
    # runs as postgres). Checked before any server starts.
    chmod 0755 "$STACK_DIR"
    if [ "$(id -u)" -eq 0 ] && id postgres >/dev/null 2>&1 &&
       ! runuser -u postgres -- test -x "$STACK_DIR"; then
        [ "$created" = 0 ] || rmdir "$STACK_DIR"
        die "the postgres user cannot reach $STACK_DIR: every parent" \
            "directory must be traversable by it; set HANDOFF_STACK_DIR" \
            "to a directory under /tmp"
    fi
    : >"$STACK_DIR/$MARKER"
    mkdir -p "$RUN_DIR"
}

# Serialises commands that start or stop servers on one stack dir. The lock
# fd must not leak into the servers (it would keep the lock held): every
# server start closes it.
take_lock()
{
    [ -d "$STACK_DIR" ] || return 0
    exec 9>"$STACK_DIR/.lock"
    if command -v flock >/dev/null 2>&1; then
        flock -w "$TIMEOUT_S" 9 ||
            die "another $PROG holds $STACK_DIR/.lock"
    fi
}

# Each start writes a mark into the service's log, so a failure shows the
# lines of this attempt only.
log_mark()
{
    printf -- '--- %s: start at %s ---\n' "$PROG" "$(date '+%F %T')" >>"$1"
}

log_tail()
{
    local log=$1
    [ -s "$log" ] || return 0
    warn "last lines of $log:"
    awk -v mark="--- $PROG: start at " '
        index($0, mark) == 1 { n = 0; next }
        { line[n++ % 20] = $0 }
        END {
            first = n > 20 ? n - 20 : 0
            for (i = first; i < n; i++) print "    " line[i % 20]
        }' "$log" >&2
}

# --- NATS -------------------------------------------------------------------

nats_ready()
{
    local base=http://127.0.0.1:$NATS_MON_PORT
    curl -fsS -o /dev/null --max-time 1 \
        "$base/healthz?js-enabled-only=true" 2>/dev/null || return 1
    # nats-server 2.9 answers 200 on that health check even with JetStream
    # off: ask /jsz too.
    local jsz
    jsz=$(curl -fsS --max-time 1 "$base/jsz" 2>/dev/null) || return 1
    ! grep -q '"disabled": *true' <<<"$jsz"
}

start_nats()
{
    local dir=$STACK_DIR/nats
    local log=$dir/nats.log
    command -v nats-server >/dev/null 2>&1 ||
        die "nats-server not found: run deploy/install.sh"
    require_free_port "$NATS_PORT" "NATS client" HANDOFF_STACK_NATS_PORT
    require_free_port "$NATS_MON_PORT" "NATS monitoring" \
        HANDOFF_STACK_NATS_MONITOR_PORT
    mkdir -p "$dir/jetstream"
    log_mark "$log"
    # No daemon mode: run it in the background with every standard stream
    # redirected, or it would hold the caller's output (a CI log) open.
    nats-server -a 127.0.0.1 -p "$NATS_PORT" -m "$NATS_MON_PORT" \
        -js -sd "$dir/jetstream" -n handoff-stack \
        </dev/null >>"$log" 2>&1 9>&- &
    record_pid nats $! || true
    record_port NATS_PORT "$NATS_PORT"
    record_port NATS_MONITOR_PORT "$NATS_MON_PORT"
    wait_ready nats nats_ready "$log"
}

# --- PostgreSQL -------------------------------------------------------------

# As root, initdb and pg_ctl refuse to run: run them as postgres.
as_pg()
{
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

pg_psql()
{
    psql -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres "$@"
}

pg_ready()
{
    pg_isready -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -t 1 \
        2>/dev/null || return 1
    pg_psql -d handoff -tAc 'select 1' >/dev/null 2>&1
}

pg_init()
{
    local dir=$1
    local data=$dir/data
    local log=$2

    if [ -s "$data/PG_VERSION" ]; then
        return 0
    fi
    # A data dir without PG_VERSION is an initdb that failed halfway; initdb
    # refuses a non-empty directory.
    rm -rf "$data"
    say "postgres: initdb in $data"
    if ! as_pg "$PG_BIN/initdb" -D "$data" -A trust -U postgres -E UTF8 \
            --no-locale --no-sync </dev/null >>"$log" 2>&1 9>&-; then
        log_tail "$log"
        die "postgres: initdb failed"
    fi
    # Loopback TCP only; no Unix socket (the default directory may not exist
    # and a long stack dir would exceed the socket path limit). The port is
    # given at each start. Durability off for speed: this is a test stack.
    cat >>"$data/postgresql.conf" <<EOF

# deploy/stack.sh
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
fsync = off
synchronous_commit = off
full_page_writes = off
EOF
}

start_postgres()
{
    local dir=$STACK_DIR/postgres
    local data=$dir/data
    local log=$dir/postgres.log
    [ -x "$PG_BIN/pg_ctl" ] ||
        die "PostgreSQL 15 not found in $PG_BIN: run deploy/install.sh"
    command -v psql >/dev/null 2>&1 ||
        die "psql not found: run deploy/install.sh"
    require_free_port "$PG_PORT" "PostgreSQL" HANDOFF_STACK_PG_PORT

    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then
        id postgres >/dev/null 2>&1 ||
            die "no postgres user: install postgresql-15 (deploy/install.sh)"
        chown postgres:postgres "$dir"
        chmod 0700 "$dir"
        touch "$log"
        chown postgres:postgres "$log"
        if ! runuser -u postgres -- test -w "$dir"; then
            die "the postgres user cannot reach $dir: every parent" \
                "directory must be traversable by it; set" \
                "HANDOFF_STACK_DIR to a directory under /tmp"
        fi
    fi
    log_mark "$log"
    pg_init "$dir" "$log"

    # pg_ctl -w polls until the server accepts connections or has died.
    # Its own messages go to the server's log too (both append).
    local rc=0
    # shellcheck disable=SC2094
    as_pg "$PG_BIN/pg_ctl" -D "$data" -l "$log" -w -t "$TIMEOUT_S" \
        -o "-p $PG_PORT" start </dev/null >>"$log" 2>&1 9>&- || rc=$?
    local pid=
    if [ -r "$data/postmaster.pid" ]; then
        read -r pid <"$data/postmaster.pid" || true
    fi
    if [ -n "$pid" ]; then
        record_pid postgres "$pid" || true
    fi
    record_port PG_PORT "$PG_PORT"
    if [ "$rc" -ne 0 ]; then
        fail_start postgres "$log" "pg_ctl start failed"
    fi
    # Database handoff exists from the first start on.
    local deadline=$(($(now_ms) + TIMEOUT_S * 1000))
    until pg_isready -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres \
            -t 1 2>/dev/null; do
        if [ "$(now_ms)" -ge "$deadline" ]; then
            fail_start postgres "$log" "not accepting connections"
        fi
        sleep 0.05
    done
    local have
    have=$(pg_psql -d postgres -tAc \
               "select 1 from pg_database where datname = 'handoff'" \
               2>>"$log") ||
        fail_start postgres "$log" "cannot query the server"
    if [ "$have" != 1 ]; then
        pg_psql -d postgres -c 'create database handoff' >>"$log" 2>&1 ||
            fail_start postgres "$log" "cannot create database handoff"
    fi
    wait_ready postgres pg_ready "$log"
}

# --- Redis ------------------------------------------------------------------

redis_ready()
{
    local reply
    reply=$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null) ||
        return 1
    [ "$reply" = PONG ]
}

start_redis()
{
    local dir=$STACK_DIR/redis
    local log=$dir/redis.log
    command -v redis-server >/dev/null 2>&1 ||
        die "redis-server not found: run deploy/install.sh"
    require_free_port "$REDIS_PORT" "Redis" HANDOFF_STACK_REDIS_PORT
    mkdir -p "$dir"
    log_mark "$log"
    # In the foreground of a background job, like nats-server, so $! is its
    # pid (a daemonized redis deletes its pid file on exit). No periodic
    # snapshots; SIGTERM saves one, so data survives stop and start.
    redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$dir" \
        --daemonize no --save '' --appendonly no \
        --shutdown-on-sigterm save --logfile '' \
        </dev/null >>"$log" 2>&1 9>&- &
    record_pid redis $! || true
    record_port REDIS_PORT "$REDIS_PORT"
    wait_ready redis redis_ready "$log"
}

# --- Start and stop ---------------------------------------------------------

# fail_start SERVICE LOG WHY: stops the half-started server, shows its log
# and exits non-zero.
fail_start()
{
    warn "$1: failed to start: $3"
    log_tail "$2"
    stop_one "$1" quiet || true
    exit 1
}

# wait_ready SERVICE PROBE LOG: polls PROBE until it succeeds, the process
# dies or the deadline passes.
wait_ready()
{
    local svc=$1
    local probe=$2
    local log=$3
    local t0
    t0=$(now_ms)
    local deadline=$((t0 + TIMEOUT_S * 1000))

    while ! "$probe"; do
        if ! service_pid "$svc" >/dev/null; then
            fail_start "$svc" "$log" "the server exited"
        fi
        if [ "$(now_ms)" -ge "$deadline" ]; then
            fail_start "$svc" "$log" "not ready after ${TIMEOUT_S} s"
        fi
        sleep 0.02
    done
    local ms=$(($(now_ms) - t0))
    say "$svc: started, pid $(service_pid "$svc"), $(describe "$svc")," \
        "ready in ${ms} ms"
}

describe()
{
    case $1 in
    nats) printf '127.0.0.1:%s (monitor %s)\n' "$NATS_PORT" "$NATS_MON_PORT" ;;
    postgres) printf '127.0.0.1:%s\n' "$PG_PORT" ;;
    redis) printf '127.0.0.1:%s\n' "$REDIS_PORT" ;;
    esac
}

start_one()
{
    local svc=$1
    local pid
    if pid=$(service_pid "$svc"); then
        say "$svc: already running, pid $pid, $(describe "$svc")"
        return 0
    fi
    rm -f "$RUN_DIR/$svc.pid"
    case $svc in
    nats) start_nats ;;
    postgres) start_postgres ;;
    redis) start_redis ;;
    esac
}

# stop_one SERVICE [quiet]: stops the process this stack started for
# SERVICE, if it still is that process, and waits until it is gone.
stop_one()
{
    local svc=$1
    local quiet=${2:-}
    local file=$RUN_DIR/$svc.pid
    local pid=
    local start=
    local comm
    comm=$(service_comm "$svc")

    if [ "$svc" = postgres ] && [ ! -s "$file" ]; then
        adopt_postmaster || true
    fi
    if [ -r "$file" ]; then
        read -r pid start <"$file" || true
    fi
    if [ -z "$pid" ] || ! process_matches "$pid" "$start" "$comm"; then
        rm -f "$file"
        [ -n "$quiet" ] || say "$svc: not running"
        return 0
    fi
    # PostgreSQL: fast shutdown (SIGINT: disconnect clients, checkpoint).
    # Not immediate (SIGQUIT): with synchronous_commit=off the last commits
    # are still in shared memory and would be lost. nats-server and
    # redis-server: SIGTERM (redis saves a snapshot then).
    local sig=TERM
    if [ "$svc" = postgres ]; then
        sig=INT
    fi
    local t0
    t0=$(now_ms)
    kill -s "$sig" "$pid" 2>/dev/null || true
    if ! wait_gone "$pid" "$start" "$comm" "$TIMEOUT_S"; then
        warn "$svc: pid $pid still there after ${TIMEOUT_S} s; sending KILL"
        kill -s KILL "$pid" 2>/dev/null || true
        wait_gone "$pid" "$start" "$comm" 10 ||
            die "$svc: pid $pid does not go away"
    fi
    rm -f "$file"
    [ -n "$quiet" ] || say "$svc: stopped pid $pid in $(($(now_ms) - t0)) ms"
}

# --- Commands ---------------------------------------------------------------

cmd_up()
{
    prepare_stack_dir
    take_lock
    load_ports
    local svc
    for svc in $SERVICES; do
        start_one "$svc"
    done
    say "stack up in $STACK_DIR; use: eval \"\$($0 env)\""
}

cmd_down()
{
    local purge=0
    case ${1:-} in
    '') ;;
    --purge) purge=1 ;;
    *) warn "unknown option for down: $1"; usage >&2; exit 2 ;;
    esac
    if [ ! -d "$STACK_DIR" ]; then
        say "no stack in $STACK_DIR"
        return 0
    fi
    [ -e "$STACK_DIR/$MARKER" ] ||
        die "$STACK_DIR is not a stack dir (no $MARKER); not touching it"
    take_lock
    local svc
    for svc in $SERVICES; do
        stop_one "$svc"
    done
    if [ "$purge" = 1 ]; then
        rm -rf "$STACK_DIR"
        say "deleted $STACK_DIR"
    fi
}

cmd_status()
{
    load_ports
    local all=0
    local svc
    local pid
    local state
    for svc in $SERVICES; do
        if pid=$(service_pid "$svc"); then
            state=running
            case $svc in
            nats) nats_ready || state="running, not answering" ;;
            postgres) pg_ready || state="running, not answering" ;;
            redis) redis_ready || state="running, not answering" ;;
            esac
        else
            state=stopped
            pid=-
        fi
        [ "$state" = running ] || all=3
        printf '%-9s %-24s %-33s pid %s\n' "$svc" "$state" \
            "$(describe "$svc")" "$pid"
    done
    return "$all"
}

# Quotes a value for the shell that evals our output.
shell_quote()
{
    printf "'%s'" "${1//\'/\'\\\'\'}"
}

cmd_env()
{
    load_ports
    local dsn="host=127.0.0.1 port=$PG_PORT dbname=handoff user=postgres"
    printf 'export HANDOFF_STACK_DIR=%s\n' "$(shell_quote "$STACK_DIR")"
    printf 'export HANDOFF_NATS_URL=%s\n' \
        "$(shell_quote "nats://127.0.0.1:$NATS_PORT")"
    printf 'export HANDOFF_NATS_MONITOR_URL=%s\n' \
        "$(shell_quote "http://127.0.0.1:$NATS_MON_PORT")"
    printf 'export HANDOFF_PG_DSN=%s\n' "$(shell_quote "$dsn")"
    printf 'export HANDOFF_REDIS_URL=%s\n' \
        "$(shell_quote "redis://127.0.0.1:$REDIS_PORT")"
}

cmd_service()
{
    local action=$1
    local svc=${2:-}
    if [ -z "$svc" ] || [ $# -gt 2 ]; then
        usage >&2
        exit 2
    fi
    check_service_name "$svc"
    if [ "$action" = start ]; then
        prepare_stack_dir
    elif [ ! -d "$RUN_DIR" ]; then
        say "$svc: not running"
        return 0
    fi
    take_lock
    load_ports
    if [ "$action" = start ]; then
        start_one "$svc"
    else
        stop_one "$svc"
    fi
}

main()
{
    local cmd=${1:-}
    [ $# -eq 0 ] || shift
    case $cmd in
    up) [ $# -eq 0 ] || { usage >&2; exit 2; }; cmd_up ;;
    down) cmd_down "$@" ;;
    status) cmd_status ;;
    env) cmd_env ;;
    stop-service) cmd_service stop "$@" ;;
    start-service) cmd_service start "$@" ;;
    -h|--help|help) usage ;;
    *)
        [ -z "$cmd" ] || warn "unknown command: $cmd"
        usage >&2
        exit 2
        ;;
    esac
}

main "$@"
