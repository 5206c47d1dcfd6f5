#!/usr/bin/env bash
# holdline against nginx, h2o and a floor, side by side: same files, same
# machine, same run, same wrk command.
#
#   scripts/bench.sh [SECONDS]        (default 10 s per run)
#
#   ROUNDS=N   rounds per scenario (default 5)
#   ONLY=N     run only scenario N (1-13)
#   OUT=path   also write the report (header and tables) to path
#   PLOT=1     also draw the CPU table as docs/bench.svg (scripts/plots/bench.py)
#
# Installs wrk, nginx, h2o, strace, curl and a C compiler if missing. Every
# server is pinned to CPU 0 and the load generator to CPU 1. Each scenario
# runs ROUNDS rounds; a round runs holdline, then each peer (A B A B ...), one
# wrk run each. Reported per server: the median over rounds of requests/s and
# of CPU time per request (utime + stime of the server's whole process tree
# from /proc/PID/stat over the run, divided by the requests served: the fair
# figure on a 2-core machine where the client competes for CPU). Ratios
# holdline/peer are taken per round, from that round's holdline run and peer
# run, and printed as median (min-max) over rounds. Results are noisy on this
# kind of machine: one run is not a result, and a ratio whose range crosses 1
# is not a difference.
#
# The peers:
# - nginx (Debian's nginx-light): one worker, sendfile, open_file_cache,
#   keepalive_timeout 60, keepalive_requests 1000, `listen ... deferred`.
# - h2o (Debian's h2o, 2.2): one thread; the settings and where they differ
#   from nginx's are noted at its config below.
# - floor (scripts/floor/floor.c): an epoll responder that parses nothing and
#   answers each "\r\n\r\n" with a canned 200 and the same 1 KiB body, one
#   read and one send per readable event: what the kernel allows. Only for
#   the 1 KiB keep-alive scenarios (1) and (2).
# Every server defers accept (TCP_DEFER_ACCEPT: a connection is accepted
# once its request is in, which saves a wake-up per new connection): h2o
# always does, nginx with `deferred`, holdline with --defer-accept.
# (5) and (6) measure holdline, nginx and h2o (not the floor).
# (7) to (11) are HTTPS, holdline against nginx only: the same ECDSA P-256
# certificate (made here with openssl), TLS 1.2 and 1.3, nginx with
# `ssl_session_cache shared:SSL:10m` (holdline resumes by default). wrk
# (OpenSSL) negotiates TLS 1.3 with X25519 and AES-256-GCM on both. With
# `Connection: close` wrk reconnects and resumes its last session, so (9)
# measures resumed handshakes; for (8), full handshakes, a second holdline
# (--no-tls-tickets --tls-session-cache 0) and a second nginx server block
# (ssl_session_tickets off, ssl_session_cache off) resume nothing.
# holdline's own handshake counters are printed for both.
# (12) is compression: a 28 KiB minified JavaScript file (jquery-ui's
# sortable.min.js, from Debian's libjs-jquery-ui) asked for with
# `Accept-Encoding: gzip` over 50 keep-alive connections. nginx has `gzip on`
# for JavaScript (its default level, 1), compressing on every request;
# holdline compresses the file once (gzip -9, on its compressor thread:
# the script asks until the answer is gzip before measuring) and serves it
# from memory. The same file without Accept-Encoding is measured too, and
# holdline's gzip figure is given against its own identity figure.
# (13) is the cost of sites and rules: holdline serving the same files as
# three [[site]] blocks with twenty --rules each (three match the file),
# asked for by the third site's host, against holdline with one site, in
# the same rounds.
set -euo pipefail
# OUT is relative to where the script was started from
out_file=
if [ -n "${OUT:-}" ]; then
    out_file=$(realpath -m -- "$OUT")
fi
cd "$(dirname "$0")/.."
. scripts/lib/install.sh
. scripts/lib/nginx.sh
. scripts/lib/proc.sh
secs=${1:-10}
ROUNDS=${ROUNDS:-5}
case $ROUNDS in '' | *[!0-9]* | 0) echo "ROUNDS must be a positive integer" >&2; exit 2 ;; esac

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || need+=(nginx-light)
command -v h2o >/dev/null || need+=(h2o)
command -v strace >/dev/null || need+=(strace)
command -v curl >/dev/null || need+=(curl)
command -v cc >/dev/null || need+=(gcc)
command -v openssl >/dev/null || need+=(openssl)
JS=/usr/share/javascript/jquery-ui/ui/widgets/sortable.min.js
[ -f "$JS" ] || need+=(libjs-jquery-ui)
install_missing "${need[@]}"
cargo build --release --quiet --bin holdline
ulimit -n 20000

work=$(mktemp -d)
# nginx's workers run as www-data, h2o as nobody: they must be able to read
# the files.
chmod 755 "$work"
www=$work/www
mkdir -p "$www"
head -c 1024 /dev/urandom | base64 -w0 | head -c 1024 > "$www/1k.txt"
head -c $((1024 * 1024)) /dev/urandom > "$www/1m.bin"
cp "$JS" "$www/app.js"
chmod 644 "$www"/*
cc -O2 -o "$work/floor" scripts/floor/floor.c
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=bench -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null

H_PORT=18480
N_PORT=18481
O_PORT=18482
F_PORT=18483
declare -A PORT=([holdline]=$H_PORT [nginx]=$N_PORT [h2o]=$O_PORT [floor]=$F_PORT)
declare -A TLS_PORT=([holdline]=18484 [nginx]=18485)
# The resumption-off servers of (8).
FULL_H_PORT=18486
FULL_N_PORT=18487
FULL_S_PORT=18488
# http, or https for the TLS scenarios (which use TLS_PORT).
SCHEME=http
url_of() {
    if [ "$SCHEME" = https ]; then
        echo "https://127.0.0.1:${TLS_PORT[$1]}$2"
    else
        echo "http://127.0.0.1:${PORT[$1]}$2"
    fi
}
declare -A ROOT=()
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
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
$(nginx_http_common "$work" 1000)
    server {
        listen 127.0.0.1:$N_PORT backlog=511 deferred;
        root $www;
        # (12): compressed on every request that accepts it (only (12)
        # sends Accept-Encoding).
        gzip on;
        gzip_types application/javascript text/javascript;
    }
    server {
        listen 127.0.0.1:${TLS_PORT[nginx]} ssl backlog=511 deferred;
        ssl_certificate $work/cert.pem;
        ssl_certificate_key $work/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;
        root $www;
    }
    server {
        listen 127.0.0.1:$FULL_N_PORT ssl backlog=511 deferred;
        ssl_certificate $work/cert.pem;
        ssl_certificate_key $work/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache off;
        ssl_session_tickets off;
        root $www;
    }
}
NGINX
mkdir -p "$work/tmp"

# h2o 2.2 against the nginx settings above:
# - num-threads 1: one event loop, as nginx's one worker and holdline's one
#   thread (h2o keeps a main thread besides, idle; its CPU is counted).
# - max-connections 16384: nginx's worker_connections (h2o's default, 1024,
#   would refuse (5)'s 10,000 idle connections).
# - http1-request-timeout 60: in h2o 2.2 this one timer is both the time
#   allowed for a request head and the keep-alive idle time between requests
#   (lib/http1.c arms it whenever it waits for a request), so 60 s matches
#   nginx's keepalive_timeout 60 and client_header_timeout (default 60 s),
#   and holdline's --keepalive-timeout 60.
# - no cap on requests per connection: h2o 2.2 has no knob for it, so where
#   nginx (keepalive_requests 1000) and holdline (--max-requests 1000) close
#   a connection after 1000 requests and wrk reconnects, h2o keeps it.
# - access log off: no access-log directive, h2o then logs nothing.
# - file.send-compressed OFF (its default): no precompressed variants, as
#   nginx (no gzip_static) and holdline.
# - h2o's open-file cache is purged after every event-loop iteration
#   (src/main.c in 2.2), so unlike nginx's open_file_cache it opens the file
#   for most requests; it has no setting to keep fds longer. It does not use
#   sendfile either (it preads the file into its buffers). Its design, not a
#   setting: (6) shows the syscalls.
# - started as root, h2o runs as nobody, as nginx's worker runs as www-data;
#   no pid-file (h2o opens it after the switch): the pid is the one started.
# - listen backlog: h2o's own (65535, capped by net.core.somaxconn); nginx's
#   is 511 here. No server-name changes: each sends its own Server header.
cat > "$work/h2o.conf" <<H2O
num-threads: 1
max-connections: 16384
listen:
  host: 127.0.0.1
  port: $O_PORT
error-log: $work/h2o-error.log
http1-request-timeout: 60
file.send-compressed: OFF
hosts:
  default:
    paths:
      /:
        file.dir: $www
H2O

start_holdline() {
    taskset -c 0 ./target/release/holdline --listen "127.0.0.1:$H_PORT" \
        --tls-listen "127.0.0.1:${TLS_PORT[holdline]}" --tls-cert "$work/cert.pem" \
        --tls-key "$work/key.pem" --status-path /status \
        --keepalive-timeout 60 --max-requests 1000 --defer-accept 60 "$www" \
        2>"$work/holdline.log" &
    ROOT[holdline]=$!
    pids+=("$!")
}
start_holdline_full() {
    taskset -c 0 ./target/release/holdline --listen "127.0.0.1:$FULL_S_PORT" \
        --tls-listen "127.0.0.1:$FULL_H_PORT" --tls-cert "$work/cert.pem" \
        --tls-key "$work/key.pem" --status-path /status --no-tls-tickets \
        --tls-session-cache 0 --keepalive-timeout 60 --max-requests 1000 \
        --defer-accept 60 "$www" 2>"$work/holdline-full.log" &
    FULL_PID=$!
    pids+=("$!")
}
# (13): the same files as three sites with twenty path rules (three of
# which match /1k.txt), asked for by the last site's host.
S_PORT=18489
PORT[sites]=$S_PORT
{
    echo "listen = [\"127.0.0.1:$S_PORT\"]"
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
start_sites() {
    taskset -c 0 ./target/release/holdline --config "$work/sites.toml" \
        --keepalive-timeout 60 --max-requests 1000 --defer-accept 60 2>"$work/sites.log" &
    ROOT[sites]=$!
    pids+=("$!")
}
start_nginx() {
    taskset -c 0 nginx -p "$work" -c "$work/nginx.conf" &
    ROOT[nginx]=$!
    pids+=("$!")
    for _ in $(seq 100); do [ -s "$work/nginx.pid" ] && break; sleep 0.05; done
}
start_h2o() {
    taskset -c 0 h2o -c "$work/h2o.conf" 2>"$work/h2o.log" &
    ROOT[h2o]=$!
    pids+=("$!")
}
start_floor() {
    taskset -c 0 "$work/floor" "$F_PORT" "$www/1k.txt" 2>"$work/floor.log" &
    ROOT[floor]=$!
    pids+=("$!")
}
wait_port() {
    for _ in $(seq 100); do
        curl -fs -o /dev/null "http://127.0.0.1:$1/1k.txt" && return 0
        sleep 0.05
    done
    echo "server on port $1 did not come up" >&2
    exit 1
}
# check_file NAME PATH: the server answers 200 with the file's very bytes.
check_file() {
    local name=$1 path=$2 got=$work/check
    local code
    code=$(curl -s -o "$got" -w '%{http_code}' "http://127.0.0.1:${PORT[$name]}$path")
    if [ "$code" != 200 ] || ! cmp -s "$got" "$www$path"; then
        echo "$name did not answer $path with 200 and the file (status $code)" >&2
        exit 1
    fi
}
# The pids of a server's process tree (scripts/lib/proc.sh): nginx: master,
# worker; h2o: the server, then the crash handler it spawns at start (perl
# share/h2o/annotate-backtrace-symbols, idle unless h2o crashes); holdline
# and the floor: one process.
server_pids() {
    tree_pids "${ROOT[$1]}" | tr '\n' ' '
}
# The process that serves the connections: nginx's worker, else the one started.
serving_pid() {
    if [ "$1" = nginx ]; then
        tree_pids "${ROOT[nginx]}" | sed -n 2p
    else
        echo "${ROOT[$1]}"
    fi
}
HZ=$(getconf CLK_TCK)

# run_wrk NAME PATH [WRK ARGS...] -> "requests_per_sec cpu_us_per_request",
# or "- -" if the run failed.
run_wrk() {
    local name=$1 path=$2
    shift 2
    local t0 t1 out reqs rps
    t0=$(ticks "$(server_pids "$name")")
    out=$(taskset -c 1 wrk -t1 -d"${secs}s" "$@" "$(url_of "$name" "$path")" 2>&1) || true
    t1=$(ticks "$(server_pids "$name")")
    reqs=$(echo "$out" | awk '/requests in/ {print $1}')
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    if [ -z "$reqs" ] || [ "$reqs" = 0 ] || echo "$out" | grep -q 'Non-2xx'; then
        echo "wrk failed against $name: $out" >&2
        echo "- -"
        return
    fi
    if echo "$out" | grep -q 'Socket errors'; then
        echo "  note, $name: $(echo "$out" | grep 'Socket errors' | sed 's/^ *//')" >&2
    fi
    awk -v rps="$rps" -v d=$((t1 - t0)) -v hz="$HZ" -v n="$reqs" \
        'BEGIN { printf "%.0f %.2f\n", rps, d / hz * 1e6 / n }'
}

# summarize LABEL SERVERS... < "round server rps cpu" lines
# -> two table rows, CPU µs/req then req/s, tab-separated. Per server the
# median over rounds; per peer the ratio holdline/peer per round, as
# median (min-max).
summarize() {
    local label=$1
    shift
    awk -v label="$label" -v servers="holdline nginx h2o floor" -v present="$*" '
    function median(a, n,    i, j, t, b) {
        for (i = 1; i <= n; i++) b[i] = a[i]
        for (i = 2; i <= n; i++) { t = b[i]; for (j = i - 1; j >= 1 && b[j] > t; j--) b[j + 1] = b[j]; b[j + 1] = t }
        lo = b[1]; hi = b[n]
        return (n % 2) ? b[(n + 1) / 2] : (b[n / 2] + b[n / 2 + 1]) / 2
    }
    { if ($1 + 0 > rounds + 0) rounds = $1 + 0 }
    $3 != "-" { rps[$2, $1 + 0] = $3 + 0; cpu[$2, $1 + 0] = $4 + 0 }
    END {
        ns = split(servers, s, " ")
        np = split(present, p, " ")
        for (k = 1; k <= np; k++) have[p[k]] = 1
        crow = "| " label; rrow = "| " label
        for (k = 1; k <= ns; k++) {
            n = 0; m = 0
            for (r = 1; r <= rounds; r++) if ((s[k], r) in cpu) { n++; c[n] = cpu[s[k], r]; q[n] = rps[s[k], r] }
            if (!have[s[k]] || n == 0) { crow = crow " | -"; rrow = rrow " | -"; continue }
            crow = crow sprintf(" | %.2f", median(c, n))
            rrow = rrow sprintf(" | %.0f", median(q, n))
        }
        for (k = 2; k <= ns; k++) {
            n = 0
            for (r = 1; r <= rounds; r++)
                if (("holdline", r) in cpu && (s[k], r) in cpu && cpu[s[k], r] > 0 && rps[s[k], r] > 0) {
                    n++; c[n] = cpu["holdline", r] / cpu[s[k], r]; q[n] = rps["holdline", r] / rps[s[k], r]
                }
            if (!have[s[k]] || n == 0) { crow = crow " | -"; rrow = rrow " | -"; continue }
            med = median(c, n); crow = crow sprintf(" | %.2f (%.2f-%.2f)", med, lo, hi)
            med = median(q, n); rrow = rrow sprintf(" | %.2f (%.2f-%.2f)", med, lo, hi)
        }
        print crow " |\t" rrow " |"
    }'
}

CPU_ROWS=()
RPS_ROWS=()
# scenario NUMBER LABEL "SERVERS" PATH [WRK ARGS...]: ROUNDS rounds, each
# holdline then the other SERVERS in turn. ONLY=4 (say) runs just that one.
scenario() {
    local number=$1 label=$2 servers=$3 path=$4
    shift 4
    if [ -n "${ONLY:-}" ] && [ "$ONLY" != "$number" ]; then
        return
    fi
    local data=$work/runs-$number-${#CPU_ROWS[@]} round name res
    : > "$data"
    for round in $(seq "$ROUNDS"); do
        for name in $servers; do
            res=$(run_wrk "$name" "$path" "$@")
            echo "$round $name $res" >> "$data"
            echo "  ($number) round $round/$ROUNDS $name: ${res% *} req/s, ${res#* } CPU µs/req" >&2
        done
    done
    local rows
    rows=$(summarize "$label" $servers < "$data")
    LAST_DATA=$data
    CPU_ROWS+=("${rows%%$'\t'*}")
    RPS_ROWS+=("${rows#*$'\t'}")
    echo "  done: $label" >&2
}

rss_kb() {
    local total=0 pid
    for pid in $1; do
        total=$((total + $(awk '/VmRSS/ {print $2}' "/proc/$pid/status")))
    done
    echo "$total"
}

# restart NAME: a fresh server process, so that what earlier scenarios
# left in its heap (free memory that new connections would reuse) does not
# hide what idle connections cost.
restart() {
    local old=${ROOT[$1]}
    kill "$old" 2>/dev/null || true
    wait "$old" 2>/dev/null || true
    if [ "$1" = nginx ]; then rm -f "$work/nginx.pid"; fi
    "start_$1"
    wait_port "${PORT[$1]}"
}

# idle_rss NAME N [tls] -> bytes of server RSS per idle keep-alive
# connection (over TLS with a third argument `tls`); call `restart NAME`
# first (not in the $(...) subshell, whose pids the cleanup would not see)
idle_rss() {
    local name=$1 port=${PORT[$1]} n=$2 tls=${3:-} before after fifo
    if [ "$tls" = tls ]; then port=${TLS_PORT[$1]}; fi
    fifo=$work/idle-$name$tls
    mkfifo "$fifo"
    before=$(rss_kb "$(server_pids "$name")")
    taskset -c 1 python3 scripts/bench/idle.py 127.0.0.1 "$port" "$n" $tls < "$fifo" > "$work/idle-$name.out" &
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

# syscalls NAME N -> syscalls per request besides epoll_wait, and the top
# ones (strace -f on the serving process: all its threads)
syscalls() {
    local name=$1 port=${PORT[$1]} n=$2 pid out
    pid=$(serving_pid "$name")
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
start_holdline_full
start_sites
wait_port $S_PORT
got=$(curl -s -D - -H 'Host: www.c.bench' "http://127.0.0.1:$S_PORT/1k.txt" -o /dev/null | tr -d '\r')
echo "$got" | grep -qx 'X-Site: c' || { echo "the sites server did not pick site c" >&2; exit 1; }
start_nginx
start_h2o
start_floor
for name in holdline nginx h2o floor; do
    wait_port "${PORT[$name]}"
    check_file "$name" /1k.txt
done
for name in holdline nginx h2o; do
    check_file "$name" /1m.bin
done
wait_port $FULL_S_PORT
for port in ${TLS_PORT[holdline]} ${TLS_PORT[nginx]} $FULL_H_PORT $FULL_N_PORT; do
    got=$(curl -sk "https://127.0.0.1:$port/1k.txt" | cmp - "$www/1k.txt" && echo same)
    [ "$got" = same ] || { echo "port $port did not serve /1k.txt over https" >&2; exit 1; }
done
echo "running ${secs}s per run, $ROUNDS rounds per scenario" >&2

ALL="holdline nginx h2o floor"
FILES="holdline nginx h2o"
scenario 1 "(1) keep-alive, 1 KiB, 100 connections" "$ALL" /1k.txt -c100
scenario 2 "(2) pipelined x16, 1 KiB, 100 connections" "$ALL" /1k.txt -c100 -s scripts/bench/pipeline.lua
scenario 3 "(3) Connection: close, 1 KiB, 50 connections" "$FILES" /1k.txt -c50 -H "Connection: close"
scenario 4 "(4) keep-alive, 1 MiB, 10 connections" "$FILES" /1m.bin -c10

# (12) compression. Both servers must answer gzip that decodes to the file;
# holdline's first answers are identity while its compressor works.
# self_ratio A B: holdline's CPU per request in run file A over B, per
# round, as median (min-max).
self_ratio() {
    paste "$1" "$2" | awk '$2 == "holdline" && $4 != "-" && $8 > 0 { n++; r[n] = $4 / $8 }
        END {
            for (i = 2; i <= n; i++) { t = r[i]; for (j = i - 1; j >= 1 && r[j] > t; j--) r[j + 1] = r[j]; r[j + 1] = t }
            if (n == 0) { print "-"; exit }
            printf "%.2f (%.2f-%.2f)", (n % 2) ? r[(n + 1) / 2] : (r[n / 2] + r[n / 2 + 1]) / 2, r[1], r[n]
        }'
}
GZIP_SELF=
if [ -z "${ONLY:-}" ] || [ "$ONLY" = 12 ]; then
    for name in holdline nginx; do
        ok=
        for _ in $(seq 600); do
            enc=$(curl -s -o /dev/null -w '%header{content-encoding}' -H 'Accept-Encoding: gzip' \
                "http://127.0.0.1:${PORT[$name]}/app.js")
            [ "$enc" = gzip ] && { ok=1; break; }
            sleep 0.05
        done
        got=$(curl -s --compressed "http://127.0.0.1:${PORT[$name]}/app.js" | cmp - "$www/app.js" && echo same)
        if [ -z "$ok" ] || [ "$got" != same ]; then
            echo "$name did not answer /app.js with gzip that decodes to the file" >&2
            exit 1
        fi
    done
fi
scenario 12 "(12) keep-alive, 28 KiB JavaScript, Accept-Encoding: gzip, 50 connections" "holdline nginx" /app.js -c50 -H "Accept-Encoding: gzip"
gzip_data=${LAST_DATA:-}
scenario 12 "(12) the same file without Accept-Encoding (identity)" "holdline nginx" /app.js -c50
if [ -z "${ONLY:-}" ] || [ "$ONLY" = 12 ]; then
    GZIP_SELF=$(self_ratio "$gzip_data" "$LAST_DATA")
fi

# (13) holdline with three sites and twenty rules over holdline serving
# one directory, per round: its CPU per request over holdline's.
SITES_SELF=
scenario 13 "(13) keep-alive, 1 KiB, 100 connections, 3 sites and 20 rules (holdline's column: one site)" "holdline sites" /1k.txt -c100 -H "Host: www.c.bench"
if [ -z "${ONLY:-}" ] || [ "$ONLY" = 13 ]; then
    SITES_SELF=$(awk '$2 != "-" && $4 != "-" { cpu[$2, $1] = $4; if ($1 > n) n = $1 }
        END {
            for (r = 1; r <= n; r++) if (("sites", r) in cpu && ("holdline", r) in cpu) { m++; v[m] = cpu["sites", r] / cpu["holdline", r] }
            for (i = 2; i <= m; i++) { t = v[i]; for (j = i - 1; j >= 1 && v[j] > t; j--) v[j + 1] = v[j]; v[j + 1] = t }
            if (m == 0) { print "-"; exit }
            printf "%.2f (%.2f-%.2f)", (m % 2) ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2, v[1], v[m]
        }' "$LAST_DATA")
fi

SCHEME=https
scenario 7 "(7) TLS keep-alive, 1 KiB, 100 connections" "holdline nginx" /1k.txt -c100
# handshakes STATUS-PORT BEFORE-JSON AFTER-JSON LABEL: holdline's handshake
# counters over a scenario.
handshakes() {
    python3 - "$2" "$3" "$1" >&2 <<'PY'
import json, sys
a, b = (json.loads(x)["tls_handshakes"] for x in sys.argv[1:3])
print("  %s holdline handshakes: %d full, %d resumed" % (sys.argv[3], b["full"] - a["full"], b["resumed"] - a["resumed"]))
PY
}
status_json() { curl -s "http://127.0.0.1:$1/status?format=json"; }
# (8) against the resumption-off servers: the names stay, the processes
# and ports change for the time of the scenario.
main_root=${ROOT[holdline]}
ROOT[holdline]=$FULL_PID
TLS_PORT=([holdline]=$FULL_H_PORT [nginx]=$FULL_N_PORT)
before=$(status_json $FULL_S_PORT)
scenario 8 "(8) TLS Connection: close, full handshake each, 1 KiB, 50 connections" "holdline nginx" /1k.txt -c50 -H "Connection: close"
[ -n "${ONLY:-}" ] && [ "$ONLY" != 8 ] || handshakes "(8)" "$before" "$(status_json $FULL_S_PORT)"
ROOT[holdline]=$main_root
TLS_PORT=([holdline]=18484 [nginx]=18485)
before=$(status_json $H_PORT)
scenario 9 "(9) TLS Connection: close, resumed handshakes, 1 KiB, 50 connections" "holdline nginx" /1k.txt -c50 -H "Connection: close"
[ -n "${ONLY:-}" ] && [ "$ONLY" != 9 ] || handshakes "(9)" "$before" "$(status_json $H_PORT)"
scenario 10 "(10) TLS keep-alive, 1 MiB, 10 connections" "holdline nginx" /1m.bin -c10
SCHEME=http

declare -A IDLE=() SYS=() TLS_IDLE=()
if [ -z "${ONLY:-}" ] || [ "$ONLY" = 5 ]; then
    for name in $FILES; do
        restart "$name"
        IDLE[$name]=$(idle_rss "$name" 10000)
    done
    echo "  done: idle" >&2
fi
if [ -z "${ONLY:-}" ] || [ "$ONLY" = 11 ]; then
    for name in holdline nginx; do
        restart "$name"
        TLS_IDLE[$name]=$(idle_rss "$name" 2000 tls)
    done
    echo "  done: idle TLS" >&2
fi
if [ -z "${ONLY:-}" ] || [ "$ONLY" = 6 ]; then
    for name in $FILES; do SYS[$name]=$(syscalls "$name" 900); done
    echo "  done: syscalls" >&2
fi

commit=$(git rev-parse --short HEAD 2>/dev/null || echo '?')
if [ "$commit" != '?' ] && [ -n "$(git status --porcelain 2>/dev/null)" ]; then
    commit=$commit-dirty
fi
cpu_model=$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)
[ -n "$cpu_model" ] || cpu_model=unknown
v_holdline=$(./target/release/holdline --version 2>/dev/null | head -1 || true)
# (wrk -v exits 1: hence the || true)
v_nginx=$( (nginx -v 2>&1 || true) | sed 's|^nginx version: ||')
v_h2o=$( (h2o --version 2>&1 || true) | sed -n 1p | sed 's|^h2o version |h2o/|')
v_wrk=$( (wrk -v 2>&1 || true) | sed -n 1p | sed 's| *Copyright.*||')
v_cc=$( (cc --version 2>/dev/null || true) | sed -n 1p)
report() {
    echo "## holdline against nginx, h2o and the floor"
    echo
    echo "- commit: $commit (${v_holdline:-holdline})"
    echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "- machine: $(nproc) cores, $cpu_model, kernel $(uname -r)"
    echo "- peers: $v_nginx, $v_h2o, floor (scripts/floor/floor.c, $v_cc -O2)"
    echo "- load: $v_wrk, \`wrk -t1 -d${secs}s\`, pinned to CPU 1; every server pinned to CPU 0"
    echo "- runs: ${secs} s each, $ROUNDS rounds; a round runs holdline then each peer; figures are medians over rounds, ratios holdline/peer are per round, median (min-max)"
    if ((${#CPU_ROWS[@]})); then
        echo
        echo "Server CPU time per request, µs (lower is better):"
        echo
        echo "| scenario | holdline | nginx | h2o | floor | holdline/nginx | holdline/h2o | holdline/floor |"
        echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
        printf '%s\n' "${CPU_ROWS[@]}"
        if [ -n "$SITES_SELF" ]; then
            echo
            echo "(13) holdline's CPU per request with 3 sites and 20 rules over one site, per round: $SITES_SELF"
        fi
        if [ -n "$GZIP_SELF" ]; then
            echo
            echo "(12) holdline's CPU per request with gzip over its own identity figure, per round: $GZIP_SELF"
        fi
        echo
        echo "Requests per second (the client shares the machine; CPU per request is the fairer figure):"
        echo
        echo "| scenario | holdline | nginx | h2o | floor | holdline/nginx | holdline/h2o | holdline/floor |"
        echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
        printf '%s\n' "${RPS_ROWS[@]}"
    fi
    if ((${#IDLE[@]} + ${#SYS[@]} + ${#TLS_IDLE[@]})); then
        echo
        echo "| scenario | holdline | nginx | h2o | floor | holdline/nginx | holdline/h2o | holdline/floor |"
        echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
        if ((${#IDLE[@]})); then
            awk -v h="${IDLE[holdline]}" -v n="${IDLE[nginx]}" -v o="${IDLE[h2o]}" 'BEGIN {
                printf "| (5) RSS per idle keep-alive connection (10,000 after one request each), bytes | %d | %d | %d | - | %s | %s | - |\n",
                    h, n, o, (n > 0 ? sprintf("%.2f", h / n) : "-"), (o > 0 ? sprintf("%.2f", h / o) : "-") }'
        fi
        if ((${#TLS_IDLE[@]})); then
            awk -v h="${TLS_IDLE[holdline]}" -v n="${TLS_IDLE[nginx]}" 'BEGIN {
                printf "| (11) RSS per idle TLS keep-alive connection (2,000 after one request each), bytes | %d | %d | - | - | %s | - | - |\n",
                    h, n, (n > 0 ? sprintf("%.2f", h / n) : "-") }'
        fi
        if ((${#SYS[@]})); then
            awk -v h="${SYS[holdline]}" -v n="${SYS[nginx]}" -v o="${SYS[h2o]}" 'BEGIN {
                split(h, a, " "); split(n, b, " "); split(o, c, " ")
                printf "| (6) syscalls per keep-alive request besides epoll_wait | %s | %s | %s | - | %s | %s | - |\n",
                    h, n, o, (b[1] > 0 ? sprintf("%.2f", a[1] / b[1]) : "-"), (c[1] > 0 ? sprintf("%.2f", a[1] / c[1]) : "-") }'
        fi
    fi
}
echo
report | tee "$work/report"
if [ -n "$out_file" ]; then
    cp "$work/report" "$out_file"
    echo "report written to $out_file" >&2
fi
# PLOT=1: the CPU table as a bar chart, docs/bench.svg (Debian's matplotlib).
if [ "${PLOT:-0}" = 1 ]; then
    /usr/bin/python3 -c 'import matplotlib' 2>/dev/null ||
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-matplotlib >/dev/null; }
    mkdir -p docs
    /usr/bin/python3 scripts/plots/bench.py "$work/report" docs/bench.svg
    echo "plot written to docs/bench.svg" >&2
fi
