#!/usr/bin/env bash
# holdline against nginx, side by side, same files, same machine, same run.
#
#   scripts/bench.sh [SECONDS]        (default 10 s per run)
#
# Installs wrk, nginx and strace if missing. Each server is pinned to CPU 0
# and the load generator to CPU 1; each scenario runs holdline, then nginx,
# twice over (A B A B; ROUNDS=N for more), and the runs are averaged. Reports requests/s,
# the server's CPU time per request (utime + stime from /proc/PID/stat over
# the run, divided by the requests served: the fair figure on a 2-core
# machine where the client competes for CPU), and holdline/nginx ratios,
# as a markdown table.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || need+=(nginx-light)
command -v strace >/dev/null || need+=(strace)
if ((${#need[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi
cargo build --release --quiet --bin holdline
ulimit -n 20000

work=$(mktemp -d)
# nginx's workers run as www-data: they must be able to read the files.
chmod 755 "$work"
www=$work/www
mkdir -p "$www"
head -c 1024 /dev/urandom | base64 -w0 | head -c 1024 > "$www/1k.txt"
head -c $((1024 * 1024)) /dev/urandom > "$www/1m.bin"
H_PORT=18480
N_PORT=18481
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

cat > "$work/nginx.conf" <<NGINX
worker_processes 1;
worker_rlimit_nofile 20000;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
daemon off;
events { worker_connections 16384; use epoll; }
http {
    include /etc/nginx/mime.types;
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    open_file_cache max=1024 inactive=20s;
    open_file_cache_valid 1s;
    keepalive_timeout 60;
    keepalive_requests 1000;
    server_tokens off;
    client_body_temp_path $work/tmp;
    proxy_temp_path $work/tmp;
    fastcgi_temp_path $work/tmp;
    uwsgi_temp_path $work/tmp;
    scgi_temp_path $work/tmp;
    server {
        listen 127.0.0.1:$N_PORT backlog=511;
        root $www;
    }
}
NGINX
mkdir -p "$work/tmp"

start_holdline() {
    taskset -c 0 ./target/release/holdline --listen "127.0.0.1:$H_PORT" \
        --keepalive-timeout 60 --max-requests 1000 "$www" 2>"$work/holdline.log" &
    H_PID=$!
    pids+=("$H_PID")
}
start_nginx() {
    taskset -c 0 nginx -p "$work" -c "$work/nginx.conf" &
    pids+=($!)
    for _ in $(seq 100); do [ -s "$work/nginx.pid" ] && break; sleep 0.05; done
}
wait_port() {
    for _ in $(seq 100); do
        curl -fs -o /dev/null "http://127.0.0.1:$1/1k.txt" && return 0
        sleep 0.05
    done
    echo "server on port $1 did not come up" >&2
    exit 1
}
# CPU ticks (utime + stime) of a server: holdline's process, or nginx's
# master and workers together.
ticks() {
    local total=0 pid
    for pid in $1; do
        set -- $(sed 's/.*) //' "/proc/$pid/stat")
        total=$((total + ${12} + ${13}))
    done
    echo "$total"
}
server_pids() {
    if [ "$1" = holdline ]; then
        echo "$H_PID"
    else
        local master
        master=$(cat "$work/nginx.pid")
        echo "$master $(pgrep -P "$master" | tr '\n' ' ')"
    fi
}
HZ=$(getconf CLK_TCK)

# run_wrk NAME PORT PATH [WRK ARGS...] -> "requests_per_sec cpu_us_per_request"
run_wrk() {
    local name=$1 port=$2 path=$3
    shift 3
    local t0 t1 out reqs rps
    t0=$(ticks "$(server_pids "$name")")
    out=$(taskset -c 1 wrk -t1 -d"${secs}s" "$@" "http://127.0.0.1:$port$path" 2>&1)
    t1=$(ticks "$(server_pids "$name")")
    reqs=$(echo "$out" | awk '/requests in/ {print $1}')
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    if [ -z "$reqs" ] || [ "$reqs" = 0 ]; then
        echo "wrk failed against $name: $out" >&2
        echo "0 0"
        return
    fi
    awk -v rps="$rps" -v d=$((t1 - t0)) -v hz="$HZ" -v n="$reqs" \
        'BEGIN { printf "%.0f %.2f\n", rps, d / hz * 1e6 / n }'
}

ROWS=()
ROUNDS=${ROUNDS:-2}
# scenario NUMBER LABEL PATH [WRK ARGS...]: holdline then nginx, ROUNDS
# times over, averaged. ONLY=4 (say) runs just that scenario.
scenario() {
    local number=$1 label=$2 path=$3
    shift 3
    if [ -n "${ONLY:-}" ] && [ "$ONLY" != "$number" ]; then
        return
    fi
    local all=""
    for _ in $(seq "$ROUNDS"); do
        all="$all $(run_wrk holdline $H_PORT "$path" "$@") $(run_wrk nginx $N_PORT "$path" "$@")"
    done
    ROWS+=("$(echo "$all" | awk -v label="$label" '{
        for (i = 1; i <= NF; i += 4) { hr += $i; hc += $(i + 1); nr += $(i + 2); nc += $(i + 3); n++ }
        hr /= n; hc /= n; nr /= n; nc /= n;
        printf "| %s | %.0f | %.0f | %.2f | %.2f | %.2f | %.2f |", label, hr, nr, (nr ? hr / nr : 0), hc, nc, (nc ? hc / nc : 0)
    }')")
    echo "  done: $label" >&2
}

rss_kb() {
    local total=0 pid
    for pid in $1; do
        total=$((total + $(awk '/VmRSS/ {print $2}' "/proc/$pid/status")))
    done
    echo "$total"
}

# idle_rss NAME PORT N -> bytes of server RSS per idle keep-alive connection
idle_rss() {
    local name=$1 port=$2 n=$3 before after fifo
    fifo=$work/idle-$name
    mkfifo "$fifo"
    before=$(rss_kb "$(server_pids "$name")")
    taskset -c 1 python3 scripts/bench/idle.py 127.0.0.1 "$port" "$n" < "$fifo" > "$work/idle-$name.out" &
    local client=$!
    exec 9> "$fifo"
    for _ in $(seq 600); do grep -q ready "$work/idle-$name.out" 2>/dev/null && break; sleep 0.1; done
    sleep 0.5
    after=$(rss_kb "$(server_pids "$name")")
    exec 9>&-
    wait "$client" 2>/dev/null || true
    rm -f "$fifo"
    awk -v a="$after" -v b="$before" -v n="$n" 'BEGIN { printf "%.0f", (a - b) * 1024 / n }'
}

# syscalls NAME PORT N -> syscalls per request besides epoll_wait, and the top ones
syscalls() {
    local name=$1 port=$2 n=$3 pid out
    pid=$(server_pids "$name" | awk '{print $NF}')
    out=$work/strace-$name
    strace -c -f -p "$pid" -o "$out" 2>/dev/null &
    local tracer=$!
    sleep 0.5
    taskset -c 1 python3 scripts/bench/requests.py 127.0.0.1 "$port" "$n"
    sleep 0.2
    kill -INT "$tracer"
    wait "$tracer" 2>/dev/null || true
    awk -v n="$n" '$NF ~ /^[a-z_0-9]+$/ && $1 ~ /^[0-9.]+$/ && $NF != "epoll_wait" && $NF != "total" {
        calls = ($5 ~ /^[0-9]+$/) ? $4 : $4; sum += calls; list = list sprintf("%s %.2f, ", $NF, calls / n)
    } END { printf "%.2f (%s)", sum / n, substr(list, 1, length(list) - 2) }' "$out"
}

start_holdline
start_nginx
wait_port $H_PORT
wait_port $N_PORT
echo "running ${secs}s per run, A B A B per scenario" >&2

scenario 1 "(1) keep-alive, 1 KiB, 100 connections" /1k.txt -c100
scenario 2 "(2) pipelined x16, 1 KiB, 100 connections" /1k.txt -c100 -s scripts/bench/pipeline.lua
scenario 3 "(3) Connection: close, 1 KiB, 50 connections" /1k.txt -c50 -H "Connection: close"
scenario 4 "(4) keep-alive, 1 MiB, 10 connections" /1m.bin -c10

H_IDLE=0 N_IDLE=0 H_SYS=- N_SYS=-
if [ -z "${ONLY:-}" ] || [ "$ONLY" = 5 ]; then
    H_IDLE=$(idle_rss holdline $H_PORT 10000)
    N_IDLE=$(idle_rss nginx $N_PORT 10000)
    echo "  done: idle" >&2
fi
if [ -z "${ONLY:-}" ] || [ "$ONLY" = 6 ]; then
    H_SYS=$(syscalls holdline $H_PORT 900)
    N_SYS=$(syscalls nginx $N_PORT 900)
    echo "  done: syscalls" >&2
fi

echo
echo "holdline $(git rev-parse --short HEAD 2>/dev/null || echo '?') vs nginx $(nginx -v 2>&1 | sed 's|.*/||'), $(date -u +%Y-%m-%d), $(nproc) cores, $(uname -sr), ${secs}s per run, $ROUNDS rounds"
echo
echo "| scenario | holdline req/s | nginx req/s | ratio | holdline CPU µs/req | nginx CPU µs/req | ratio |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
printf '%s\n' "${ROWS[@]}"
if [ -z "${ONLY:-}" ] || [ "$ONLY" = 5 ] || [ "$ONLY" = 6 ]; then
    echo
    echo "| scenario | holdline | nginx | ratio |"
    echo "| --- | --- | --- | --- |"
    if [ "$H_IDLE" != 0 ]; then
        awk -v h="$H_IDLE" -v n="$N_IDLE" 'BEGIN { printf "| (5) RSS per idle keep-alive connection (10,000 after one request each), bytes | %d | %d | %.2f |\n", h, n, (n ? h / n : 0) }'
    fi
    if [ "$H_SYS" != - ]; then
        echo "| (6) syscalls per keep-alive request besides epoll_wait | ${H_SYS} | ${N_SYS} | |"
    fi
fi
