#!/usr/bin/env python3
"""Plots the soak benchmark's samples: resident memory of the origin and of workerd, and the
propagation p99 of each 10 s window, against time.

    python3 scripts/plot-soak.py target/soak/soak.csv docs/soak.png

Needs matplotlib (scripts/soak.sh installs the pinned one: `ensure_python_env plotting`). A benchmark aid, not part of the product.
"""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1], encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    t = [float(r["seconds"]) / 60 for r in rows]
    fig, (mem, lag) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    mem.plot(t, [int(r["origin_rss_kib"]) / 1024 for r in rows], label="origin")
    mem.plot(t, [int(r["workerd_rss_kib"]) / 1024 for r in rows], label="workerd")
    mem.plot(t, [int(r["workerd_anon_kib"]) / 1024 for r in rows], "--", color="tab:orange",
             label="workerd, anonymous (heaps)")
    mem.plot(t, [int(r["stored_kib"]) / 1024 for r in rows], ":", color="tab:gray",
             label="KV + Durable Objects on disk")
    mem.plot(t, [int(r["wasm_memory_kib"]) / 1024 for r in rows], label="the worker's wasm memory")
    mem.set_ylabel("resident memory (MiB)")
    mem.set_ylim(bottom=0)
    mem.legend()
    mem.grid(alpha=0.3)
    lag.plot(t, [float(r["propagation_p99_ms"]) for r in rows], color="tab:red")
    lag.set_ylabel("propagation p99 per 10 s (ms)")
    lag.set_xlabel("minutes")
    lag.set_ylim(bottom=0)
    lag.grid(alpha=0.3)
    fig.suptitle("Soak: mixed load against origin + edge")
    fig.tight_layout()
    fig.savefig(sys.argv[2], dpi=100)


if __name__ == "__main__":
    main()
