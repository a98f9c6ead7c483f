"""Train-step throughput on random tensors (no data loading), every method side by side in one run."""
from __future__ import annotations

import time

import torch

from .config import Config, replace
from .methods import METHODS
from .model import CycleContrastModel
from .train import build_optimizer, train_step
from .utils import amp_dtype, get_device


def step_throughput(cfg: Config, methods=tuple(METHODS), steps: int = 5,
                    warmup: int = 2) -> dict:
    """Images/s of ``train_step`` for each method with the same backbone and batch, and ratios to
    moco_v2. Inputs are random (N, 3, S, S) tensors so only the model and the objective are timed."""
    device = get_device(cfg.train.device)
    n, s = cfg.train.batch_size, cfg.data.crop_size
    out = {"device": str(device), "arch": cfg.model.arch, "batch_size": n, "crop_size": s, "steps": steps}
    for method in methods:
        mcfg = replace(cfg, method={"name": method})
        torch.manual_seed(0)
        model = CycleContrastModel(mcfg.model).to(device)
        opt = build_optimizer(model, mcfg)
        batch = (torch.randn(n, 3, s, s), torch.randn(n, 3, s, s), torch.randn(n, 3, s, s), torch.arange(n))
        dtype = amp_dtype(mcfg.train.amp, device)
        for i in range(warmup + steps):
            if i == warmup:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                tic = time.perf_counter()
            train_step(model, opt, batch, mcfg, step=i, lr=0.01, dtype=dtype)
        if device.type == "cuda":
            torch.cuda.synchronize()
        out[f"{method}_images_per_s"] = round(n * steps / (time.perf_counter() - tic), 2)
    base = out.get("moco_v2_images_per_s")
    for method in methods:
        if base:
            out[f"{method}_vs_moco_v2"] = round(out[f"{method}_images_per_s"] / base, 3)
    return out
