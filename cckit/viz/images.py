"""Display helpers shared by the figures: tensors to uint8 images, image panels with a coloured frame."""
from __future__ import annotations

import io

import numpy as np
import torch
from matplotlib.figure import Figure

from ..data.transforms import denormalize

OK_COLOUR = "#2ca02c"  # same video / right class
BAD_COLOUR = "#d62728"  # other video / wrong class


def to_image(x: torch.Tensor | np.ndarray) -> np.ndarray:
    """A displayable (H, W, 3) uint8 image from a normalised (3, H, W) tensor or a (H, W, 3) uint8 array."""
    if isinstance(x, np.ndarray):
        return x if x.dtype == np.uint8 else (np.clip(x, 0, 1) * 255).round().astype(np.uint8)
    x = x.detach().cpu()
    if x.dtype == torch.uint8:
        return (x.permute(1, 2, 0) if x.shape[0] == 3 else x).numpy()
    return (denormalize(x.float()).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def show_image(ax, image, title: str = "", *, border: str | None = None, fontsize: float = 8) -> None:
    """Draw an image without ticks; ``border`` colours the frame (e.g. green = same video)."""
    ax.imshow(to_image(image), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=fontsize)
    for spine in ax.spines.values():
        spine.set_visible(border is not None)
        if border is not None:
            spine.set_edgecolor(border)
            spine.set_linewidth(3)


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    """PNG bytes of a figure (what the widgets display)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


class NotebookFigure(Figure):
    """A Figure outside pyplot's global state that Jupyter renders as PNG by itself.

    Made without pyplot, nothing leaks or is shown twice, and it displays whatever the
    matplotlib backend is (``cckit.report`` switches to Agg for headless reports).
    """

    def _repr_png_(self) -> bytes:
        return figure_png(self)


def new_figure(width: float, height: float, **kwargs) -> Figure:
    """A :class:`NotebookFigure` of ``width`` x ``height`` inches."""
    return NotebookFigure(figsize=(width, height), **kwargs)
