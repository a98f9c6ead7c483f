"""A/B of BatchAugment variants inside a training loop, where their cost is what the loop pays.

    python benchmarks/probes/augment_ab.py cckit/data/batch_augment.py /tmp/variant.py [more.py ...]
    python benchmarks/probes/augment_ab.py A.py B.py --config configs/quickstart.yaml --calls 40

Each file is a copy of ``cckit/data/batch_augment.py`` (relative imports are fine: it is loaded
as a module of ``cckit.data``) with one change. Every iteration gathers a batch with
``TrainClips.batch``, augments it with the next variant in turn and runs a real ``train_step``
on the result, so each variant meets the caches and allocator state a step leaves behind
(isolated micro-benchmarks read 1.5-2x faster on a small CPU). Prints the median and minimum
seconds per call of each variant, and checks that they all give the same views of one batch.
Two copies of the same file differ by up to ~0.6 ms on a noisy machine: run it twice.
"""
from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import numpy as np
import torch

from cckit.config import load_config
from cckit.data.dataset import TrainClips
from cckit.data.index import load_splits
from cckit.methods import get_method
from cckit.model import CycleContrastModel
from cckit.train import build_optimizer, train_step


def _load(path: str, n: int):
    spec = importlib.util.spec_from_file_location(f"cckit.data._ab_variant{n}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("variants", nargs="+")
    p.add_argument("--config", default="configs/quickstart.yaml")
    p.add_argument("--calls", type=int, default=40, help="calls per variant")
    args = p.parse_args()
    cfg = load_config(args.config, [])
    device = torch.device("cpu")
    clips = TrainClips(load_splits(cfg.data)["train"], cfg.data, seed=0)
    augs = {f"{i}:{Path(v).name}": _load(v, i).BatchAugment(cfg.data) for i, v in enumerate(args.variants)}
    need_key = get_method(cfg.method.name).needs_key_view(cfg.method.key_encoder)
    n = cfg.train.batch_size
    frames, seeds, _, _ = clips.batch(list(range(n)))
    views = [a(frames, seeds, device, need_key=need_key) for a in augs.values()]
    for name, v in zip(augs, views[1:]):
        diff = max(float((x - y).abs().max()) for x, y in zip(views[0], v) if x is not None)
        print(f"max difference to the first variant: {diff:.2e}")
    torch.manual_seed(0)
    model = CycleContrastModel(cfg.model)
    optimizer = build_optimizer(model, cfg)
    times = {name: [] for name in augs}
    names = list(augs)
    for it in range(args.calls * len(names)):
        name = names[it % len(names)]
        frames, seeds, ids, _ = clips.batch([(it // 7, (it * n + i) % len(clips)) for i in range(n)])
        tic = time.perf_counter()
        x_q, x_k, x_p = augs[name](frames, seeds, device, need_key=need_key)
        times[name].append(time.perf_counter() - tic)
        train_step(model, optimizer, (x_q, x_k, x_p, ids), cfg, step=it, lr=cfg.train.lr)
    for name, t in times.items():
        t = np.array(t[2:]) * 1000
        print(f"{name:40s} median {np.median(t):6.2f} ms   min {t.min():6.2f} ms")


if __name__ == "__main__":
    main()
