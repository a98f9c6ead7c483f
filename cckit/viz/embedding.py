"""Embedding maps: UMAP (umap-learn) of frame features, with t-SNE and PCA as fallbacks."""
from __future__ import annotations

import warnings

import matplotlib
import numpy as np
import torch
from matplotlib.offsetbox import AnnotationBbox, OffsetImage

from ..diagnostics import video_spread
from .bank import FrameBank
from .images import new_figure

METHOD_LABELS = {"umap": "UMAP", "tsne": "t-SNE", "pca": "PCA"}
SPACE_LABELS = {"features": "backbone features", "intra": "intra head z", "cycle": "cycle head c"}


def embed_2d(features, *, method: str = "umap", seed: int = 0, n_neighbors: int = 15,
             min_dist: float = 0.1) -> tuple[np.ndarray, str]:
    """(N, 2) map of (N, d) features and the method actually used.

    ``method`` is ``"umap"`` (cosine metric), ``"tsne"`` or ``"pca"``. UMAP falls back to t-SNE
    when umap-learn is not installed, and both fall back to PCA when there are too few points
    for a neighbourhood graph (fewer than 8).
    """
    x = torch.as_tensor(features).float().cpu().numpy()
    n = len(x)
    if method not in METHOD_LABELS:
        raise ValueError(f"method must be one of {', '.join(METHOD_LABELS)}, got {method!r}")
    if n < 8:
        method = "pca"
    if method == "umap":
        try:
            import umap
        except ImportError:
            method = "tsne"
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # n_jobs vs random_state, spectral-init notices on tiny graphs
                reducer = umap.UMAP(n_neighbors=min(n_neighbors, n - 1), min_dist=min_dist, metric="cosine",
                                    random_state=seed)
                return np.asarray(reducer.fit_transform(x)), "umap"
    if method == "tsne":
        from sklearn.manifold import TSNE
        return TSNE(perplexity=min(30.0, (n - 1) / 3), init="pca", random_state=seed).fit_transform(x), "tsne"
    from sklearn.decomposition import PCA
    return PCA(n_components=2, random_state=seed).fit_transform(x), "pca"


def thumbnail_points(coords: np.ndarray, count: int, *, gap=(0.07, 0.07), seed: int = 0) -> list[int]:
    """Up to ``count`` indices of ``coords`` (N, 2), visited in a random order and kept only when
    no kept point lies within ``gap`` (x, y: fractions of the map's extent) on both axes, where
    their boxes would overlap. Dense clusters get one thumbnail, not a pile; fewer than ``count``
    come back when the map is full."""
    coords = np.asarray(coords, dtype=np.float64)
    extent = np.ptp(coords, axis=0) if len(coords) else np.ones(2)
    limit = np.asarray(gap, dtype=np.float64) * np.where(extent > 0, extent, 1.0)
    kept: list[int] = []
    for j in np.random.default_rng(seed).permutation(len(coords)):
        if len(kept) == count:
            break
        if not kept or (np.abs(coords[kept] - coords[j]) >= limit).any(axis=1).all():
            kept.append(int(j))
    return kept


def embedding_figure(coords: np.ndarray, groups, *, group_names: list[str] | None = None, images=None,
                     thumbnails: int = 30, thumbnail_px: int = 22, method: str = "umap", title: str = "",
                     legend_title: str = "class", ax=None, seed: int = 0):
    """Scatter of a 2-D map coloured by ``groups`` (class, video, method, ...), with image thumbnails.

    Args:
        coords: (N, 2) from :func:`embed_2d`.
        groups: (N,) int group of each point; up to 20 groups get a legend, more share 20 colours;
            group -1 is a grey background (points outside the highlighted groups).
        group_names: names of groups 0..G-1 for the legend.
        images: optional (N, H, W, 3) uint8; up to ``thumbnails`` of them, drawn at random apart from
            each other (:func:`thumbnail_points`), are placed on their points.
        ax: draw into this axes (a new figure otherwise). Returns the figure.
    """
    groups = np.asarray(torch.as_tensor(groups).cpu())
    if ax is None:
        fig = new_figure(6.4, 5.6, layout="constrained")
        ax = fig.add_subplot()
    fig = ax.figure
    if (groups < 0).any():  # the background: every frame outside the highlighted groups
        ax.scatter(coords[groups < 0, 0], coords[groups < 0, 1], s=6, color="#d0d0d0", alpha=0.6, zorder=0)
    uniq = np.unique(groups[groups >= 0])
    name = lambda g: group_names[g] if group_names and 0 <= g < len(group_names) else str(g)  # noqa: E731
    colour_of = {}
    if len(uniq) <= 20:
        cmap = matplotlib.colormaps["tab10" if len(uniq) <= 10 else "tab20"]
        for i, g in enumerate(uniq):
            pick = groups == g
            colour_of[g] = cmap(i % cmap.N)
            size = 28 if (groups < 0).any() else 10  # highlighted groups stand out from the grey background
            ax.scatter(coords[pick, 0], coords[pick, 1], s=size, color=colour_of[g], label=name(int(g)), alpha=0.9,
                       edgecolors="black" if size > 10 else "none", linewidths=0.4)
        ax.legend(title=legend_title, fontsize=7, title_fontsize=8, markerscale=1.5, loc="center left",
                  bbox_to_anchor=(1.01, 0.5), frameon=False)
    else:  # many groups (videos): 20 colours shuffled over the groups, so neighbouring ids differ
        cmap = matplotlib.colormaps["tab20"]
        shuffled = np.random.default_rng(seed).permutation(len(uniq))
        index = shuffled[np.searchsorted(uniq, groups)] % cmap.N
        ax.scatter(coords[:, 0], coords[:, 1], s=10, color=cmap(index), alpha=0.8)
        ax.text(0.01, 0.01, f"colour = {legend_title} ({len(uniq)}, 20 colours reused)", transform=ax.transAxes,
                fontsize=7, color="grey", va="bottom")
    if images is not None and thumbnails > 0:
        # a thumbnail is thumbnail_px points (+ frame) wide; as a fraction of the axes on each side
        box_in = (thumbnail_px + 4) / 72
        axes_in = np.array([ax.get_position().width, ax.get_position().height]) * fig.get_size_inches()
        for j in thumbnail_points(coords, thumbnails, gap=box_in / axes_in, seed=seed):
            image = np.asarray(images[j])
            colour = colour_of.get(groups[j])  # thumbnails framed in their group's colour
            box = AnnotationBbox(OffsetImage(image, zoom=thumbnail_px / image.shape[0]), coords[j],
                                 frameon=colour is not None, pad=0.1,
                                 bboxprops={"edgecolor": colour, "linewidth": 1.5} if colour is not None else None)
            ax.add_artist(box)
    label = METHOD_LABELS.get(method, method)
    ax.set(xlabel=f"{label} 1", ylabel=f"{label} 2", title=title)
    ax.set_xticks([])
    ax.set_yticks([])
    return fig


def bank_groups(bank: FrameBank, color_by: str, *, highlight: int = 6,
                seed: int = 0) -> tuple[torch.Tensor, list[str] | None, str]:
    """``(groups, names, legend title)`` of a bank's frames for ``color_by`` = ``"class"`` or ``"video"``.

    By video, ``highlight`` videos (of different classes where there are enough, drawn with
    ``seed``) are groups 0.., named "video v · class c"; every other frame is group -1 (drawn grey).
    """
    if color_by == "class":
        return bank.labels, bank.class_names or None, "class"
    if color_by != "video":
        raise ValueError(f"color_by must be 'class' or 'video', got {color_by!r}")
    videos = torch.unique(bank.video_ids)
    order = videos[torch.randperm(len(videos), generator=torch.Generator().manual_seed(seed))]
    label_of = {int(v): int(bank.labels[bank.video_ids == v][0]) for v in order}
    picked, classes = [], set()
    for v in order.tolist():  # one video per class first, then any
        if label_of[v] not in classes and len(picked) < highlight:
            picked.append(v)
            classes.add(label_of[v])
    picked += [v for v in order.tolist() if v not in picked][:highlight - len(picked)]
    groups = torch.full_like(bank.video_ids, -1)
    for i, v in enumerate(picked):
        groups[bank.video_ids == v] = i
    names = [f"video {v} · class {bank.class_name(label_of[v])}" for v in picked]
    return groups, names, f"{len(picked)} of {len(videos)} videos"


def compare_embeddings_figure(banks: dict[str, FrameBank], *, color_by: str = "class", space: str = "features",
                              method: str = "umap", thumbnails: int = 20, seed: int = 0,
                              coords: dict[str, np.ndarray] | None = None):
    """One map per bank (e.g. per method), side by side, same colouring; ``coords`` skips the fitting.

    The maps are fitted independently, so compare the grouping inside each panel, not positions
    across panels. By video, a few videos are highlighted over the others in grey, and each title
    gives :func:`cckit.diagnostics.video_spread` of the features (not of the 2-D map). The fitted maps are kept in ``fig.cckit_coords`` (name -> (N, 2)).
    """
    fig = new_figure(5.2 * len(banks) + 1.2, 5.0, layout="constrained")
    axes = fig.subplots(1, len(banks), squeeze=False)[0]
    fitted = {}
    for ax, (name, bank) in zip(axes, banks.items()):
        if coords is not None and name in coords:
            xy, used = coords[name], method
        else:
            xy, used = embed_2d(bank.space(space), method=method, seed=seed)
        fitted[name] = xy
        groups, names, legend = bank_groups(bank, color_by, seed=seed)
        title = f"{name}: {METHOD_LABELS[used]} of {SPACE_LABELS.get(space, space)}"
        if color_by == "video":  # the number that answers "do the features encode the video?"
            title += f"\nvideo spread {video_spread(bank.space(space), bank.video_ids):.2f} (1 = videos not told apart)"
        embedding_figure(xy, groups, group_names=names, images=bank.images, thumbnails=thumbnails, method=used,
                         title=title, legend_title=legend, ax=ax, seed=seed)
        if ax is not axes[-1] and ax.get_legend() is not None:
            ax.get_legend().remove()  # one legend, on the right
    fig.cckit_coords = fitted
    return fig
