"""Short moco_v2 / cycle_contrast runs for diagnosing early training on a calibration style:
intra top-1 and loss along the run, the frame-kNN top-1 at the end, and how collapsed the
embeddings are (mean cosine between embeddings of different videos; ~1.0 means collapse).

    python benchmarks/probes/probe_collapse.py --root data/calibration/H method.name=moco_v2 train.lr=0.3

Each call appends one JSON line to benchmarks/results/calibration_probes.jsonl.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from cckit.checkpoint import load_checkpoint
from cckit.config import load_config
from cckit.data.batch_augment import BatchAugment
from cckit.data.dataset import TrainClips
from cckit.data.index import load_splits
from cckit.eval.suite import evaluate
from cckit.model import CycleContrastModel
from cckit.train import train

BASE = ["train.batch_size=64", "model.queue_size=1024", "model.cycle_queue_size=1024", "method.support_size=256",
        "method.temperature=0.2", "train.max_steps=80", "model.bn_splits=4", "data.crop_scale=[0.4,1.0]",
        "train.log_every=1000"]


@torch.no_grad()
def collapse(checkpoint: str, cfg, videos: int = 64) -> dict:
    """Mean cosines of the queries and keys of the first ``videos`` training videos (all, if fewer)."""
    state = load_checkpoint(checkpoint)
    model = CycleContrastModel(cfg.model)
    model.load_state_dict(state["model"])
    model.train()
    clips = TrainClips(load_splits(cfg.data)["train"][:videos], cfg.data, seed=0)
    n = len(clips)
    batch = clips.batch(list(range(n)))
    if cfg.data.augment == "batch":  # (frames, seeds, ids, replaced) -> (x_q, x_k, x_p), as the trainer
        batch = BatchAugment(cfg.data)(batch[0], batch[1], torch.device("cpu"))
    q, _ = model.encoder(batch[0])  # x_q
    k, _ = model.encoder_m(batch[1])  # x_k
    off = ~torch.eye(n, dtype=torch.bool)
    return {"query_query_cos": float((q @ q.t())[off].mean()), "query_own_key_cos": float((q * k).sum(1).mean()),
            "query_other_key_cos": float((q @ k.t())[off].mean())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/quickstart.yaml", help="the base; BASE and the overrides go on top")
    p.add_argument("--root", required=True, help="a generated dataset (benchmarks/probes/calibrate.py writes them)")
    p.add_argument("--out", default="benchmarks/results/calibration_probes.jsonl")
    p.add_argument("--runs", default="runs/probes", help="folder of the run directory")
    p.add_argument("overrides", nargs="*")
    args = p.parse_args()
    tag = "_".join(o.replace("/", "") for o in args.overrides) or "base"
    cfg = load_config(args.config, ["data.source=manifest", f"data.root={args.root}"] + BASE
                      + args.overrides + [f"run_dir={Path(args.runs) / Path(args.root).name}_{tag}"])
    result = train(cfg, progress=False)
    rows = [json.loads(line) for line in open(Path(cfg.run_dir) / "metrics.jsonl")]
    knn = evaluate(result["checkpoint"], cfg, ("knn",))
    row = {"root": args.root, "overrides": args.overrides, "train_seconds": result["train_seconds"],
           "curve": [(r["step"], round(r["loss_intra"], 2), round(r["intra_top1"], 2)) for r in rows[4::16]],
           "knn20_top1_trained": round(knn["knn20_top1"], 4),
           **{k: round(v, 3) for k, v in collapse(result["checkpoint"], cfg).items()}}
    print(json.dumps(row), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "a") as f:
        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
