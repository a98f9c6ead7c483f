"""A minimal MoCo on the kit's data: the known-good yardstick the momentum-key trainer is bisected
from (``benchmarks/results/learning_probes.jsonl``, the README's calibration section).

Written from the equations of facebookresearch/moco's CIFAR-10 colab (He et al. 2020; the colab
at commit f736491): a query encoder f_q and its EMA copy f_k (m), a FIFO queue of K keys, InfoNCE
over ``[q·k+, q·queueᵀ] / T``, the key batch shuffled around f_k so split-BN groups differ from the
query's, the EMA update *before* the key pass, SGD with a cosine schedule. Everything here is its
own code except the data (the trainer's clips and batched augmentation, frames in memory), the
backbone constructor and the kNN monitor, which are the kit's so that both loops read the same
frames, the same architecture and the same curve.

    python benchmarks/probes/reference_moco.py --style clutter --positive frame --steps 4000
    python benchmarks/probes/reference_moco.py --style clutter --positive video --steps 4000 --head mlp

``--positive frame``: k+ = f_k(x_k), a second crop of the query's frame (MoCo). ``video``: k+ =
f_k(x_p), a crop of another frame of the video (the paper's intra-video positive); the queue
always takes f_k(x_k), as the official CycleContrast code does. Prints one JSON line per
``--knn-every`` steps: kNN top-1 (k 20, T 0.07 on the pooled backbone features, the kit's
monitor), loss, top-1 of the positive, query spread.
"""
from __future__ import annotations

import argparse
import json
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from cckit.config import load_config
from cckit.data.batch_augment import BatchAugment
from cckit.data.dataset import RunBatches, TrainClips
from cckit.data.index import load_splits
from cckit.eval.monitor import KnnMonitor
from cckit.eval.suite import eval_frame_sets
from cckit.model import build_backbone


class Net(nn.Module):
    """Backbone + projection: ``linear`` is the colab's (ResNet fc to 128), ``mlp`` MoCo v2's d -> d -> 128."""

    def __init__(self, args):
        super().__init__()
        self.backbone, d = build_backbone("resnet18", small_stem=args.small_stem, bn_splits=args.bn_splits,
                                          width=args.width)
        hidden = [nn.Linear(d, d, bias=False), nn.BatchNorm1d(d)] if args.head_bn else [nn.Linear(d, d)]
        self.head = nn.Linear(d, 128) if args.head == "linear" else nn.Sequential(
            *hidden, nn.ReLU(inplace=True), nn.Linear(d, 128))

    def forward(self, x):
        return F.normalize(self.head(self.backbone(x)), dim=1)  # N x 128


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--style", default="clutter", help="default-data style (data.style)")
    p.add_argument("--root", default="", help="data root (default data/digits_<style>)")
    p.add_argument("--positive", choices=["frame", "video"], default="frame")
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.015, help="SGD lr (colab: 0.06 per 512)")
    p.add_argument("--wd", type=float, default=5e-4)
    p.add_argument("--cos-steps", type=int, default=0, help="cosine period in steps (0: --steps)")
    p.add_argument("--K", type=int, default=4096, help="queue length")
    p.add_argument("--m", type=float, default=0.99, help="EMA coefficient")
    p.add_argument("--T", type=float, default=0.1, help="InfoNCE temperature")
    p.add_argument("--bn-splits", type=int, default=8)
    p.add_argument("--width", type=int, default=16)
    p.add_argument("--small-stem", action="store_true")
    p.add_argument("--head", choices=["linear", "mlp"], default="linear")
    p.add_argument("--head-bn", action="store_true", help="BatchNorm after the MLP's hidden layer")
    p.add_argument("--opt", choices=["sgd", "adamw"], default="sgd", help="adamw: Adam with decoupled wd (lr ~1e-3)")
    p.add_argument("--batch-neg", action="store_true",
                   help="this step's keys f_k(x_k) of the other videos as negatives too (not in MoCo)")
    p.add_argument("--mask-own", action="store_true",
                   help="queue keys of the query's own video are not negatives (the kit's method.exclude_own_video)")
    p.add_argument("--no-shuffle", action="store_true", help="encode keys unshuffled (ablation)")
    p.add_argument("--knn-every", type=int, default=250)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="", help="append the run (args + curve) as one JSON line here")
    p.add_argument("overrides", nargs="*", help="key=value data overrides of configs/quickstart.yaml")
    args = p.parse_args()

    root = args.root or f"data/digits_{args.style}"
    cfg = load_config("configs/quickstart.yaml", [f"data.style={args.style}", f"data.root={root}"] + args.overrides)
    torch.manual_seed(args.seed)
    splits = load_splits(cfg.data)
    clips = TrainClips(splits["train"], cfg.data, seed=args.seed)
    augment = BatchAugment(cfg.data)
    monitor = KnnMonitor(*eval_frame_sets(splits, cfg), k=cfg.eval.knn_k[0], temperature=cfg.eval.knn_temperature)
    cpu = torch.device("cpu")

    f_q = Net(args)
    f_k = Net(args)
    f_k.load_state_dict(f_q.state_dict())
    for w in f_k.parameters():
        w.requires_grad_(False)
    queue = F.normalize(torch.randn(args.K, 128), dim=1)  # K x 128
    queue_ids = torch.full((args.K,), -1)  # video id of each row (-1: never filled)
    ptr = 0
    opt = (torch.optim.SGD(f_q.parameters(), lr=args.lr, momentum=0.9, weight_decay=args.wd) if args.opt == "sgd"
           else torch.optim.AdamW(f_q.parameters(), lr=args.lr, weight_decay=args.wd))
    period = args.cos_steps or args.steps
    shuffle_gen = torch.Generator().manual_seed(args.seed + 1)

    curve, rows = [], []
    knn = monitor(f_q.backbone)
    curve.append([0, knn])
    print(json.dumps({"step": 0, "knn": round(knn, 4)}), flush=True)
    sums, tic = {"loss": 0.0, "top1": 0.0, "spread": 0.0}, time.perf_counter()
    f_q.train(), f_k.train()
    for step, items in enumerate(RunBatches(len(clips), args.batch, args.seed, 0, args.steps), start=1):
        frames, seeds, ids, _ = clips.batch(items)
        x_q, x_k, x_p = augment(frames, seeds, cpu)
        lr = 0.5 * args.lr * (1 + math.cos(math.pi * (step - 1) / period))
        for g in opt.param_groups:
            g["lr"] = lr

        q = f_q(x_q)  # N x C
        with torch.no_grad():
            for w_k, w_q in zip(f_k.parameters(), f_q.parameters()):  # EMA first, as the colab
                w_k.mul_(args.m).add_(w_q.detach(), alpha=1 - args.m)
            x = torch.cat([x_k, x_p]) if args.positive == "video" else x_k  # one key pass, as the kit
            perm = torch.arange(len(x)) if args.no_shuffle else torch.randperm(len(x), generator=shuffle_gen)
            keys = torch.empty(len(x), 128)
            keys[perm] = f_k(x[perm])  # un-shuffled
            k_enq = keys[:len(x_k)]  # N x C, f_k(x_k)
            k_pos = keys[len(x_k):] if args.positive == "video" else k_enq
        l_pos = (q * k_pos).sum(1, keepdim=True)  # N x 1
        l_neg = q @ queue.t()  # N x K
        if args.mask_own:  # older keys of the query's own video would contradict its positive
            l_neg = l_neg.masked_fill(ids[:, None] == queue_ids[None, :], float("-inf"))
        if args.batch_neg:  # N x N current keys, the query's own video masked
            l_cur = (q @ k_enq.t()).masked_fill(torch.eye(len(q), dtype=torch.bool), float("-inf"))
            l_neg = torch.cat([l_cur, l_neg], 1)
        logits = torch.cat([l_pos, l_neg], 1) / args.T  # N x (1+K)
        loss = F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long))
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            queue[ptr:ptr + len(k_enq)] = k_enq
            queue_ids[ptr:ptr + len(k_enq)] = ids
            ptr = (ptr + len(k_enq)) % args.K
            sums["loss"] += float(loss)
            sums["top1"] += float((logits.argmax(1) == 0).float().mean())
            sums["spread"] += float(q.std(0).mean() * q.shape[1] ** 0.5)
        if step % args.knn_every == 0 or step == args.steps:
            knn = monitor(f_q.backbone)
            n = args.knn_every if step % args.knn_every == 0 else step % args.knn_every
            row = {"step": step, "knn": round(knn, 4), **{k: round(v / n, 4) for k, v in sums.items()},
                   "lr": round(lr, 5), "seconds": round(time.perf_counter() - tic, 1)}
            print(json.dumps(row), flush=True)
            curve.append([step, round(knn, 4)])
            rows.append(row)
            sums = dict.fromkeys(sums, 0.0)
    if args.out:
        with open(args.out, "a") as f:
            f.write(json.dumps({"probe": "reference_moco", "args": vars(args), "knn_curve": curve,
                                "diagnostics": rows, "log_K1": round(math.log(args.K + 1), 3)}) + "\n")


if __name__ == "__main__":
    main()
