"""Where the training loop's time goes, measured side by side in one run at the quickstart shape.

    python benchmarks/loop_speed.py                    # configs/quickstart.yaml on this machine
    python benchmarks/loop_speed.py --steps 60 key=value ...

1. Augmentation alone: views/s of the batched path (``BatchAugment``, one call per batch) and of
   the per-sample torchvision pipeline (``data.augment=loader``) on the same frames, in the main
   process, and their ratio.
2. ``train_step`` alone on ready-made random tensors (the ceiling), then the whole loop of
   ``cckit train`` (gather frames, augment, step, metrics; kNN monitor off) on the same config:
   the median per-step img/s of each and the loop's fraction of the ceiling (target >= 0.8).

Writes benchmarks/results/loop_speed.json.
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

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


def _train_step_alone(cfg, steps: int, warmup: int = 5) -> float:
    """Median img/s of single ``train_step`` calls on ready-made random tensors: the same statistic
    as the loop's (the median of its per-step ``images_per_s``), so one hiccup moves neither."""
    device = get_device(cfg.train.device)
    n, s = cfg.train.batch_size, cfg.data.crop_size
    torch.manual_seed(0)
    model = CycleContrastModel(cfg.model).to(device)
    opt = build_optimizer(model, cfg)
    batch = (torch.randn(n, 3, s, s), torch.randn(n, 3, s, s), torch.randn(n, 3, s, s), torch.arange(n))
    rates = []
    for i in range(warmup + steps):
        tic = time.perf_counter()
        train_step(model, opt, batch, cfg, step=i, lr=cfg.train.lr)  # returns floats: the step has finished
        if i >= warmup:
            rates.append(n / (time.perf_counter() - tic))
    return round(sorted(rates)[len(rates) // 2], 1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/quickstart.yaml")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("overrides", nargs="*")
    args = p.parse_args()
    cfg = load_config(args.config, args.overrides)
    n = cfg.train.batch_size
    device = torch.device("cpu") if cfg.train.device == "auto" and not torch.cuda.is_available() else None
    splits = load_splits(cfg.data)
    clips = TrainClips(splits["train"], cfg.data, seed=0)
    items = [clips[(0, i)] for i in range(n)]
    frames = torch.stack([it[0] for it in items])
    seeds = torch.tensor([it[1] for it in items])
    out = {"config": args.config, "overrides": args.overrides, "batch_size": n, "crop_size": cfg.data.crop_size,
           "frame_size": list(frames.shape[-2:]), "threads": torch.get_num_threads()}

    batched = BatchAugment(cfg.data)
    dev = device or torch.device("cuda" if torch.cuda.is_available() else "cpu")
    batched(frames, seeds, dev)  # warm-up
    tic, reps = time.perf_counter(), 5
    for _ in range(reps):
        batched(frames, seeds, dev)
    out["batched_views_per_s"] = round(3 * n * reps / (time.perf_counter() - tic), 1)
    per_sample = train_transform(cfg.data)
    tic = time.perf_counter()
    for i in range(n):
        seeded_views(per_sample, frames[i, 0], frames[i, 1], int(seeds[i]))
    out["per_sample_views_per_s"] = round(3 * n / (time.perf_counter() - tic), 1)
    out["batched_vs_per_sample"] = round(out["batched_views_per_s"] / out["per_sample_views_per_s"], 2)

    out["train_step_images_per_s"] = _train_step_alone(cfg, steps=max(10, args.steps // 2))
    run_dir = Path(tempfile.mkdtemp(prefix="loop_speed_"))
    try:
        loop_cfg = load_config(args.config, args.overrides + [f"run_dir={run_dir}", f"train.max_steps={args.steps}",
                                                              "train.knn_every=0", "train.checkpoint_every=0"])
        result = train(loop_cfg, progress=False)
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    steady = sorted(r["images_per_s"] for r in rows[5:])
    out["loop_images_per_s"] = round(steady[len(steady) // 2], 1)
    out["loop_data_wait_s"] = round(sorted(r["data_wait"] for r in rows[5:])[len(steady) // 2], 4)
    out["loop_vs_train_step"] = round(out["loop_images_per_s"] / out["train_step_images_per_s"], 3)
    out["device"] = result["device"]
    print(json.dumps(out, indent=2))
    path = Path("benchmarks/results/loop_speed.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
