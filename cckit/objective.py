"""The training objective, from embeddings and queues to loss terms and diagnostics.

``loss = intra term + λ · cycle term``. All four methods share one trainer; what sets them apart
is described once in :mod:`cckit.methods` (the intra term's positive; whether the cycle term is
added) and read here:

- ``moco_v2``: ``InfoNCE(z(x_q), z_m(x_k), Q_z)`` — positive is the same frame, another crop.
- ``intra_video``: ``InfoNCE(z(x_q), z_m(x_p), Q_z)`` — positive is another frame of the video.
- ``cycle_contrast``: intra_video ``+ λ · L_cycle`` with the cross-video cycle of DESIGN.md.
- ``forward_nn`` (NNCLR-like): positive is the nearest neighbour in Q_z (other videos) of
  ``z_m(x_p)``; no cycle back.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from .config import MethodConfig
from .losses import (contrastive_logits, cross_view_info_nce, cycle_back_loss, cycle_rank1,
                     hard_nearest_neighbor, info_nce, nt_xent, soft_nearest_neighbor, uniformity_loss)
from .methods import get_method


@dataclass(kw_only=True)
class Embeddings:
    """Everything the objective needs for one batch (N videos, D dims); built with keywords only."""
    query_intra: torch.Tensor  # (N, D) z(x_q), with grad
    query_cycle: torch.Tensor  # (N, D) c(x_q), with grad
    key_intra: torch.Tensor  # (N, D) z_m(x_k)
    positive_intra: torch.Tensor | None  # (N, D) z_m(x_p) (None for moco_v2)
    positive_cycle: torch.Tensor | None  # (N, D) c_m(x_p)
    video_ids: torch.Tensor  # (N,)
    key_cycle: torch.Tensor | None = None  # (N, D) c_m(x_k), in-batch negatives of the cycle loss


class Queues(NamedTuple):
    """The two key queues and the video id of each row (K and K_c rows; id -1 = never filled)."""
    intra: torch.Tensor  # (K, D) Q_z, keys of the intra head
    intra_ids: torch.Tensor  # (K,)
    cycle: torch.Tensor  # (K_c, D) keys of the cycle head; the support U is drawn from its rows
    cycle_ids: torch.Tensor  # (K_c,)

    @classmethod
    def of(cls, model) -> "Queues":
        """The queues a :class:`~cckit.model.CycleContrastModel` holds (views, not copies)."""
        return cls(model.queue_intra, model.queue_intra_ids, model.queue_cycle, model.queue_cycle_ids)


def draw_support(queue_size: int, support_size: int, generator: torch.Generator, device) -> torch.Tensor:
    """Boolean (K_c,) mask of the M queue rows forming the support set U (same draw on every rank
    when the generator is seeded identically)."""
    index = torch.randperm(queue_size, generator=generator)[:support_size]
    in_support = torch.zeros(queue_size, dtype=torch.bool)
    in_support[index] = True
    return in_support.to(device)


def with_batch_negatives(negatives: torch.Tensor, mask: torch.Tensor | None, batch_keys: torch.Tensor,
                         video_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Prepend this batch's keys to the queue negatives; keys of the query's own video are masked.

    Keys of the current step all come from the newest momentum encoder while queue rows are
    older. With queue negatives alone a fast-changing encoder can rank its positive first just
    because it is newer — every current key, of any video, then sits closer to the query than
    the queue does and the embeddings collapse. Fresh in-batch negatives close that shortcut.

    Returns ``(N + K, D)`` negatives and an ``(N, N + K)`` mask.
    """
    same = video_ids[:, None] == video_ids[None, :]  # N x N, includes the query itself
    if mask is None:
        mask = torch.zeros(video_ids.shape[0], negatives.shape[0], dtype=torch.bool, device=negatives.device)
    return torch.cat([batch_keys.detach(), negatives]), torch.cat([same, mask], dim=1)


def query_spread(query: torch.Tensor) -> torch.Tensor:
    """Per-dimension std of (N, D) L2-normalised queries times sqrt(D): about 1 for embeddings
    spread over the sphere, 0 when every query points the same way (collapse; SimSiam's measure)."""
    return query.detach().float().std(0).mean() * query.shape[1] ** 0.5


def momentum_intra_term(emb: Embeddings, queues: Queues,
                        cfg: MethodConfig) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The paper's intra term: InfoNCE of z(x_q) against a momentum positive and the queue Q_z."""
    t = cfg.temperature
    queue_intra, queue_intra_ids = queues.intra, queues.intra_ids
    method = get_method(cfg.name)
    negatives = queue_intra.detach()  # K x D
    own_video = None
    if cfg.exclude_own_video:
        # At small scale the queue spans several epochs and holds older keys of the query's own
        # video; as negatives they would contradict the (same-video) positive.
        own_video = emb.video_ids[:, None] == queue_intra_ids[None, :]  # N x K
    if method.positive == "other_crop":
        positive = emb.key_intra
    elif method.positive == "other_frame":
        positive = emb.positive_intra
    else:  # "queue_neighbour"
        if cfg.nn == "hard":
            positive, weights = hard_nearest_neighbor(emb.positive_intra, negatives, own_video)
        else:
            t_nn = cfg.nn_temperature or t
            positive, weights = soft_nearest_neighbor(emb.positive_intra, negatives, t_nn, own_video)
        # The neighbour is a queue row: left among the negatives it would compete with itself (a
        # hard positive then ties with its own copy). Its video's keys are masked out, as the
        # query's own video's are.
        nn_row = weights.argmax(dim=1)  # N
        same_as_nn = queue_intra_ids[None, :] == queue_intra_ids[nn_row][:, None]  # N x K
        same_as_nn |= F.one_hot(nn_row, negatives.shape[0]).bool()  # the row itself (id -1 slots)
        own_video = same_as_nn if own_video is None else own_video | same_as_nn
    positive = positive.detach()
    if cfg.batch_negatives:
        negatives, own_video = with_batch_negatives(negatives, own_video, emb.key_intra, emb.video_ids)
    if cfg.query_negatives:  # the batch's queries repel each other directly (gradient on both sides)
        same = emb.video_ids[:, None] == emb.video_ids[None, :]  # includes the query itself
        own_video = same if own_video is None else torch.cat([same, own_video], dim=1)
        negatives = torch.cat([emb.query_intra, negatives])

    loss_intra = info_nce(emb.query_intra, positive, negatives, t, own_video)
    with torch.no_grad():
        logits = contrastive_logits(emb.query_intra, positive, negatives, t, own_video)  # N x (1+K)
        stats = {"loss_intra": loss_intra.detach(), "intra_top1": (logits.argmax(1) == 0).float().mean(),
                 "query_std": query_spread(emb.query_intra)}
    return loss_intra, stats


def online_intra_term(emb: Embeddings, queues: Queues,
                      cfg: MethodConfig) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The small-scale variant (``method.key_encoder=online``): both views through the online
    encoder, with gradient, and the other samples of the batch as negatives (SimCLR's NT-Xent).

    ``emb.positive_intra`` is the online embedding of the second view (``x_k`` for moco_v2,
    ``x_p`` otherwise). forward_nn replaces each view by its nearest neighbour in Q_z (other
    videos) on the anchor side, as NNCLR does.
    """
    t = cfg.temperature
    q, p = emb.query_intra, emb.positive_intra  # N x D each, with grad
    if get_method(cfg.name).positive == "queue_neighbour":
        queue = queues.intra.detach()
        own = emb.video_ids[:, None] == queues.intra_ids[None, :] if cfg.exclude_own_video else None  # N x K
        near = hard_nearest_neighbor if cfg.nn == "hard" else (
            lambda x, u, m: soft_nearest_neighbor(x, u, cfg.nn_temperature or t, m))
        nn_q, _ = near(q.detach(), queue, own)
        nn_p, _ = near(p.detach(), queue, own)
        loss = 0.5 * (cross_view_info_nce(nn_p, q, t) + cross_view_info_nce(nn_q, p, t))
        with torch.no_grad():
            top1 = ((nn_p @ q.t()).argmax(1) == torch.arange(q.shape[0], device=q.device)).float().mean()
    else:
        loss, top1 = nt_xent(q, p, t)
    return loss, {"loss_intra": loss.detach(), "intra_top1": top1,
                  "query_std": query_spread(q)}


def cycle_term(emb: Embeddings, queues: Queues, cfg: MethodConfig, generator: torch.Generator,
               video_labels: torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """L_cycle (DESIGN.md): the query's soft nearest neighbour in a support set U drawn from the
    cycle queue must pick out the query's own-video positive c_m(x_p) among the other rows.

    With ``cfg.support_oracle`` (a probe, not the paper), ``video_labels`` ((V,) class of each video
    id) also masks the support rows of other classes than the query's, and empty queue slots.

    Returns the loss and ``loss_cycle``, ``cycle_rate`` (rank-1 cycle-consistency) and
    ``support_entropy`` (mean entropy of the neighbour weights w, nats).
    """
    t, t_nn = cfg.temperature, cfg.nn_temperature or cfg.temperature
    in_support = draw_support(queues.cycle.shape[0], cfg.support_size, generator, queues.cycle.device)
    support = queues.cycle[in_support].detach()  # M x D
    cycle_negatives = queues.cycle[~in_support].detach()  # (K_c - M) x D
    mask = neg_mask = None
    if cfg.exclude_own_video:
        same = emb.video_ids[:, None] == queues.cycle_ids[None, :]  # N x K_c
        mask, neg_mask = same[:, in_support], same[:, ~in_support]  # N x M, N x (K_c - M)
    if cfg.support_oracle:
        if video_labels is None:
            raise ValueError("method.support_oracle: needs the class of every video (video_labels)")
        ids = queues.cycle_ids[in_support]
        row_labels = torch.where(ids >= 0, video_labels[ids.clamp_min(0)], -1)  # empty slots: class -1
        other = video_labels[emb.video_ids][:, None] != row_labels[None, :]  # N x M
        mask = other if mask is None else mask | other
    if cfg.batch_negatives:
        keys = emb.key_cycle if emb.key_cycle is not None else emb.positive_cycle
        cycle_negatives, neg_mask = with_batch_negatives(cycle_negatives, neg_mask, keys, emb.video_ids)
    if cfg.nn == "soft":
        loss = cycle_back_loss(emb.query_cycle, emb.positive_cycle, support, cycle_negatives,
                               t, t_nn, support_mask=mask, negative_mask=neg_mask)
    else:
        # Hard NN passes no gradient to the query; kept as an ablation of the soft cycle.
        nn_hard, _ = hard_nearest_neighbor(emb.query_cycle, support, mask)
        loss = info_nce(nn_hard, emb.positive_cycle, cycle_negatives, t, neg_mask)
    with torch.no_grad():
        nn, w = soft_nearest_neighbor(emb.query_cycle, support, t_nn, mask)
        entropy = -(w * torch.log(w.clamp_min(1e-12))).sum(1).mean()
        stats = {"loss_cycle": loss.detach(),
                 "cycle_rate": cycle_rank1(nn, emb.positive_cycle, cycle_negatives, neg_mask),
                 "support_entropy": entropy}
    return loss, stats


def cycle_weight_at(cfg: MethodConfig, step: int) -> float:
    """λ at ``step``: ``cfg.cycle_weight`` inside ``cfg.cycle_steps`` = [start, stop), else 0."""
    start, stop = cfg.cycle_steps
    return cfg.cycle_weight if start <= step and (stop == 0 or step < stop) else 0.0


def compute_objective(emb: Embeddings, queues: Queues, cfg: MethodConfig, generator: torch.Generator,
                      step: int = 0, video_labels: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total loss ``intra + λ · cycle`` (the cycle term only for methods that have it; λ from
    :func:`cycle_weight_at` for ``step``), plus ``cycle_spread_weight`` times the uniformity of the
    cycle-head queries where that weight is > 0, and detached diagnostics for one batch.

    Returns:
        loss: scalar with grad.
        stats: ``loss_intra``, ``intra_top1``, ``query_std`` (spread of the queries, 0 = collapsed),
        the cycle term's stats (:func:`cycle_term`) where it is added, ``loss_spread`` where the
        spread term is, and ``loss``.
    """
    intra = online_intra_term if cfg.key_encoder == "online" else momentum_intra_term
    loss, stats = intra(emb, queues, cfg)
    if get_method(cfg.name).cycle:
        loss_cycle, cycle_stats = cycle_term(emb, queues, cfg, generator, video_labels)
        loss = loss + cycle_weight_at(cfg, step) * loss_cycle
        stats.update(cycle_stats)
        if cfg.cycle_spread_weight > 0:  # keeps c from collapsing onto a few directions (an ablation; paper: none)
            spread = uniformity_loss(emb.query_cycle)
            loss = loss + cfg.cycle_spread_weight * spread
            stats["loss_spread"] = spread.detach()
    stats["loss"] = loss.detach()
    return loss, stats
