#!/usr/bin/python3
"""A storm over time, from examples/storm.rs --timeline FILE.

    scripts/plots/storm_timeline.py CSV [CLIENTS_CSV] OUT.svg [TITLE]

CSV is the status samples (t,phase,reading,writing,idle,closing,open_files,
evict_*,closes_evicted,closes_overflow,max_connections; empty numbers for a
sample that failed; the header alone with --no-status). CLIENTS_CSV
(t,phase,who,ok) defaults to CSV.clients.csv. Three panels share the time
axis, seconds since the storm started, the storm shaded, recovery marked
and spans without a status answer greyed: (a) connections by state,
stacked, with the file fds held open and max_connections; (b) evictions
per 100 ms by class, stacked, and overflow closes, from the cumulative
counters' differences; (c) the keep-alive client's, the fresh clients'
and the recovery probe's attempts in 100 ms bins: all served, some
failed, all failed. Uses Debian's python3-matplotlib.
"""
import csv
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
matplotlib.rcParams["svg.fonttype"] = "none"
import matplotlib.pyplot as plt  # noqa: E402

STATES = [
    ("reading", "#2a6fdb"),
    ("writing", "#3c9d5d"),
    ("idle", "#b8c7e0"),
    ("closing", "#d9822b"),
]
CLASSES = [
    ("evict_idle", "idle", "#7b9fd4"),
    ("evict_fresh", "fresh", "#3c9d5d"),
    ("evict_partial_head", "partial head", "#d9822b"),
    ("evict_stalled", "stalled", "#c23b3b"),
    ("evict_lingering", "lingering", "#8e6bbf"),
]
LANES = [("existing", "keep-alive client"), ("fresh", "fresh clients"), ("probe", "recovery probe")]
BIN = 0.1


def number(text):
    return float(text) if text not in ("", None) else math.nan


def read_csv(path):
    if not path or not os.path.exists(path):
        return []
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def segments(rows, valid):
    """Runs of consecutive rows for which valid(row) holds."""
    run = []
    for row in rows:
        if valid(row):
            run.append(row)
        elif run:
            yield run
            run = []
    if run:
        yield run


def shade(axes, storm_end, recovered):
    """The storm's span and the moment recovery was measured, named in the
    first panel's legend."""
    for i, ax in enumerate(axes):
        if storm_end is not None:
            ax.axvspan(0, storm_end, color="#f2c14e", alpha=0.18, lw=0,
                       label=None if i else "storm")
        if recovered is not None:
            t, ok = recovered
            label = "recovered" if ok else "not recovered in 30 s"
            ax.axvline(t, color="#555555", ls="--", lw=0.9, label=None if i else label)


def connections(ax, samples):
    if not samples:
        ax.text(0.5, 0.5, "no status samples (--no-status)", transform=ax.transAxes,
                ha="center", va="center", color="#777777")
        ax.set_yticks([])
        return
    ok = lambda r: r["reading"] != ""  # noqa: E731
    first = True
    for run in segments(samples, ok):
        t = [r["t"] for r in run]
        ys = [[number(r[name]) for r in run] for name, _ in STATES]
        ax.stackplot(t, ys, colors=[c for _, c in STATES], lw=0,
                     labels=[n for n, _ in STATES] if first else [])
        ax.plot(t, [number(r["open_files"]) for r in run], color="black", lw=1.2, ls=":",
                label="file fds" if first else None)
        first = False
    limit = [(r["t"], number(r["max_connections"])) for r in samples if ok(r)]
    if limit and not math.isnan(limit[0][1]):
        ax.plot([t for t, _ in limit], [m for _, m in limit], color="#c23b3b", lw=0.8,
                ls="-.", label="max_connections")
    ax.set_ylim(bottom=0)


def unanswered(samples):
    """Spans from each failed sample to the next sample, merged."""
    spans = []
    for i, r in enumerate(samples):
        if r["reading"] != "":
            continue
        end = samples[i + 1]["t"] if i + 1 < len(samples) else r["t"] + BIN
        if spans and spans[-1][1] >= r["t"] - 1e-9:
            spans[-1][1] = end
        else:
            spans.append([r["t"], end])
    return spans


def shade_unanswered(axes, samples):
    spans = unanswered(samples)
    n = sum(r["reading"] == "" for r in samples)
    for i, ax in enumerate(axes):
        for j, (a, b) in enumerate(spans):
            label = f"status unanswered ({n} sample{'' if n == 1 else 's'})"
            ax.axvspan(a, b, color="#888888", alpha=0.22, lw=0, label=None if i or j else label)


def evictions(ax, samples):
    valid = [r for r in samples if r["reading"] != ""]
    if len(valid) < 2:
        ax.text(0.5, 0.5, "no status samples", transform=ax.transAxes,
                ha="center", va="center", color="#777777")
        ax.set_yticks([])
        return
    edges = [r["t"] for r in valid]
    x = edges[:-1] + [edges[-1]]

    def rate(column):
        out = []
        for a, b in zip(valid, valid[1:]):
            dt = b["t"] - a["t"]
            out.append((number(b[column]) - number(a[column])) * BIN / dt if dt > 0 else 0.0)
        return out + out[-1:]  # the last step's right edge

    bottom = [0.0] * len(x)
    for column, label, color in CLASSES:
        r = rate(column)
        total = number(valid[-1][column]) - number(valid[0][column])
        top = [b + v for b, v in zip(bottom, r)]
        if total > 0:
            ax.fill_between(x, bottom, top, step="post", color=color, lw=0,
                            label=f"{label} ({total:.0f})")
        bottom = top
    overflow = rate("closes_overflow")
    total = number(valid[-1]["closes_overflow"]) - number(valid[0]["closes_overflow"])
    ax.step(x, overflow, where="post", color="black", lw=1, label=f"overflow closes ({total:.0f})")
    ax.set_ylim(bottom=0)


def clients(ax, attempts):
    colors = {"all": "#3c9d5d", "some": "#d9822b", "none": "#c23b3b"}
    shown = set()
    lanes = []
    for y, (who, name) in enumerate(reversed(LANES)):
        mine = [a for a in attempts if a["who"] == who]
        if not mine:
            continue
        lanes.append((y, f"{name}\n{sum(a['ok'] for a in mine)}/{len(mine)} served"))
        bins = {}
        for a in mine:
            b = bins.setdefault(math.floor(a["t"] / BIN), [0, 0])
            b[0] += a["ok"]
            b[1] += 1
        for kind, marker, label in [("all", "|", "all served"), ("some", "x", "some failed"),
                                    ("none", "x", "all failed")]:
            xs = [(k + 0.5) * BIN for k, (ok, n) in sorted(bins.items())
                  if (ok == n if kind == "all" else ok == 0 if kind == "none" else 0 < ok < n)]
            if xs:
                ax.plot(xs, [y] * len(xs), marker, color=colors[kind], ms=7 if marker == "|" else 5,
                        mew=1.2, ls="none", label=None if kind in shown else label)
                shown.add(kind)
    ax.set_yticks([y for y, _ in lanes])
    ax.set_yticklabels([label for _, label in lanes], fontsize=8)
    ax.set_ylim(-0.6, len(LANES) - 0.4)


def main():
    args = sys.argv[1:]
    if len(args) < 2:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    status_csv = args[0]
    if args[1].endswith(".svg"):
        clients_csv, svg, rest = status_csv + ".clients.csv", args[1], args[2:]
    else:
        clients_csv, svg, rest = args[1], args[2], args[3:]
    title = rest[0] if rest else os.path.basename(status_csv)

    samples = read_csv(status_csv)
    for r in samples:
        r["t"] = float(r["t"])
    storm_end = recovered = None
    attempts = []
    for r in read_csv(clients_csv):
        t, ok = float(r["t"]), r["ok"] == "1"
        if r["who"] == "storm_end":
            storm_end = t
        elif r["who"] == "recovered":
            recovered = (t, ok)
        else:
            attempts.append({"t": t, "who": r["who"], "ok": int(ok)})
    if storm_end is None:  # no marks: the last storm sample
        storm_end = max((r["t"] for r in samples if r["phase"] == "storm"), default=None)
    if not samples and not attempts:
        sys.exit(f"nothing to plot in {status_csv} and {clients_csv}")

    fig, (a, b, c) = plt.subplots(3, 1, sharex=True, figsize=(9, 8.5),
                                  gridspec_kw={"height_ratios": [3, 2, 1.6]})
    connections(a, samples)
    evictions(b, samples)
    clients(c, attempts)
    shade((a, b, c), storm_end, recovered)
    shade_unanswered((a, b), samples)
    a.set_ylabel("connections")
    a.set_title("(a) connections by state, file fds", fontsize=9, loc="left")
    b.set_ylabel("per 100 ms")
    b.set_title("(b) evictions by class (total in the run), overflow closes", fontsize=9,
                loc="left")
    c.set_title("(c) client attempts per 100 ms, at their start", fontsize=9, loc="left")
    c.set_xlabel("seconds since the storm started")
    for ax in (a, b, c):
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1),
                      borderaxespad=0)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    fig.savefig(svg)


if __name__ == "__main__":
    main()
