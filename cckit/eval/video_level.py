"""Video-level recognition: frame features pooled over each video, then kNN and a linear probe.

The video feature is the mean of the video's L2-normalised frame features, L2-normalised again
(the clip-averaging used to evaluate image encoders on UCF101). The frames are the evaluation
frames (``eval.frames_per_video`` evenly spaced per video). UCF101 needs no conversion: its
layout ``<root>/<Class>/v_<Class>_gXX_cYY.avi`` and official split files are read by the data
index (``data.source=videos data.root=.../UCF-101
data.train_list=.../ucfTrainTestlist/trainlist01.txt data.test_list=.../testlist01.txt``; labels
follow ``classInd.txt`` next to the split file).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .knn import knn_accuracy
from .linear import linear_probe


def pool_video_features(features: torch.Tensor, video_ids: torch.Tensor,
                        labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Mean of each video's (normalised) frame features, re-normalised.

    Args:
        features: (N, D) frame features.
        video_ids: (N,) video of each frame.
        labels: (N,) frame labels (constant within a video), optional.

    Returns:
        ``features`` (V, D) L2-normalised, ``video_ids`` (V,) sorted, and ``labels`` (V,) when given.
    """
    ids, inverse = torch.unique(video_ids, return_inverse=True)  # V, N
    frames = F.normalize(features.float(), dim=1)
    sums = torch.zeros(len(ids), frames.shape[1], dtype=frames.dtype).index_add_(0, inverse, frames)
    counts = torch.bincount(inverse, minlength=len(ids)).clamp_min(1)
    out = {"features": F.normalize(sums / counts[:, None], dim=1), "video_ids": ids}
    if labels is not None:
        out["labels"] = torch.zeros(len(ids), dtype=torch.long).scatter_(0, inverse, labels.long())
    return out


def video_level_eval(memory: dict, queries: dict, *, knn_k: tuple[int, ...] = (20,), knn_temperature: float = 0.07,
                     weight_decays: tuple[float, ...] = (1e-4,), max_iter: int = 300) -> dict:
    """kNN and linear-probe accuracy of test videos against train videos.

    Args:
        memory, queries: frame features as :func:`cckit.eval.extract_features` returns them
            (``features``, ``labels``, ``video_ids``) for the train and the test videos.

    Returns:
        ``videos_train``, ``videos_test``, ``knn{k}_top1``/``_top5`` per k, ``linear_top1``,
        ``linear_top5``, ``linear_mean_per_class``, ``linear_weight_decay``.
    """
    mem = pool_video_features(memory["features"], memory["video_ids"], memory["labels"])
    qry = pool_video_features(queries["features"], queries["video_ids"], queries["labels"])
    c = int(max(mem["labels"].max(), qry["labels"].max())) + 1
    out = {"videos_train": len(mem["video_ids"]), "videos_test": len(qry["video_ids"])}
    for k in knn_k:
        acc = knn_accuracy(mem["features"], mem["labels"], qry["features"], qry["labels"], k=k,
                           temperature=knn_temperature, num_classes=c)
        out[f"knn{k}_top1"], out[f"knn{k}_top5"] = acc["top1"], acc["top5"]
    lin = linear_probe(mem["features"], mem["labels"], qry["features"], qry["labels"], weight_decays=weight_decays,
                       num_classes=c, max_iter=max_iter)
    out.update(linear_top1=lin["top1"], linear_top5=lin["top5"], linear_mean_per_class=lin["mean_per_class"],
               linear_weight_decay=lin["weight_decay"])
    return out
