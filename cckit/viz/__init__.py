"""Views of what CycleContrast learns: positive pairs, cycle matches, embedding maps, curves, evaluation.

Every function returns a matplotlib Figure (made outside pyplot, so nothing is shown twice) or an
ipywidgets widget; notebooks display them, tests check the numbers behind them.
"""
from .bank import FrameBank, frame_bank
from .browser import CycleBrowser
from .curves import floor_lines, key_encoders_figure, read_metrics, training_curves_figure
from .cycle import CycleMatch, cycle_consistency, cycle_match, cycle_match_figure
from .embedding import compare_embeddings_figure, embed_2d, embedding_figure
from .evaluation import (KnnExplorer, confusion_matrix, confusion_matrix_figure, linear_probe_predictions,
                         per_class_accuracy, per_class_accuracy_figure)
from .images import figure_png
from .pairs import positive_pairs, positive_pairs_figure, video_strips_figure
from .retrieval import nearest_neighbors, retrieval_grid_figure

__all__ = [
    "FrameBank", "frame_bank", "CycleBrowser", "read_metrics", "training_curves_figure", "floor_lines", "key_encoders_figure", "CycleMatch",
    "cycle_consistency", "cycle_match", "cycle_match_figure", "compare_embeddings_figure", "embed_2d",
    "embedding_figure", "KnnExplorer", "confusion_matrix", "confusion_matrix_figure", "linear_probe_predictions",
    "per_class_accuracy", "per_class_accuracy_figure", "figure_png", "positive_pairs", "positive_pairs_figure",
    "video_strips_figure", "nearest_neighbors", "retrieval_grid_figure",
]
