#!/usr/bin/env bash
# Installs the package scripts/package.sh built, checks it, removes and
# purges it, and checks purge left nothing of it. Root only: it changes
# the machine (CI's, a container or VM of your own; not your desktop).
#
#   scripts/package-test.sh [target/debian/holdline_*.deb]
#
# Checked: the files are where the package says; systemd-analyze verify
# accepts the units (when systemd-analyze is there); the binary's
# --version is the package's version; the man pages render; the shipped
# configuration passes `holdline check`; the page at /var/www/holdline
# is served by a holdline run from the shipped configuration; remove
# keeps the conffiles, purge removes them and every directory it made.
set -euo pipefail
cd "$(dirname "$0")/.."
deb=${1:-$(ls -t target/debian/holdline_*.deb | head -1)}
[ "$(id -u)" = 0 ] || { echo "package-test.sh changes the machine: run it as root" >&2; exit 2; }
fail() { echo "package-test: $*" >&2; exit 1; }
version=$(dpkg-deb -f "$deb" Version)
export DEBIAN_FRONTEND=noninteractive
dpkg -i "$deb"
for f in /usr/bin/holdline /usr/share/man/man1/holdline.1.gz /usr/share/man/man5/holdline.toml.5.gz \
    /usr/lib/systemd/system/holdline.service /usr/lib/systemd/system/holdline.socket \
    /etc/holdline/holdline.toml /etc/logrotate.d/holdline /var/www/holdline/index.html \
    /usr/share/bash-completion/completions/holdline; do
    [ -e "$f" ] || fail "$f is not installed"
done
got=$(/usr/bin/holdline --version)
case "$got" in "holdline ${version%-*} ("*) ;; *) fail "--version says '$got', the package is $version" ;; esac
if command -v systemd-analyze >/dev/null 2>&1; then
    systemd-analyze verify /usr/lib/systemd/system/holdline.service /usr/lib/systemd/system/holdline.socket
else
    echo "package-test: no systemd-analyze; the units were not verified" >&2
fi
if command -v man >/dev/null 2>&1; then
    man -l /usr/share/man/man1/holdline.1.gz > /dev/null 2>&1 || fail "man cannot render holdline(1)"
fi
/usr/bin/holdline check --config /etc/holdline/holdline.toml > /dev/null
# The shipped configuration serves the shipped page (here on a port of
# our own, without systemd).
log=$(mktemp)
/usr/bin/holdline --config /etc/holdline/holdline.toml --listen 127.0.0.1:18599 \
    --access-log - 2> "$log" > /dev/null &
pid=$!
for _ in $(seq 50); do curl -fs -o /dev/null http://127.0.0.1:18599/ && break; sleep 0.1; done
curl -fs http://127.0.0.1:18599/ | grep -q "holdline is serving" || { cat "$log"; fail "the page is not served"; }
kill "$pid"; wait "$pid" || true
rm -f "$log"
dpkg -r holdline
[ -e /usr/bin/holdline ] && fail "remove left the binary"
[ -e /etc/holdline/holdline.toml ] || fail "remove took the conffile"
dpkg -P holdline
for left in /etc/holdline /var/www/holdline /var/log/holdline /usr/share/doc/holdline; do
    [ -e "$left" ] && fail "purge left $left"
done
dpkg -s holdline > /dev/null 2>&1 && fail "the package is still known to dpkg"
echo "package-test: $deb installs, serves, removes and purges cleanly"
