#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 60).
#
#   scripts/fuzz.sh [SECONDS]
#
# cargo-fuzz needs nightly features; the stable toolchain provides them
# with RUSTC_BOOTSTRAP=1. Installs cargo-fuzz if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
for target in $(cargo fuzz list); do
    # Crashes found before stay fixed: replay them first.
    for crash in fuzz/regressions/"$target"-*; do
        [ -e "$crash" ] || continue
        echo "== replaying $crash"
        cargo fuzz run "$target" "$crash" 2>&1 | tail -n 3
    done
    echo "== $target for ${seconds}s"
    # The committed seeds stay read-only; new inputs go to a scratch dir.
    scratch=$(mktemp -d)
    # A crash makes cargo fuzz fail, and with pipefail so does this script;
    # the tail keeps libFuzzer's final stats (or the crash report).
    cargo fuzz run "$target" "$scratch" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 2>&1 | tail -n 30
    rm -rf "$scratch"
done
