"""The main job: train a config, evaluate it against the random-init and raw-pixel floors, report."""
from __future__ import annotations

import json
import time
from pathlib import Path

from .atomic import atomic_write
from .config import Config
from .eval.suite import evaluate
from .report import write_report
from .train import train


def run_main_job(cfg: Config, *, progress: bool = True) -> dict:
    """Train ``cfg`` (resuming a finished or partial run), evaluate, write summary.json and report.md."""
    tic = time.perf_counter()
    result = train(cfg, progress=progress)
    eval_tic = time.perf_counter()
    metrics = evaluate(result["checkpoint"], cfg, ("knn",), floors=True, progress=progress)
    k = cfg.eval.knn_k[0]
    summary = {
        "method": cfg.method.name, "arch": cfg.model.arch, "data": f"{cfg.data.source}:{cfg.data.root}",
        "device": result["device"], "steps": result["steps"], "batch_size": cfg.train.batch_size,
        "train_seconds": result["train_seconds"], "eval_seconds": round(time.perf_counter() - eval_tic, 2),
        "knn_k": k, "knn_temperature": cfg.eval.knn_temperature,
        "knn_top1_trained": metrics[f"knn{k}_top1"], "knn_top1_random_init": metrics[f"knn{k}_top1_random_init"],
        "knn_top1_pixels": metrics[f"knn{k}_top1_pixels"],
        "knn_top1_random_init_bn": metrics[f"knn{k}_top1_random_init_bn"],
        "highest_floor": metrics["highest_floor"],
        "above_highest_floor": metrics[f"knn{k}_top1"] - metrics["highest_floor"],
        "knn_top5_trained": metrics[f"knn{k}_top5"], "knn_top5_random_init": metrics[f"knn{k}_top5_random_init"],
        "knn_top5_pixels": metrics[f"knn{k}_top5_pixels"],
        "chance": metrics["chance"], "all_metrics": metrics, "final_train_stats": result["final"],
        "job_seconds": round(time.perf_counter() - tic, 2),
    }
    run_dir = Path(cfg.run_dir)
    atomic_write(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    summary["report"] = str(write_report(run_dir, summary))
    return summary
