#!/usr/bin/env python3
"""Plots registrations p99 (and requests/s) against concurrency from scripts/bench-origin.sh
tables: one or more markdown files whose rows are labelled e.g. `sqlite before`, `postgres after`.

    python3 scripts/plot-origin-bench.py OUT.png TABLE.md [TABLE.md ...]

Needs matplotlib (`pip install matplotlib`). A benchmark aid, not part of the product.
"""
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def rows(paths):
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                cells = [c.strip() for c in line.strip().strip("|").split("|")]
                if len(cells) == 9 and cells[1].startswith("register"):
                    yield cells[0], int(cells[2]), float(cells[5]), float(cells[7])


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    series = {}
    for label, concurrency, rps, p99 in rows(sys.argv[2:]):
        series.setdefault(label, []).append((concurrency, rps, p99))
    if not series:
        sys.exit("no registration rows found")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for label, points in sorted(series.items()):
        points.sort()
        xs = [p[0] for p in points]
        style = "--" if "before" in label else "-"
        color = "tab:blue" if label.startswith("postgres") else "tab:green"
        for ax, values in ((left, [p[2] for p in points]), (right, [p[1] for p in points])):
            ax.plot(xs, values, style, color=color, marker="o", label=label)
    left.axhline(20, color="grey", linewidth=0.8, linestyle=":")
    left.text(1, 21, "target p99 < 20 ms", color="grey", fontsize=8)
    right.axhline(1000, color="grey", linewidth=0.8, linestyle=":")
    right.text(1, 1030, "target ≥ 1,000/s", color="grey", fontsize=8)
    for ax, title, unit in [
        (left, "Registrations on one org: p99 latency", "p99 (ms)"),
        (right, "Registrations on one org: throughput", "requests/s"),
    ]:
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted({c for pts in series.values() for c, _, _ in pts}))
        ax.get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.set_xlabel("concurrent writers")
        ax.set_ylabel(unit)
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(sys.argv[1], dpi=110)


if __name__ == "__main__":
    main()
