# Sourced by the benchmark scripts (bench.sh, scaling.sh, handshakes.sh).
#
# tree_pids PID: PID, then its children, recursively, one per line (nginx:
# master, worker; h2o: the server and its crash handler; holdline: one).
tree_pids() {
    local child
    echo "$1"
    for child in $(cat /proc/"$1"/task/*/children 2>/dev/null); do
        tree_pids "$child"
    done
}

# ticks PIDS: CPU ticks (utime + stime, all threads) summed over the pids
# given as one space-separated word.
ticks() {
    local total=0 pid stat
    for pid in $1; do
        stat=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null) || continue
        set -- $stat
        total=$((total + ${12} + ${13}))
    done
    echo "$total"
}
