"""Weighted kNN classification on L2-normalised features (InstDisc / MoCo protocol)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def knn_scores(memory: torch.Tensor, memory_labels: torch.Tensor, queries: torch.Tensor, *, k: int = 20,
               temperature: float = 0.07, num_classes: int | None = None, chunk_size: int = 1024) -> torch.Tensor:
    """Class scores of a weighted kNN: each of the k nearest memory rows votes ``exp(sim / T)``.

    Args:
        memory: (M, D) features (normalised here).
        memory_labels: (M,) int labels in [0, C).
        queries: (N, D) features (normalised here).
        k: neighbours (clipped to M).
        temperature: T of the votes.
        num_classes: C (default: max label + 1).
        chunk_size: queries per block, so an (N, M) similarity matrix is never held at once
            (1M x 128 memory with 1024-query chunks needs ~4 GB of similarities per block at most).

    Returns:
        (N, C) summed vote weights.
    """
    memory = F.normalize(memory.float(), dim=1)
    queries = F.normalize(queries.float().to(memory.device), dim=1)
    memory_labels = memory_labels.to(memory.device).long()
    c = int(num_classes if num_classes is not None else int(memory_labels.max()) + 1)
    k = min(k, memory.shape[0])
    out = []
    # one similarity block reused by every chunk: a fresh (chunk x M) tensor per chunk costs a page
    # fault per 4 KB on a CPU (~20 % of the whole kNN at 50k x 128, benchmarks/knn_speed.py)
    block = torch.empty(min(chunk_size, queries.shape[0]), memory.shape[0], device=memory.device)
    memory_t = memory.t()
    for start in range(0, queries.shape[0], chunk_size):
        chunk = queries[start:start + chunk_size]
        sims = torch.mm(chunk, memory_t, out=block[:chunk.shape[0]])  # n x M
        top_sims, top_idx = sims.topk(k, dim=1)  # n x k
        votes = (top_sims / temperature).exp()
        scores = torch.zeros(sims.shape[0], c, device=memory.device)
        scores.scatter_add_(1, memory_labels[top_idx], votes)  # n x C
        out.append(scores)
    return torch.cat(out) if out else torch.zeros(0, c)


def knn_predict(memory: torch.Tensor, memory_labels: torch.Tensor, queries: torch.Tensor, *, k: int = 20,
                temperature: float = 0.07, num_classes: int | None = None, chunk_size: int = 1024) -> torch.Tensor:
    """(N,) predicted labels of a weighted kNN (see :func:`knn_scores`)."""
    return knn_scores(memory, memory_labels, queries, k=k, temperature=temperature, num_classes=num_classes,
                      chunk_size=chunk_size).argmax(dim=1)


def knn_accuracy(memory, memory_labels, queries, query_labels, *, k=20, temperature=0.07, num_classes=None) -> dict:
    """Top-1 and top-5 accuracy of the weighted kNN."""
    scores = knn_scores(memory, memory_labels, queries, k=k, temperature=temperature, num_classes=num_classes)
    query_labels = query_labels.to(scores.device).long()
    top = scores.topk(min(5, scores.shape[1]), dim=1).indices
    return {"top1": float((top[:, 0] == query_labels).float().mean()),
            "top5": float((top == query_labels[:, None]).any(1).float().mean())}
