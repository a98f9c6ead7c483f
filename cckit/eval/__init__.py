"""Evaluation of frozen features: weighted kNN, linear probe, video-level recognition and SiamFC
tracking with OTB metrics (see :mod:`cckit.eval.suite` for the protocols)."""
from __future__ import annotations

from .features import extract_features, extract_features_cached, feature_maps, pixel_features
from .knn import knn_accuracy, knn_predict, knn_scores
from .linear import fit_logistic_regression, linear_probe, train_linear_sgd
from .otb import load_otb_sequence, otb_metrics, plot_otb
from .suite import eval_frame_sets, evaluate, feature_metrics, frame_knn_metrics, knn_sweep
from .tracking import SiamFCConfig, SiamFCTracker, track
from .video_level import pool_video_features, video_level_eval

__all__ = ["knn_predict", "knn_scores", "knn_accuracy", "extract_features", "pixel_features",
           "eval_frame_sets", "frame_knn_metrics", "feature_metrics",
           "extract_features_cached", "feature_maps", "knn_sweep", "fit_logistic_regression", "linear_probe",
           "train_linear_sgd", "pool_video_features", "video_level_eval", "SiamFCConfig",
           "SiamFCTracker", "track", "otb_metrics", "load_otb_sequence", "plot_otb", "evaluate"]
