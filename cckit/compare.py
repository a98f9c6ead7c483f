"""The method comparison: every method trained with the same budget on the same data over several
seeds, each evaluated by every protocol, against floors; results as JSON and a markdown table.

Rows: ``moco_v2``, ``intra_video``, ``forward_nn``, ``cycle_contrast`` (one training run per
seed, ``<runs_root>/<method>_s<seed>``), ``random_init`` (the same backbone untrained, per seed),
``pixels`` (raw-pixel features; classification only) and ``static_box`` (a tracker that never
moves; tracking only). The run is resumable twice over: (method, seed) pairs already in the
results file are skipped, and an interrupted training resumes from its last checkpoint.
``cckit.compare_report`` reads the stored results: means, paired intervals, tables, commands.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from .atomic import atomic_write
from .checkpoint import load_backbone
from .compare_report import SUPERVISED, summarize, write_outputs
from .config import Config, config_from_dict, replace, to_dict
from .errors import ConfigError
from .eval.cache import cache_key, file_fingerprint
from .eval.features import pixel_features
from .eval.suite import (eval_frame_sets, evaluate, feature_metrics, frame_features, static_box_metrics,
                         tracking_sequences)
from .methods import METHODS
from .metrics import read_metrics
from .model import random_backbone

log = logging.getLogger(__name__)

DIAGNOSTICS = ("intra_top1", "cycle_rate", "support_entropy", "loss")


# Settings that change speed but not results, and the run's own identity: not part of what a comparison measures.
_NOT_MEASURED = (("method", "name"), ("train", "seed"), ("train", "threads"), ("train", "log_every"),
                 ("data", "workers"), ("data", "augment"), ("train", "compile"), ("eval", "batch_size"),
                 ("eval", "cache_dir"))


def comparison_key(cfg: Config) -> str:
    """Identity of what a comparison measures: the config less run_dir, resume, method name, seed
    and settings that change speed but not results (threads, workers, logging, eval batch, cache,
    where augmentations run, torch.compile)."""
    values = to_dict(cfg)
    for section, key in _NOT_MEASURED:
        values[section].pop(key)
    values.pop("run_dir"), values.pop("resume")
    return cache_key(json.dumps(values, sort_keys=True))


def same_comparison(stored: dict, cfg: Config) -> bool:
    """Whether a stored comparison (its ``config`` and ``comparison_key``) measures what ``cfg`` does.

    Its key was computed by the kit of its day: a config field added to the kit since is absent from
    the stored config and read at its default, so adding a field never orphans a stored comparison.
    """
    if stored.get("comparison_key") == comparison_key(cfg):
        return True
    if not isinstance(stored.get("config"), dict):
        return False
    try:
        then = config_from_dict(stored["config"])  # absent fields at today's defaults, renamed keys read
    except ConfigError:  # a field the kit no longer has: not today's comparison
        return False
    return comparison_key(then) == comparison_key(cfg)


def training_diagnostics(metrics_path: str | Path, batch_size: int, tail: float = 0.1) -> dict:
    """Means of the training diagnostics over the last ``tail`` of the steps of a ``metrics.jsonl``,
    and ``step_seconds_total``: the summed step times (``batch_size / images_per_s``, data wait
    included; start-up and checkpoint writes not)."""
    rows = read_metrics(metrics_path)
    last = rows[-max(1, int(len(rows) * tail)):] if rows else []
    out = {}
    for key in DIAGNOSTICS:
        values = [r[key] for r in last if key in r]
        if values:
            out[f"final_{key}"] = float(np.mean(values))
    if rows and all(r.get("images_per_s") for r in rows):
        out["step_seconds_total"] = round(float(sum(batch_size / r["images_per_s"] for r in rows)), 2)
    return out


def knn_curve_stats(metrics_path: str | Path, *, tail: float = 0.2, tolerance: float = 0.01) -> dict:
    """The kNN monitor's curve of a run and where it flattens.

    Returns ``knn_curve`` ([step, top-1] per reading), ``knn_tail_gain`` (top-1 at the end minus at
    the first reading in the last ``tail`` of the steps) and ``knn_flat_step`` (the first reading
    within ``tolerance`` of the end); ``{}`` for a run without kNN readings.
    """
    curve = [[r["step"], r["knn_top1"]] for r in read_metrics(metrics_path) if "knn_top1" in r]
    if len(curve) < 2:
        return {}
    end_step, end = curve[-1]
    at_tail = next(v for s, v in curve if s >= (1 - tail) * end_step)
    flat = next(s for s, v in curve if v >= end - tolerance)
    return {"knn_curve": curve, "knn_tail_gain": end - at_tail, "knn_flat_step": flat}


def frozen_cycle_stats(features: torch.Tensor, video_ids: torch.Tensor, labels: torch.Tensor) -> dict:
    """Cross-video cycles on frozen features (the quantity CycleContrast trains, measured on frames),
    with hard nearest neighbours; :func:`cckit.diagnostics.cycle_diagnostics` measures the training's
    soft cycle on a model's heads.

    For each frame, ``u`` = its nearest neighbour among frames of *other* videos, then ``v`` = the
    nearest neighbour of ``u`` among frames not of ``u``'s video. Returns the fractions with
    ``class(u) == class(frame)`` (``nn_same_class``: semantic purity of the forward step),
    ``video(v) == video(frame)`` (``cycle_back_video``: the cycle closes) and
    ``class(v) == class(frame)`` (``cycle_back_class``).
    """
    x = torch.nn.functional.normalize(features.float(), dim=1)
    sims = x @ x.t()  # N x N
    sims.masked_fill_(video_ids[:, None] == video_ids[None, :], float("-inf"))  # other videos only
    forward = sims.argmax(1)  # N
    back = sims[forward].argmax(1)
    return {"nn_same_class": float((labels[forward] == labels).float().mean()),
            "cycle_back_video": float((video_ids[back] == video_ids).float().mean()),
            "cycle_back_class": float((labels[back] == labels).float().mean())}


def _classification(memory: dict, queries: dict, cfg: Config) -> dict:
    return _row(feature_metrics(memory, queries, cfg, ("knn", "linear", "video")), memory, cfg)


def protocol_scores(metrics: dict, cfg: Config) -> dict:
    """The comparison's classification keys from :func:`evaluate`'s metrics (kNN at the first k)."""
    k = cfg.eval.knn_k[0]
    return {"knn_top1": metrics[f"knn{k}_top1"], "linear_top1": metrics["linear_top1"],
            "video_knn_top1": metrics[f"video_knn{k}_top1"], "video_linear_top1": metrics["video_linear_top1"]}


def _row(metrics: dict, memory: dict, cfg: Config) -> dict:
    """A table row from :func:`evaluate`'s metrics and the train-frame features (cycle diagnostics)."""
    return {**protocol_scores(metrics, cfg),
            **frozen_cycle_stats(memory["features"], memory["video_ids"], memory["labels"])}


def _entry_metrics(backbone, cfg: Config, data: dict, weights_id: str | None) -> dict:
    out = evaluate(backbone, cfg, ("knn", "linear", "video", "track"), weights_id=weights_id, splits=data["splits"],
                   sets=data["sets"], sequences=data["sequences"])
    track = out["track"]
    memory, _ = frame_features(backbone, data["sets"], cfg, weights_id=weights_id)  # cache hit
    return {**_row(out, memory, cfg), "track_precision": track["precision"], "track_auc": track["success_auc"],
            "track_curves": {k: track[k] for k in ("threshold", "precision_thresholds", "precision_curve",
                                                    "success_thresholds", "success_curve")}}


def _load(path: Path, cfg: Config) -> dict:
    """The stored comparison at ``path`` (a new one when absent); its ``comparison_key`` stays the one
    it was stored under, which names its runs folder."""
    if not path.is_file():
        return {"comparison_key": comparison_key(cfg), "entries": []}
    results = json.loads(path.read_text())
    if not same_comparison(results, cfg):
        raise ConfigError(f"{path}: holds a comparison of another config (delete it or pass another --out)")
    return results


def _save(path: Path, results: dict) -> None:
    atomic_write(path, json.dumps(results, indent=1) + "\n")


def compare_methods(cfg: Config, *, methods=tuple(METHODS), seeds=(0, 1, 2), out_dir: str | Path = "benchmarks/results",
                    runs_root: str | Path = "runs/compare", name: str = "compare_methods", progress: bool = False) -> dict:
    """Train and evaluate every (method, seed) not yet in ``<out_dir>/<name>.json``; rewrite the
    JSON, ``<name>.md`` (mean ± std table) and ``<name>_tracking.png`` after every entry.
    Training runs go to ``<runs_root>/<config key>/<method>_s<seed>``.

    Returns the results dict (``comparison_key``, ``config``, ``entries``, ``summary``).
    """
    from .data.index import load_splits
    from .supervised import train_supervised
    from .train import train

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    results = _load(path, cfg)
    # runs of another config must never be resumed as this one's: one run folder per config
    runs_root = Path(runs_root) / results["comparison_key"][:12]
    results["runs_root"] = str(runs_root)
    results["config"] = to_dict(cfg)
    done = {(e["method"], e["seed"]) for e in results["entries"]}
    for e in results["entries"]:  # entries stored before the curves were kept: read them from their runs
        metrics = runs_root / f"{e['method']}_s{e['seed']}" / "metrics.jsonl"
        if "knn_curve" not in e and "steps" in e and metrics.is_file():
            e.update(knn_curve_stats(metrics))
    splits = load_splits(cfg.data)
    data = {"splits": splits, "sets": eval_frame_sets(splits, cfg), "sequences": tracking_sequences(splits, cfg)}
    floor_cfg = replace(cfg, run_dir=str(runs_root / "floors"))

    def record(entry: dict) -> None:
        results["entries"].append(entry)
        results["summary"] = summarize(results["entries"])
        _save(path, results)
        write_outputs(results, out_dir, name)
        log.info("%s seed %s: %s", entry["method"], entry["seed"],
                 {k: round(v, 4) for k, v in entry.items() if isinstance(v, float)})

    if ("static_box", 0) not in done:
        track = static_box_metrics(data["sequences"])
        record({"method": "static_box", "seed": 0, "track_precision": track["precision"], "track_auc": track["success_auc"],
                "track_curves": {k: track[k] for k in ("threshold", "precision_thresholds", "precision_curve",
                                                        "success_thresholds", "success_curve")}})
    for seed in seeds:  # the trained methods first, the floors after them: a cut-short run keeps the methods
        for method in methods:
            if (method, seed) in done:
                continue
            if method == SUPERVISED:  # the ceiling: the same budget with the labels (cckit.supervised)
                run_cfg = replace(cfg, run_dir=str(runs_root / f"{method}_s{seed}"), train={"seed": seed})
            else:
                run_cfg = replace(cfg, run_dir=str(runs_root / f"{method}_s{seed}"), resume="auto",
                                  method={"name": method}, train={"seed": seed})
            tic = time.perf_counter()
            log.info("training %s seed %d into %s", method, seed, run_cfg.run_dir)
            result = train_supervised(run_cfg) if method == SUPERVISED else train(run_cfg, progress=progress)
            fresh = result["train_steps_this_run"] == result["steps"]
            diag = training_diagnostics(Path(run_cfg.run_dir) / "metrics.jsonl", cfg.train.batch_size)
            ckpt = result["checkpoint"]
            net = load_backbone(ckpt, cfg.model.arch, small_stem=cfg.model.small_stem)
            entry = {"method": method, "seed": seed, "steps": result["steps"], "device": result["device"],
                     "train_seconds": result["train_seconds"] if fresh else diag.get("step_seconds_total"),
                     "train_seconds_is_step_sum": not fresh,
                     **{k: v for k, v in diag.items() if k.startswith("final_")}}
            entry.update(knn_curve_stats(Path(run_cfg.run_dir) / "metrics.jsonl"))
            entry.update(_entry_metrics(net, run_cfg, data, weights_id=file_fingerprint(ckpt)))
            entry["wall_seconds"] = round(time.perf_counter() - tic, 1)
            record(entry)
        if ("random_init", seed) not in done:
            net = random_backbone(cfg, seed=seed)
            record({"method": "random_init", "seed": seed, "train_seconds": 0.0,
                    **_entry_metrics(net, floor_cfg, data, weights_id=None)})
        if ("pixels", 0) not in done and seed == seeds[0]:
            memory, queries = (pixel_features(s) for s in data["sets"])
            record({"method": "pixels", "seed": 0, **_classification(memory, queries, cfg)})
    return results
