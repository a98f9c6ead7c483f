"""How a stored comparison's seeds spread, and why pairing by seed narrows its intervals so little.

    python benchmarks/probes/seed_spread.py benchmarks/results/compare_quickstart_long/compare_methods.json
    python benchmarks/probes/seed_spread.py --rerun RUN_A/metrics.jsonl RUN_B/metrics.jsonl

The first form prints, per protocol, each method's standard deviation over the paired seeds, the
variance ratio with the Pitman-Morgan test of equal variances (``cckit.compare_report.paired_spread``)
and the correlation of the two methods' end points across seeds.

The second compares two runs of one (method, seed), for example a comparison's run and the same
``cckit train`` call on another thread count (``OMP_NUM_THREADS=1``): the first step at which their
training losses differ by more than each threshold. Runs with the same settings on the same thread
count and host agree bit for bit; float reductions in another order make them part ways.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from cckit.compare_report import PAIRED_KEYS, paired_spread
from cckit.metrics import read_metrics

THRESHOLDS = (1e-6, 1e-4, 1e-2, 1e-1)


def losses(path: Path) -> dict[int, float]:
    """``{step: loss}`` of a run's metrics.jsonl or run directory (the training rows; the kNN rows have no loss)."""
    return {r["step"]: r["loss"] for r in read_metrics(path) if "loss" in r}


def first_divergence(a: dict[int, float], b: dict[int, float], thresholds=THRESHOLDS) -> dict:
    """Over the steps both runs logged: how many, the largest loss difference, and per threshold the
    first step whose losses differ by more (None if none does)."""
    steps = sorted(set(a) & set(b))
    gaps = {s: abs(a[s] - b[s]) for s in steps}
    return {"steps": len(steps), "max_gap": max(gaps.values(), default=0.0),
            "first": {t: next((s for s in steps if gaps[s] > t), None) for t in thresholds}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("comparison", type=Path, nargs="?", help="a cckit compare JSON (compare_methods.json)")
    p.add_argument("--method", default="cycle_contrast")
    p.add_argument("--baseline", default="intra_video")
    p.add_argument("--rerun", type=Path, nargs=2, metavar="METRICS", help="two metrics.jsonl (or run directories) of one (method, seed)")
    args = p.parse_args()
    if args.rerun:
        d = first_divergence(losses(args.rerun[0]), losses(args.rerun[1]))
        print(f"{d['steps']} steps in both, largest loss difference {d['max_gap']:.6g}")
        for t, step in d["first"].items():
            print(f"first step with |loss difference| > {t:g}: {step if step is not None else 'none'}")
        return
    if args.comparison is None:
        p.error("give a comparison JSON or --rerun")
    entries = json.loads(args.comparison.read_text())["entries"]
    print(f"| protocol | paired seeds | std {args.method} | std {args.baseline} | variance ratio "
          f"| Pitman-Morgan p | r across seeds |")
    print("|---|---|---|---|---|---|---|")
    for key in PAIRED_KEYS:
        d = paired_spread(entries, args.method, args.baseline, key)
        if d:
            print(f"| {key} | {d['n']} | {100 * d['std_method']:.2f} | {100 * d['std_baseline']:.2f} | "
                  f"{d['ratio']:.2f} | {d['pm_p']:.2f} | {d['r']:.2f} |")


if __name__ == "__main__":
    main()
