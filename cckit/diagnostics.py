"""Diagnostics of what the cross-video cycle does, as pure functions of embeddings and labels.

They answer, for a set of embeddings: is the head spread over many directions or squeezed into a
few (:func:`effective_rank`)? Does the soft nearest neighbour land on frames of the query's class
(:func:`neighbour_class_purity`)? Does the cycle close more often than chance
(:func:`cycle_rate_chance`), and does the back-ranking return to the query's own video
(:func:`own_video_return`)? :func:`cycle_diagnostics` computes them all for one model on fixed
frames; the trainer logs them with the kNN monitor.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .losses import soft_nearest_neighbor


def effective_rank(x: torch.Tensor) -> float:
    """``exp(H(p))`` with ``p`` the normalised squared singular values of the centred (N, D) ``x``.

    D for embeddings spread evenly over D directions, 1 when they vary along a single direction
    (Roy & Vetterli 2007, on the covariance spectrum). 0 for a constant set.
    """
    x = x.double() - x.double().mean(0, keepdim=True)
    s2 = torch.linalg.svdvals(x) ** 2
    total = s2.sum()
    if total <= 0:
        return 0.0
    p = s2 / total
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def neighbour_class_purity(weights: torch.Tensor, support_labels: torch.Tensor, query_labels: torch.Tensor) -> float:
    """Mean share of the soft-neighbour weight ``w`` (N, M) on support rows of the query's class.

    Chance is the class frequency in the support set (≈ 1 / classes for balanced classes).
    """
    same = (query_labels[:, None] == support_labels[None, :]).to(weights.dtype)  # N x M
    return float((weights * same).sum(1).mean())


def video_spread(features: torch.Tensor, video_ids: torch.Tensor) -> float:
    """Mean cosine distance between two frames of one video over the mean between frames of
    different videos: 1 when the features do not tell videos apart, near 0 when each video's frames
    coincide (the features encode the video: its background, colours, digit instance).
    """
    f = F.normalize(features.double(), dim=1)
    distance = 1.0 - f @ f.t()
    same = video_ids[:, None] == video_ids[None, :]
    within = same & ~torch.eye(len(f), dtype=torch.bool, device=f.device)
    if not within.any() or same.all():
        raise ValueError("video_spread needs two frames of some video and frames of two videos")
    return float(distance[within].mean() / distance[~same].mean())


def cycle_rate_chance(candidates: torch.Tensor | int) -> float:
    """Chance value of the rank-1 cycle rate: the mean of ``1 / c`` over queries with ``c``
    candidates each (the positive plus the unmasked back negatives)."""
    c = torch.as_tensor(candidates, dtype=torch.float64)
    return float((1.0 / c).mean())


def own_video_return(nn: torch.Tensor, candidates: torch.Tensor, candidate_videos: torch.Tensor,
                     query_videos: torch.Tensor, exclude: torch.Tensor | None = None) -> float:
    """Fraction of soft neighbours ``nn`` (N, D) whose best match among ``candidates`` (C, D) is a
    frame of the query's own video (``candidate_videos`` (C,), ``query_videos`` (N,)); ``exclude``
    (N, C) bool leaves candidates out for a query (e.g. the query frame itself)."""
    sims = nn @ candidates.t()  # N x C
    if exclude is not None:
        sims = sims.masked_fill(exclude, float("-inf"))
    best = sims.argmax(1)  # N
    return float((candidate_videos[best] == query_videos).double().mean())


@torch.no_grad()
def cycle_diagnostics(model, frames: torch.Tensor, labels: torch.Tensor, videos: torch.Tensor, *,
                      support_size: int, nn_temperature: float, seed: int = 0, batch_size: int = 512,
                      support_videos: torch.Tensor | None = None) -> dict:
    """The diagnostics of one model on fixed frames (evaluation mode, modes restored).

    ``frames`` (F, 3, S, S) with their class ``labels`` and ``videos``. A fixed half of the videos
    (drawn from ``seed``, or the given ``support_videos``) serves as the support bank, the other half as queries, so no query sees
    its own video in the support. For each query: the soft neighbour in ``support_size`` support
    frames (``T_nn``), then the back-ranking against one other frame of its own video among all
    query-side frames of other videos.

    Returns ``rank_backbone``, ``rank_intra``, ``rank_cycle`` (effective ranks over all frames), ``purity_intra``,
    ``purity_cycle`` (class share of ``w`` with each head) and ``purity_chance``,
    ``cycle_rate`` and ``cycle_rate_chance``, ``own_video_return``, ``support_entropy`` and
    ``support_entropy_max`` (log M).
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    hs, zs, cs = [], [], []
    for start in range(0, len(frames), batch_size):
        x = frames[start:start + batch_size].to(device)
        h = model.encoder.backbone(x)
        z, c = model.encoder.embed(h)  # one backbone pass for the features and both heads
        hs.append(h.float().cpu()), zs.append(z.float().cpu()), cs.append(c.float().cpu())
    model.train(was_training)
    h, z, c = torch.cat(hs), torch.cat(zs), torch.cat(cs)
    gen = torch.Generator().manual_seed(seed)
    unique = videos.unique()
    if support_videos is None:
        support_videos = unique[torch.randperm(len(unique), generator=gen)[:len(unique) // 2]]
    in_support = torch.isin(videos, support_videos)
    rows = torch.nonzero(in_support).squeeze(1)
    rows = rows[torch.randperm(len(rows), generator=gen)[:support_size]]
    queries = torch.nonzero(~in_support).squeeze(1)
    out = {"rank_backbone": effective_rank(h), "rank_intra": effective_rank(z), "rank_cycle": effective_rank(c)}
    for name, emb in (("intra", z), ("cycle", c)):
        _, w = soft_nearest_neighbor(emb[queries], emb[rows], nn_temperature)
        out[f"purity_{name}"] = neighbour_class_purity(w, labels[rows], labels[queries])
    out["purity_chance"] = float((labels[queries][:, None] == labels[rows][None, :]).double().mean())
    nn, w = soft_nearest_neighbor(c[queries], c[rows], nn_temperature)
    out["support_entropy"] = float(-(w * w.clamp_min(1e-12).log()).sum(1).mean())
    out["support_entropy_max"] = math.log(len(rows))
    # back-ranking: each query's positive is another query-side frame of its video; candidates
    # are that frame plus every query-side frame of other videos
    qv = videos[queries]
    same = qv[:, None] == qv[None, :]  # Q x Q
    same.fill_diagonal_(False)
    has_pos = same.any(1)
    pos = same.float().argmax(1)  # the first other frame of the video
    logits = nn @ c[queries].t()  # Q x Q
    other = qv[:, None] != qv[None, :]
    allowed = other | F.one_hot(pos, len(queries)).bool()
    hits = logits.masked_fill(~allowed, float("-inf")).argmax(1) == pos
    out["cycle_rate"] = float(hits[has_pos].double().mean())
    out["cycle_rate_chance"] = cycle_rate_chance(allowed[has_pos].sum(1))
    keep = torch.nonzero(has_pos).squeeze(1)
    out["own_video_return"] = own_video_return(nn[keep], c[queries], qv, qv[keep],
                                               exclude=F.one_hot(keep, len(queries)).bool())
    return out
