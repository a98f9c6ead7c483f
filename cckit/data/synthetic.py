"""Moving-digit videos from any labelled image array: the default, download-free dataset (rendered by
:mod:`cckit.data.render`, written here).

Each video shows one image instance (by default one real handwritten digit scan) moving over a
video-specific background. The class is shared across videos while the nuisances (background
texture and colour, foreground colour) are per video: the setting where cross-video
cycle-consistency is claimed to help (CycleContrast, Wu & Wang, ICCV 2021). Videos are real
H.264 mp4 files, read back through :mod:`cckit.data.video` like any user video.
"""

from __future__ import annotations

import dataclasses
import json
import math
from fractions import Fraction
import multiprocessing
import os
from pathlib import Path
from typing import Any, NamedTuple

import av
import numpy as np

from cckit.errors import DataError

from ..atomic import atomic_path, file_lock
from .manifest import load_manifest, write_manifest
from .render import MOTIONS, STYLES, MotionStyle, render, resolve_style  # noqa: F401  (re-exported)

GENERATOR_VERSION = 2  # bump when rendering changes, so cached datasets are regenerated
FPS, CODEC, CRF = 10, "libx264", 18
# Reproducible bytes: one x264 thread of every kind, and no macroblock-tree rate control: with it,
# identical frames encoded in one process came out different in about 1 of 600 videos
# (benchmarks/probes/encode_repeat.py), which moved decoded pixels by up to 14.
X264_PARAMS = "threads=1:lookahead-threads=1:sliced-threads=0:mbtree=0"
LOCK_NAME = ".generate.lock"  # held while a process generates a dataset root


class _Job(NamedTuple):
    """Everything one worker needs to render and write one video (picklable)."""

    path: Path
    record: dict
    image: np.ndarray  # (h, w) or (h, w, 3) float32 in [0, 1]
    frames: int | tuple[int, int]
    size: int
    seed: int
    style: MotionStyle


def _write_mp4(path: Path, frames: np.ndarray, *, x264_params: str = X264_PARAMS) -> None:
    """Encode ``(T, S, S, 3)`` uint8 as H.264/yuv420p mp4, atomically: never half-written."""
    with atomic_path(path, durable=False) as tmp:  # the manifest, written last, is the durable mark
        with av.open(str(tmp), mode="w", format="mp4") as container:
            stream = container.add_stream(CODEC, rate=FPS)
            stream.height, stream.width = frames.shape[1:3]
            stream.pix_fmt = "yuv420p"
            stream.options = {"crf": str(CRF), "x264-params": x264_params}
            stream.codec_context.thread_count = 1
            for index, frame in enumerate(frames):
                yuv = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuv420p")
                yuv.pts, yuv.time_base = index, Fraction(1, FPS)
                container.mux(stream.encode(yuv))
            container.mux(stream.encode(None))


def _make_video(job: _Job) -> dict:
    """Render, write and describe one video; its RNG depends only on (seed, video_id)."""
    record = job.record
    rng = np.random.default_rng(np.random.SeedSequence(job.seed, spawn_key=(1, record["video_id"])))
    lo, hi = (job.frames, job.frames) if isinstance(job.frames, int) else job.frames
    num_frames = int(rng.integers(lo, hi + 1))
    motion = str(rng.choice(job.style.motions))
    frames, boxes = render(job.image, num_frames, job.size, job.style, motion, rng)
    _write_mp4(job.path, frames)
    head = {key: value for key, value in record.items() if key != "source_index"}
    return {**head, "motion": motion, "num_frames": num_frames,  # keys in the documented order
            "boxes": [[round(float(b), 2) for b in box] for box in boxes],
            "source_index": record["source_index"]}


def _make_chunk(jobs: list[_Job]) -> list[dict]:
    return [_make_video(job) for job in jobs]


def _check_frames(frames_per_video: int | tuple[int, int]) -> int | tuple[int, int]:
    """Validate ``frames_per_video``: an int >= 1, or an inclusive ``(lo, hi)`` range."""
    single = isinstance(frames_per_video, (int, np.integer))
    lo, hi = (frames_per_video,) * 2 if single else frames_per_video
    if not 1 <= int(lo) <= int(hi):
        raise ValueError(f"frames_per_video must be an int >= 1 or a (lo, hi) pair with "
                         f"1 <= lo <= hi, got {frames_per_video!r}")
    return int(lo) if single else (int(lo), int(hi))


def make_moving_videos(images: np.ndarray, labels: np.ndarray, root: str | os.PathLike, *,
                       num_videos: int, frames_per_video: int | tuple[int, int], size: int,
                       seed: int, split: str = "train", style: str | MotionStyle | None = None,
                       first_video_id: int = 0, class_names: Any = None,
                       workers: int = 1) -> list[dict]:
    """Write one H.264 video per drawn image instance, moving over a per-video background.

    Instances are drawn without replacement while possible (then the pool is reshuffled).
    Every video's content depends only on ``(seed, video_id)``, never on ``workers``.

    Args:
        images: ``(N, h, w)`` or ``(N, h, w, 3)`` array of any dtype and range; min-max
            normalised to [0, 1] over the whole array. Grayscale images are ink on black
            (intensity = opacity); colour images are pasted as opaque patches.
        labels: ``(N,)`` integer class labels.
        root: Dataset root; videos go to ``root/videos/<split>/<video_id:06d>.mp4``.
        num_videos: Number of videos to write.
        frames_per_video: Frames per video, an int or an inclusive ``(lo, hi)`` range.
        size: Frame side ``S`` in pixels; even (H.264 4:2:0) and >= 8.
        seed: Non-negative generator seed.
        split: Split name, used in the path and the records.
        style: Preset name in :data:`STYLES`, a :class:`MotionStyle`, or None for "easy".
        first_video_id: Id of the first video; ids are consecutive.
        class_names: Sequence or mapping label -> name; None uses ``str(label)``.
        workers: Processes rendering and encoding in parallel (1 = in this process).

    Returns:
        One record per video: ``video_id``, ``path`` (posix, relative to root), ``split``,
        ``label``, ``class_name``, ``motion``, ``num_frames``, ``boxes`` (``num_frames`` digit
        boxes ``[x0, y0, x1, y1]`` in pixels, after rotation and scale, clipped to the frame) and
        ``source_index`` (row of ``images``).
    """
    if not isinstance(size, (int, np.integer)) or size < 8 or size % 2:
        raise ValueError(f"size must be an even integer >= 8 (H.264 yuv420p needs even frame "
                         f"sides), got {size!r}")
    frames = _check_frames(frames_per_video)
    _, style = resolve_style(style)
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if not (images.ndim == 3 or (images.ndim == 4 and images.shape[-1] == 3)):
        raise ValueError(f"images must have shape (N, h, w) or (N, h, w, 3), got {images.shape}")
    if labels.shape != images.shape[:1] or labels.dtype.kind not in "iu":
        raise ValueError(f"labels must be ({len(images)},) integers, got {labels.dtype} "
                         f"{labels.shape}")
    if num_videos < 0 or (num_videos > 0 and len(images) == 0):
        raise ValueError(f"cannot make num_videos={num_videos} from {len(images)} images")
    if split in ("", ".", "..") or "/" in split or "\\" in split:
        raise ValueError(f"split must be a plain name, got {split!r}")
    low, high = (float(images.min()), float(images.max())) if images.size else (0.0, 1.0)
    span = high - low if high > low else 1.0  # a constant array stays constant

    # Instance order: permutations of the pool, concatenated, so no repeats until it runs out.
    assign = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0, first_video_id)))
    rounds = -(-num_videos // max(len(images), 1))
    order = np.concatenate([assign.permutation(len(images)) for _ in range(rounds)] or [[]])
    out_dir = Path(root) / "videos" / split
    out_dir.mkdir(parents=True, exist_ok=True)
    jobs = []
    for offset, index in enumerate(order[:num_videos].astype(int)):
        video_id, label = first_video_id + offset, int(labels[index])
        try:
            name = str(label if class_names is None else class_names[label])
        except (KeyError, IndexError) as error:
            raise ValueError(f"class_names has no entry for label {label}") from error
        relative = f"videos/{split}/{video_id:06d}.mp4"
        record = {"video_id": video_id, "path": relative, "split": split, "label": label,
                  "class_name": name, "source_index": int(index)}
        image = ((images[index].astype(np.float32) - low) / span)
        jobs.append(_Job(Path(root) / relative, record, image, frames, size, seed, style))

    if workers <= 1 or len(jobs) < 2:
        return _make_chunk(jobs)
    # Several chunks per worker balance the load; order of results follows the chunks.
    step = max(1, math.ceil(len(jobs) / (4 * workers)))
    chunks = [jobs[i:i + step] for i in range(0, len(jobs), step)]
    with multiprocessing.get_context().Pool(min(workers, len(chunks))) as pool:
        return [record for chunk in pool.map(_make_chunk, chunks) for record in chunk]


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """scikit-learn's bundled digits: images ``(1797, 8, 8)`` (0..16), labels ``(1797,)``, names."""
    from sklearn.datasets import load_digits  # deferred: sklearn import is slow

    digits = load_digits()
    return digits.images, digits.target.astype(np.int64), [str(n) for n in digits.target_names]


def make_default_dataset(root: str | os.PathLike, *, num_train: int = 1000, num_test: int = 200,
                         frames_per_video: int | tuple[int, int] = (8, 16), size: int = 64,
                         style: str | MotionStyle = "easy", seed: int = 0, workers: int = 2,
                         test_instances: int = 300) -> tuple[list[dict], dict]:
    """Generate (or reuse) the default moving-digits dataset under ``root``.

    The 1797 digit scans are split, stratified by class, into disjoint train and test pools
    (``test_instances`` go to test), so no digit instance appears in both splits. Test video ids
    follow the train ids. Videos are written first and the manifest last, after deleting any
    old one, so an interrupted run never looks complete. If ``root/manifest.json`` already
    holds the same parameters and every video exists, it is returned without regenerating.

    Returns:
        ``(records, meta)`` as :func:`load_manifest` would return them.
    """
    from sklearn.model_selection import train_test_split

    style_name, style_params = resolve_style(style)
    images, labels, class_names = load_digits_arrays()
    frames = _check_frames(frames_per_video)
    meta = {"generator": "cckit.data.synthetic.make_default_dataset",
            "generator_version": GENERATOR_VERSION, "source": "sklearn.datasets.load_digits",
            "num_train": num_train, "num_test": num_test, "test_instances": test_instances,
            "frames_per_video": frames, "size": size, "style": style_name,
            "style_params": dataclasses.asdict(style_params), "seed": seed,
            "fps": FPS, "codec": CODEC, "crf": CRF, "class_names": class_names}
    meta = json.loads(json.dumps(meta))  # tuples -> lists, as they come back from disk
    root = Path(root)
    if (found := _complete(root, meta)) is not None:
        return found, meta
    # Two runs started together on one root (a sweep, the resume test) must not both write it:
    # the second waits here, then finds the first one's dataset.
    with file_lock(root / LOCK_NAME):
        if (found := _complete(root, meta)) is not None:
            return found, meta
        (root / "manifest.json").unlink(missing_ok=True)
        train_pool, test_pool = train_test_split(np.arange(len(labels)), test_size=test_instances,
                                                 stratify=labels, random_state=seed % 2**32)
        records = []
        for split, pool, count, first in (("train", train_pool, num_train, 0),
                                          ("test", test_pool, num_test, num_train)):
            made = make_moving_videos(images[pool], labels[pool], root, num_videos=count,
                                      frames_per_video=frames, size=size, seed=seed, split=split,
                                      style=style_params, first_video_id=first,
                                      class_names=class_names, workers=workers)
            for record in made:  # index into the full digits array, not the split's pool
                record["source_index"] = int(pool[record["source_index"]])
            records += made
        write_manifest(root, records, meta)
    return records, meta


def _complete(root: Path, meta: dict) -> list[dict] | None:
    """The records of ``root``'s manifest when it was generated with ``meta`` and every video exists."""
    try:
        records, old_meta = load_manifest(root)
    except DataError:
        return None
    if old_meta == meta and all((root / r["path"]).is_file() for r in records):
        return records
    return None
