"""kNN-monitor curves of every method of a comparison, one line per (method, seed), in one figure.

    python benchmarks/knn_curves.py runs/compare_quickstart/<key> benchmarks/results/compare_quickstart/knn_curves.png

Reads ``<runs>/<method>_s<seed>/metrics.jsonl`` and prints the curves as a table too.
"""
from __future__ import annotations

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from cckit.viz.curves import read_metrics  # noqa: E402


def main() -> None:
    runs, out = Path(sys.argv[1]), Path(sys.argv[2])
    fig, ax = plt.subplots(figsize=(7, 4.2))
    colours = dict(zip(("moco_v2", "intra_video", "forward_nn", "cycle_contrast"), ("C0", "C1", "C2", "C3")))
    for run in sorted(runs.glob("*_s*")):
        method, seed = run.name.rsplit("_s", 1)
        rows = [r for r in read_metrics(run) if "knn_top1" in r]
        if not rows:
            continue
        steps, values = [r["step"] for r in rows], [r["knn_top1"] for r in rows]
        ax.plot(steps, values, "o-", ms=3, color=colours.get(method, "k"), alpha=0.8,
                label=method if seed == "0" else None)
        print(f"{method:15s} seed {seed}: " + " ".join(f"{v:.3f}" for v in values))
    ax.set(xlabel="step", ylabel="kNN top-1 (k=20, test frames)", title="kNN monitor per method, seeds 0-2", ylim=(0, 1))
    ax.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


if __name__ == "__main__":
    main()
