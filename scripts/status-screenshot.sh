#!/usr/bin/env bash
# A screenshot of the live status page (--status-path, opened by a
# browser) while holdline is under a storm: docs/status-under-storm.png.
#
#   scripts/status-screenshot.sh [VARIANT]     (default: mixed)
#
# Starts holdline under `prlimit --nofile=256` with the status page, runs
# the storm tool (examples/storm.rs) for 12 s, and 6 s into it lets
# headless Chromium load the page for 5 s of its own time (five polls),
# then saves what it shows. Installs chromium if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
variant=${1:-mixed}
port=${PORT:-18090}
if ! command -v chromium >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
cargo build --release --quiet --bin holdline --example storm
root=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$root"' EXIT
echo '<h1>storm</h1>' > "$root/index.html"
truncate -s 100M "$root/big.bin"
ulimit -n 20000 || true
prlimit --nofile=256:256 -- ./target/release/holdline --listen "127.0.0.1:$port" \
    --status-path /status "$root" 2> "$root/server.log" &
server=$!
for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$port/index.html" >/dev/null 2>&1 && break
    sleep 0.05
done
conns=3000
[[ $variant == slow ]] && conns=400
./target/release/examples/storm --addr "127.0.0.1:$port" --pid "$server" \
    --conns "$conns" --variant "$variant" --seconds 12 >/dev/null &
storm=$!
sleep 6
mkdir -p docs
chromium --headless --no-sandbox --disable-gpu --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$root/profile" --window-size=1200,1000 \
    --virtual-time-budget=5000 --screenshot="$PWD/docs/status-under-storm.png" \
    "http://127.0.0.1:$port/status" 2>/dev/null
wait "$storm" || true
echo "wrote docs/status-under-storm.png"
