#!/usr/bin/python3
"""Wall time against RTT for each page-load mode, from scripts/page-load.sh.

    scripts/plots/page_load.py TABLE.md OUT.svg

TABLE.md is the markdown table page-load.sh prints (mode, parallel
connections, RTT, wall time, ...). The article's computed figures are
marked for comparison. Uses Debian's python3-matplotlib.
"""
import sys

import matplotlib

matplotlib.use("Agg")
matplotlib.rcParams["svg.fonttype"] = "none"
import matplotlib.pyplot as plt  # noqa: E402


def rows(path):
    out = []
    for line in open(path, encoding="utf-8"):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 4 or not cells[2].endswith(" ms") or "---" in line:
            continue
        mode, conns, rtt, wall = cells[0], int(cells[1]), cells[2], cells[3]
        out.append((mode, conns, float(rtt[:-3]), float(wall.rstrip(" s"))))
    return out


def main():
    table, svg = sys.argv[1], sys.argv[2]
    data = rows(table)
    if not data:
        sys.exit(f"no rows in {table}")
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    styles = {
        "keep-alive (default)": ("#2a6fdb", "o"),
        "--keepalive-timeout 0": ("#d9822b", "s"),
        "HTTP/1.0, no keep-alive": ("#999999", "^"),
    }
    for conns, dash in ((6, "-"), (1, ":")):
        for mode, (color, marker) in styles.items():
            pts = sorted((r, w) for m, c, r, w in data if m == mode and c == conns)
            if not pts:
                continue
            xs, ys = zip(*pts)
            label = f"{mode}, {conns} connection{'s' if conns > 1 else ''}"
            ax.plot(xs, ys, dash, color=color, marker=marker, label=label)
    # The article's figures, computed for 100 files at 200 ms RTT.
    ax.scatter([200, 200, 200], [40, 4.2, 1.1], marker="x", s=80, color="#c0392b",
               zorder=5, label="the article's figures (computed)")
    for y, text in ((40, "40 s in handshakes"), (4.2, "4.2 s"), (1.1, "1.1 s (3.8x)")):
        ax.annotate(text, (200, y), textcoords="offset points", xytext=(-8, 4),
                    ha="right", fontsize=8, color="#c0392b")
    ax.set_xlabel("round-trip time (ms)")
    ax.set_ylabel("page load, wall time (s)")
    ax.set_title("A page of 100 assets: keep-alive against new connections")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7.5, loc="upper left")
    fig.tight_layout()
    fig.savefig(svg)


if __name__ == "__main__":
    main()
