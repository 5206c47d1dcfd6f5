#!/usr/bin/env bash
# holdline's user-space instructions per request, counted by callgrind:
# a figure noise cannot move (the same on a busy machine as on a quiet
# one, the same from run to run to within a few instructions), for
# judging a change that a timed benchmark's noise would hide.
#
#   scripts/instructions.sh [N]      (default N = 2000 requests)
#
# For each configuration, holdline runs under `valgrind --tool=callgrind`
# twice: once answering N keep-alive requests, once 2N (ab -k -c 10, a
# 1 KiB file); the difference of the two totals over N is the cost of one
# request, start-up and shutdown cancelled out. Configurations:
#   one-site   holdline serving one directory (scenario (1) of bench.sh)
#   sites      the same files as three [[site]] blocks of twenty rules
#              each, asked for by the third site's host (scenario (13))
# and the ratio sites/one-site, the measure of the sites issue's "within
# 5% of a single site". Kernel work (the syscalls) is not counted: see
# scripts/bench.sh for CPU time.
#
# Needs valgrind and ab (apache2-utils); installs them if missing.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-2000}
need=()
command -v valgrind >/dev/null || need+=(valgrind)
command -v ab >/dev/null || need+=(apache2-utils)
if ((${#need[@]})); then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
cargo build --release -q
work=$(mktemp -d)
[ -n "${KEEP:-}" ] && echo "keeping $work" >&2 || trap 'rm -rf "$work"' EXIT
mkdir -p "$work/www"
head -c 1024 /dev/zero | tr '\0' 'x' > "$work/www/1k.txt"
port=18599
{
    echo "listen = [\"127.0.0.1:$port\"]"
    echo "root = \"$work/www\""
    for site in a b c; do
        echo
        echo "[[site]]"
        echo "host = [\"$site.bench\", \"*.$site.bench\"]"
        echo "root = \"$work/www\""
        echo "rule = ["
        for i in $(seq 17); do echo "  \"/section-$i/** header X-Section: $i\","; done
        echo "  \"/old/** redirect 301 /new/{rest}\","
        echo "  \"*.txt header Cache-Control: public, max-age=60\","
        echo "  \"/** header X-Site: $site\","
        echo "]"
    done
} > "$work/sites.toml"

# The total instructions of one run answering $2 requests under config $1.
run() {
    local config=$1 requests=$2 out="$work/callgrind.$1.$2"
    local args=(--listen "127.0.0.1:$port" --keepalive-timeout 60 --max-requests 100000 "$work/www")
    local host=127.0.0.1
    if [ "$config" = sites ]; then
        args=(--config "$work/sites.toml" --keepalive-timeout 60 --max-requests 100000)
        host=www.c.bench
    fi
    valgrind --tool=callgrind --callgrind-out-file="$out" \
        ./target/release/holdline "${args[@]}" 2>"$work/log.$config.$requests" &
    local pid=$!
    for _ in $(seq 300); do
        curl -s -o /dev/null "http://127.0.0.1:$port/1k.txt" 2>/dev/null && break
        sleep 0.1
    done
    ab -q -k -c 10 -n "$requests" -H "Host: $host" "http://127.0.0.1:$port/1k.txt" >"$work/ab.$config.$requests"
    grep -q "Non-2xx responses" "$work/ab.$config.$requests" && {
        echo "non-2xx responses under $config" >&2
        exit 1
    }
    kill -TERM "$pid"
    wait "$pid" || true
    awk '/^summary:/ { print $2 }' "$out"
}

declare -A per
for config in one-site sites; do
    a=$(run "$config" "$n")
    b=$(run "$config" $((2 * n)))
    per[$config]=$(( (b - a) / n ))
    echo "$config: $(( per[$config] )) instructions per request ($a for $n requests, $b for $((2 * n)))"
done
awk -v s="${per[sites]}" -v o="${per[one-site]}" \
    'BEGIN { printf "sites/one-site: %.3f\n", s / o }'
echo "commit $(git rev-parse --short HEAD), $(date -u '+%Y-%m-%d %H:%M UTC'), valgrind $(valgrind --version | sed 's/valgrind-//')"
