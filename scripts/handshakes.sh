#!/usr/bin/env bash
# Server CPU per full TLS handshake, holdline against nginx, for both kinds
# of client: a classical one (X25519 only) and a post-quantum one
# (X25519MLKEM768 first with an X25519 share beside it, as browsers send).
# The client is examples/handshakes.rs (rustls): wrk and ab link Debian
# 12's OpenSSL 3.0, which offers no ML-KEM.
#
#   scripts/handshakes.sh [N]      (default N = 1000 handshakes per run)
#
#   ROUNDS=R   rounds (default 5); a round runs each client against
#              holdline, then against nginx
#
# Each handshake is a new connection, one at a time, with no resumption
# (the client disables it; holdline runs with --no-tls-tickets and
# --tls-session-cache 0, nginx with ssl_session_tickets and
# ssl_session_cache off), then GET /1k.txt with Connection: close. The
# same ECDSA P-256 certificate for both servers; the server on CPU 0, the
# client on CPU 1. CPU per handshake is the server's utime + stime (its
# whole process tree) over the run, divided by N; ratios holdline/nginx
# are per round, printed as median (min-max). nginx 1.22 with OpenSSL 3.0
# has no ML-KEM: it answers the post-quantum client with X25519, and
# holdline with X25519MLKEM768 (the client prints the group it got).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/install.sh
. scripts/lib/nginx.sh
. scripts/lib/proc.sh
n=${1:-1000}
ROUNDS=${ROUNDS:-5}
for v in "$n" "$ROUNDS"; do
    case $v in '' | *[!0-9]* | 0) echo "N and ROUNDS must be positive integers" >&2; exit 2 ;; esac
done

need=()
command -v nginx >/dev/null || need+=(nginx-light)
command -v openssl >/dev/null || need+=(openssl)
command -v curl >/dev/null || need+=(curl)
install_missing "${need[@]}"
cargo build --release --quiet --bin holdline --example handshakes
client=./target/release/examples/handshakes

work=$(mktemp -d)
chmod 755 "$work"
www=$work/www
mkdir -p "$www" "$work/tmp"
head -c 1024 /dev/urandom | base64 -w0 | head -c 1024 > "$www/1k.txt"
chmod 644 "$www"/*
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj /CN=localhost -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null

H_PORT=18580
H_TLS=18581
N_TLS=18582
cat > "$work/nginx.conf" <<NGINX
worker_processes 1;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
daemon off;
events { worker_connections 1024; use epoll; }
http {
$(nginx_http_common "$work" 1000)
    server {
        listen 127.0.0.1:$N_TLS ssl deferred;
        ssl_certificate $work/cert.pem;
        ssl_certificate_key $work/key.pem;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_tickets off;
        ssl_session_cache off;
        root $www;
    }
}
NGINX

pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

taskset -c 0 ./target/release/holdline --listen "127.0.0.1:$H_PORT" \
    --tls-listen "127.0.0.1:$H_TLS" --tls-cert "$work/cert.pem" \
    --tls-key "$work/key.pem" --no-tls-tickets --tls-session-cache 0 \
    --defer-accept 60 "$www" 2>"$work/holdline.log" &
pids+=("$!")
holdline=$!
taskset -c 0 nginx -c "$work/nginx.conf" 2>"$work/nginx.log" &
pids+=("$!")
nginx=$!

for port in $H_TLS $N_TLS; do
    for _ in $(seq 100); do
        curl -sk -o /dev/null "https://127.0.0.1:$port/1k.txt" && break
        sleep 0.1
    done
    curl -sk "https://127.0.0.1:$port/1k.txt" | cmp -s - "$www/1k.txt" ||
        { echo "port $port does not serve /1k.txt over https" >&2; exit 1; }
done

HZ=$(getconf CLK_TCK)

# run PID PORT KX -> CPU µs per handshake, and the group the client got
run() {
    local t0 t1 got
    t0=$(ticks "$(tree_pids "$1" | tr '\n' ' ')")
    got=$(taskset -c 1 "$client" "127.0.0.1:$2" "$n" "$3")
    t1=$(ticks "$(tree_pids "$1" | tr '\n' ' ')")
    awk -v a="$t0" -v b="$t1" -v hz="$HZ" -v n="$n" 'BEGIN { printf "%.1f", (b - a) / hz * 1e6 / n }'
    echo " ${got#*, }"
}

results=$work/results
: > "$results"
for kx in x25519 mlkem; do
    # a warm-up run of each, not counted
    taskset -c 1 "$client" "127.0.0.1:$H_TLS" 50 "$kx" >/dev/null
    taskset -c 1 "$client" "127.0.0.1:$N_TLS" 50 "$kx" >/dev/null
done
for round in $(seq "$ROUNDS"); do
    for kx in x25519 mlkem; do
        read -r h hgroup < <(run "$holdline" "$H_TLS" "$kx")
        read -r g ngroup < <(run "$nginx" "$N_TLS" "$kx")
        echo "  round $round/$ROUNDS $kx client: holdline $h µs ($hgroup), nginx $g µs ($ngroup)" >&2
        echo "$kx $h $g $hgroup $ngroup" >> "$results"
    done
done

# median (min-max) of column C (or of holdline/nginx when C is "ratio")
stat() {
    awk -v kx="$1" -v c="$2" '$1 == kx { n++; v[n] = (c == "ratio") ? $2 / $3 : $c }
        END {
            for (i = 2; i <= n; i++) { t = v[i]; for (j = i - 1; j >= 1 && v[j] > t; j--) v[j + 1] = v[j]; v[j + 1] = t }
            m = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
            f = (c == "ratio") ? "%.2f (%.2f-%.2f)" : "%.1f (%.1f-%.1f)"
            printf f, m, v[1], v[n]
        }' "$results"
}

echo
echo "Server CPU per full TLS handshake, µs, $n handshakes per run, $ROUNDS rounds ($(git rev-parse --short HEAD), $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | sed 's/.*: //' | awk '{print $1, $2}'), $(nginx -v 2>&1 | sed 's/.*: //')):"
echo
echo "| client | holdline | group | nginx | group | holdline/nginx |"
echo "| --- | --- | --- | --- | --- | --- |"
for kx in x25519 mlkem; do
    hg=$(awk -v kx="$kx" '$1 == kx { print $4; exit }' "$results")
    ng=$(awk -v kx="$kx" '$1 == kx { print $5; exit }' "$results")
    case $kx in x25519) label="classical (X25519 only)" ;; *) label="post-quantum (X25519MLKEM768, X25519)" ;; esac
    echo "| $label | $(stat "$kx" 2) | $hg | $(stat "$kx" 3) | $ng | $(stat "$kx" ratio) |"
done
