"""A plain SimCLR loop on the trainer's own clips and backbone: the yardstick the calibration
probes compare cckit's MoCo-based trainer against (does the loss leave the log(2N-1) plateau,
does frame kNN move?). Not part of the library.

    python benchmarks/probes/reference_simclr.py --root data/calibration/S --steps 200 --positive frame
    python benchmarks/probes/reference_simclr.py --root data/calibration/S --steps 200 --positive video
    python benchmarks/probes/reference_simclr.py --root data/calibration/S --steps 160 --positive video --stop-grad

``--positive frame`` pairs two crops of one frame (x_q, x_k), ``video`` a crop of another frame
(x_q, x_p); ``--stop-grad`` detaches the positive view (as the trainer's momentum keys are).
Prints loss / top-1 every 20 steps and kNN top-1 (k=20) of the backbone every 100 steps.
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

from cckit.config import load_config
from cckit.data.dataset import RunBatches, TrainClips
from cckit.data.index import load_splits
from cckit.eval import eval_frame_sets, extract_features, frame_knn_metrics
from cckit.model import build_backbone


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", required=True, help="a generated dataset (manifest.json)")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--temperature", type=float, default=0.2)
    p.add_argument("--positive", choices=["frame", "video"], default="video")
    p.add_argument("--stop-grad", action="store_true")
    p.add_argument("--seed", type=int, default=0, help="weights and data order")
    p.add_argument("overrides", nargs="*", help="key=value config overrides (data.*, model.arch)")
    args = p.parse_args()
    torch.manual_seed(args.seed)
    cfg = load_config("configs/quickstart.yaml", ["data.source=manifest", f"data.root={args.root}",
                                                   "data.crop_scale=[0.4,1.0]", "data.augment=loader",
                                                   "data.color_ops=torchvision"] + args.overrides)
    splits = load_splits(cfg.data)
    # (epoch, index) items, as the trainer's: every epoch draws new frames and crops. (A plain
    # shuffled DataLoader would replay epoch 0's fixed pairs, which a network memorises quickly.)
    batches = RunBatches(len(splits["train"]), args.batch, args.seed, 0, args.steps)
    loader = torch.utils.data.DataLoader(TrainClips(splits["train"], cfg.data, seed=0), batch_sampler=batches,
                                         num_workers=1)
    net, d = build_backbone(cfg.model.arch, small_stem=cfg.model.small_stem, width=cfg.model.width)
    head = nn.Sequential(nn.Linear(d, d, bias=False), nn.BatchNorm1d(d), nn.ReLU(), nn.Linear(d, 128))
    opt = torch.optim.Adam([*net.parameters(), *head.parameters()], lr=args.lr)
    memory, queries = eval_frame_sets(splits, cfg)
    cpu = torch.device("cpu")

    def knn() -> float:
        return frame_knn_metrics(extract_features(net, memory, device=cpu), extract_features(net, queries, device=cpu), cfg)["knn20_top1"]

    print(f"step 0 knn20_top1 {knn():.4f}", flush=True)
    step, tic = 0, time.perf_counter()
    for x_q, x_k, x_p, _, _ in loader:  # RunBatches yields exactly args.steps batches
        net.train(), head.train()
        other = x_k if args.positive == "frame" else x_p
        n = x_q.shape[0]
        if args.stop_grad:
            z_q = F.normalize(head(net(x_q)), dim=1)
            with torch.no_grad():
                z_p = F.normalize(head(net(other)), dim=1)
            z = torch.cat([z_q, z_p])
        else:
            z = F.normalize(head(net(torch.cat([x_q, other]))), dim=1)
        sim = (z @ z.t() / args.temperature).fill_diagonal_(float("-inf"))
        target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)])
        rows = slice(0, n) if args.stop_grad else slice(None)
        loss = F.cross_entropy(sim[rows], target[rows])
        opt.zero_grad(), loss.backward(), opt.step()
        step += 1
        if step % 20 == 0:
            top1 = float((sim[rows].argmax(1) == target[rows]).float().mean())
            print(f"step {step} loss {float(loss):.3f} top1 {top1:.3f} {time.perf_counter() - tic:.0f}s", flush=True)
        if step % 100 == 0 or step == args.steps:
            print(f"step {step} knn20_top1 {knn():.4f}", flush=True)


if __name__ == "__main__":
    main()
