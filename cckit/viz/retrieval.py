"""Nearest-neighbour retrieval grids: which training frames a test frame sits next to."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .bank import FrameBank
from .embedding import SPACE_LABELS
from .images import BAD_COLOUR, OK_COLOUR, new_figure, show_image


def nearest_neighbors(memory: torch.Tensor, queries: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k memory rows of each query by cosine similarity: ``(indices (N, k), similarities (N, k))``."""
    sims = F.normalize(queries.float(), dim=1) @ F.normalize(memory.float(), dim=1).t()  # N x M
    top = sims.topk(min(k, memory.shape[0]), dim=1)
    return top.indices, top.values


def retrieval_grid_figure(query_bank: FrameBank, memory_bank: FrameBank, query_rows, *, k: int = 8,
                          space: str = "features"):
    """One row per query frame: the frame, then its k nearest memory frames (green: same class).

    Titles give the cosine similarity and the class; the row label gives the kNN vote of the row.
    """
    query_rows = [int(r) for r in query_rows]
    index, sims = nearest_neighbors(memory_bank.space(space), query_bank.space(space)[query_rows], k)
    k = index.shape[1]
    fig = new_figure(1.35 * (k + 1) + 0.3, 1.65 * len(query_rows) + 0.5, layout="constrained")
    axes = fig.subplots(len(query_rows), k + 1, squeeze=False)
    for i, q in enumerate(query_rows):
        qlabel = int(query_bank.labels[q])
        show_image(axes[i, 0], query_bank.images[q], f"query · class {query_bank.class_name(qlabel)}", border="black")
        axes[i, 0].set_ylabel(f"test video {int(query_bank.video_ids[q])}", fontsize=8)
        for j in range(k):
            row = int(index[i, j])
            label = int(memory_bank.labels[row])
            show_image(axes[i, j + 1], memory_bank.images[row],
                       f"#{j + 1} cos {float(sims[i, j]):.2f}\nclass {memory_bank.class_name(label)}",
                       border=OK_COLOUR if label == qlabel else BAD_COLOUR)
    fig.suptitle(f"{memory_bank.name}: {k} nearest training frames of each test frame ({SPACE_LABELS.get(space, space)}; green = same class)",
                 fontsize=10)
    return fig
