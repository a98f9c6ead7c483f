"""Frame features of a backbone (or raw pixels) for evaluation."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from ..utils import autocast


@torch.no_grad()
def extract_features(backbone: torch.nn.Module, dataset, *, device: torch.device, batch_size: int = 256,
                     dtype: torch.dtype | None = None, workers: int = 0) -> dict[str, torch.Tensor]:
    """Pooled backbone features of every item of an :class:`EvalFrames` dataset.

    Returns ``features`` (N, d) L2-normalised float32 on the CPU, ``labels``, ``video_ids`` and
    ``frame_indices`` (N,).
    """
    was_training = backbone.training
    backbone.eval().to(device)
    out = {"features": [], "labels": [], "video_ids": [], "frame_indices": []}
    for images, labels, video_ids, frames in DataLoader(dataset, batch_size=batch_size, num_workers=workers):
        with autocast(device, dtype):
            feats = backbone(images.to(device, non_blocking=True))
        out["features"].append(F.normalize(feats.float(), dim=1).cpu())
        out["labels"].append(labels)
        out["video_ids"].append(video_ids)
        out["frame_indices"].append(frames)
    backbone.train(was_training)
    return {k: torch.cat(v) for k, v in out.items()}


def pixel_features(dataset, size: int = 32) -> dict[str, torch.Tensor]:
    """Raw-pixel baseline: each frame resized to ``size`` px, flattened, mean-removed and normalised."""
    feats, labels, vids = [], [], []
    for images, lab, vid, _ in DataLoader(dataset, batch_size=512):
        x = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False).flatten(1)
        feats.append(F.normalize(x - x.mean(1, keepdim=True), dim=1))
        labels.append(lab)
        vids.append(vid)
    return {"features": torch.cat(feats), "labels": torch.cat(labels), "video_ids": torch.cat(vids)}
