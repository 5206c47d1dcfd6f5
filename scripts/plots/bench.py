#!/usr/bin/python3
"""CPU per request by scenario for each server, from scripts/bench.sh's
report (OUT=FILE).

    scripts/plots/bench.py REPORT.md OUT.svg

Reads the first table (server CPU time per request, medians over rounds)
and draws grouped bars, holdline beside nginx, h2o and the floor, on a log
scale. Uses Debian's python3-matplotlib.
"""
import sys

import matplotlib

matplotlib.use("Agg")
matplotlib.rcParams["svg.fonttype"] = "none"
import matplotlib.pyplot as plt  # noqa: E402

SERVERS = ["holdline", "nginx", "h2o", "floor"]
COLORS = ["#2a6fdb", "#3c9d5d", "#d9822b", "#999999"]


def cpu_table(path):
    lines = open(path, encoding="utf-8").read().splitlines()
    start = next(i for i, l in enumerate(lines) if l.startswith("Server CPU time per request"))
    rows = []
    for line in lines[start + 1:]:
        if line.startswith("| ("):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            values = [None if c == "-" else float(c) for c in cells[1:5]]
            rows.append((cells[0], values))
        elif rows and not line.startswith("|"):
            break
    return rows


def main():
    report, svg = sys.argv[1], sys.argv[2]
    rows = cpu_table(report)
    if not rows:
        sys.exit(f"no CPU table in {report}")
    fig, ax = plt.subplots(figsize=(8, 4.5))
    width = 0.2
    for s, (server, color) in enumerate(zip(SERVERS, COLORS)):
        xs = [i + (s - 1.5) * width for i, (_, v) in enumerate(rows) if v[s] is not None]
        ys = [v[s] for _, v in rows if v[s] is not None]
        bars = ax.bar(xs, ys, width, label=server, color=color)
        ax.bar_label(bars, fmt="%.3g", fontsize=7, padding=1)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([name.replace(", ", "\n", 1) for name, _ in rows], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("server CPU per request (µs, log scale)")
    ax.set_title("CPU per request, median over rounds (lower is better)")
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(svg)


if __name__ == "__main__":
    main()
