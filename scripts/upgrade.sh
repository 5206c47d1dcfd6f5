#!/usr/bin/env bash
# Zero downtime, measured side by side: holdline against nginx through
# three events each of a configuration reload, a binary upgrade and (behind
# HAProxy, three instances) a rolling restart, under wrk's keep-alive load
# (wrk does not retry: a closed keep-alive connection it was about to use
# is a failed request). Prints the failed requests and the longest stall
# of each row.
#
#   scripts/upgrade.sh [SECONDS]     (default 12: the three events at 1/4,
#                                     2/4 and 3/4 of the run)
#
# Direct rows: wrk -c50 straight at one server. Behind HAProxy: wrk at
# HAProxy 2.6 (health checks every 100 ms on /healthz, keep-alive to the
# servers, `retry-on conn-failure empty-response`), three instances.
#
# The events:
# - reload: holdline SIGHUP; nginx `-s reload` (new workers, the old ones
#   close their keep-alive connections).
# - upgrade: holdline SIGUSR2; nginx's USR2, WINCH, QUIT on its master
#   (started by its absolute path, as the procedure needs).
# - rolling restart (behind HAProxy): each instance in turn stopped and
#   started again on its port: holdline SIGTERM with --drain-delay 1
#   (health check failing, still serving, then the graceful shutdown);
#   nginx `-s quit` (graceful), then started again.
#
# Installs wrk, nginx-light and haproxy if missing. Server on CPU 0, wrk
# and HAProxy on CPU 1.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-12}
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || need+=(nginx-light)
command -v haproxy >/dev/null || need+=(haproxy)
if ((${#need[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d
    apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
    rm -f /usr/sbin/policy-rc.d
fi
cargo build --release --quiet --bin holdline
holdline=$PWD/target/release/holdline

work=$(mktemp -d)
chmod 755 "$work"
mkdir -p "$work/www" "$work/tmp"
head -c 1024 /dev/urandom | base64 -w 64 > "$work/www/1k.txt"
echo ok > "$work/www/healthz"
cleanup() {
    pkill -f -- "--config $work/holdline.toml" 2>/dev/null || true
    for pidfile in "$work"/nginx-*.pid "$work"/nginx-*.pid.oldbin "$work/haproxy.pid"; do
        [ -f "$pidfile" ] && kill -TERM "$(cat "$pidfile")" 2>/dev/null || true
    done
    sleep 0.3
    rm -rf "$work"
}
trap cleanup EXIT

PORTS=(18881 18882 18883)
FRONT=18880

# One holdline instance on PORT (its argv carries a tag to find it by).
start_holdline() {
    local port=$1
    taskset -c 0 "$holdline" --listen "127.0.0.1:$port" --health-path /healthz \
        --drain-delay 1 --keepalive-timeout 60 --max-requests 0 \
        --config "$work/holdline.toml" "$work/www" 2>>"$work/holdline.log" &
    wait_port "$port"
}
touch "$work/holdline.toml"

# One nginx instance on PORT: one worker, keep-alive as holdline's.
start_nginx() {
    local port=$1
    cat > "$work/nginx-$port.conf" <<NGINX
worker_processes 1;
pid $work/nginx-$port.pid;
error_log $work/nginx-error.log;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $work/tmp;
    keepalive_timeout 60;
    keepalive_requests 100000;
    server {
        listen 127.0.0.1:$port reuseport;
        root $work/www;
        location = /healthz { return 200 "ok\n"; }
    }
}
NGINX
    taskset -c 0 /usr/sbin/nginx -p "$work" -c "$work/nginx-$port.conf"
    wait_port "$port"
}

wait_port() {
    for _ in $(seq 100); do
        curl -fs -o /dev/null "http://127.0.0.1:$1/healthz" && return 0
        sleep 0.05
    done
    echo "nothing answers on $1" >&2; return 1
}

pid_on() { ss -Hltnp "sport = :$1" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2; }

start_haproxy() {
    {
        printf 'global\n  maxconn 4000\n  pidfile %s/haproxy.pid\n' "$work"
        printf 'defaults\n  mode http\n  timeout connect 2s\n  timeout client 30s\n  timeout server 30s\n'
        printf '  option http-keep-alive\n  retries 3\n  option redispatch\n  retry-on conn-failure empty-response\n'
        printf 'frontend fe\n  bind 127.0.0.1:%s\n  default_backend be\n' "$FRONT"
        printf 'backend be\n  balance roundrobin\n  option httpchk GET /healthz\n'
        printf '  http-check expect status 200\n  default-server inter 100ms fall 1 rise 1\n'
        for i in 0 1 2; do printf '  server s%s 127.0.0.1:%s check\n' "$i" "${PORTS[$i]}"; done
    } > "$work/haproxy.cfg"
    taskset -c 1 haproxy -D -f "$work/haproxy.cfg"
    # No backend runs yet: wait for the listener, not for an answer.
    for _ in $(seq 100); do [ -n "$(pid_on "$FRONT")" ] && return 0; sleep 0.05; done
    echo "HAProxy did not start" >&2; return 1
}

# The events, by server and kind, on the instance on PORT.
event() {
    local server=$1 kind=$2 port=$3 pid
    pid=$(pid_on "$port")
    case "$server/$kind" in
        holdline/reload) kill -HUP "$pid" ;;
        holdline/upgrade) kill -USR2 "$pid" ;;
        holdline/restart)
            kill -TERM "$pid"
            while kill -0 "$pid" 2>/dev/null; do sleep 0.02; done
            start_holdline "$port" ;;
        nginx/reload) /usr/sbin/nginx -p "$work" -c "$work/nginx-$port.conf" -s reload ;;
        nginx/upgrade)
            local master
            master=$(cat "$work/nginx-$port.pid")
            kill -USR2 "$master"
            for _ in $(seq 100); do [ -f "$work/nginx-$port.pid.oldbin" ] && break; sleep 0.05; done
            sleep 0.5
            kill -WINCH "$master"; sleep 0.5; kill -QUIT "$master" ;;
        nginx/restart)
            /usr/sbin/nginx -p "$work" -c "$work/nginx-$port.conf" -s quit
            while [ -n "$(pid_on "$port")" ]; do sleep 0.02; done
            start_nginx "$port" ;;
    esac
}

# One row: wrk for $seconds at URL while the three events happen (on the
# instances in turn for a rolling restart); prints failed and max latency.
row() {
    local server=$1 kind=$2 target=$3 instances=$4
    local out=$work/wrk.out
    taskset -c 1 wrk -t2 -c50 -d"${seconds}s" --timeout 5s --latency "$target/1k.txt" > "$out" &
    local wrk_pid=$! quarter
    quarter=$(awk -v s="$seconds" 'BEGIN { printf "%.2f", s / 4 }')
    for i in 0 1 2; do
        sleep "$quarter"
        local port=${PORTS[0]}
        [ "$instances" = 3 ] && port=${PORTS[$i]}
        event "$server" "$kind" "$port"
    done
    wait "$wrk_pid"
    local requests non2xx socket max
    requests=$(awk '/requests in/ {print $1}' "$out")
    non2xx=$(awk '/Non-2xx/ {print $NF}' "$out"); non2xx=${non2xx:-0}
    socket=$(awk '/Socket errors/ {gsub(",", ""); print $4 + $6 + $8 + $10}' "$out"); socket=${socket:-0}
    max=$(awk '/^    Latency/ {print $4}' "$out")
    printf '| %s | %s | %s | %s | %s | %s |\n' "$kind" "$server" \
        "$([ "$instances" = 3 ] && echo "behind HAProxy, 3 instances" || echo direct)" \
        "$requests" "$((non2xx + socket))" "$max"
}

stop_all() {
    pkill -f -- "--config $work/holdline.toml" 2>/dev/null || true
    for pidfile in "$work"/nginx-*.pid "$work"/nginx-*.pid.oldbin; do
        [ -f "$pidfile" ] && kill -QUIT "$(cat "$pidfile")" 2>/dev/null || true
    done
    for port in "${PORTS[@]}"; do
        while [ -n "$(pid_on "$port")" ]; do sleep 0.05; done
    done
}

echo "| event (x3) | server | path | requests | failed | longest stall |"
echo "| --- | --- | --- | --- | --- | --- |"
for server in holdline nginx; do
    for kind in reload upgrade; do
        "start_$server" "${PORTS[0]}"
        row "$server" "$kind" "http://127.0.0.1:${PORTS[0]}" 1
        stop_all
    done
done
start_haproxy
for server in holdline nginx; do
    for kind in reload upgrade restart; do
        for port in "${PORTS[@]}"; do "start_$server" "$port"; done
        sleep 0.5  # HAProxy's checks see all three (rise 1, every 100 ms)
        row "$server" "$kind" "http://127.0.0.1:$FRONT" 3
        stop_all
    done
done
