"""Calibrate the default data: for candidate styles and training settings, measure the kNN floors
(raw pixels, random-init backbone) and, unless --floors-only, the trained kNN, side by side.

    python benchmarks/probes/calibrate.py --floors-only             # cheap: floors of every candidate style
    python benchmarks/probes/calibrate.py --styles B --runs sgd adamw   # train some candidates

Each style's videos are generated under --data-root at the config's data sizes (data.num_train,
data.size, ...). Results are appended to benchmarks/results/calibration.jsonl, one JSON line per measurement.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

from cckit.config import load_config
from cckit.data.index import load_splits
from cckit.data.synthetic import STYLES as SYNTHETIC_STYLES
from cckit.data.synthetic import MotionStyle, make_default_dataset
from cckit.eval import eval_frame_sets, extract_features, frame_knn_metrics as frame_knn, pixel_features
from cckit.model import random_backbone
from cckit.job import run_main_job
from cckit.utils import get_device

# per-frame nuisance: the base styles of the P and V families below
P_STYLE = SYNTHETIC_STYLES["clutter"]  # the quickstart's style since session 4
V_STYLE = MotionStyle(digit_scale=(0.5, 0.7), max_shift=0.3, max_rotation_deg=15.0, scale_jitter=0.15,
                       brightness_jitter=0.1, background_contrast=0.0, background_colour_strength=0.9,
                       foreground_colour_strength=0.9, background_level=(0.2, 0.45), noise_std=0.02,
                       nuisance_per_frame=True)

STYLES = {
    # digit large and nearly centred: pixels are already a strong baseline
    "A": MotionStyle(digit_scale=(0.55, 0.8), max_shift=0.2, max_rotation_deg=10.0, scale_jitter=0.1,
                     brightness_jitter=0.1, background_contrast=0.25, background_colour_strength=0.25,
                     foreground_colour_strength=0.3, noise_std=0.01),
    # smaller digit, more travel: pixels lose, a translation-invariant encoder should not
    "B": MotionStyle(digit_scale=(0.4, 0.6), max_shift=0.45, max_rotation_deg=15.0, scale_jitter=0.15,
                     brightness_jitter=0.15, background_contrast=0.1, background_colour_strength=0.3,
                     foreground_colour_strength=0.5, noise_std=0.01),
    # as B with flat backgrounds (no texture cue to match frames of a video by)
    "C": MotionStyle(digit_scale=(0.4, 0.6), max_shift=0.45, max_rotation_deg=15.0, scale_jitter=0.15,
                     brightness_jitter=0.15, background_contrast=0.0, background_colour_strength=0.3,
                     foreground_colour_strength=0.5, noise_std=0.01),
    # as B with stronger colour nuisance
    "D": MotionStyle(digit_scale=(0.4, 0.6), max_shift=0.45, max_rotation_deg=15.0, scale_jitter=0.15,
                     brightness_jitter=0.15, background_contrast=0.3, background_colour_strength=0.7,
                     foreground_colour_strength=0.8, noise_std=0.02),
    # as B without per-video colour: the digit's shape is the only cue that tells videos apart
    "E": MotionStyle(digit_scale=(0.4, 0.6), max_shift=0.45, max_rotation_deg=15.0, scale_jitter=0.15,
                     brightness_jitter=0.15, background_contrast=0.1, background_colour_strength=0.0,
                     foreground_colour_strength=0.0, noise_std=0.01),
    # large digits on flat backgrounds, strong per-video colours of digit and background: colour is
    # the nuisance that pixels and a random encoder see first, and that full hue jitter removes
    "F": MotionStyle(digit_scale=(0.5, 0.7), max_shift=0.3, max_rotation_deg=10.0, scale_jitter=0.1,
                     brightness_jitter=0.1, background_contrast=0.05, background_colour_strength=0.8,
                     foreground_colour_strength=0.8, noise_std=0.01),
    # as F with more travel
    "G": MotionStyle(digit_scale=(0.45, 0.65), max_shift=0.45, max_rotation_deg=15.0, scale_jitter=0.15,
                     brightness_jitter=0.15, background_contrast=0.05, background_colour_strength=0.8,
                     foreground_colour_strength=0.8, noise_std=0.01),
    # no colour, strong scale and rotation change: pixel neighbours need the same size and pose
    "H": MotionStyle(digit_scale=(0.3, 0.75), max_shift=0.45, max_rotation_deg=20.0, scale_jitter=0.2,
                     brightness_jitter=0.15, background_contrast=0.1, background_colour_strength=0.0,
                     foreground_colour_strength=0.0, noise_std=0.01),
    # shape only: one flat background level for every video, no colour, large pose change within a
    # video, so the digit's shape is the only cue that links two frames of a video
    "S": MotionStyle(digit_scale=(0.4, 0.7), max_shift=0.5, max_rotation_deg=30.0, scale_jitter=0.3,
                     brightness_jitter=0.2, background_contrast=0.0, background_colour_strength=0.0,
                     foreground_colour_strength=0.0, background_level=(0.15, 0.15), noise_std=0.02),
    # as S with smaller digits, more travel, rotation and zoom: lower floors
    "T": MotionStyle(digit_scale=(0.35, 0.6), max_shift=0.7, max_rotation_deg=40.0, scale_jitter=0.4,
                     brightness_jitter=0.2, background_contrast=0.0, background_colour_strength=0.0,
                     foreground_colour_strength=0.0, background_level=(0.15, 0.15), noise_std=0.02),
    # a new full-contrast background texture every frame (hue per video, mild colour), white
    # digits: the clutter dominates pixels and random features, and only the digit links two
    # frames of a video, which is what intra-video positives teach the encoder to keep
    "P": P_STYLE,
    # as P with half-contrast clutter
    "Q": replace(P_STYLE, background_contrast=0.5),
    # as P with strongly coloured clutter
    "R": replace(P_STYLE, background_colour_strength=0.7),
    # no texture; background and digit of saturated colours drawn anew every frame: colour is
    # what pixels and a random encoder see first, and what two frames of a video do not share
    "V": V_STYLE,
    # as V with mild textured clutter
    "W": replace(V_STYLE, background_contrast=0.5),
    # shape is the only thing two frames of a video share: one digit size for all videos, pose
    # (position, rotation, scale) and colours drawn anew every frame
    "X": MotionStyle(digit_scale=(0.6, 0.6), max_shift=0.35, max_rotation_deg=30.0, scale_jitter=0.3,
                     brightness_jitter=0.0, background_contrast=0.3, background_colour_strength=0.9,
                     foreground_colour_strength=0.9, background_level=(0.2, 0.45), noise_std=0.02,
                     motions=("jitter",), nuisance_per_frame=True),
    # the named harder variant
    "hard": "hard",
}

RUNS = {
    "r10_long": ["model.arch=resnet10", "train.batch_size=64", "model.queue_size=1024", "model.cycle_queue_size=1024",
                 "method.support_size=256", "method.temperature=0.2", "train.max_steps=600", "model.bn_splits=4",
                 "data.crop_scale=[0.5,1.0]", "method.batch_negatives=true", "train.threads=2"],
    "hue": ["train.batch_size=64", "model.queue_size=1024", "model.cycle_queue_size=1024", "method.support_size=256",
            "method.temperature=0.2", "train.max_steps=150", "model.bn_splits=4", "data.crop_scale=[0.4,1.0]",
            "data.hue=0.5", "data.grayscale_prob=0.3"],
    "hue_intra": ["method.name=intra_video", "train.batch_size=64", "model.queue_size=1024", "model.cycle_queue_size=1024",
                  "method.support_size=256", "method.temperature=0.2", "train.max_steps=150", "model.bn_splits=4",
                  "data.crop_scale=[0.4,1.0]", "data.hue=0.5", "data.grayscale_prob=0.3"],
    "small_q": ["train.batch_size=64", "model.queue_size=1024", "model.cycle_queue_size=1024", "method.support_size=256",
                "method.temperature=0.2", "train.epochs=16", "model.bn_splits=4", "data.crop_scale=[0.4,1.0]"],
    "small_q_moco": ["method.name=moco_v2", "train.batch_size=64", "model.queue_size=1024", "model.cycle_queue_size=1024",
                     "method.support_size=256", "method.temperature=0.2", "train.epochs=16", "model.bn_splits=4",
                     "data.crop_scale=[0.4,1.0]"],
    "sgd": ["train.optimizer=sgd", "train.lr=0.06"],
    "adam_lo": ["train.optimizer=adamw", "train.lr=0.0002", "train.weight_decay=0.0001", "train.batch_size=64",
                "train.max_steps=200", "method.temperature=0.2", "data.crop_scale=[0.4,1.0]", "data.hue=0.5",
                "model.queue_size=1024", "model.cycle_queue_size=1024", "method.support_size=512"],
    "sgd_hue": ["train.optimizer=sgd", "train.lr=0.06", "data.hue=0.5"],
    "sgd_hi": ["train.optimizer=sgd", "train.lr=0.3"],
    "adamw": ["train.optimizer=adamw", "train.lr=0.001", "train.weight_decay=0.05"],
}


def floors(cfg) -> dict:
    splits = load_splits(cfg.data)
    memory_set, query_set = eval_frame_sets(splits, cfg)
    device = get_device(cfg.train.device)
    net = random_backbone(cfg)
    out = {}
    mem, qry = extract_features(net, memory_set, device=device), extract_features(net, query_set, device=device)
    out.update({f"{k}_random_init": v for k, v in frame_knn(mem, qry, cfg).items()})
    out.update({f"{k}_pixels": v for k, v in frame_knn(pixel_features(memory_set), pixel_features(query_set), cfg).items()})
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/quickstart.yaml")
    p.add_argument("--styles", nargs="+", default=list(STYLES))
    p.add_argument("--runs", nargs="+", default=["sgd"])
    p.add_argument("--floors-only", action="store_true")
    p.add_argument("--data-root", default="data/calibration")
    p.add_argument("--out", default="benchmarks/results/calibration.jsonl")
    p.add_argument("overrides", nargs="*", help="extra key=value overrides for every run")
    args = p.parse_args()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for style_name in args.styles:
        root = Path(args.data_root) / style_name
        data = [f"data.source=manifest", f"data.root={root}"]
        sizes = load_config(args.config, data + args.overrides).data  # the config's data sizes
        make_default_dataset(root, style=STYLES[style_name], num_train=sizes.num_train, num_test=sizes.num_test,
                             frames_per_video=tuple(sizes.frames_per_video), size=sizes.size, seed=sizes.seed,
                             workers=2)
        runs = [None] if args.floors_only else args.runs
        for run in runs:
            tic = time.perf_counter()
            overrides = data + args.overrides + (RUNS[run] if run else [])
            cfg = load_config(args.config, overrides + [f"run_dir=runs/calibration/{style_name}_{run}"])
            if run is None:
                result = floors(cfg)
            else:
                s = run_main_job(cfg, progress=False)
                result = {k: v for k, v in s.items() if k.startswith("knn_top") or k in ("train_seconds",)}
                result["final"] = {k: round(v, 4) for k, v in (s["final_train_stats"] or {}).items()
                                   if k in ("loss", "intra_top1", "cycle_rate", "support_entropy")}
            row = {"style": style_name, "run": run, "overrides": overrides, "seconds": round(time.perf_counter() - tic, 1),
                   **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in result.items()}}
            print(json.dumps(row), flush=True)
            with open(out, "a") as f:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
