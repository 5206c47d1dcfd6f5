#!/usr/bin/env bash
# fd-exhaustion storm against holdline (or nginx) on 127.0.0.1, bounded in time.
#
#   scripts/fd-exhaustion.sh [A|B|C|D|E|mixed|all|both] [SECONDS]
#   PEER=nginx scripts/fd-exhaustion.sh C 10
#
# Variants (examples/storm.rs):
#   A      3000 idle connects (never send)
#   B      3000 unfinished request heads
#   C      400 slow readers: SO_RCVBUF 4096, GET /big.bin (100 MiB), never read
#   D      1000 slow multi-range readers: four 1 MiB ranges of /big.bin in
#          one request (~4 MiB multipart/byteranges), never read; the server
#          runs WITHOUT prlimit (its default limits): a memory test
#   E      3000 stalled TLS handshakes: a real ClientHello to the TLS port,
#          then nothing (the server's flight is never read); the keep-alive
#          and fresh clients stay on the plain port. Same targets as B.
#   mixed  3000 split in thirds between A, B and C, each re-opened as soon as
#          the server closes it (checked every 10 ms)
#   all    A, B, C, D, E and mixed; both: A and B
#
# A, B, C, E and mixed run the server under `prlimit --nofile=256:256` (holdline's
# budget then admits about 216 connections). While the storm lasts one
# keep-alive client keeps requesting on its connection and fresh clients keep
# connecting. Prints success rates, the server's CPU and peak RSS during the
# storm, seconds to recover, and the status counters.
#
# CONNS=N overrides the number of storm connections. SERVER_FLAGS adds
# flags to holdline's command line. STORM_FLAGS=--reopen
# re-opens every shed storm connection (checked each 100 ms): a
# connection-churn flood on top of the exhaustion.
# PEER=nginx runs the same storm against nginx (installed with apt-get if
# missing) under the same limits: worker_processes 1, worker_rlimit_nofile 256
# and worker_connections 220 (for D: 20000 and 4096), config generated in the
# temp dir. PORT=N picks the port (default 18080).
# PLOT=1 also records each run over time (storm --timeline: status JSON
# every 100 ms, every client attempt, from 2 s before the storm to 1 s after
# recovery) and draws it with scripts/plots/storm_timeline.py (Debian's
# python3-matplotlib, installed if missing) as docs/storm-VARIANT.svg, or
# docs/storm-VARIANT-nginx.svg for PEER=nginx (VARIANT: idle, partial, slow,
# multirange, handshake, mixed).
set -euo pipefail
cd "$(dirname "$0")/.."

variants=${1:-both}
seconds=${2:-10}
port=${PORT:-18080}
peer=${PEER:-holdline}
usage() {
    echo "usage: [PEER=holdline|nginx] [CONNS=N] $0 [A|B|C|D|E|mixed|all|both] [SECONDS]" >&2
    exit 2
}
case $peer in holdline | nginx) ;; *) usage ;; esac
case $variants in A | B | C | D | E | mixed | all | both) ;; *) usage ;; esac
tls_port=$((port + 1))

server_pid=
root=$(mktemp -d)
cleanup() {
    if [[ -n $server_pid ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    [[ -n ${KEEP:-} ]] && echo "kept $root" >&2 || rm -rf "$root"
}
trap cleanup EXIT
# nginx's worker runs as nobody: let it read the files.
chmod 755 "$root"
echo '<h1>storm</h1>' > "$root/index.html"
# E's TLS listener: a throwaway ECDSA P-256 certificate.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=storm -keyout "$root/key.pem" -out "$root/cert.pem" 2>/dev/null
truncate -s 100M "$root/big.bin"

if [[ $peer == nginx ]] && ! command -v nginx >/dev/null; then
    echo "installing nginx (apt-get)" >&2
    # Keep the package from starting a system nginx on port 80.
    no_start=
    if [[ ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        no_start=1
    fi
    timeout 600 apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq nginx >/dev/null
    [[ -n $no_start ]] && rm -f /usr/sbin/policy-rc.d
fi

if [[ ${PLOT:-0} == 1 ]]; then
    /usr/bin/python3 -c 'import matplotlib' 2>/dev/null ||
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-matplotlib >/dev/null; }
fi

if [[ $peer == nginx ]]; then
    cargo build --release --quiet --example storm
else
    cargo build --release --quiet --bin holdline --example storm
fi
ulimit -n 20000 || true

# Waits (at most 5 s) until the server answers.
wait_up() {
    for _ in $(seq 100); do
        curl -fs "http://127.0.0.1:$port/index.html" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "the server did not come up" >&2
    return 1
}

# Starts nginx; sets server_pid (the master) and worker_pid.
start_nginx() {
    local variant=$1 nofile=$2 worker_connections=$3
    shift 3
    cat > "$root/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile $nofile;
error_log $root/nginx-error.log warn;
pid $root/nginx.pid;
events { worker_connections $worker_connections; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    open_file_cache max=1000 inactive=20s;
    open_file_cache_valid 1s;
    keepalive_timeout 5;
    keepalive_requests 100;
    client_body_temp_path $root/nginx-client-body;
    proxy_temp_path $root/nginx-proxy;
    fastcgi_temp_path $root/nginx-fastcgi;
    uwsgi_temp_path $root/nginx-uwsgi;
    scgi_temp_path $root/nginx-scgi;
    server {
        listen 127.0.0.1:$port;
        listen 127.0.0.1:$tls_port ssl;
        ssl_certificate $root/cert.pem;
        ssl_certificate_key $root/key.pem;
        ssl_session_cache shared:SSL:10m;
        root $root;
        location = /status { stub_status; }
    }
}
EOF
    "$@" nginx -e "$root/nginx-error.log" -c "$root/nginx.conf" -p "$root/" \
        2> "$root/server-$variant.log" &
    server_pid=$!
    worker_pid=
    for _ in $(seq 100); do
        worker_pid=$(pgrep -P "$server_pid" | head -n1 || true)
        [[ -n $worker_pid ]] && break
        sleep 0.05
    done
    [[ -n $worker_pid ]] || { echo "no nginx worker" >&2; cat "$root/nginx-error.log" >&2; return 1; }
}

run() {
    local letter=$1 variant=$2 conns=$3 limited=$4
    local limit=() limit_text="default ($(ulimit -Hn))"
    if [[ $limited == yes ]]; then
        limit=(prlimit --nofile=256:256 --)
        limit_text=256
    fi
    conns=${CONNS:-$conns}
    local pids=() status_flags=(--status /status) who timeline=()
    if [[ ${PLOT:-0} == 1 ]]; then
        timeline=(--timeline "$root/timeline-$variant.csv")
    fi
    if [[ $peer == nginx ]]; then
        if [[ $limited == yes ]]; then
            start_nginx "$variant" 256 220 "${limit[@]}"
        else
            start_nginx "$variant" 20000 4096
        fi
        pids=(--pid "$server_pid" --pid "$worker_pid")
        status_flags+=(--no-status)
        who="nginx master $server_pid, worker $worker_pid"
    else
        # shellcheck disable=SC2086 # SERVER_FLAGS is a list of flags
        "${limit[@]}" ./target/release/holdline --listen "127.0.0.1:$port" \
            --tls-listen "127.0.0.1:$tls_port" --tls-cert "$root/cert.pem" --tls-key "$root/key.pem" \
            --status-path /status ${SERVER_FLAGS:-} "$root" 2> "$root/server-$variant.log" &
        server_pid=$!
        pids=(--pid "$server_pid")
        who="holdline pid $server_pid"
    fi
    wait_up
    echo "== variant $letter ($variant): $who, RLIMIT_NOFILE $limit_text, $conns storm connections, ${seconds}s"
    if [[ $peer == nginx ]]; then
        echo "nginx worker fd limit: $(awk '/Max open files/ {print $4 " soft, " $5 " hard"}' "/proc/$worker_pid/limits")"
    else
        grep -h "fd limit" "$root/server-$variant.log" || true
    fi
    # shellcheck disable=SC2086 # STORM_FLAGS is a list of flags
    ./target/release/examples/storm --addr "127.0.0.1:$port" "${pids[@]}" \
        --storm-addr "127.0.0.1:$([[ $variant == handshake ]] && echo "$tls_port" || echo "$port")" \
        --conns "$conns" --variant "$variant" --seconds "$seconds" "${status_flags[@]}" \
        "${timeline[@]}" ${STORM_FLAGS:-}
    if [[ $peer == nginx ]]; then
        echo "-- stub_status after recovery:"
        curl -fs -m 5 "http://127.0.0.1:$port/status" || true
        echo "-- nginx error log (warn and worse, by message):"
        grep -E '\[(warn|error|alert|crit|emerg)\]' "$root/nginx-error.log" \
            | sed -E 's/^[^[]*//; s/[0-9]+#[0-9]+: (\*[0-9]+ )?//; s/, client: .*//' \
            | sort | uniq -c | sort -rn | head -n 5 || true
    else
        echo "-- counters after recovery (Prometheus):"
        curl -fs -m 5 "http://127.0.0.1:$port/status?format=prometheus" \
            | grep -E '^holdline_(closes_total|evictions_total|accept_pauses_total|accept_emfile_total|fd_|max_connections|connections\{)' || true
    fi
    kill "$server_pid"
    wait "$server_pid" 2>/dev/null || true
    server_pid=
    if [[ ${PLOT:-0} == 1 ]]; then
        local svg=docs/storm-$variant.svg
        [[ $peer == nginx ]] && svg=docs/storm-$variant-nginx.svg
        mkdir -p docs
        if /usr/bin/python3 scripts/plots/storm_timeline.py "$root/timeline-$variant.csv" "$svg" \
            "variant $letter ($variant): $peer, RLIMIT_NOFILE $limit_text, $conns storm connections, ${seconds} s"; then
            echo "-- timeline: $svg"
        else
            echo "-- timeline: drawing $svg failed" >&2
        fi
    fi
}

A() { run A idle 3000 yes; }
B() { run B partial 3000 yes; }
C() { run C slow 400 yes; }
D() { run D multirange 1000 no; }
E() { run E handshake 3000 yes; }
mixed() { run mixed mixed 3000 yes; }

case $variants in
    both) A; B ;;
    all) A; B; C; D; E; mixed ;;
    *) "$variants" ;;
esac
