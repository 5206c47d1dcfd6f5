#!/usr/bin/env bash
# User-space instructions per request, counted by callgrind, for holdline
# and its peers (nginx, h2o, the floor) in the same request mix: a figure
# noise cannot move (the same on a busy machine as on a quiet one, the same
# from run to run to within a few instructions), for judging a change that
# a timed benchmark's noise would hide.
#
#   scripts/instructions.sh [N]      (default N = 2000)
#
#   ONLY=name   run only that scenario (ka, close, large, pipelined, sites,
#               tls, tls-full)
#   SERVERS="holdline sites"   measure only these of each scenario's servers
#   KEEP=1      keep the work directory (callgrind files, logs) and say where
#
# Each server runs under `valgrind --tool=callgrind` twice per scenario:
# once answering R requests, once 2R; the difference of the two totals over
# R is the cost of one request, start-up, the warm-up request and shutdown
# cancelled out. Only user-space instructions are counted (every thread of
# the process): kernel work, the syscalls and the copies they make, is not,
# which is what scripts/bench.sh's CPU time adds. So the large-file row
# says what each server's own code costs per response, not which is
# cheaper: holdline and nginx use sendfile (the copy is the kernel's), h2o
# preads into its buffers (the copy is the kernel's too, and so uncounted).
#
# Scenarios (R requests; the HTTP ones from scripts/floor/count.c, which
# sends wrk's request, `GET /1k.txt HTTP/1.1` with only Host, one at a time
# per connection, 10 connections, and stops at exactly R responses):
#   ka          keep-alive, 1 KiB file, R = N: holdline, nginx, h2o, floor
#   close       Connection: close, a connection per request, R = N/4:
#               holdline, nginx, h2o
#   large       keep-alive, 1 MiB file, R = N/10: holdline, nginx, h2o
#   pipelined   keep-alive, 1 KiB, 16 requests per write (count.c's
#               `pipeline 16`), R = N: holdline, nginx, h2o, floor
#   sites       holdline with the same files as three [[site]] blocks of
#               twenty rules each, asked for by the third site's host, R = N,
#               against holdline with one site: the sites issue's "within 5%
#               of a single site"
#   tls         HTTPS keep-alive, 1 KiB, R = N/2 (ab -k: HTTP/1.0 with
#               Connection: keep-alive; TLS 1.3, X25519, AES-256-GCM on both
#               with ab's OpenSSL): holdline, nginx
#   tls-full    HTTPS, a full handshake per request (ab without -k resumes
#               nothing), ECDSA P-256 certificate, R = N/20: holdline, nginx
#
# The peers run as in scripts/bench.sh: nginx with one process
# (master_process off, so callgrind sees the process that serves),
# sendfile, open_file_cache, access log off; h2o 2.2 with one thread; the
# floor (scripts/floor/floor.c) parses nothing. Per-connection request
# caps are lifted (100000) so no connection is closed mid-run.
#
# Needs valgrind, ab (apache2-utils), nginx, h2o, curl, openssl and a C
# compiler; installs the missing ones.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/install.sh
. scripts/lib/nginx.sh
n=${1:-2000}
case $n in '' | *[!0-9]* | 0) echo "N must be a positive integer" >&2; exit 2 ;; esac
need=()
command -v valgrind >/dev/null || need+=(valgrind)
command -v ab >/dev/null || need+=(apache2-utils)
command -v nginx >/dev/null || need+=(nginx-light)
command -v h2o >/dev/null || need+=(h2o)
command -v curl >/dev/null || need+=(curl)
command -v cc >/dev/null || need+=(gcc)
command -v openssl >/dev/null || need+=(openssl)
install_missing "${need[@]}"
cargo build --release -q --bin holdline
work=$(mktemp -d)
chmod 755 "$work"
if [ -n "${KEEP:-}" ]; then echo "keeping $work" >&2; else trap 'rm -rf "$work"' EXIT; fi
www=$work/www
mkdir -p "$www" "$work/tmp"
head -c 1024 /dev/zero | tr '\0' 'x' > "$www/1k.txt"
head -c $((1024 * 1024)) /dev/zero | tr '\0' 'y' > "$www/1m.bin"
chmod 644 "$www"/*
cc -O2 -o "$work/count" scripts/floor/count.c
cc -O2 -o "$work/floor" scripts/floor/floor.c
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=bench -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
port=18599
tls_port=18598

{
    echo "listen = [\"127.0.0.1:$port\"]"
    echo "root = \"$www\""
    for site in a b c; do
        echo
        echo "[[site]]"
        echo "host = [\"$site.bench\", \"*.$site.bench\"]"
        echo "root = \"$www\""
        echo "rule = ["
        for i in $(seq 17); do echo "  \"/section-$i/** header X-Section: $i\","; done
        echo "  \"/old/** redirect 301 /new/{rest}\","
        echo "  \"*.txt header Cache-Control: public, max-age=60\","
        echo "  \"/** header X-Site: $site\","
        echo "]"
    done
} > "$work/sites.toml"

cat > "$work/nginx.conf" <<NGINX
worker_processes 1;
master_process off;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 1024; use epoll; }
http {
$(nginx_http_common "$work" 100000)
    server {
        listen 127.0.0.1:$port;
        listen 127.0.0.1:$tls_port ssl;
        ssl_certificate $work/cert.pem;
        ssl_certificate_key $work/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache off;
        ssl_session_tickets off;
        root $www;
    }
}
NGINX

# h2o: started as root it would switch to nobody, who could not write the
# callgrind file into $work; `user: root` keeps it.
cat > "$work/h2o.conf" <<H2O
num-threads: 1
user: root
listen:
  host: 127.0.0.1
  port: $port
error-log: $work/h2o-error.log
http1-request-timeout: 60
file.send-compressed: OFF
hosts:
  default:
    paths:
      /:
        file.dir: $www
H2O

# The command line of SERVER (holdline, sites, nginx, h2o, floor).
server_command() {
    local common=(--keepalive-timeout 60 --max-requests 100000)
    case $1 in
        holdline)
            echo ./target/release/holdline --listen "127.0.0.1:$port" \
                --tls-listen "127.0.0.1:$tls_port" --tls-cert "$work/cert.pem" \
                --tls-key "$work/key.pem" --no-tls-tickets --tls-session-cache 0 \
                "${common[@]}" "$www" ;;
        sites) echo ./target/release/holdline --config "$work/sites.toml" "${common[@]}" ;;
        nginx) echo nginx -p "$work" -c "$work/nginx.conf" ;;
        h2o) echo h2o -c "$work/h2o.conf" ;;
        floor) echo "$work/floor" "$port" "$www/1k.txt" ;;
    esac
}

# load SCENARIO SERVER R: make R requests of the scenario's kind.
load() {
    local host=127.0.0.1
    [ "$2" = sites ] && host=www.c.bench
    case $1 in
        ka | sites) "$work/count" "$port" /1k.txt "$3" 10 "$host" ;;
        close) "$work/count" "$port" /1k.txt "$3" 10 "$host" close ;;
        large) "$work/count" "$port" /1m.bin "$3" 10 "$host" ;;
        pipelined) "$work/count" "$port" /1k.txt "$3" 10 "$host" pipeline 16 ;;
        tls) ab -q -k -c 10 -n "$3" "https://127.0.0.1:$tls_port/1k.txt" ;;
        tls-full) ab -q -c 10 -n "$3" "https://127.0.0.1:$tls_port/1k.txt" ;;
    esac
}

# run SCENARIO SERVER R: the total instructions of one run answering R
# requests (and one warm-up request).
run() {
    local scenario=$1 server=$2 requests=$3 tag=$1.$2.$3
    local out=$work/callgrind.$tag
    # shellcheck disable=SC2046
    valgrind --tool=callgrind --callgrind-out-file="$out" $(server_command "$server") \
        >"$work/out.$tag" 2>"$work/log.$tag" &
    local pid=$!
    local url=http://127.0.0.1:$port/1k.txt
    case $scenario in tls*) url=https://127.0.0.1:$tls_port/1k.txt ;; esac
    local host=127.0.0.1
    [ "$server" = sites ] && host=www.c.bench
    local up=
    for _ in $(seq 600); do
        if curl -sk -o /dev/null -H "Host: $host" "$url" 2>/dev/null; then up=1; break; fi
        sleep 0.1
    done
    [ -n "$up" ] || { echo "$server did not come up ($work/log.$tag)" >&2; exit 1; }
    if ! load "$scenario" "$server" "$requests" >"$work/load.$tag" 2>&1 ||
        grep -q "Non-2xx\|Failed requests: *[1-9]" "$work/load.$tag"; then
        echo "$scenario against $server failed: $(tail -3 "$work/load.$tag")" >&2
        kill -TERM "$pid" 2>/dev/null || true
        exit 1
    fi
    kill -TERM "$pid"
    wait "$pid" || true
    # callgrind writes one file per process (and thread, with
    # --separate-threads); here one file with every thread's total.
    awk '/^summary:/ { print $2 }' "$out"
}

declare -A per
# measure SCENARIO R SERVERS...: a row of instructions per request.
measure() {
    local scenario=$1 r=$2 server a b
    shift 2
    if [ -n "${ONLY:-}" ] && [ "$ONLY" != "$scenario" ]; then return; fi
    for server in "$@"; do
        if [ -n "${SERVERS:-}" ] && [[ " $SERVERS " != *" $server "* ]]; then continue; fi
        a=$(run "$scenario" "$server" "$r")
        b=$(run "$scenario" "$server" $((2 * r)))
        per[$scenario.$server]=$(( (b - a) / r ))
        echo "  $scenario, $server: $(( (b - a) / r )) instructions per request ($a for $r, $b for $((2 * r)))" >&2
    done
}

measure ka "$n" holdline nginx h2o floor
measure close $((n / 4)) holdline nginx h2o
measure large $((n / 10)) holdline nginx h2o
measure pipelined "$n" holdline nginx h2o floor
measure sites "$n" holdline sites
measure tls $((n / 2)) holdline nginx
measure tls-full $((n / 20)) holdline nginx

cell() { [ -n "${per[$1]:-}" ] && echo "${per[$1]}" || echo -; }
ratio() {
    if [ -n "${per[$1]:-}" ] && [ -n "${per[$2]:-}" ] && [ "${per[$2]}" -gt 0 ]; then
        awk -v a="${per[$1]}" -v b="${per[$2]}" 'BEGIN { printf "%.2f", a / b }'
    else
        echo -
    fi
}
echo
echo "User-space instructions per request (callgrind), N=$n"
echo
echo "| scenario | holdline | nginx | h2o | floor | holdline/nginx | holdline/h2o | holdline/floor |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
for s in ka close large pipelined tls tls-full; do
    [ -n "${ONLY:-}" ] && [ "$ONLY" != "$s" ] && continue
    echo "| $s | $(cell "$s.holdline") | $(cell "$s.nginx") | $(cell "$s.h2o") | $(cell "$s.floor") |" \
        "$(ratio "$s.holdline" "$s.nginx") | $(ratio "$s.holdline" "$s.h2o") | $(ratio "$s.holdline" "$s.floor") |"
done
if [ -z "${ONLY:-}" ] || [ "$ONLY" = sites ]; then
    echo
    echo "sites: one site $(cell sites.holdline), three sites and twenty rules $(cell sites.sites)," \
        "sites/one-site $(ratio sites.sites sites.holdline)"
fi
echo
echo "commit $(git rev-parse --short HEAD), $(date -u '+%Y-%m-%d %H:%M UTC'), valgrind $(valgrind --version | sed 's/valgrind-//'), $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //')"
