#!/bin/bash
# Container health check for handoff-controller: GET /healthz on the port of
# HANDOFF_HTTP_ADDR (default 8080), over 127.0.0.1. Exit 0 on a 200 answer,
# 1 otherwise. Plain bash (/dev/tcp), so the runtime image needs no curl.
#
# Usage: handoff-healthcheck [PATH]     (default /healthz; /readyz also works)
set -u

path=${1:-/healthz}
addr=${HANDOFF_HTTP_ADDR:-0.0.0.0:8080}
port=${addr##*:}
case $port in
''|*[!0-9]*)
    echo "handoff-healthcheck: no port in HANDOFF_HTTP_ADDR=$addr" >&2
    exit 1
    ;;
esac

# Connecting to 127.0.0.1 works whether the controller listens on 0.0.0.0 or
# on 127.0.0.1; the read times out rather than hanging the check.
if ! exec 3<>"/dev/tcp/127.0.0.1/$port"; then
    echo "handoff-healthcheck: cannot connect to 127.0.0.1:$port" >&2
    exit 1
fi
printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' \
    "$path" >&3
status_line=
IFS= read -r -t 2 status_line <&3 || true
exec 3<&-
status_line=${status_line%$'\r'}
case $status_line in
"HTTP/1."?" 200"*)
    exit 0
    ;;
esac
echo "handoff-healthcheck: GET $path: ${status_line:-no answer}" >&2
exit 1
