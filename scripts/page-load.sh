#!/usr/bin/env bash
# The keep-alive experiment of the article that started holdline: a page of
# 100 assets loaded through emulated round trips, as a browser does (6
# parallel connections), with keep-alive, with --keepalive-timeout 0, and
# as HTTP/1.0 without keep-alive, at RTT 0 (direct), 50 ms and 200 ms.
#
#   scripts/page-load.sh
#
# Prints a markdown table: wall time, TCP connections the server accepted
# (from its status counters) and requests per connection. Two more rows
# load the page over one connection at a time at 200 ms, as the article's
# arithmetic assumes (SEQUENTIAL=0 skips them: they take a minute).
# A second table loads the page over HTTPS (TLS 1.3 and TLS 1.2, a
# throwaway ECDSA P-256 certificate made with openssl) at RTT 50 and 200
# ms, over 6 connections and over 1: with keep-alive, without
# (--keepalive-timeout 0: a full handshake per request), and without but
# resuming the session (as browsers do); the resumed count is the server's
# (TLS=0 skips it; with SEQUENTIAL=1 it takes about 5 minutes).
# PLOT=1 also draws wall time against RTT as docs/page-load.svg.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin holdline

work=$(mktemp -d)
www=$work/www
mkdir -p "$www/assets"
{
    echo "<!DOCTYPE html><html><head><title>100 assets</title></head><body>"
    for i in $(seq -w 1 100); do
        head -c 2048 /dev/urandom | base64 -w0 > "$www/assets/a$i.css"
        echo "<link rel=\"stylesheet\" href=\"/assets/a$i.css\">"
    done
    echo "</body></html>"
} > "$www/index.html"

KA_PORT=18680
OFF_PORT=18681
KA_TLS_PORT=18682
OFF_TLS_PORT=18683
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=page -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
tls_flags=(--tls-cert "$work/cert.pem" --tls-key "$work/key.pem")
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    # PLOT=1: wall time against RTT, docs/page-load.svg (Debian's matplotlib).
    if [ "${PLOT:-0}" = 1 ] && [ -s "$work/table.md" ]; then
        /usr/bin/python3 -c 'import matplotlib' 2>/dev/null ||
            { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-matplotlib >/dev/null; }
        mkdir -p docs
        /usr/bin/python3 scripts/plots/page_load.py "$work/table.md" docs/page-load.svg &&
            echo "plot written to docs/page-load.svg" >&2
    fi
    rm -rf "$work"
}
trap cleanup EXIT
# Everything printed is kept for the plot.
exec > >(tee "$work/table.md")

./target/release/holdline --listen 127.0.0.1:$KA_PORT --status-path /status \
    --tls-listen 127.0.0.1:$KA_TLS_PORT "${tls_flags[@]}" "$www" 2>/dev/null &
pids+=($!)
./target/release/holdline --listen 127.0.0.1:$OFF_PORT --status-path /status --keepalive-timeout 0 \
    --tls-listen 127.0.0.1:$OFF_TLS_PORT "${tls_flags[@]}" "$www" 2>/dev/null &
pids+=($!)
sleep 0.5

handled() {
    curl -fs "http://127.0.0.1:$1/status" | awk 'NR == 3 {print $2}'
}

# via_proxy SERVER_PORT RTT_MS: sets target_port to the server itself (RTT
# 0) or to a new latency proxy in front of it.
proxy_port=18700
via_proxy() {
    target_port=$1
    if [ "$2" != 0 ]; then
        proxy_port=$((proxy_port + 1))
        python3 scripts/pageload/latency_proxy.py $proxy_port "127.0.0.1:$1" "$2" > "$work/proxy.out" &
        pids+=($!)
        for _ in $(seq 50); do grep -q ready "$work/proxy.out" 2>/dev/null && break; sleep 0.1; done
        target_port=$proxy_port
    fi
}

# row MODE RTT PARALLEL: one page load, one table row.
row() {
    local mode=$1 rtt=$2 parallel=$3
    local server_port=$KA_PORT client_mode=keepalive before after conns result
    [ "$mode" = ka-off ] && server_port=$OFF_PORT
    [ "$mode" = http10 ] && client_mode=http10
    via_proxy "$server_port" "$rtt"
    before=$(handled $server_port)
    result=$(python3 scripts/pageload/load_page.py "127.0.0.1:$target_port" "$client_mode" "$parallel" 100)
    # The status request itself is one more accepted connection.
    after=$(($(handled $server_port) - 1))
    conns=$((after - before))
    echo "$result" | python3 -c '
import json, sys
r = json.load(sys.stdin)
mode, rtt, parallel, conns = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
names = {"keepalive": "keep-alive (default)", "ka-off": "--keepalive-timeout 0", "http10": "HTTP/1.0, no keep-alive"}
wall, reqs = r["wall_s"], r["requests"]
print(f"| {names[mode]} | {parallel} | {rtt} ms | {wall:.2f} s | {conns} | {reqs / max(conns, 1):.1f} |")
' "$mode" "$rtt" "$parallel" "$conns"
}

echo "| mode | parallel connections | RTT | wall time | connections opened | requests per connection |"
echo "| --- | --- | --- | --- | --- | --- |"
for rtt in 0 50 200; do
    for mode in keepalive ka-off http10; do
        row "$mode" "$rtt" 6
    done
done
# One connection at a time, as the article's arithmetic assumes.
if [ "${SEQUENTIAL:-1}" = 1 ]; then
    row keepalive 200 1
    row http10 200 1
fi

# HTTPS: tls_row TLS MODE RTT PARALLEL; MODE keepalive or ka-off.
tls_resumed() {
    curl -fs "http://127.0.0.1:$1/status?format=json" | python3 -c 'import json, sys; print(json.load(sys.stdin)["tls_handshakes"]["resumed"])'
}
tls_row() {
    local tls=$1 mode=$2 rtt=$3 parallel=$4
    local status_port=$KA_PORT server_port=$KA_TLS_PORT before after r0 r1 result
    if [ "$mode" = ka-off ]; then status_port=$OFF_PORT server_port=$OFF_TLS_PORT; fi
    via_proxy "$server_port" "$rtt"
    before=$(handled $status_port)
    r0=$(tls_resumed $status_port)
    result=$(python3 scripts/pageload/load_page.py "127.0.0.1:$target_port" keepalive "$parallel" 100 "$tls")
    after=$(($(handled $status_port) - 2))
    r1=$(tls_resumed $status_port)
    echo "$result" | python3 -c '
import json, sys
r = json.load(sys.stdin)
tls, mode, rtt, parallel, conns, resumed = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6])
version = "TLS 1.3" if tls.startswith("tls1.3") else "TLS 1.2"
if mode == "keepalive":
    name = "keep-alive (default)"
elif tls.endswith("-resume"):
    name = "--keepalive-timeout 0, sessions resumed"
else:
    name = "--keepalive-timeout 0, full handshakes"
wall, reqs = r["wall_s"], r["requests"]
print(f"| {version} | {name} | {parallel} | {rtt} ms | {wall:.2f} s | {conns} | {reqs / max(conns, 1):.1f} | {resumed} |")
' "$tls" "$mode" "$rtt" "$parallel" "$((after - before))" "$((r1 - r0))"
}
if [ "${TLS:-1}" = 1 ]; then
    echo
    echo "| TLS | mode | parallel connections | RTT | wall time | connections opened | requests per connection | handshakes resumed |"
    echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
    parallels="6"
    [ "${SEQUENTIAL:-1}" = 1 ] && parallels="6 1"
    for parallel in $parallels; do
        for rtt in 50 200; do
            for version in tls1.3 tls1.2; do
                tls_row $version keepalive $rtt "$parallel"
                tls_row $version ka-off $rtt "$parallel"
                tls_row $version-resume ka-off $rtt "$parallel"
            done
        done
    done
fi

# A real browser: headless Chromium, directly and through 200 ms of RTT.
if ! command -v chromium >/dev/null; then
    echo "SKIPPED: chromium is not installed (apt-get install -y chromium)" >&2
    exit 0
fi
echo
echo "| headless Chromium | RTT | wall time (incl. browser start) | connections opened | requests |"
echo "| --- | --- | --- | --- | --- |"
for rtt in 0 200; do
    for mode in keepalive ka-off; do
        server_port=$KA_PORT
        [ "$mode" = ka-off ] && server_port=$OFF_PORT
        via_proxy "$server_port" "$rtt"
        read -r h0 r0 < <(curl -fs "http://127.0.0.1:$server_port/status" | awk 'NR == 3 {print $2, $3}')
        profile=$(mktemp -d)
        t0=$(date +%s.%N)
        chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
            --disable-background-networking --disable-component-update --disable-sync \
            --user-data-dir="$profile" --dump-dom "http://127.0.0.1:$target_port/index.html" >/dev/null 2>&1
        t1=$(date +%s.%N)
        rm -rf "$profile"
        read -r h1 r1 < <(curl -fs "http://127.0.0.1:$server_port/status" | awk 'NR == 3 {print $2, $3}')
        name="keep-alive (default)"
        [ "$mode" = ka-off ] && name="--keepalive-timeout 0"
        awk -v n="$name" -v rtt="$rtt" -v t0="$t0" -v t1="$t1" -v c=$((h1 - h0 - 1)) -v r=$((r1 - r0 - 1)) \
            'BEGIN { printf "| %s | %s ms | %.2f s | %d | %d |\n", n, rtt, t1 - t0, c, r }'
    done
done
