"""The method comparison: every method trained with the same budget on the same data over several
seeds, each evaluated by every protocol, against floors; results as JSON and a markdown table.

Rows: ``moco_v2``, ``intra_video``, ``forward_nn``, ``cycle_contrast`` (one training run per
seed, ``<runs_root>/<method>_s<seed>``), ``random_init`` (the same backbone untrained, per seed),
``pixels`` (raw-pixel features; classification only) and ``static_box`` (a tracker that never
moves; tracking only). The run is resumable twice over: (method, seed) pairs already in the
results file are skipped, and an interrupted training resumes from its last checkpoint.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch

from .atomic import atomic_write
from .checkpoint import load_backbone
from .config import Config, config_from_dict, replace, to_dict
from .errors import ConfigError
from .eval.cache import cache_key, file_fingerprint
from .eval.features import pixel_features
from .eval.otb import plot_otb
from .eval.suite import (eval_frame_sets, evaluate, feature_metrics, frame_features, static_box_metrics,
                         tracking_sequences)
from .methods import METHODS
from .metrics import read_metrics
from .model import random_backbone

log = logging.getLogger(__name__)

SUPERVISED = "supervised"  # the ceiling row: the same backbone and budget trained with the labels
METHOD_ORDER = (*METHODS, SUPERVISED)  # the registry order, from the image baseline to the full method, then the ceiling
FLOORS = ("random_init", "pixels", "static_box")
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


SUMMARY_KEYS = ("knn_top1", "linear_top1", "video_knn_top1", "video_linear_top1", "track_precision", "track_auc",
                "train_seconds", "final_intra_top1", "final_cycle_rate", "final_support_entropy",
                "nn_same_class", "cycle_back_video", "cycle_back_class")
PLATEAU_KEYS = ("knn_tail_gain", "knn_flat_step")


def summarize(entries: list[dict]) -> dict:
    """Per method: ``{key: {"mean", "std", "n"}}`` over seeds (sample std, ddof=1; 0 for one seed)."""
    out = {}
    for method in dict.fromkeys(e["method"] for e in entries):
        rows = [e for e in entries if e["method"] == method]
        stats = {}
        for key in SUMMARY_KEYS + PLATEAU_KEYS:
            values = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
            if values:
                stats[key] = {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                              "n": len(values)}
        out[method] = stats
    return out


def reproduce_commands(entries: list[dict], config: str, out_dir: str, runs: str) -> list[str]:
    """The ``cckit compare`` calls that train every stored (method, seed) of ``entries`` again into
    ``out_dir`` and ``runs``: one per set of seeds, the largest set first, its methods in the registry
    order (the floors come with every call, so they need none)."""
    seeds: dict[str, set] = {}
    for e in entries:
        if e["method"] not in FLOORS:
            seeds.setdefault(e["method"], set()).add(e["seed"])
    groups: dict[tuple, list] = {}
    for m in sorted(seeds, key=lambda m: METHOD_ORDER.index(m) if m in METHOD_ORDER else len(METHOD_ORDER)):
        groups.setdefault(tuple(sorted(seeds[m])), []).append(m)
    return [f"cckit compare {config} --methods {','.join(methods)} --seeds {','.join(map(str, group))} "
            f"--out {out_dir} --runs {runs}" for group, methods in sorted(groups.items(), key=lambda g: -len(g[0]))]


def comparison_report(path: str | Path, config: str, root: str | Path = ".") -> str:
    """A stored comparison ``<out_dir>/compare_methods.json`` as markdown: its tables
    (``markdown_table``), then the ``cckit compare`` calls that train it again, to be run from
    ``root`` (the repository root, where ``config`` and the runs folder are relative to)."""
    results = json.loads(Path(path).read_text())
    commands = reproduce_commands(results["entries"], config, os.path.relpath(Path(path).parent, root),
                                  str(Path(results["runs_root"]).parent))
    return markdown_table(results) + "\n```bash\n" + "\n".join(commands) + "\n```\n"


PAIRED_KEYS = ("knn_top1", "linear_top1", "video_knn_top1", "video_linear_top1", "track_precision", "track_auc")


def paired_difference(entries: list[dict], method: str, baseline: str, key: str, *, level: float = 0.95) -> dict | None:
    """``method - baseline`` on ``key`` over the seeds both have (paired: same seed, same data order,
    same initialisation): mean, sample std, n and the two-sided Student-t interval at ``level``
    (None with fewer than two pairs)."""
    from scipy import stats

    a = {e["seed"]: e[key] for e in entries if e["method"] == method and isinstance(e.get(key), (int, float))}
    b = {e["seed"]: e[key] for e in entries if e["method"] == baseline and isinstance(e.get(key), (int, float))}
    seeds = sorted(set(a) & set(b))
    if len(seeds) < 2:
        return None
    d = np.array([a[s] - b[s] for s in seeds], dtype=np.float64)
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, len(d) - 1) * sd / np.sqrt(len(d)))
    return {"mean": mean, "std": sd, "n": len(d), "low": mean - half, "high": mean + half, "seeds": seeds}


def seeds_needed(std: float, half_width: float, *, level: float = 0.95, most: int = 1000) -> int | None:
    """Paired seeds whose Student-t interval at ``level`` is at most ``half_width`` wide on each
    side, for differences of sample std ``std``: the least n with t(n-1) * std / sqrt(n) <= half_width
    (None past ``most``)."""
    from scipy import stats

    return next((n for n in range(2, most + 1) if stats.t.ppf(0.5 + level / 2, n - 1) * std / np.sqrt(n) <= half_width),
                None)


def paired_table(results: dict, method: str = "cycle_contrast", baseline: str = "intra_video") -> str:
    """Markdown table of ``method - baseline`` per protocol, points, with 95 % paired-t intervals and
    the paired seeds a ±1-point interval would take at the measured spread."""
    rows = []
    for key in PAIRED_KEYS:
        d = paired_difference(results["entries"], method, baseline, key)
        if d is not None:
            need = seeds_needed(d["std"], 0.01)
            rows.append(f"| {key} | {d['n']} | {100 * d['mean']:+.2f} | [{100 * d['low']:+.2f}, {100 * d['high']:+.2f}] "
                        f"| {need if need is not None else '> 1000'} |")
    if not rows:
        return ""
    return "\n".join([f"| {method} − {baseline} | paired seeds | mean (points) | 95 % CI (paired t) "
                      "| seeds for ±1 point |", "|---|---|---|---|---|", *rows]) + "\n"


def paired_curve(entries: list[dict], method: str, baseline: str, *, level: float = 0.95) -> list[dict]:
    """``method - baseline`` kNN top-1 at every monitor reading both curves have, over the paired
    seeds: ``{"step", "mean", "low", "high", "n"}`` per reading (paired t, as :func:`paired_difference`)."""
    curves = {(e["method"], e["seed"]): dict(map(tuple, e["knn_curve"])) for e in entries if "knn_curve" in e}
    seeds = sorted(s for m, s in curves if m == method and (baseline, s) in curves)
    if len(seeds) < 2:
        return []
    steps = sorted(set.intersection(*(set(curves[(m, s)]) for s in seeds for m in (method, baseline))))
    rows = []
    for step in steps:
        points = [{"method": m, "seed": s, "v": curves[(m, s)][step]} for s in seeds for m in (method, baseline)]
        d = paired_difference(points, method, baseline, "v", level=level)
        rows.append({"step": step, **{k: d[k] for k in ("mean", "low", "high", "n")}})
    return rows


def paired_curve_table(results: dict, method: str = "cycle_contrast", baseline: str = "intra_video",
                       readings: int = 7) -> str:
    """Markdown: ``method - baseline`` kNN top-1 (points, 95 % paired-t interval) at about ``readings``
    evenly spaced monitor readings, so a difference that opens and closes during training shows."""
    rows = paired_curve(results["entries"], method, baseline)
    if not rows:
        return ""
    pick = rows[::max(1, round((len(rows) - 1) / (readings - 1)))] if len(rows) > readings else rows
    if pick[-1] is not rows[-1]:
        pick.append(rows[-1])
    return "\n".join([f"| step | {method} − {baseline}, kNN (points) | 95 % CI (paired t, {rows[0]['n']} seeds) |",
                      "|---|---|---|",
                      *(f"| {r['step']} | {100 * r['mean']:+.2f} | [{100 * r['low']:+.2f}, {100 * r['high']:+.2f}] |"
                        for r in pick)]) + "\n"


def _cell(stats: dict, key: str, scale: float = 100.0, digits: int = 1) -> str:
    if key not in stats:
        return "—"
    s = stats[key]
    return f"{s['mean'] * scale:.{digits}f} ± {s['std'] * scale:.{digits}f}" if s["n"] > 1 else f"{s['mean'] * scale:.{digits}f}"


def markdown_table(results: dict) -> str:
    """The comparison as two markdown tables: metrics (%, mean ± std over seeds) and diagnostics."""
    summary = results.get("summary") or summarize(results["entries"])
    order = [m for m in (*METHOD_ORDER, *FLOORS) if m in summary] + [m for m in summary if m not in METHOD_ORDER + FLOORS]
    lines = ["| method | seeds | kNN top-1 | linear top-1 | video kNN top-1 | video linear top-1 | track precision "
             "| track AUC | train time (s) |", "|---|---|---|---|---|---|---|---|---|"]
    for m in order:
        s = summary[m]
        n = max((v["n"] for v in s.values()), default=0)
        lines.append(f"| {m} | {n} | " + " | ".join(_cell(s, k) for k in SUMMARY_KEYS[:6])
                     + f" | {_cell(s, 'train_seconds', 1.0, 0)} |")
    lines += ["", "| method | intra top-1 (train) | cycle rate (train) | support entropy (nats) | NN same class "
              "| cycle back to video | cycle back to class |", "|---|---|---|---|---|---|---|"]
    for m in order:
        s = summary[m]
        if any(k in s for k in SUMMARY_KEYS[7:]):
            lines.append(f"| {m} | {_cell(s, 'final_intra_top1')} | {_cell(s, 'final_cycle_rate')} | "
                         f"{_cell(s, 'final_support_entropy', 1.0, 2)} | {_cell(s, 'nn_same_class')} | "
                         f"{_cell(s, 'cycle_back_video')} | {_cell(s, 'cycle_back_class')} |")
    if any("knn_tail_gain" in summary[m] for m in order):
        lines += ["", "| method | kNN gain over the last fifth of the steps (points) | first reading within 1 point "
                  "of the end (step) |", "|---|---|---|"]
        lines += [f"| {m} | {_cell(summary[m], 'knn_tail_gain')} | {_cell(summary[m], 'knn_flat_step', 1.0, 0)} |"
                  for m in order if "knn_tail_gain" in summary[m]]
    paired = paired_table(results)
    curve = paired_curve_table(results)
    return "\n".join(lines) + "\n" + ("\n" + paired if paired else "") + ("\n" + curve if curve else "")


def write_outputs(results: dict, out_dir: str | Path, name: str = "compare_methods") -> None:
    """``<name>.md`` (the tables) and ``<name>_tracking.png`` (OTB plots, curves averaged over seeds)."""
    out_dir = Path(out_dir)
    (out_dir / f"{name}.md").write_text(markdown_table(results))
    curves = {}
    for method in dict.fromkeys(e["method"] for e in results["entries"]):
        rows = [e["track_curves"] for e in results["entries"] if e["method"] == method and "track_curves" in e]
        if rows:
            avg = {k: np.mean([r[k] for r in rows], axis=0).tolist() for k in ("precision_curve", "success_curve")}
            curves[method] = {**rows[0], **avg, "precision": avg["precision_curve"][20],
                              "success_auc": float(np.mean(avg["success_curve"]))}
    if curves:
        plot_otb(curves, out_dir / f"{name}_tracking.png", title="SiamFC on frozen features, default data (mean over seeds)")
