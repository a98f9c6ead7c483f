"""Score a stored comparison's trained runs again on other evaluation data, without training: how
much of the seed-to-seed spread of a difference is the test set's sampling, not the training.

    python benchmarks/probes/rescore.py benchmarks/results/compare_quickstart_long/compare_methods.json \\
        data.root=data/digits_clutter_test1000 data.num_test=1000 \\
        --out benchmarks/results/rescore_quickstart_long_test1000.json

The overrides apply to the comparison's stored config. With the default synthetic data,
``data.num_test=1000`` in a new root generates the same 1000 training videos (a video depends only
on the seed and its id) and 1000 test videos, the first 200 of them the comparison's own, from the
same held-out digit scans. Every trained (method, seed) with a checkpoint under the comparison's
``runs_root`` is scored by kNN, the linear probe and video-level kNN / probe (``cckit.eval.evaluate``);
the paired differences ``cycle_contrast - intra_video`` are printed beside the comparison's own.
The output JSON has the comparison's entry format, so ``cckit.compare_report.paired_table`` reads it.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from cckit.atomic import atomic_write
from cckit.compare import protocol_scores
from cckit.compare_report import paired_table
from cckit.config import config_from_dict, parse_overrides, replace, to_dict
from cckit.eval.suite import evaluate

PROTOCOLS = ("knn", "linear", "video")


def rescore(comparison: dict, overrides: list[str], *, methods=None) -> dict:
    """``{"config", "source_runs", "entries"}``: every trained run of ``comparison`` scored under its
    config with ``overrides``."""
    base = config_from_dict(comparison["config"])
    cfg = replace(base, **parse_overrides(["eval.cache_dir=none", *overrides]))  # no feature cache in the runs
    runs = Path(comparison["runs_root"])
    entries = []
    for e in comparison["entries"]:
        ckpt = runs / f"{e['method']}_s{e['seed']}" / "checkpoints" / "last.pt"
        if "steps" not in e or (methods and e["method"] not in methods) or not ckpt.is_file():
            continue
        tic = time.perf_counter()
        out = evaluate(ckpt, cfg, PROTOCOLS)
        entries.append({"method": e["method"], "seed": e["seed"], **protocol_scores(out, cfg),
                        "eval_frames_test": out["eval_frames_test"], "seconds": round(time.perf_counter() - tic, 1)})
        print(f"{e['method']} seed {e['seed']}: kNN {entries[-1]['knn_top1']:.4f} "
              f"(stored {e['knn_top1']:.4f}), {out['eval_frames_test']} test frames", flush=True)
    return {"config": to_dict(cfg), "overrides": overrides, "source_runs": str(runs), "entries": entries}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("comparison", type=Path, help="a cckit compare JSON (compare_methods.json)")
    p.add_argument("overrides", nargs="*", help="key=value overrides of the comparison's config")
    p.add_argument("--methods", default="intra_video,cycle_contrast", help="comma-separated methods to score")
    p.add_argument("--out", type=Path, required=True, help="JSON written with the new scores")
    args = p.parse_args()
    comparison = json.loads(args.comparison.read_text())
    result = rescore(comparison, args.overrides, methods=args.methods.split(","))
    atomic_write(args.out, json.dumps(result, indent=1) + "\n")
    print(f"\nstored comparison ({args.comparison}):\n{paired_table(comparison)}")
    print(f"scored again with {' '.join(args.overrides) or 'no overrides'}:\n{paired_table(result)}")


if __name__ == "__main__":
    main()
