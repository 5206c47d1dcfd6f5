#!/usr/bin/env bash
# fd-exhaustion storm against holdline on 127.0.0.1, bounded in time.
#
#   scripts/fd-exhaustion.sh [A|B|both] [SECONDS]
#
# Starts holdline under `prlimit --nofile=256` (its budget then admits
# about 216 connections), storms it with 3000 connections held open
# (variant A: idle connects; B: each sends an unfinished request head),
# while one keep-alive client keeps requesting on its connection and fresh
# clients keep connecting. Prints success rates, the server's CPU during
# the storm, seconds to recover, and the status counters.
# STORM_FLAGS=--reopen re-opens every shed storm connection each 100 ms: a
# connection-churn flood on top of the exhaustion.
set -euo pipefail
cd "$(dirname "$0")/.."

variants=${1:-both}
seconds=${2:-10}
port=${PORT:-18080}
root=$(mktemp -d)
trap 'kill "$server_pid" 2>/dev/null || true; rm -rf "$root"' EXIT
echo '<h1>storm</h1>' > "$root/index.html"

cargo build --release --quiet --bin holdline --example storm
ulimit -n 20000 || true

run() {
    local variant=$1
    prlimit --nofile=256 -- ./target/release/holdline --listen "127.0.0.1:$port" \
        --status-path /status "$root" 2> "$root/server-$variant.log" &
    server_pid=$!
    for _ in $(seq 100); do
        curl -fs "http://127.0.0.1:$port/index.html" >/dev/null 2>&1 && break
        sleep 0.05
    done
    echo "== variant $variant: holdline pid $server_pid, RLIMIT_NOFILE 256, 3000 storm connections, ${seconds}s"
    grep -h "fd limit" "$root/server-$variant.log" || true
    ./target/release/examples/storm --addr "127.0.0.1:$port" --pid "$server_pid" \
        --conns 3000 --variant "$variant" --seconds "$seconds" --status /status ${STORM_FLAGS:-}
    echo "-- counters after recovery (Prometheus):"
    curl -fs "http://127.0.0.1:$port/status?format=prometheus" \
        | grep -E '^holdline_(closes_total|evictions_total|accept_pauses_total|accept_emfile_total|fd_|max_connections|connections\{)' || true
    kill "$server_pid"
    wait "$server_pid" 2>/dev/null || true
}

case $variants in
    A) run idle ;;
    B) run partial ;;
    both) run idle; run partial ;;
    *) echo "usage: $0 [A|B|both] [SECONDS]" >&2; exit 2 ;;
esac
