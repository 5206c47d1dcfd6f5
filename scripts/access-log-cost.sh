#!/usr/bin/env bash
# What the access log costs: holdline's CPU per request (the whole
# process: the reactor and the log's writer thread) with the log off, in
# the combined format and in JSON, keep-alive, 1 KiB, 100 connections.
#
#   scripts/access-log-cost.sh [SECONDS] [ROUNDS]     (default 5 s, 3 rounds)
#
# The server is pinned to CPU 0 (its writer thread with it, so the log's
# writes are charged to the same CPU) and wrk to CPU 1, as in
# scripts/bench.sh. The log goes to a file in a temp dir (the machine's
# disk or tmpfs, whichever /tmp is). PORT=N picks the port (default
# 18099). Needs wrk (apt-get install -y wrk) and a release build (built
# here if missing). Run it on a quiet machine.
set -euo pipefail
secs=${1:-5}
rounds=${2:-3}
port=${PORT:-18099}
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "needs wrk (apt-get install -y wrk)" >&2; exit 2; }
cargo build --release --quiet
bin=target/release/holdline
www=$(mktemp -d)
trap 'rm -rf "$www"' EXIT
head -c 1024 /dev/zero | tr '\0' x >"$www/1k.txt"
tck=$(getconf CLK_TCK)

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

for mode in off combined json; do
    figures=()
    for round in $(seq "$rounds"); do
        args=(--listen "127.0.0.1:$port" --max-requests 0)
        [ "$mode" = off ] || args+=(--access-log "$www/access.log" --log-format "$mode")
        taskset -c 0 "$bin" "${args[@]}" "$www" 2>/dev/null &
        pid=$!
        for _ in $(seq 100); do
            curl -s -o /dev/null "http://127.0.0.1:$port/1k.txt" && break
            sleep 0.05
        done
        before=$(cpu_ticks "$pid")
        out=$(taskset -c 1 wrk -t1 -c100 -d"${secs}s" "http://127.0.0.1:$port/1k.txt")
        after=$(cpu_ticks "$pid")
        kill "$pid"
        wait "$pid" 2>/dev/null || true
        requests=$(echo "$out" | awk '/requests in/ { print $1 }')
        us=$(awk -v t=$((after - before)) -v hz="$tck" -v n="$requests" \
            'BEGIN { printf "%.2f", t * 1e6 / hz / n }')
        echo "  $mode round $round: $requests requests, $us CPU µs/req" >&2
        figures+=("$us")
        rm -f "$www/access.log"
    done
    median=$(printf '%s\n' "${figures[@]}" | sort -n | awk '{ v[NR] = $1 } END {
        print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
    echo "$mode: median $median CPU µs/req (rounds: ${figures[*]})"
done
