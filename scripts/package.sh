#!/usr/bin/env bash
# Builds the Debian package, target/debian/holdline_VERSION_ARCH.deb, with
# cargo-deb (metadata in Cargo.toml, [package.metadata.deb]): the binary,
# its man pages (contrib/man) and shell completions, the systemd service
# and socket (contrib's, with the binary at /usr/bin and ROOT at
# /var/www/holdline), /etc/holdline/holdline.toml and the logrotate file
# as conffiles, and a page at /var/www/holdline. Installs cargo-deb if it
# is missing.
#
#   scripts/package.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-deb >/dev/null 2>&1 || cargo install cargo-deb --locked
cargo build --release --quiet --bin holdline
out=target/package
rm -rf "$out"
mkdir -p "$out/units" "$out/completions"
for shell in bash zsh fish; do
    ./target/release/holdline completions "$shell" > "$out/completions/holdline.$shell"
done
# The package's units: contrib's, with the paths the package installs.
sed -e 's|/usr/local/bin/holdline|/usr/bin/holdline|' \
    -e 's|^ReadOnlyPaths=/srv/www|ReadOnlyPaths=/var/www/holdline|' \
    -e 's|^# Install the binary as /usr/local/bin/holdline, the site in$|# Installed by the holdline package: the binary is /usr/bin/holdline, the site|' \
    -e 's|^# /srv/www\. With holdline.socket beside it|# /var/www/holdline. With holdline.socket beside it|' \
    contrib/holdline.service > "$out/units/holdline.service"
cp contrib/holdline.socket "$out/units/holdline.socket"
cp debian/postrm "$out/units/postrm"
cargo deb --no-build --output target/debian/
ls -l target/debian/*.deb
