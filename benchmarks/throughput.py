"""Train-step throughput of moco_v2 and cycle_contrast with the same backbone, side by side in one run.

    python benchmarks/throughput.py                                  # quickstart config, this machine
    python benchmarks/throughput.py --config configs/paper_r50_r2v2.yaml --batch 128 --amp bf16 --channels-last --compile
    python benchmarks/throughput.py --json                           # machine-readable output

Prints images/s of each method, their ratio, the per-phase breakdown of a step (data wait,
forward query, forward momentum, loss, backward + optimizer, EMA + enqueue), the cost of the
cycle loss beyond the encoder passes as a fraction of a step, peak memory, and on CUDA the
achieved fraction of the device's measured bf16 matmul rate (≈4.1 GMAC per ResNet-50 forward at
224 px, 5 forward-equivalents per sample: query forward + backward ≈ 3, two momentum forwards).
"""
from __future__ import annotations

import argparse
import json
import resource
import time

import torch

from cckit.config import load_config, replace
from cckit.data.dataset import TrainClips
from cckit.data.index import load_splits
from cckit.methods import get_method
from cckit.model import CycleContrastModel
from cckit.train import build_optimizer, train_step, training_batches
from cckit.utils import amp_dtype, get_device

# multiply-accumulates of one forward pass at 224 px (torchvision's published GFLOPS are MACs)
GMAC_224 = {"resnet18": 1.82, "resnet34": 3.67, "resnet50": 4.09}
FORWARD_EQUIVALENTS = 5  # query forward + backward (~3) + momentum forwards of x_k and x_p (2)


def matmul_rate(device: torch.device, dtype: torch.dtype, n: int = 8192, reps: int = 20) -> float:
    """Measured dense matmul rate in MAC/s (n x n x n products)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize(device)
    tic = time.perf_counter()
    for _ in range(reps):
        a @ b
    torch.cuda.synchronize(device)
    return reps * n ** 3 / (time.perf_counter() - tic)


def batches(cfg, device, count):
    """``count`` of the trainer's batches (``cckit.train.training_batches``: frames gathered and
    augmented as in training) and the seconds each waited for frames and augmentation."""
    dataset = TrainClips(load_splits(cfg.data)["train"], cfg.data, seed=0)
    out = []
    for batch, data_wait, augment_time in training_batches(cfg, dataset, device, total=count):
        out.append((batch, data_wait + augment_time))
    return out


def synthetic_batches(cfg, method):
    """One batch of random tensors in the trainer's format (no x_k where the method never reads it)."""
    n, s = cfg.train.batch_size, cfg.data.crop_size
    g = torch.Generator().manual_seed(0)
    views = [torch.randn(n, 3, s, s, generator=g) for _ in range(3)]
    if not get_method(method).needs_key_view(cfg.method.key_encoder):
        views[1] = None
    return [((*views, torch.arange(n), torch.zeros(n, dtype=torch.bool)), 0.0)]


def measure(cfg, method, device, steps, warmup, compile_model, synthetic):
    mcfg = replace(cfg, method={"name": method})
    data = synthetic_batches(mcfg, method) if synthetic else batches(mcfg, device, warmup + steps)
    torch.manual_seed(0)
    model = CycleContrastModel(mcfg.model).to(device)
    if mcfg.train.channels_last:
        model = model.to(memory_format=torch.channels_last)
    encoder = torch.compile(model.encoder) if compile_model else model.encoder
    opt = build_optimizer(model, mcfg)
    dtype = amp_dtype(mcfg.train.amp, device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    timings: dict[str, float] = {}
    wait = 0.0
    for i in range(warmup + steps):
        batch, waited = data[i % len(data)]
        if i == warmup:
            timings.clear()
            tic = time.perf_counter()
        train_step(model, opt, batch, mcfg, step=i, lr=0.01, dtype=dtype, encoder=encoder,
                   timings=timings if i >= warmup else None)
        if i >= warmup:
            wait += waited
    seconds = time.perf_counter() - tic
    n = mcfg.train.batch_size
    out = {"images_per_s": n * steps / seconds, "step_s": seconds / steps,
           **{f"{k}_s": v / steps for k, v in timings.items()}, "data_wait_s": wait / steps}
    out["peak_memory_mb"] = (torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda"
                             else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/quickstart.yaml")
    p.add_argument("--batch", type=int, default=None, help="train.batch_size (default: the config's)")
    p.add_argument("--crop", type=int, default=None, help="data.crop_size (default: the config's)")
    p.add_argument("--arch", default=None)
    p.add_argument("--amp", default=None, choices=["auto", "bf16", "fp16", "off"])
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true", help="torch.compile the online encoder")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--synthetic-input", action="store_true", help="random tensors instead of the trainer's batches")
    p.add_argument("--json", action="store_true")
    p.add_argument("overrides", nargs="*")
    args = p.parse_args()
    over = list(args.overrides)
    if args.batch:
        over += [f"train.batch_size={args.batch}"]
    if args.crop:
        over += [f"data.crop_size={args.crop}"]
    if args.arch:
        over += [f"model.arch={args.arch}"]
    if args.amp:
        over += [f"train.amp={args.amp}"]
    if args.channels_last:
        over += ["train.channels_last=true"]
    cfg = load_config(args.config, over)
    device = get_device(cfg.train.device)
    n, s = cfg.train.batch_size, cfg.data.crop_size
    result = {"device": str(device), "arch": cfg.model.arch, "batch_size": n, "crop_size": s, "amp": cfg.train.amp,
              "channels_last": cfg.train.channels_last, "compile": args.compile, "torch_threads": torch.get_num_threads(),
              "input": "synthetic" if args.synthetic_input else f"trainer's batches ({cfg.data.augment} augmentation)",
              "key_encoder": cfg.method.key_encoder}
    for method in ("moco_v2", "cycle_contrast"):
        result[method] = measure(cfg, method, device, args.steps, args.warmup, args.compile, args.synthetic_input)
    moco, cyc = result["moco_v2"], result["cycle_contrast"]
    result["cycle_vs_moco_images_per_s"] = cyc["images_per_s"] / moco["images_per_s"]
    # what the cycle loss adds beyond the encoder passes: the extra loss time over the whole step
    result["cycle_loss_overhead_fraction_of_step"] = (cyc["loss_s"] - moco["loss_s"]) / cyc["step_s"]
    if device.type == "cuda":
        dtype = amp_dtype(cfg.train.amp, device) or torch.float32
        rate = matmul_rate(device, dtype)
        gmac = GMAC_224.get(cfg.model.arch, float("nan")) * (s / 224) ** 2
        for method in ("moco_v2", "cycle_contrast"):
            achieved = result[method]["images_per_s"] * FORWARD_EQUIVALENTS * gmac * 1e9
            result[method]["fraction_of_matmul_rate"] = achieved / rate
        result["matmul_rate_tmacs"] = rate / 1e12
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"device {result['device']}  {cfg.model.arch} @ {s}px  batch {n}  amp {cfg.train.amp}  "
          f"channels_last {cfg.train.channels_last}  compile {args.compile}  input {result['input']}")
    phases = ["data_wait_s", "forward_query_s", "forward_momentum_s", "loss_s", "backward_optimizer_s", "ema_enqueue_s"]
    print(f"{'method':16s} {'img/s':>8s} {'step ms':>8s} " + " ".join(f"{p[:-2]:>18s}" for p in phases) + f" {'peak MB':>8s}")
    for method in ("moco_v2", "cycle_contrast"):
        r = result[method]
        print(f"{method:16s} {r['images_per_s']:8.1f} {1e3 * r['step_s']:8.1f} "
              + " ".join(f"{1e3 * r.get(p, 0.0):16.1f}ms" for p in phases) + f" {r['peak_memory_mb']:8.0f}")
    print(f"cycle_contrast / moco_v2 images/s: {result['cycle_vs_moco_images_per_s']:.3f}")
    print(f"cycle loss beyond the encoder passes: {100 * result['cycle_loss_overhead_fraction_of_step']:.2f}% of a step")
    if "matmul_rate_tmacs" in result:
        print(f"measured matmul rate {result['matmul_rate_tmacs']:.1f} TMAC/s; achieved fraction: "
              + ", ".join(f"{m} {100 * result[m]['fraction_of_matmul_rate']:.1f}%" for m in ("moco_v2", "cycle_contrast")))


if __name__ == "__main__":
    main()
