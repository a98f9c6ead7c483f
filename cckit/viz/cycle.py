"""Cross-video cycle matches of a frame bank: where the soft neighbour of a query goes and whether it comes back.

The view follows the training objective (DESIGN.md, "Cycle loss") on the frames of a bank instead
of the queue, so every row has an image: a random support set U of M bank rows is drawn once;
for query i the rows of its own video are removed from U (the paper's "neighbours from other
videos"), ``w = softmax(c(x_i) · Uᵀ / T_nn)`` and ``n = normalize(w · U)``. Back: ``n`` ranks the
candidates, every bank row outside U plus the other frames of the query's own video (as the
training negatives are the queue rows outside U and the positive is another frame of the video).
The cycle *returns* when the best-ranked candidate is from the query's own video.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ..losses import soft_nearest_neighbor
from ..objective import draw_support
from .bank import FrameBank
from .images import BAD_COLOUR, OK_COLOUR, new_figure, show_image


@dataclass
class CycleMatch:
    """One query's cycle through a support set and back (indices are bank rows)."""
    query: int
    support: torch.Tensor  # (M_i,) support rows from other videos, by weight, highest first
    weights: torch.Tensor  # (M_i,) soft-NN weights w in that order (sum to 1)
    nn: torch.Tensor  # (D,) soft nearest neighbour n
    candidates: torch.Tensor  # (C_i,) candidate rows ranked by n · candidate, best first
    scores: torch.Tensor  # (C_i,) n · candidate in that order
    own_video: torch.Tensor  # (C_i,) bool, the candidate is a frame of the query's video
    own_video_rank: int  # 1-based rank of the first own-video candidate (0: the video has no other frame)
    returns: bool  # the cycle closes: the best candidate is from the query's video
    nn_temperature: float
    support_size: int  # M, rows drawn before the query's own video is removed


def support_rows(num_rows: int, support_size: int, seed: int) -> torch.Tensor:
    """(N,) bool mask of the M rows drawn as the support set U (the trainer's ``draw_support``)."""
    return draw_support(num_rows, min(support_size, num_rows), torch.Generator().manual_seed(seed), "cpu")


def cycle_match(bank: FrameBank, query: int, *, support_size: int = 256, nn_temperature: float = 0.1,
                seed: int = 0, space: str = "cycle") -> CycleMatch:
    """The cycle of one bank row: soft neighbour in U minus its own video, then the ranking back."""
    emb = bank.space(space)  # N x D
    in_support = support_rows(len(bank), support_size, seed)
    same = bank.video_ids == bank.video_ids[query]  # N
    support = (in_support & ~same).nonzero().flatten()  # M_i
    nn, w = soft_nearest_neighbor(emb[query:query + 1], emb[support], nn_temperature)  # 1 x D, 1 x M_i
    order = torch.argsort(w[0], descending=True, stable=True)
    is_candidate = ~in_support | same
    is_candidate[query] = False
    candidates = is_candidate.nonzero().flatten()  # C_i
    scores = emb[candidates] @ nn[0]  # C_i
    rank = torch.argsort(scores, descending=True, stable=True)
    candidates, scores = candidates[rank], scores[rank]
    own = same[candidates]
    own_rank = int(own.nonzero()[0, 0]) + 1 if own.any() else 0
    return CycleMatch(query=int(query), support=support[order], weights=w[0, order], nn=nn[0], candidates=candidates,
                      scores=scores, own_video=own, own_video_rank=own_rank, returns=own_rank == 1,
                      nn_temperature=nn_temperature, support_size=support_size)


@torch.no_grad()
def cycle_consistency(bank: FrameBank, *, support_size: int = 256, nn_temperature: float = 0.1, seed: int = 0,
                      space: str = "cycle", chunk_size: int = 1024) -> torch.Tensor:
    """(N,) bool: for every bank row as the query, whether its cycle returns (same as :func:`cycle_match`)."""
    emb = bank.space(space)  # N x D
    n = len(bank)
    in_support = support_rows(n, support_size, seed)
    out = []
    for start in range(0, n, chunk_size):
        rows = torch.arange(start, min(start + chunk_size, n))
        same = bank.video_ids[rows, None] == bank.video_ids[None, :]  # b x N
        not_support = ~in_support[None, :] | same  # b x N
        nn, _ = soft_nearest_neighbor(emb[rows], emb, nn_temperature, mask=not_support)  # b x D
        sims = (nn @ emb.t()).masked_fill(~not_support, float("-inf"))  # b x N, candidates only
        sims[torch.arange(len(rows)), rows] = float("-inf")  # the query itself is not a candidate
        out.append(same.gather(1, sims.argmax(1, keepdim=True))[:, 0])
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool)


def _frame_title(bank: FrameBank, row: int) -> str:
    return f"video {int(bank.video_ids[row])} · f{int(bank.frame_indices[row])}\nclass {bank.class_name(int(bank.labels[row]))}"


def cycle_match_figure(bank: FrameBank, match: CycleMatch, *, top_k: int = 5, bars: int = 24):
    """Query, its top-k support frames with weights w, the ranking back of n, and the weight profile.

    One encoding throughout, with its legend in the figure: every frame is framed green when its
    class is the query's and red otherwise; a candidate from the query's own video (where the cycle
    should return) is marked ★ in its title.
    """
    q = match.query
    qlabel = int(bank.labels[q])
    k = max(1, min(top_k, len(match.support), len(match.candidates)))
    fig = new_figure(1.75 * (k + 1), 6.6, layout="constrained")
    grid = fig.add_gridspec(3, k + 1, height_ratios=[1, 1, 0.9])
    show_image(fig.add_subplot(grid[0, 0]), bank.images[q], "query\n" + _frame_title(bank, q), border="black")
    for j in range(k):
        row = int(match.support[j])
        same_class = int(bank.labels[row]) == qlabel
        show_image(fig.add_subplot(grid[0, j + 1]), bank.images[row],
                   f"w = {float(match.weights[j]):.3f}\n" + _frame_title(bank, row),
                   border=OK_COLOUR if same_class else BAD_COLOUR)
    ax = fig.add_subplot(grid[1, 0])
    ax.axis("off")
    mass = float(match.weights[:k].sum())
    ax.text(0.0, 0.5, f"forward: n = normalize(w·U)\n|U| = {len(match.support)} frames\nof other videos\n"
            f"T_nn = {match.nn_temperature:g}\ntop {k} hold {mass:.0%} of w\n\nback: n ranks\n{len(match.candidates)} candidates",
            fontsize=8, va="center", ha="left", transform=ax.transAxes)
    for j in range(k):
        row = int(match.candidates[j])
        own = bool(match.own_video[j])
        same_class = int(bank.labels[row]) == qlabel
        show_image(fig.add_subplot(grid[1, j + 1]), bank.images[row],
                   f"back #{j + 1}: n·c = {float(match.scores[j]):.2f}\n"
                   + ("★ own video" if own else f"video {int(bank.video_ids[row])}") + f" · f{int(bank.frame_indices[row])}"
                   + f"\nclass {bank.class_name(int(bank.labels[row]))}",
                   border=OK_COLOUR if same_class else BAD_COLOUR)
    ax = fig.add_subplot(grid[2, :])
    b = min(bars, len(match.weights))
    colours = [OK_COLOUR if int(bank.labels[int(r)]) == qlabel else BAD_COLOUR for r in match.support[:b]]
    ax.bar(range(1, b + 1), match.weights[:b].numpy(), color=colours)
    ax.set(xlabel=f"support frame, by weight (top {b} of {len(match.weights)}; green = query's class)",
           ylabel="soft-NN weight w", xlim=(0.4, b + 0.6))
    verdict = ("returns to the query's video (rank 1)" if match.returns else
               f"does not return: first own-video frame at rank {match.own_video_rank}" if match.own_video_rank
               else "cannot return: the query's video has no other frame in the bank")
    fig.suptitle(f"{bank.name}: cycle of query {q} {verdict}", fontsize=11)
    fig.legend(handles=[Patch(facecolor="none", edgecolor=OK_COLOUR, linewidth=2, label="the query's class"),
                        Patch(facecolor="none", edgecolor=BAD_COLOUR, linewidth=2, label="another class"),
                        Line2D([], [], linestyle="none", marker="*", color="black",
                               label="the query's own video (where the cycle should return)")],
               loc="outside lower center", ncols=3, fontsize=8, frameon=False)
    return fig
