"""What a training sample is: the frames of a video and the positive pairs cut from them."""
from __future__ import annotations

import numpy as np
import torch

from ..data.dataset import TrainClips
from ..data.records import VideoRecord
from ..data.video import read_frames
from .images import new_figure, show_image


def video_strips_figure(records: list[VideoRecord], *, frames: int = 8, class_names: list[str] | None = None):
    """One row per video: ``frames`` evenly spaced frames, labelled with video id, class and (for
    the generated data) the motion type, all read off the records."""
    fig = new_figure(1.2 * frames + 1.4, 1.3 * len(records) + 0.6, layout="constrained")
    axes = fig.subplots(len(records), frames, squeeze=False)
    for row, rec in enumerate(records):
        index = np.unique(np.linspace(0, rec.num_frames - 1, frames).round().astype(int))
        images = read_frames(rec.path, index)
        for col in range(frames):
            ax = axes[row, col]
            if col < len(index):
                show_image(ax, images[col], f"frame {index[col]}" if row == 0 else "")
            else:
                ax.axis("off")
        name = rec.class_name or (class_names[rec.label] if class_names and 0 <= rec.label < len(class_names)
                                  else str(rec.label))
        axes[row, 0].set_ylabel(f"video {rec.video_id}\nclass {name}\n{rec.motion}".strip(),
                                fontsize=8)
    fig.suptitle("Training videos: one digit instance each, its own background and motion", fontsize=10)
    return fig


def positive_pairs(dataset: TrainClips, indices) -> dict:
    """The training items ``indices`` of a :class:`TrainClips` with the frames they were cut from.

    Returns ``x_q``, ``x_k``, ``x_p`` (n, 3, S, S) exactly as the trainer sees them, ``frames``
    (n, 2) the frame indices f and f', ``raw`` (n, 2, H, W, 3) uint8 frames f and f', ``video_ids``
    and ``labels`` (n,).
    """
    out = {"x_q": [], "x_k": [], "x_p": [], "frames": [], "raw": [], "video_ids": [], "labels": []}
    for i in indices:
        i = int(i)
        x_q, x_k, x_p, vid = (t[0] for t in dataset.views([i]))
        f, f2 = dataset.sample_frames(i)
        for key, value in (("x_q", x_q), ("x_k", x_k), ("x_p", x_p), ("frames", torch.tensor([f, f2])),
                           ("raw", torch.from_numpy(dataset.frames.get(i, [f, f2]))), ("video_ids", vid),
                           ("labels", torch.tensor(dataset.records[i].label))):
            out[key].append(value)
    return {k: torch.stack(v) for k, v in out.items()}


ROWS = (("raw", 0, "frame f"), ("x_q", None, "x_q: query crop\nof f"), ("x_k", None, "x_k: key crop\nof f (moco_v2)"),
        ("raw", 1, "frame f'"), ("x_p", None, "x_p: positive crop\nof f' (intra, cycle)"))


def positive_pairs_figure(dataset: TrainClips, indices, *, class_names: list[str] | None = None):
    """Columns = videos; rows = frame f, the query crop x_q, the same-frame key x_k, frame f' and the
    other-frame positive x_p. MoCo v2 pulls x_q to x_k; intra-video and CycleContrast pull x_q to x_p."""
    pairs = positive_pairs(dataset, indices)
    n = len(pairs["video_ids"])
    fig = new_figure(1.45 * n + 1.6, 1.45 * len(ROWS) + 0.6, layout="constrained")
    axes = fig.subplots(len(ROWS), n, squeeze=False)
    for col in range(n):
        label = int(pairs["labels"][col])
        name = class_names[label] if class_names and 0 <= label < len(class_names) else str(label)
        f, f2 = (int(v) for v in pairs["frames"][col])
        for row, (key, which, caption) in enumerate(ROWS):
            image = pairs[key][col][which] if which is not None else pairs[key][col]
            title = f"video {int(pairs['video_ids'][col])} · class {name}\nf = {f}, f' = {f2}" if row == 0 else ""
            show_image(axes[row, col], image, title)
            if col == 0:
                axes[row, col].set_ylabel(caption, fontsize=10)
    fig.suptitle("Positive pairs of one batch (augmented crops are what the encoder sees)", fontsize=12)
    return fig
