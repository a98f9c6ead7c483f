"""The main job: train a config, evaluate it against the random-init and raw-pixel floors, report."""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from .checkpoint import load_backbone
from .config import Config
from .data.index import load_splits
from .eval import eval_frame_sets, extract_features, frame_knn, pixel_features, random_backbone
from .eval.monitor import stack_frames, with_estimated_bn
from .report import write_report
from .train import train
from .utils import get_device


def evaluate_checkpoint(checkpoint: str | Path, cfg: Config, *, floors: bool = True) -> dict:
    """Frame kNN of a checkpoint's backbone on ``cfg``'s data.

    With ``floors`` also the three floors: raw pixels, the random-init backbone as built (BN at
    mean 0 / var 1) and the same backbone with BN statistics estimated on the train frames
    (``random_init_bn``); ``highest_floor`` is the best of them at the first ``eval.knn_k``.
    """
    device = get_device(cfg.train.device)
    splits = load_splits(cfg.data)
    memory_set, query_set = eval_frame_sets(splits, cfg)
    bs = cfg.eval.batch_size
    out = {"eval_frames_train": len(memory_set), "eval_frames_test": len(query_set)}
    backbones = {"trained": load_backbone(checkpoint, cfg.model.arch, small_stem=cfg.model.small_stem)}
    if floors:
        backbones["random_init"] = random_backbone(cfg, seed=cfg.train.seed)
        backbones["random_init_bn"] = with_estimated_bn(backbones["random_init"], stack_frames(memory_set)[0])
    for name, net in backbones.items():
        memory = extract_features(net, memory_set, device=device, batch_size=bs)
        queries = extract_features(net, query_set, device=device, batch_size=bs)
        for key, value in frame_knn(memory, queries, cfg).items():
            out[f"{key}_{name}"] = value
    if floors:
        for key, value in frame_knn(pixel_features(memory_set), pixel_features(query_set), cfg).items():
            out[f"{key}_pixels"] = value
    if floors:
        k = cfg.eval.knn_k[0]
        out["highest_floor"] = max(out[f"knn{k}_top1_{name}"] for name in ("pixels", "random_init", "random_init_bn"))
    labels = torch.tensor([r.label for r in splits["test"]])
    out["chance"] = float(torch.bincount(labels).max()) / len(labels)
    return out


def run_main_job(cfg: Config, *, progress: bool = True) -> dict:
    """Train ``cfg`` (resuming a finished or partial run), evaluate, write summary.json and report.md."""
    tic = time.perf_counter()
    result = train(cfg, progress=progress)
    eval_tic = time.perf_counter()
    metrics = evaluate_checkpoint(result["checkpoint"], cfg)
    k = cfg.eval.knn_k[0]
    summary = {
        "method": cfg.method.name, "arch": cfg.model.arch, "data": f"{cfg.data.source}:{cfg.data.root}",
        "device": result["device"], "steps": result["steps"], "batch_size": cfg.train.batch_size,
        "train_seconds": result["train_seconds"], "eval_seconds": round(time.perf_counter() - eval_tic, 2),
        "knn_k": k, "knn_temperature": cfg.eval.knn_temperature,
        "knn_top1_trained": metrics[f"knn{k}_top1_trained"], "knn_top1_random_init": metrics[f"knn{k}_top1_random_init"],
        "knn_top1_pixels": metrics[f"knn{k}_top1_pixels"],
        "knn_top1_random_init_bn": metrics[f"knn{k}_top1_random_init_bn"],
        "highest_floor": metrics["highest_floor"],
        "above_highest_floor": metrics[f"knn{k}_top1_trained"] - metrics["highest_floor"],
        "knn_top5_trained": metrics[f"knn{k}_top5_trained"], "knn_top5_random_init": metrics[f"knn{k}_top5_random_init"],
        "knn_top5_pixels": metrics[f"knn{k}_top5_pixels"],
        "chance": metrics["chance"], "all_metrics": metrics, "final_train_stats": result["final"],
        "job_seconds": round(time.perf_counter() - tic, 2),
    }
    run_dir = Path(cfg.run_dir)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    summary["report"] = str(write_report(run_dir, summary))
    return summary
