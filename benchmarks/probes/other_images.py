"""Other labelled images made into videos the same way as the default digits: a check that a preset
is not tuned to scikit-learn's digits (no other labelled image set is available offline here).

Draws 10 classes of line shapes (circle, square, triangle, cross, ring, plus, diamond, bars, arrow,
chevron) at 16x16, each instance with its own size, position, rotation and stroke width, splits the
instances into disjoint train and test pools, and writes them as moving-object videos with
:func:`cckit.data.synthetic.make_moving_videos` in the ``clutter`` style, exactly as the default
data is written. Then train any preset on them:

    python benchmarks/probes/other_images.py --root data/shapes_clutter
    cckit demo configs/paper_cpu.yaml data.source=manifest data.root=data/shapes_clutter run_dir=runs/paper_cpu_shapes
"""
from __future__ import annotations

import argparse
import math

import numpy as np
from PIL import Image, ImageDraw

from cckit.data.manifest import write_manifest
from cckit.data.synthetic import make_moving_videos

CLASSES = ("circle", "square", "triangle", "cross", "ring", "plus", "diamond", "bars", "arrow", "chevron")


def _polygon(n: int, r: float, phase: float) -> list[tuple[float, float]]:
    return [(r * math.cos(phase + 2 * math.pi * i / n), r * math.sin(phase + 2 * math.pi * i / n)) for i in range(n)]


def draw_shape(label: int, rng: np.random.Generator, side: int = 16) -> np.ndarray:
    """One (side, side) float image in [0, 1] of class ``label``, drawn at 4x and downsampled."""
    big = side * 4
    img = Image.new("L", (big, big), 0)
    d = ImageDraw.Draw(img)
    r = big * rng.uniform(0.28, 0.42)
    cx, cy = big / 2 + rng.uniform(-0.06, 0.06) * big, big / 2 + rng.uniform(-0.06, 0.06) * big
    w = int(big * rng.uniform(0.06, 0.11))
    phase = rng.uniform(-0.25, 0.25)
    shift = lambda pts: [(cx + x * math.cos(phase) - y * math.sin(phase), cy + x * math.sin(phase) + y * math.cos(phase))
                         for x, y in pts]
    name = CLASSES[label]
    if name == "circle":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
    elif name == "ring":
        d.ellipse([cx - r, cy - r, cx + r, cy + r], outline=255, width=w)
    elif name == "square":
        d.polygon(shift(_polygon(4, r * 1.2, math.pi / 4)), fill=255)
    elif name == "diamond":
        d.polygon(shift(_polygon(4, r * 1.2, 0)), outline=255, width=w)
    elif name == "triangle":
        d.polygon(shift(_polygon(3, r * 1.2, -math.pi / 2)), fill=255)
    elif name in ("cross", "plus"):
        a = math.pi / 4 if name == "cross" else 0.0
        for k in range(2):
            t = a + k * math.pi / 2
            d.line(shift([(-r * math.cos(t), -r * math.sin(t)), (r * math.cos(t), r * math.sin(t))]), fill=255, width=w)
    elif name == "bars":
        for k in (-1, 0, 1):
            d.line(shift([(-r, k * r * 0.6), (r, k * r * 0.6)]), fill=255, width=w)
    elif name == "arrow":
        d.line(shift([(-r, 0), (r, 0)]), fill=255, width=w)
        d.line(shift([(r * 0.3, -r * 0.6), (r, 0), (r * 0.3, r * 0.6)]), fill=255, width=w)
    elif name == "chevron":
        d.line(shift([(-r * 0.6, -r), (r * 0.6, 0), (-r * 0.6, r)]), fill=255, width=w)
    return np.asarray(img.resize((side, side), Image.BILINEAR), dtype=np.float32) / 255.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default="data/shapes_clutter")
    p.add_argument("--per-class", type=int, default=180, help="instances per class (digits: ~180)")
    p.add_argument("--num-train", type=int, default=1000)
    p.add_argument("--num-test", type=int, default=200)
    p.add_argument("--style", default="clutter")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    rng = np.random.default_rng(args.seed)
    labels = np.repeat(np.arange(len(CLASSES)), args.per_class)
    images = np.stack([draw_shape(int(y), rng) for y in labels])
    order = rng.permutation(len(labels))
    test_pool = np.sort(np.concatenate([order[labels[order] == c][:30] for c in range(len(CLASSES))]))
    train_pool = np.setdiff1d(np.arange(len(labels)), test_pool)
    records = []
    for split, pool, count, first in (("train", train_pool, args.num_train, 0),
                                      ("test", test_pool, args.num_test, args.num_train)):
        made = make_moving_videos(images[pool], labels[pool], args.root, num_videos=count, frames_per_video=(8, 16),
                                  size=64, seed=args.seed, split=split, style=args.style, first_video_id=first,
                                  class_names=list(CLASSES), workers=2)
        for record in made:
            record["source_index"] = int(pool[record["source_index"]])
        records += made
    meta = {"generator": "benchmarks/probes/other_images.py", "classes": list(CLASSES), "style": args.style, "seed": args.seed,
            "per_class": args.per_class, "num_train": args.num_train, "num_test": args.num_test}
    print(write_manifest(args.root, records, meta))


if __name__ == "__main__":
    main()
