#!/usr/bin/env bash
# Mutation testing of the sans-IO core: cargo-mutants makes one-line
# changes to the files .cargo/mutants.toml names (src/http/, the wheel, the
# eviction queues, the budgets, the pool, the access log) and runs the unit tests against
# each; a change no test notices is a "missed" mutant.
#
#   scripts/mutants.sh [CARGO-MUTANTS ARGS]     e.g. --file src/evict.rs
#
# Installs cargo-mutants if missing. Prints caught / missed / timeouts /
# unviable and the share caught of the viable ones, and compares the missed
# list with mutants-survivors.txt, the survivors we know of and why each is
# equivalent or acceptable: a new survivor fails the script. On this
# 2-core machine the whole run takes about an hour (JOBS=2).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo-mutants >/dev/null 2>&1 || cargo install cargo-mutants --locked
status=0
cargo mutants -j "${JOBS:-2}" --timeout 60 "$@" || status=$?
out=mutants.out
count() { [ -f "$out/$1" ] && wc -l < "$out/$1" || echo 0; }
caught=$(count caught.txt) missed=$(count missed.txt) timeout=$(count timeout.txt) unviable=$(count unviable.txt)
viable=$((caught + missed + timeout))
echo "caught $caught, missed $missed, timeouts $timeout, unviable $unviable"
if ((viable > 0)); then
    awk -v c="$caught" -v t="$timeout" -v v="$viable" \
        'BEGIN { printf "caught (timeouts count as caught): %.1f%% of %d viable mutants\n", 100 * (c + t) / v, v }'
fi
# Missed mutants not yet explained in mutants-survivors.txt (matched on the
# mutant's description, without its line and column).
strip() { sed -E 's/^([^:]+):[0-9]+:[0-9]+: /\1: /'; }
new=$(comm -23 <(strip < "$out/missed.txt" | sort -u) \
    <(grep -v '^#' mutants-survivors.txt | sed -E 's/ +# .*$//' | strip | sort -u) || true)
if [ -n "$new" ]; then
    echo "survivors not in mutants-survivors.txt:"
    echo "$new"
    exit 1
fi
# cargo mutants exits 2 when mutants were missed; they are all known here.
[ "$status" = 2 ] && status=0
exit "$status"
