"""Frame features of a backbone (or raw pixels) for evaluation: pooled vectors, cached on disk, and
intermediate feature maps for tracking."""
from __future__ import annotations

from pathlib import Path

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


LAYERS = ("layer1", "layer2", "layer3", "layer4")


def feature_maps(backbone: torch.nn.Module, images: torch.Tensor, layer: str = "layer2") -> torch.Tensor:
    """Intermediate feature map of a torchvision ResNet backbone, for dense tasks such as tracking.

    Args:
        backbone: a ResNet (``conv1, bn1, relu, maxpool, layer1..layer4``), e.g. from
            :func:`cckit.checkpoint.load_backbone`.
        images: (N, 3, H, W) normalised images on the backbone's device.
        layer: the last stage to run, ``"layer1"`` .. ``"layer4"``.

    Returns:
        (N, C, H / s, W / s) float32 map; s is :func:`feature_stride` (4, 8, 16, 32 for layer1..4
        with the standard stem, 1, 2, 4, 8 with the small one).
    """
    if layer not in LAYERS:
        raise ValueError(f"layer must be one of {', '.join(LAYERS)}, got {layer!r}")
    missing = [n for n in ("conv1", "bn1", "relu", "maxpool", *LAYERS) if not hasattr(backbone, n)]
    if missing:
        raise ValueError(f"feature_maps needs a torchvision ResNet backbone (missing {', '.join(missing)})")
    x = backbone.maxpool(backbone.relu(backbone.bn1(backbone.conv1(images))))
    for name in LAYERS[:LAYERS.index(layer) + 1]:
        x = getattr(backbone, name)(x)
    return x.float()


@torch.no_grad()
def feature_stride(backbone: torch.nn.Module, layer: str = "layer2", probe_size: int = 64) -> int:
    """Total stride of :func:`feature_maps` at ``layer``, measured on a probe input."""
    device = next(backbone.parameters()).device
    was_training = backbone.training
    out = feature_maps(backbone.eval(), torch.zeros(1, 3, probe_size, probe_size, device=device), layer)
    backbone.train(was_training)
    return max(1, round(probe_size / out.shape[-1]))


def extract_features_cached(backbone: torch.nn.Module, dataset, *, device: torch.device,
                            cache_dir: str | Path | None, weights_id: str | None = None,
                            batch_size: int = 256) -> tuple[dict[str, torch.Tensor], bool]:
    """:func:`extract_features` through the on-disk cache of :mod:`cckit.eval.cache`.

    Args:
        weights_id: identity of the weights (e.g. ``file_fingerprint(checkpoint)``); None hashes
            the backbone's state dict (:func:`module_fingerprint`).
        cache_dir: folder of cache entries; None computes without caching.

    Returns:
        ``(features dict as extract_features returns it, cache_hit)``.
    """
    from .cache import cache_key, cached, dataset_fingerprint, module_fingerprint

    if cache_dir is None:
        return extract_features(backbone, dataset, device=device, batch_size=batch_size), False
    key = cache_key("features-v1", weights_id or module_fingerprint(backbone), dataset_fingerprint(dataset))
    return cached(cache_dir, key, lambda: extract_features(backbone, dataset, device=device, batch_size=batch_size))
