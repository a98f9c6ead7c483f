"""Compare moco_v2, intra_video, forward_nn and cycle_contrast (plus random-init, raw-pixel and
static-box floors) with the same budget on the same data over several seeds.

    .venv/bin/python benchmarks/compare_methods.py                       # configs/quickstart.yaml, seeds 0 1 2
    .venv/bin/python benchmarks/compare_methods.py --seeds 0,1 --methods intra_video,cycle_contrast data.style=hard --out benchmarks/results/hard
    nohup .venv/bin/python benchmarks/compare_methods.py > /dev/null 2>&1 &   # in the background; see the log

Writes ``<out>/compare_methods.json`` (one entry per method and seed), ``compare_methods.md`` (mean ±
std tables), ``compare_methods_tracking.png`` and appends to ``compare_methods.log``. Resumable:
pairs already in the JSON are skipped and an interrupted training resumes from its checkpoint
(the same as ``cckit compare CONFIG``).
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import torch

from cckit.compare import compare_methods
from cckit.compare_report import METHOD_ORDER, parse_seeds
from cckit.config import load_config


def _methods(text: str) -> list[str]:
    methods = [m for m in text.split(",") if m]
    unknown = [m for m in methods if m not in METHOD_ORDER]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown method(s) {unknown}; known: {', '.join(METHOD_ORDER)}")
    return methods


def _seeds(text: str) -> list[int]:
    try:
        return parse_seeds(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("overrides", nargs="*", help="key=value config overrides")
    p.add_argument("--config", default="configs/quickstart.yaml")
    p.add_argument("--methods", type=_methods, default=list(METHOD_ORDER), help="comma-separated, e.g. moco_v2,cycle_contrast")
    p.add_argument("--seeds", type=_seeds, default=[0, 1, 2], help="comma-separated seeds and ranges, e.g. 0-4,9")
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--runs", default="runs/compare")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    args = p.parse_args(argv)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s",
                        handlers=[logging.FileHandler(Path(args.out) / "compare_methods.log"),
                                  logging.StreamHandler(sys.stdout)])
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(args.config, args.overrides)
    log = logging.getLogger("compare_methods")
    log.info("start: config %s %s, methods %s, seeds %s", args.config, args.overrides, args.methods, args.seeds)
    tic = time.perf_counter()
    compare_methods(cfg, methods=args.methods, seeds=args.seeds, out_dir=args.out, runs_root=args.runs)
    log.info("done in %.0f s; table:\n%s", time.perf_counter() - tic, (Path(args.out) / "compare_methods.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
