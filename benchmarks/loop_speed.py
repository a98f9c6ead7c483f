"""Where the training loop's time goes, measured side by side in one run at the quickstart shape.

    python benchmarks/loop_speed.py                    # configs/quickstart.yaml on this machine
    python benchmarks/loop_speed.py --steps 60 key=value ...

1. Augmentation alone: views/s of the batched path (``BatchAugment``, one call per batch) with
   each kind of colour op (``data.color_ops=torchvision`` and ``matrix``) and of the per-sample
   torchvision pipeline (``data.augment=loader``) on the same frames, in the main process, and
   their ratios.
2. ``train_step`` alone on ready-made random tensors (the ceiling), then the whole loop of
   ``cckit train`` (gather frames, augment, step, metrics; kNN monitor off) on the same config:
   the median per-step img/s of each and the loop's fraction of the ceiling (target >= 0.8).
   The two alternate in ``--rounds`` rounds, so a slow spell of a shared machine falls on both;
   each round's ratio is printed beside the ratio of the medians over all rounds. The loop's own
   per-step split (``data_wait``, ``augment_time``, ``step_time`` of metrics.jsonl) says where
   the rest goes.

Writes benchmarks/results/loop_speed.json (``--out``).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from cckit.model import CycleContrastModel
from cckit.train import build_optimizer, train_step
from cckit.config import load_config
from cckit.data.batch_augment import BatchAugment
from cckit.data.dataset import TrainClips
from cckit.data.index import load_splits
from cckit.data.transforms import seeded_views, train_transform
from cckit.train import train
from cckit.utils import get_device


def _train_step_alone(cfg, steps: int, warmup: int = 5) -> list[float]:
    """Per-step img/s of single ``train_step`` calls on ready-made random tensors: the same
    statistic as the loop's ``images_per_s`` (the step returns floats, so it has finished)."""
    device = get_device(cfg.train.device)
    n, s = cfg.train.batch_size, cfg.data.crop_size
    torch.manual_seed(0)
    model = CycleContrastModel(cfg.model).to(device)
    opt = build_optimizer(model, cfg)
    batch = (torch.randn(n, 3, s, s), torch.randn(n, 3, s, s), torch.randn(n, 3, s, s), torch.arange(n))
    rates = []
    for i in range(warmup + steps):
        tic = time.perf_counter()
        train_step(model, opt, batch, cfg, step=i, lr=cfg.train.lr)
        if i >= warmup:
            rates.append(n / (time.perf_counter() - tic))
    return rates


def _loop(args, steps: int, warmup: int = 5) -> list[dict]:
    """metrics.jsonl rows of ``steps`` steps of the whole training loop, after ``warmup`` steps."""
    run_dir = Path(tempfile.mkdtemp(prefix="loop_speed_"))
    try:
        cfg = load_config(args.config, args.overrides + [f"run_dir={run_dir}", f"train.max_steps={warmup + steps}",
                                                         "train.knn_every=0", "train.checkpoint_every=0"])
        train(cfg, progress=False)
        return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()][warmup:]
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


def _median(values) -> float:
    return float(np.median(list(values)))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/quickstart.yaml")
    p.add_argument("--steps", type=int, default=40, help="loop steps per round (train_step alone: half)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--out", default="benchmarks/results/loop_speed.json", help="where the JSON goes")
    p.add_argument("overrides", nargs="*")
    args = p.parse_args()
    cfg = load_config(args.config, args.overrides)
    n = cfg.train.batch_size
    device = torch.device("cpu") if cfg.train.device == "auto" and not torch.cuda.is_available() else None
    splits = load_splits(cfg.data)
    clips = TrainClips(splits["train"], cfg.data, seed=0)
    frames, seeds, _, _ = clips.batch([(0, i) for i in range(n)])  # what the loop hands BatchAugment
    out = {"config": args.config, "overrides": args.overrides, "batch_size": n, "crop_size": cfg.data.crop_size,
           "frame_size": list(frames.shape[-2:]), "threads": torch.get_num_threads()}

    # the batched path with each kind of colour op (the config's is the loop's), and the per-sample pipeline
    batched = {ops: BatchAugment(dataclasses.replace(cfg.data, color_ops=ops)) for ops in ("torchvision", "matrix")}
    per_sample = train_transform(cfg.data)
    dev = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rates = {ops: [] for ops in batched}
    slow = []
    for aug in batched.values():
        aug(frames, seeds, dev)  # warm-up
    for _ in range(args.rounds):  # alternating, as below
        for ops, aug in batched.items():
            tic = time.perf_counter()
            for _ in range(5):
                aug(frames, seeds, dev)
            rates[ops].append(3 * n * 5 / (time.perf_counter() - tic))
        tic = time.perf_counter()
        for i in range(n):
            seeded_views(per_sample, frames[i, 0], frames[i, 1], int(seeds[i]))
        slow.append(3 * n / (time.perf_counter() - tic))
    out["color_ops"] = cfg.data.color_ops
    out["batched_views_per_s"] = round(_median(rates[cfg.data.color_ops]), 1)
    out["batched_views_per_s_by_color_ops"] = {ops: round(_median(r), 1) for ops, r in rates.items()}
    out["per_sample_views_per_s"] = round(_median(slow), 1)
    out["batched_vs_per_sample"] = round(out["batched_views_per_s"] / out["per_sample_views_per_s"], 2)
    out["matrix_vs_torchvision_color_ops"] = round(_median(rates["matrix"]) / _median(rates["torchvision"]), 2)

    alone, loop, rounds = [], [], []
    for _ in range(args.rounds):
        a, rows = _train_step_alone(cfg, steps=args.steps // 2), _loop(args, args.steps)
        alone += a
        loop += rows
        rounds.append(round(_median(r["images_per_s"] for r in rows) / _median(a), 3))
    out["rounds"] = args.rounds
    out["train_step_images_per_s"] = round(_median(alone), 1)
    out["loop_images_per_s"] = round(_median(r["images_per_s"] for r in loop), 1)
    out["loop_vs_train_step"] = round(out["loop_images_per_s"] / out["train_step_images_per_s"], 3)
    out["loop_vs_train_step_per_round"] = rounds
    total = _median(n / r["images_per_s"] for r in loop)
    out["loop_ms_per_step"] = {"total": round(1000 * total, 2), **{
        k: round(1000 * _median(r[k] for r in loop), 2) for k in ("data_wait", "augment_time", "step_time")}}
    out["loop_step_time_share"] = round(out["loop_ms_per_step"]["step_time"] / out["loop_ms_per_step"]["total"], 3)
    out["device"] = str(dev)
    print(json.dumps(out, indent=2))
    path = Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
