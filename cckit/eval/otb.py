"""OTB tracking metrics, the OTB sequence format, and the precision / success plots.

Boxes are ``(x, y, w, h)`` in 0-based continuous pixel coordinates: ``x`` is the left edge, so a
box covering pixel columns 0..9 is ``x=0, w=10`` (OTB files are 1-based; :func:`load_otb_sequence`
subtracts 1). Metrics follow the OTB toolkit (Wu, Lim, Yang, CVPR 2013 / TPAMI 2015):

- **precision** at threshold ``t``: fraction of frames whose centre error (Euclidean distance of
  box centres) is ``<= t``; OTB reports ``t = 20`` px. Frames are 480-640 px wide there; on small
  frames the same tolerance is scaled by the frame size, :func:`scaled_precision_threshold`
  ``= 20 · min(H, W) / 480`` (2.67 px on 64 px frames).
- **success** at overlap threshold ``o``: fraction of frames with IoU ``> o``, for the 21
  thresholds ``0, 0.05, ..., 1``; the success **AUC** is the mean of that curve. (A perfect tracker
  scores 20/21 ≈ 0.952: no IoU exceeds 1.)
- Frames whose ground truth is invalid (NaN, or width or height <= 0) are not scored; over several
  sequences the curves are averaged per sequence, as the toolkit does.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import DataError

PRECISION_THRESHOLDS = np.arange(0, 51, dtype=np.float64)  # centre error, px
SUCCESS_THRESHOLDS = np.linspace(0.0, 1.0, 21)  # IoU


def xyxy_to_xywh(boxes) -> np.ndarray:
    """(N, 4) ``[x0, y0, x1, y1]`` -> ``[x, y, w, h]``."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.stack([b[:, 0], b[:, 1], b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]], axis=1)


def centers(boxes) -> np.ndarray:
    """(N, 2) centres ``(x + w/2, y + h/2)`` of (N, 4) xywh boxes."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return b[:, :2] + b[:, 2:] / 2


def center_error(pred, gt) -> np.ndarray:
    """(N,) Euclidean distance between the centres of predicted and ground-truth xywh boxes."""
    return np.linalg.norm(centers(pred) - centers(gt), axis=1)


def overlap(pred, gt) -> np.ndarray:
    """(N,) intersection over union of xywh boxes (0 when either box is empty)."""
    p, g = np.asarray(pred, np.float64).reshape(-1, 4), np.asarray(gt, np.float64).reshape(-1, 4)
    iw = np.minimum(p[:, 0] + p[:, 2], g[:, 0] + g[:, 2]) - np.maximum(p[:, 0], g[:, 0])
    ih = np.minimum(p[:, 1] + p[:, 3], g[:, 1] + g[:, 3]) - np.maximum(p[:, 1], g[:, 1])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    union = np.clip(p[:, 2], 0, None) * np.clip(p[:, 3], 0, None) + np.clip(g[:, 2], 0, None) * np.clip(g[:, 3], 0, None) - inter
    # clip: for identical boxes (x + w) - x may round above w, and an IoU of 1 + 1e-16 would pass o = 1
    return np.clip(np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0), 0.0, 1.0)


def scaled_precision_threshold(height: int, width: int, base: float = 20.0, reference: float = 480.0) -> float:
    """OTB's 20 px tolerance scaled to a frame's size: ``base · min(H, W) / reference``."""
    return base * min(height, width) / reference


def valid_frames(gt) -> np.ndarray:
    """(N,) mask of frames with a usable ground-truth box."""
    g = np.asarray(gt, np.float64).reshape(-1, 4)
    return np.isfinite(g).all(1) & (g[:, 2] > 0) & (g[:, 3] > 0)


def sequence_curves(pred, gt, *, precision_thresholds=PRECISION_THRESHOLDS, success_thresholds=SUCCESS_THRESHOLDS,
                    skip_first: bool = False) -> dict[str, np.ndarray]:
    """Precision and success curves of one sequence.

    Args:
        pred, gt: (N, 4) xywh boxes, frame-aligned.
        skip_first: do not score frame 0 (the initialisation frame, given to the tracker).

    Returns:
        ``precision_curve`` (len(precision_thresholds),), ``success_curve`` (21,), ``errors`` and
        ``ious`` of the scored frames.
    """
    ok = valid_frames(gt)
    if skip_first:
        ok[0] = False
    err, iou = center_error(pred, gt)[ok], overlap(pred, gt)[ok]
    if len(err) == 0:
        raise ValueError("no scorable frame (every ground-truth box is invalid)")
    return {"precision_curve": (err[:, None] <= np.asarray(precision_thresholds)[None, :]).mean(0),
            "success_curve": (iou[:, None] > np.asarray(success_thresholds)[None, :]).mean(0),
            "errors": err, "ious": iou}


def otb_metrics(sequences: list[tuple[np.ndarray, np.ndarray]], *, threshold: float = 20.0,
                skip_first: bool = False) -> dict:
    """Precision at ``threshold`` px and success AUC over sequences of ``(pred, gt)`` xywh boxes.

    The per-sequence curves are averaged (every sequence weighs the same). The precision curve
    runs over ``0 .. 2.5 · threshold`` in 51 steps — OTB's 0..50 px for the standard 20 px — so
    plots of small frames keep OTB's shape.

    Returns:
        ``precision``, ``success_auc``, ``mean_iou``, ``mean_center_error``, ``threshold``,
        ``sequences``, ``frames``, ``precision_thresholds``/``precision_curve`` and
        ``success_thresholds``/``success_curve`` (lists, for plots and JSON).
    """
    thresholds = PRECISION_THRESHOLDS / 20.0 * threshold  # index 20 is exactly the threshold
    curves = [sequence_curves(p, g, precision_thresholds=thresholds, skip_first=skip_first) for p, g in sequences]
    precision = np.mean([c["precision_curve"] for c in curves], axis=0)
    success = np.mean([c["success_curve"] for c in curves], axis=0)
    return {"precision": float(precision[20]),
            "success_auc": float(success.mean()),
            "mean_iou": float(np.mean([c["ious"].mean() for c in curves])),
            "mean_center_error": float(np.mean([c["errors"].mean() for c in curves])),
            "threshold": float(threshold), "sequences": len(curves), "frames": int(sum(len(c["ious"]) for c in curves)),
            "precision_thresholds": thresholds.tolist(), "precision_curve": precision.tolist(),
            "success_thresholds": SUCCESS_THRESHOLDS.tolist(), "success_curve": success.tolist()}


def read_otb_boxes(path: str | os.PathLike) -> np.ndarray:
    """(N, 4) 0-based xywh boxes from an OTB ``groundtruth_rect.txt`` (comma, tab or space separated, 1-based)."""
    rows = []
    for i, line in enumerate(Path(path).read_text().splitlines()):
        if not line.strip():
            continue
        parts = line.replace(",", " ").replace("\t", " ").split()
        try:
            values = [float(v) for v in parts]
        except ValueError:
            raise DataError(f"{path}: line {i + 1} is not numbers: {line.strip()!r}") from None
        if len(values) != 4:
            raise DataError(f"{path}: line {i + 1} has {len(values)} values, expected x,y,w,h")
        rows.append(values)
    if not rows:
        raise DataError(f"{path}: no boxes")
    boxes = np.asarray(rows, np.float64)
    boxes[:, :2] -= 1.0
    return boxes


def load_otb_sequence(seq_dir: str | os.PathLike) -> tuple[list[Path], np.ndarray]:
    """Frames and boxes of an OTB sequence ``<seq>/img/*.jpg`` + ``<seq>/groundtruth_rect.txt``.

    ``groundtruth_rect.1.txt`` (the first target of a two-target sequence) is used when there is
    no ``groundtruth_rect.txt``. When the counts differ, the shorter of frames and boxes wins.

    Returns:
        ``(sorted frame paths, (N, 4) xywh boxes)``.
    """
    seq_dir = Path(seq_dir)
    frames = sorted(p for ext in ("*.jpg", "*.jpeg", "*.png") for p in (seq_dir / "img").glob(ext))
    if not frames:
        raise DataError(f"{seq_dir}: no frames in img/ (expected <seq>/img/*.jpg)")
    gt_file = next((f for f in (seq_dir / "groundtruth_rect.txt", seq_dir / "groundtruth_rect.1.txt") if f.is_file()), None)
    if gt_file is None:
        raise DataError(f"{seq_dir}: no groundtruth_rect.txt")
    boxes = read_otb_boxes(gt_file)
    n = min(len(frames), len(boxes))
    return frames[:n], boxes[:n]


def find_otb_sequences(root: str | os.PathLike) -> list[Path]:
    """Sequence folders under ``root`` (or ``root`` itself) that hold ``img/`` and a ground-truth file."""
    root = Path(root)
    candidates = [root] + sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    found = [p for p in candidates if (p / "img").is_dir() and any(p.glob("groundtruth_rect*.txt"))]
    if not found:
        raise DataError(f"{root}: no OTB sequences (<seq>/img/*.jpg + <seq>/groundtruth_rect.txt)")
    return found


def plot_otb(results: dict[str, dict], path: str | os.PathLike, title: str = "") -> Path:
    """OTB precision and success plots of several trackers (``name -> otb_metrics output``) into one PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_p, ax_s) = plt.subplots(1, 2, figsize=(11, 4.2))
    for name, m in sorted(results.items(), key=lambda kv: -kv[1]["success_auc"]):
        ax_p.plot(m["precision_thresholds"], m["precision_curve"], label=f"{name} [{m['precision']:.3f}]")
        ax_s.plot(m["success_thresholds"], m["success_curve"], label=f"{name} [{m['success_auc']:.3f}]")
    threshold = next(iter(results.values()))["threshold"] if results else 20.0
    ax_p.axvline(threshold, color="grey", lw=0.8, ls="--")
    ax_p.set(xlabel="centre error threshold (px)", ylabel="precision", title=f"Precision plot (at {threshold:.3g} px)",
             ylim=(0, 1.02))
    ax_s.set(xlabel="overlap threshold", ylabel="success rate", title="Success plot (AUC)", xlim=(0, 1), ylim=(0, 1.02))
    for ax in (ax_p, ax_s):
        ax.legend(fontsize=8, loc="lower right" if ax is ax_p else "lower left")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
