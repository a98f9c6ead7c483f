"""Evaluation of frozen features: weighted kNN, linear probe, video-level recognition and SiamFC
tracking with OTB metrics (see :mod:`cckit.eval.suite` for the protocols)."""
from __future__ import annotations

import torch

from ..config import Config
from ..data.dataset import EvalFrames, FrameStore, VideoRecord
from ..model import build_backbone
from .features import extract_features, extract_features_cached, feature_maps, pixel_features
from .knn import knn_accuracy, knn_predict, knn_scores
from .linear import fit_logistic_regression, linear_probe, train_linear_sgd
from .otb import load_otb_sequence, otb_metrics, plot_otb
from .suite import evaluate, knn_sweep
from .tracking import SiamFCConfig, SiamFCTracker, track
from .video_level import pool_video_features, video_level_eval

__all__ = ["knn_predict", "knn_scores", "knn_accuracy", "extract_features", "pixel_features",
           "eval_frame_sets", "frame_knn", "random_backbone",
           "extract_features_cached", "feature_maps", "knn_sweep", "fit_logistic_regression", "linear_probe",
           "train_linear_sgd", "pool_video_features", "video_level_eval", "SiamFCConfig",
           "SiamFCTracker", "track", "otb_metrics", "load_otb_sequence", "plot_otb", "evaluate"]


def eval_frame_sets(splits: dict[str, list[VideoRecord]], cfg: Config) -> tuple[EvalFrames, EvalFrames]:
    """Evaluation frames of the train videos (kNN memory) and test videos (queries), decoded once."""
    sets = []
    for name in ("train", "test"):
        records = splits.get(name) or []
        if not records:
            raise ValueError(f"no '{name}' videos to evaluate on")
        sets.append(EvalFrames(records, cfg.eval.frames_per_video, cfg.data.crop_size,
                               frames=FrameStore(records, cache=True)))
    return sets[0], sets[1]


def frame_knn(memory: dict, queries: dict, cfg: Config) -> dict[str, float]:
    """Weighted kNN of test frames against train frames for every k in ``cfg.eval.knn_k``."""
    num_classes = int(max(memory["labels"].max(), queries["labels"].max())) + 1
    out = {}
    for k in cfg.eval.knn_k:
        acc = knn_accuracy(memory["features"], memory["labels"], queries["features"], queries["labels"],
                           k=k, temperature=cfg.eval.knn_temperature, num_classes=num_classes)
        out[f"knn{k}_top1"], out[f"knn{k}_top5"] = acc["top1"], acc["top5"]
    return out


def random_backbone(cfg: Config, seed: int = 0) -> torch.nn.Module:
    """A randomly initialised backbone of the configured architecture (the random-init floor)."""
    torch.manual_seed(seed)
    net, _ = build_backbone(cfg.model.arch, small_stem=cfg.model.small_stem, width=cfg.model.width)
    return net.eval()
