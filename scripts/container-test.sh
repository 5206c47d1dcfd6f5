#!/usr/bin/env bash
# Checks the container image's recipe (Containerfile).
#
#   scripts/container-test.sh
#
# With a working docker or podman: builds the image, runs it, fetches the
# page on port 8080, stops it with SIGTERM and checks it exits within its
# shutdown time, and prints the image's size. Without one (no engine, or
# no daemon): checks what the recipe relies on, on this machine: the
# release binary needs only what distroless's cc image has (glibc, libm,
# libgcc_s), and run as uid 65532 with the image's arguments (its CMD)
# it serves /srv's page on 8080 and stops on SIGTERM within 10 s.
set -euo pipefail
cd "$(dirname "$0")/.."
engine=
for e in docker podman; do
    if command -v "$e" >/dev/null 2>&1 && timeout 20 "$e" info >/dev/null 2>&1; then
        engine=$e
        break
    fi
done
if [ -n "$engine" ]; then
    "$engine" build -f Containerfile -t holdline:test .
    "$engine" run -d --rm --name holdline-test -p 127.0.0.1:18598:8080 holdline:test
    for _ in $(seq 50); do curl -fs -o /dev/null http://127.0.0.1:18598/ && break; sleep 0.2; done
    curl -fs http://127.0.0.1:18598/ | grep -q "holdline is serving"
    start=$(date +%s)
    "$engine" stop -t 15 holdline-test
    echo "stopped in $(( $(date +%s) - start )) s"
    "$engine" image ls holdline:test --format '{{.Size}}'
    exit 0
fi
echo "container-test: no container engine with a daemon here; checking the recipe's parts" >&2
cargo build --release --quiet --bin holdline
bin=target/release/holdline
unexpected=$(ldd "$bin" | awk '{print $1}' | grep -v -E '^(linux-vdso\.so\.1|libc\.so\.6|libm\.so\.6|libgcc_s\.so\.1|/lib64/ld-linux-x86-64\.so\.2)$' || true)
[ -z "$unexpected" ] || { echo "the binary needs what distroless/cc lacks: $unexpected" >&2; exit 1; }
srv=$(mktemp -d)
cp debian/index.html "$srv/index.html"
chmod 755 "$srv"; chmod 644 "$srv/index.html"
# The image's CMD, on a port of ours, as the image's user.
args=(--listen 127.0.0.1:18598 --shutdown-timeout 10 "$srv")
if [ "$(id -u)" = 0 ]; then
    setpriv --reuid=65532 --regid=65532 --clear-groups "$bin" "${args[@]}" 2>/dev/null &
else
    "$bin" "${args[@]}" 2>/dev/null &
fi
pid=$!
for _ in $(seq 50); do curl -fs -o /dev/null http://127.0.0.1:18598/ && break; sleep 0.1; done
curl -fs http://127.0.0.1:18598/ | grep -q "holdline is serving" || { echo "the page is not served" >&2; exit 1; }
start=$(date +%s%N)
kill -TERM "$pid"
wait "$pid"
stopped=$(( ($(date +%s%N) - start) / 1000000 ))
strip -o "$srv/holdline" "$bin"
size=$(stat -c %s "$srv/holdline")
echo "container-test: served as uid 65532 with the image's arguments; SIGTERM stopped it in $stopped ms; the image's binary (stripped) is $size bytes, on top of distroless/cc-debian12's own layers"
rm -rf "$srv"
