#!/usr/bin/env bash
# The example worker's `get` workflow against a real nginx (Debian's) on
# 127.0.0.1: an arrival-rate run completes exactly its schedule, every
# response is nginx's 200 with the file's bytes, nginx's access log counts
# the same requests, and the reports are written. nginx runs in a private
# directory and is stopped whatever happens.
#
# Usage: tests/load/nginx_test.sh BIN_DIR
set -euo pipefail

bin=${1:?usage: $0 BIN_DIR}
command -v nginx >/dev/null || { echo "nginx not installed (deploy/install.sh)"; exit 1; }
dir=$(mktemp -d /tmp/handoff-nginx-XXXXXX)
chmod 755 "$dir"
nginx_pid=
cleanup() {
    [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null && wait "$nginx_pid" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$dir/html" "$dir/tmp"
head -c 1000 /dev/zero | tr '\0' x > "$dir/html/index.html"
cat > "$dir/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
  access_log $dir/access.log;
  client_body_temp_path $dir/tmp;
  proxy_temp_path $dir/tmp;
  fastcgi_temp_path $dir/tmp;
  uwsgi_temp_path $dir/tmp;
  scgi_temp_path $dir/tmp;
  server { listen 127.0.0.1:$port; root $dir/html; location / { } }
}
CONF
nginx -c "$dir/nginx.conf" -p "$dir" &
nginx_pid=$!
for _ in $(seq 50); do
    curl -fs -o /dev/null "http://127.0.0.1:$port/" && break
    sleep 0.1
done
: > "$dir/access.log.before"
cp "$dir/access.log" "$dir/access.log.before"

"$bin/handoff-example-worker" load get --param "TARGET_URL=http://127.0.0.1:$port/" \
    --rate 200 --duration 3s --max-vus 50 --quiet \
    --threshold 'http_req_failed: rate==0' --threshold 'checks: rate==1' \
    --json "$dir/r.json" --junit "$dir/r.xml" --html "$dir/r.html" > "$dir/summary.txt"

before=$(wc -l < "$dir/access.log.before")
after=$(wc -l < "$dir/access.log")
python3 - "$dir/r.json" $((after - before)) <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
logged = int(sys.argv[2])
t = r["totals"]
def check(cond, what):
    if not cond:
        sys.exit("nginx_test: " + what)
check(r["result"] == "passed", "result %s" % r["result"])
check(r["iterations"]["completed"] == 600, "completed %d, want 600" % r["iterations"]["completed"])
check(r["iterations"]["dropped"] == 0, "dropped %d" % r["iterations"]["dropped"])
check(t["count"] == 600 and t["status"].get("200") == 600, "requests %s" % t["status"])
check(logged == 600, "nginx logged %d requests, want 600" % logged)
check(t["bytes_received"] >= 600 * 1000, "bytes received %d" % t["bytes_received"])
check(sum(p["requests"] for p in r["series"]) == 600, "series do not add up")
PY
xmllint --noout "$dir/r.xml"
grep -q "GET /" "$dir/summary.txt"
echo "nginx_test: ok (600 requests, nginx logged 600)"
