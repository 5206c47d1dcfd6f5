#!/usr/bin/env bash
# The load-balancer rule: nginx in front of holdline as a keep-alive
# reverse proxy (upstream keepalive 32, proxy_http_version 1.1, Connection
# ""), with a 50 ms RTT between them (scripts/pageload/latency_proxy.py),
# as when the balancer sits across a network.
#
#   scripts/lb-race.sh [COUNT]     (default 120 POSTs per setting)
#
# 1. Shows through holdline's status counters that upstream connections are
#    reused (requests per accepted connection).
# 2. The idle-timeout race: POSTs (which nginx does not retry) spaced close
#    to the idle timeout, with holdline's keep-alive timeout SHORTER than
#    nginx's upstream keepalive_timeout, then the opposite. Counts 502s.
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-120}
command -v nginx >/dev/null || { export DEBIAN_FRONTEND=noninteractive; apt-get update -qq; apt-get install -y -qq nginx-light >/dev/null; }
cargo build --release --quiet --bin holdline

work=$(mktemp -d)
chmod 755 "$work"
mkdir -p "$work/www" "$work/tmp"
echo ok > "$work/www/index.html"
H_PORT=18780
P_PORT=18781
N_PORT=18782
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    kill "$(cat "$work/nginx.pid" 2>/dev/null)" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

python3 scripts/pageload/latency_proxy.py $P_PORT "127.0.0.1:$H_PORT" 50 > "$work/proxy.out" &
pids+=($!)

start() {
    local holdline_timeout=$1 nginx_timeout=$2
    [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null && sleep 0.3
    for p in "${pids[@]:1}"; do kill "$p" 2>/dev/null || true; done
    ./target/release/holdline --listen 127.0.0.1:$H_PORT --status-path /status \
        --keepalive-timeout "$holdline_timeout" --max-requests 0 "$work/www" 2>/dev/null &
    pids+=($!)
    cat > "$work/nginx.conf" <<NGINX
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
daemon off;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work/tmp;
    proxy_temp_path $work/tmp;
    upstream holdline {
        server 127.0.0.1:$P_PORT;
        keepalive 32;
        keepalive_timeout ${nginx_timeout}s;
    }
    server {
        listen 127.0.0.1:$N_PORT;
        location / {
            proxy_pass http://holdline;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
NGINX
    nginx -p "$work" -c "$work/nginx.conf" &
    pids+=($!)
    sleep 0.7
}

counters() {
    curl -fs "http://127.0.0.1:$H_PORT/status" | awk 'NR == 3 {print $2, $3}'
}

echo "== upstream connection reuse: 200 GETs through nginx, back to back"
start 5 60
read -r h0 r0 < <(counters)
for _ in $(seq 200); do curl -fs -o /dev/null "http://127.0.0.1:$N_PORT/index.html"; done
read -r h1 r1 < <(counters)
# The status requests themselves are one connection and one request each.
echo "holdline accepted $((h1 - h0 - 1)) connections for $((r1 - r0 - 1)) requests"

echo
echo "| holdline keep-alive timeout | nginx upstream keepalive_timeout | POSTs | 502 | other statuses |"
echo "| --- | --- | --- | --- | --- |"
race() {
    local holdline_timeout=$1 nginx_timeout=$2 idle_ms=$3
    start "$holdline_timeout" "$nginx_timeout"
    local result
    result=$(python3 scripts/pageload/posts.py "127.0.0.1:$N_PORT" "$count" "$idle_ms" 150)
    echo "$result" | python3 -c '
import json, sys
r = json.load(sys.stdin)
h, n, total = sys.argv[1], sys.argv[2], sum(r.values())
bad = r.pop("502", 0)
others = ", ".join(f"{k}: {v}" for k, v in sorted(r.items()))
print(f"| {h} s | {n} s | {total} | {bad} | {others} |")
' "$holdline_timeout" "$nginx_timeout"
}
# holdline times out first: its close races nginx's reuse.
race 1 3 1000
# nginx times out first: it never reuses a connection holdline may close.
race 3 1 1000
