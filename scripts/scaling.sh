#!/usr/bin/env bash
# Does a request cost more when many connections sit idle beside it, and
# what do two workers give? holdline against nginx, same files, same run.
#
#   scripts/scaling.sh [SECONDS]      (default 10 s per run)
#
#   ROUNDS=N     rounds (default 3); figures are medians over rounds, and
#                ratios holdline/nginx per round as median (min-max)
#   IDLE="0 1000 10000 18000"   the idle counts to park
#   ONLY=idle|workers           run one part only
#
# Part 1, idle connections: each server (one worker, pinned to CPU 0) is
# started fresh, IDLE connections are opened to it and make one request
# each (scripts/bench/idle.py, then they sit idle, kept alive), and then
# `wrk -t1 -c100` asks for a 1 KiB file for SECONDS (pinned to CPU 1).
# Reported: server CPU time per wrk request (utime + stime from /proc over
# the run, all threads), and the RSS the parked connections added, per
# connection. A server whose per-request cost grows with idle connections
# would show it here (an O(n) timer scan, an epoll set walked, a cache
# trashed by per-connection state).
#
# Part 2, two workers: holdline --workers 2 against nginx
# worker_processes 2, wrk -t2 -c100, nothing pinned: the load generator
# shares the two cores with the servers, so requests per second say
# little; CPU per request is the fair figure.
#
# nginx: Debian's nginx-light, sendfile, open_file_cache, access log off,
# keepalive_timeout 60, keepalive_requests 100000, worker_connections
# 20000. holdline: --keepalive-timeout 60 --max-requests 100000. The hard
# RLIMIT_NOFILE must allow 18,100 connections and the client's 18,000
# sockets (the script raises the soft limit to the hard one).
#
# Installs wrk, nginx, curl and python3 if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/install.sh
. scripts/lib/nginx.sh
. scripts/lib/proc.sh
secs=${1:-10}
ROUNDS=${ROUNDS:-3}
IDLE=${IDLE:-0 1000 10000 18000}
case $ROUNDS in '' | *[!0-9]* | 0) echo "ROUNDS must be a positive integer" >&2; exit 2 ;; esac
need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || need+=(nginx-light)
command -v curl >/dev/null || need+=(curl)
command -v python3 >/dev/null || need+=(python3)
install_missing "${need[@]}"
cargo build --release --quiet --bin holdline
ulimit -n "$(ulimit -Hn)"
max_idle=0
for n in $IDLE; do ((n > max_idle)) && max_idle=$n; done
if (($(ulimit -n) < max_idle + 1000)); then
    echo "RLIMIT_NOFILE $(ulimit -n) is too low for $max_idle idle connections" >&2
    exit 1
fi

work=$(mktemp -d)
chmod 755 "$work"
www=$work/www
mkdir -p "$www" "$work/tmp"
head -c 1024 /dev/urandom | base64 -w0 | head -c 1024 > "$www/1k.txt"
chmod 644 "$www/1k.txt"
port=18590
pid=
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

nginx_conf() {
    cat > "$work/nginx.conf" <<NGINX
worker_processes $1;
worker_rlimit_nofile $(ulimit -n);
pid $work/nginx.pid;
error_log $work/nginx-error.log;
daemon off;
events { worker_connections 20000; use epoll; }
http {
$(nginx_http_common "$work" 100000)
    server {
        listen 127.0.0.1:$port backlog=4096;
        root $www;
    }
}
NGINX
}

# start NAME WORKERS PIN: starts a server; sets $pid.
start() {
    local name=$1 workers=$2 pin=$3
    case $name in
        holdline)
            taskset -c "$pin" ./target/release/holdline --listen "127.0.0.1:$port" \
                --workers "$workers" --backlog 4096 --keepalive-timeout 60 \
                --max-requests 100000 "$www" 2>"$work/holdline.log" &
            pid=$! ;;
        nginx)
            nginx_conf "$workers"
            rm -f "$work/nginx.pid"
            taskset -c "$pin" nginx -p "$work" -c "$work/nginx.conf" &
            pid=$! ;;
    esac
    for _ in $(seq 200); do
        curl -fs -o /dev/null "http://127.0.0.1:$port/1k.txt" && return 0
        sleep 0.05
    done
    echo "$name did not come up" >&2
    exit 1
}
stop() {
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    pid=
    # Let the parked connections' ports and the server's port go.
    for _ in $(seq 100); do
        curl -s -o /dev/null "http://127.0.0.1:$port/" 2>/dev/null || return 0
        sleep 0.05
    done
}
rss_kb() {
    local total=0 p kb
    for p in $(tree_pids "$pid"); do
        kb=$(awk '/^VmRSS:/ { print $2 }' "/proc/$p/status" 2>/dev/null) || continue
        total=$((total + ${kb:-0}))
    done
    echo "$total"
}
HZ=$(getconf CLK_TCK)

# measure NAME IDLE WRKARGS... -> "cpu_us_per_request rps rss_bytes_per_idle"
measure() {
    local name=$1 idle=$2 pin=$3
    shift 3
    local fifo=$work/fifo client= before after t0 t1 out reqs rps
    before=$(rss_kb)
    if ((idle > 0)); then
        rm -f "$fifo"
        mkfifo "$fifo"
        taskset -c 1 python3 scripts/bench/idle.py 127.0.0.1 "$port" "$idle" < "$fifo" > "$work/idle.out" &
        client=$!
        exec 9> "$fifo"
        for _ in $(seq 1200); do grep -q ready "$work/idle.out" 2>/dev/null && break; sleep 0.1; done
        grep -q ready "$work/idle.out" || { echo "parking $idle connections on $name failed" >&2; exit 1; }
    fi
    after=$(rss_kb)
    t0=$(ticks "$(tree_pids "$pid" | tr '\n' ' ')")
    out=$(taskset -c "$pin" wrk "$@" -d"${secs}s" "http://127.0.0.1:$port/1k.txt" 2>&1) || true
    t1=$(ticks "$(tree_pids "$pid" | tr '\n' ' ')")
    if [ -n "$client" ]; then
        exec 9>&-
        wait "$client" 2>/dev/null || true
        rm -f "$fifo" "$work/idle.out"
    fi
    reqs=$(echo "$out" | awk '/requests in/ {print $1}')
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    if [ -z "$reqs" ] || [ "$reqs" = 0 ] || echo "$out" | grep -q 'Non-2xx\|Socket errors'; then
        echo "wrk failed against $name with $idle idle: $out" >&2
        exit 1
    fi
    awk -v d=$((t1 - t0)) -v hz="$HZ" -v n="$reqs" -v rps="$rps" -v a="$after" -v b="$before" -v i="$idle" \
        'BEGIN { printf "%.2f %.0f %s\n", d / hz * 1e6 / n, rps, (i > 0 ? sprintf("%.0f", (a - b) * 1024 / i) : "-") }'
}

# median of the arguments
median() {
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# ratio_range "a1 a2 ..." "b1 b2 ..." -> median (min-max) of a_i / b_i
ratio_range() {
    local -a a=($1) b=($2) r=()
    local i
    for i in "${!a[@]}"; do r+=("$(awk -v x="${a[$i]}" -v y="${b[$i]}" 'BEGIN { printf "%.4f", x / y }')"); done
    local lo hi med
    lo=$(printf '%s\n' "${r[@]}" | sort -g | head -1)
    hi=$(printf '%s\n' "${r[@]}" | sort -g | tail -1)
    med=$(median "${r[@]}")
    awk -v m="$med" -v l="$lo" -v h="$hi" 'BEGIN { printf "%.2f (%.2f-%.2f)", m, l, h }'
}

rows=()
if [ -z "${ONLY:-}" ] || [ "$ONLY" = idle ]; then
    for n in $IDLE; do
        declare -A cpu=() rss=()
        for round in $(seq "$ROUNDS"); do
            for name in holdline nginx; do
                start "$name" 1 0
                read -r c r b < <(measure "$name" "$n" 1 -t1 -c100)
                stop
                cpu[$name]="${cpu[$name]:-} $c"
                rss[$name]="${rss[$name]:-} $b"
                echo "  idle $n, round $round/$ROUNDS, $name: $c CPU µs/req, $r req/s, $b B per idle connection" >&2
            done
        done
        rss_h=- rss_n=-
        if ((n > 0)); then rss_h=$(median ${rss[holdline]}); rss_n=$(median ${rss[nginx]}); fi
        rows+=("| $n | $(median ${cpu[holdline]}) | $(median ${cpu[nginx]}) | $(ratio_range "${cpu[holdline]}" "${cpu[nginx]}") | $rss_h | $rss_n |")
        unset cpu rss
    done
fi
wrows=()
if [ -z "${ONLY:-}" ] || [ "$ONLY" = workers ]; then
    declare -A cpu=() rps=()
    for round in $(seq "$ROUNDS"); do
        for name in holdline nginx; do
            start "$name" 2 0-1
            read -r c r _ < <(measure "$name" 0 0-1 -t2 -c100)
            stop
            cpu[$name]="${cpu[$name]:-} $c"
            rps[$name]="${rps[$name]:-} $r"
            echo "  2 workers, round $round/$ROUNDS, $name: $c CPU µs/req, $r req/s" >&2
        done
    done
    wrows+=("| CPU per request, µs | $(median ${cpu[holdline]}) | $(median ${cpu[nginx]}) | $(ratio_range "${cpu[holdline]}" "${cpu[nginx]}") |")
    wrows+=("| requests per second | $(median ${rps[holdline]}) | $(median ${rps[nginx]}) | $(ratio_range "${rps[holdline]}" "${rps[nginx]}") |")
fi

echo
echo "## Scaling: idle connections and two workers, holdline against nginx"
echo
echo "- commit: $(git rev-parse --short HEAD), $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "- machine: $(nproc) cores, $(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo), kernel $(uname -r)"
echo "- $( (nginx -v 2>&1 || true) | sed 's|^nginx version: ||'), $( (wrk -v 2>&1 || true) | sed -n 1p | sed 's| *Copyright.*||'), ${secs} s runs, $ROUNDS rounds, medians (ratios per round, median (min-max))"
if ((${#rows[@]})); then
    echo
    echo "Keep-alive 1 KiB over 100 connections (wrk -t1 -c100), with N idle keep-alive connections parked beside; one worker each, on CPU 0:"
    echo
    echo "| idle connections | holdline CPU µs/req | nginx CPU µs/req | holdline/nginx | holdline RSS per idle connection, B | nginx RSS per idle connection, B |"
    echo "| --- | --- | --- | --- | --- | --- |"
    printf '%s\n' "${rows[@]}"
fi
if ((${#wrows[@]})); then
    echo
    echo "Two workers each (holdline --workers 2, nginx worker_processes 2), wrk -t2 -c100 on the same two cores:"
    echo
    echo "| figure | holdline | nginx | holdline/nginx |"
    echo "| --- | --- | --- | --- |"
    printf '%s\n' "${wrows[@]}"
fi
