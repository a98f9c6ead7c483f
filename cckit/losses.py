"""Pure loss functions of CycleContrast (Wu & Wang, ICCV 2021, arXiv 2105.06463).

Every function takes L2-normalised embeddings and returns tensors; none of them touches a queue,
an optimiser or a module, so a notebook can call them on any tensors it likes.

Symbols follow the paper: ``T`` (τ) is the contrastive temperature, ``U`` the support set drawn
from the cycle queue, ``w`` the soft nearest-neighbour weights.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _full(x: torch.Tensor) -> torch.Tensor:
    """Half-precision logits are promoted to float32 for the softmax; float64 stays float64."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def contrastive_logits(query: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor,
                       temperature: float, negative_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Logits ``[q·p, q·negᵀ] / T`` of InfoNCE; the positive is column 0.

    Args:
        query: (N, D) L2-normalised.
        positive: (N, D) L2-normalised, row i is the positive of query i.
        negatives: (K, D) L2-normalised, shared by all queries.
        temperature: T.
        negative_mask: optional (N, K) bool, True where negative k must not count for query i
            (e.g. older keys of the query's own video); its logit becomes -inf.

    Returns:
        (N, 1 + K) logits.
    """
    pos = (query * positive).sum(dim=1, keepdim=True)  # N x 1
    neg = query @ negatives.t()  # N x K
    if negative_mask is not None:
        neg = neg.masked_fill(negative_mask, float("-inf"))
    return torch.cat([pos, neg], dim=1) / temperature  # N x (1+K)


def info_nce(query: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor,
             temperature: float, negative_mask: torch.Tensor | None = None) -> torch.Tensor:
    """InfoNCE: cross-entropy over ``[q·p, q·negᵀ] / T`` with the positive as label 0.

    ``L = -log exp(q·p/T) / (exp(q·p/T) + Σ_k exp(q·n_k/T))`` averaged over the N queries.
    With all similarities equal it is ``log(K + 1)``.

    Args:
        query: (N, D) L2-normalised.
        positive: (N, D) L2-normalised.
        negatives: (K, D) L2-normalised.
        temperature: T (0.07 in the paper).
        negative_mask: optional (N, K) bool, True where a negative is left out for that query.

    Returns:
        Scalar loss.
    """
    logits = contrastive_logits(query, positive, negatives, temperature, negative_mask)  # N x (1+K)
    labels = torch.zeros(query.shape[0], dtype=torch.long, device=query.device)
    return F.cross_entropy(_full(logits), labels)


def nt_xent(a: torch.Tensor, b: torch.Tensor, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric NT-Xent (SimCLR, Chen et al. 2020) of N pairs ``(a_i, b_i)``, gradient through both.

    Each of the 2N embeddings has its partner as the positive and the other 2N - 2 as
    negatives: ``L = mean_i -log exp(s_i,p(i) / T) / Σ_{j≠i} exp(s_ij / T)`` over ``[a; b]``.
    With all similarities equal it is ``log(2N - 1)``.

    Args:
        a, b: (N, D) L2-normalised; row i of ``a`` and of ``b`` are two views of sample i.
        temperature: T.

    Returns:
        ``(loss, top1)``: scalar loss and the fraction of the 2N rows whose best match is the partner.
    """
    n = a.shape[0]
    z = torch.cat([a, b])  # 2N x D
    sims = _full(z @ z.t() / temperature).fill_diagonal_(float("-inf"))  # 2N x 2N, no self-match
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    with torch.no_grad():
        top1 = (sims.argmax(1) == target).float().mean()
    return F.cross_entropy(sims, target), top1


def cross_view_info_nce(anchors: torch.Tensor, candidates: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE of anchor i against all N candidates, candidate i the positive (NNCLR's loss).

    ``L = mean_i -log exp(a_i·c_i / T) / Σ_j exp(a_i·c_j / T)``; anchors and candidates (N, D)
    L2-normalised. Gradient reaches whichever side requires it.
    """
    logits = _full(anchors @ candidates.t() / temperature)  # N x N
    return F.cross_entropy(logits, torch.arange(anchors.shape[0], device=anchors.device))


def soft_nearest_neighbor(query: torch.Tensor, support: torch.Tensor, temperature: float,
                          mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft nearest neighbour of each query in a support set (the forward half of the cycle).

    ``w = softmax(q · Uᵀ / T_nn)``, ``n = normalize(w · U)``.

    Args:
        query: (N, D) L2-normalised.
        support: (M, D) L2-normalised rows of the cycle queue (U).
        temperature: T_nn.
        mask: optional (N, M) bool, True where support row j must not be used by query i
            (rows from the query's own video). A query whose whole row is masked gets zero weights.

    Returns:
        nn: (N, D) L2-normalised soft neighbours.
        weights: (N, M) soft-NN weights w, rows summing to 1.
    """
    logits = query @ support.t() / temperature  # N x M
    if mask is not None:
        logits = logits.masked_fill(mask, float("-inf"))
    weights = torch.softmax(_full(logits), dim=1)
    weights = torch.nan_to_num(weights, nan=0.0)  # fully masked row -> zeros, not NaN
    nn = F.normalize(weights.to(support.dtype) @ support, dim=1)  # N x D
    return nn, weights


def hard_nearest_neighbor(query: torch.Tensor, support: torch.Tensor,
                          mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Hard nearest neighbour (argmax of ``q · Uᵀ``); returns ``(nn (N, D), one-hot weights (N, M))``.

    No gradient reaches the query through a hard neighbour: used by ``forward_nn`` (NNCLR-like)
    and the hard-NN ablation, where the neighbour serves as a target.
    """
    sims = query @ support.t()  # N x M
    if mask is not None:
        sims = sims.masked_fill(mask, float("-inf"))
    index = sims.argmax(dim=1)
    weights = F.one_hot(index, support.shape[0]).to(query.dtype)
    return support[index], weights


def cycle_back_loss(query: torch.Tensor, positive: torch.Tensor, support: torch.Tensor,
                    negatives: torch.Tensor, temperature: float,
                    nn_temperature: float | None = None,
                    support_mask: torch.Tensor | None = None,
                    negative_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-video cycle-consistency loss.

    Forward: soft nearest neighbour ``n`` of the query in the support set U (other videos).
    Backward: ``L_cycle = InfoNCE(q = n, positive, negatives, T)`` — the neighbour must find its
    way back to the query's own video. Support and negatives carry no gradient (they are queue
    rows), so the model learns only through the weights ``w``.

    Args:
        query: (N, D) L2-normalised cycle-head embedding c(x_q).
        positive: (N, D) L2-normalised momentum embedding c_m(x_p) of another frame of the video.
        support: (M, D) L2-normalised support set U.
        negatives: (K', D) L2-normalised cycle-queue rows not in U.
        temperature: T of the backward InfoNCE.
        nn_temperature: T_nn of the soft neighbour (defaults to ``temperature``).
        support_mask: optional (N, M) bool, True where support row j is from query i's own video.
        negative_mask: optional (N, K') bool, True where a negative is left out for query i.

    Returns:
        Scalar loss.
    """
    nn_temperature = temperature if nn_temperature is None else nn_temperature
    nn, _ = soft_nearest_neighbor(query, support.detach(), nn_temperature, support_mask)
    return info_nce(nn, positive.detach(), negatives.detach(), temperature, negative_mask)


def uniformity_loss(x: torch.Tensor, t: float = 2.0) -> torch.Tensor:
    """Uniformity of L2-normalised rows (Wang & Isola, ICML 2020): ``log mean_{i<j} exp(-t ||x_i - x_j||²)``.

    Lowest when the rows spread evenly over the sphere; 0 when they all coincide, or when there
    are fewer than two rows (no pair: nothing to spread). ``x``: (N, D).
    """
    if x.shape[0] < 2:
        return _full(x).sum() * 0.0
    return torch.pdist(_full(x)).pow(2).mul(-t).exp().mean().log()


def cycle_rank1(query_nn: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor,
                negative_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Fraction of soft neighbours whose best match among ``[positive, negatives]`` is the positive.

    This is the cycle-consistency rate: the cycle q -> n -> back closes on the query's own video at
    rank 1. Returns a 0-dim float tensor.
    """
    logits = contrastive_logits(query_nn, positive, negatives, 1.0, negative_mask)  # N x (1+K)
    return (logits.argmax(dim=1) == 0).float().mean()
