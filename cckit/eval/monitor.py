"""Evaluation during training: the kNN monitor, and BatchNorm statistics estimated on data.

The monitor holds a fixed set of evaluation frames in memory (train frames as the kNN memory,
test frames as queries) and reads the weighted-kNN top-1 of the current backbone in a few
seconds, so one training run draws its own learning curve (as the facebookresearch/moco CIFAR-10
notebook and solo-learn do). It draws no random numbers and leaves the backbone's mode and BN
statistics as they were, so a monitored run trains exactly like an unmonitored one.
"""
from __future__ import annotations

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..utils import autocast
from .knn import knn_accuracy


def stack_frames(dataset, limit: int = 0, *, with_videos: bool = False) -> tuple[torch.Tensor, ...]:
    """Images (N, 3, S, S) and labels (N,) of the first ``limit`` items (0: all) of an EvalFrames set
    (and their video ids (N,) with ``with_videos``)."""
    n = len(dataset) if limit <= 0 else min(limit, len(dataset))
    items = [dataset[i] for i in range(n)]
    out = torch.stack([it[0] for it in items]), torch.tensor([int(it[1]) for it in items])
    return (*out, torch.tensor([int(it[2]) for it in items])) if with_videos else out


@torch.no_grad()
def backbone_features(backbone: nn.Module, images: torch.Tensor, *, batch_size: int = 512,
                      dtype: torch.dtype | None = None) -> torch.Tensor:
    """L2-normalised pooled features (N, d), float32 on the CPU, in eval mode (mode restored)."""
    was_training = backbone.training
    backbone.eval()
    device = next(backbone.parameters()).device
    out = []
    for start in range(0, len(images), batch_size):
        with autocast(device, dtype):
            feats = backbone(images[start:start + batch_size].to(device, non_blocking=True))
        out.append(F.normalize(feats.float(), dim=1).cpu())
    backbone.train(was_training)
    return torch.cat(out)


@torch.no_grad()
def with_estimated_bn(backbone: nn.Module, images: torch.Tensor, *, batch_size: int = 256) -> nn.Module:
    """A copy of ``backbone`` whose BatchNorm running statistics are estimated on ``images``.

    A randomly initialised network keeps BN at mean 0 / var 1, which is not what any trained
    network sees; re-estimating the statistics on data (as after a weight average) gives the
    honest random-init floor. Each statistic is the plain average of its per-batch values over
    near-equal batches of at most ``batch_size`` (one batch: the exact mean and unbiased
    variance). Returns the copy in eval mode; ``backbone`` is untouched.
    """
    net = copy.deepcopy(backbone)
    norms = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over every batch
    net.train()
    device = next(net.parameters()).device
    for chunk in images.tensor_split(max(1, -(-len(images) // batch_size))):  # never a batch of one
        net(chunk.to(device))
    return net.eval()


class KnnMonitor:
    """Weighted-kNN top-1 of fixed test frames against fixed train frames, for a backbone.

    Args:
        memory_set / query_set: EvalFrames of train and test videos (labelled).
        k, temperature: of the weighted kNN (``eval.knn_k[0]``, ``eval.knn_temperature``).
        max_queries: use the first ``max_queries`` test frames (0: all).
    """

    def __init__(self, memory_set, query_set, *, k: int = 20, temperature: float = 0.07, max_queries: int = 0,
                 batch_size: int = 512):
        self.memory, self.memory_labels = stack_frames(memory_set)
        self.queries, self.query_labels, self.query_videos = stack_frames(query_set, max_queries, with_videos=True)
        if (self.memory_labels < 0).any() or (self.query_labels < 0).any():
            raise ValueError("train.knn_every: the kNN monitor needs class labels on every train and test "
                             "video (set train.knn_every=0 for unlabelled data)")
        self.k, self.temperature, self.batch_size = k, temperature, batch_size
        self.num_classes = int(max(self.memory_labels.max(), self.query_labels.max())) + 1

    def __call__(self, backbone: nn.Module, dtype: torch.dtype | None = None) -> float:
        memory = backbone_features(backbone, self.memory, batch_size=self.batch_size, dtype=dtype)
        queries = backbone_features(backbone, self.queries, batch_size=self.batch_size, dtype=dtype)
        return knn_accuracy(memory, self.memory_labels, queries, self.query_labels, k=self.k,
                            temperature=self.temperature, num_classes=self.num_classes)["top1"]

    def diagnostics(self, model: nn.Module, *, support_size: int, nn_temperature: float) -> dict[str, float]:
        """:func:`cckit.diagnostics.cycle_diagnostics` of ``model`` on the test frames, keys prefixed
        ``diag_`` (half of the test videos form the support bank; no random numbers are drawn from
        the global generators, so a monitored run trains exactly as an unmonitored one)."""
        from ..diagnostics import cycle_diagnostics

        out = cycle_diagnostics(model, self.queries, self.query_labels, self.query_videos, support_size=support_size,
                                nn_temperature=nn_temperature, batch_size=self.batch_size)  # M capped by the bank
        return {f"diag_{k}": v for k, v in out.items()}
