"""``cckit data extract``: decode every video once into an extracted-frames folder, so that epochs
read frames directly.

Random access into a long-GOP video costs a decode from the previous keyframe; an extracted frame
costs one image read. The folder's layout and its reader are in :mod:`cckit.data.frame_store`.
``jpg`` (quality 95) is small but lossy; ``png`` and ``npy`` keep the frames exact.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from ..atomic import atomic_path
from ..errors import DataError
from .check import MIN_JOBS_FOR_POOL, worker_pool
from .frame_store import FORMATS, LAYOUT_VERSION, ExtractedFrames
from .video import iter_frames, probe

__all__ = ["extract_frames"]


def _extract_one(job: tuple[str, str, str, int]) -> tuple[str, int, int, str | None]:
    """Write one video's frames; returns (source, frames, bytes, problem)."""
    source, out, fmt, quality = job
    extracted = ExtractedFrames(out)
    if extracted.find(source) is not None:
        return source, 0, 0, None
    entry = extracted.entry_folder(source)
    try:
        stat = os.stat(source)
        count = probe(source).num_frames
        with atomic_path(entry, durable=False) as tmp:  # the entry appears complete, or not at all
            tmp.mkdir()
            array = None
            for i, frame in enumerate(iter_frames(source)):
                if fmt == "npy":
                    if array is None:
                        array = np.lib.format.open_memmap(tmp / "frames.npy", mode="w+", dtype=np.uint8,
                                                          shape=(count, *frame.shape))
                    array[i] = frame
                else:
                    options = {"quality": quality} if fmt == "jpg" else {"compress_level": 1}
                    Image.fromarray(frame).save(tmp / f"{i:06d}.{fmt}", **options)
            if array is not None:
                array.flush()
                del array
            meta = {"version": LAYOUT_VERSION, "source": os.path.abspath(source), "size": stat.st_size,
                    "mtime_ns": stat.st_mtime_ns, "num_frames": count, "format": fmt,
                    "height": frame.shape[0], "width": frame.shape[1]}
            (tmp / "meta.json").write_text(json.dumps(meta))
            shutil.rmtree(entry, ignore_errors=True)  # a stale entry: a folder is not replaced by rename
        size = sum(f.stat().st_size for f in entry.iterdir())
        return source, count, size, None
    except DataError as error:
        return source, 0, 0, str(error)


def extract_frames(sources: list[str], out: str | os.PathLike, *, fmt: str = "jpg", quality: int = 95,
                   workers: int = 0, progress: bool = False) -> dict:
    """Decode every video file of ``sources`` into the extracted-frames folder ``out`` (up-to-date entries kept).

    Returns:
        Summary: ``videos``, ``extracted``, ``up_to_date``, ``frames`` and ``bytes`` written,
        ``problems`` (``[{"path", "reason"}]``; those videos stay uncached).
    """
    if fmt not in FORMATS:
        raise DataError(f"frame cache format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    Path(out).mkdir(parents=True, exist_ok=True)
    jobs = [(s, str(out), fmt, quality) for s in sources]
    bar = dict(total=len(jobs), disable=not progress, desc="extracting frames", unit="video")
    if workers <= 1 or len(jobs) < MIN_JOBS_FOR_POOL:
        results = [_extract_one(job) for job in tqdm(jobs, **bar)]
    else:
        with worker_pool(workers) as pool:
            results = list(tqdm(pool.map(_extract_one, jobs), **bar))
    problems = [{"path": s, "reason": p} for s, _, _, p in results if p]
    written = [r for r in results if not r[3] and r[1]]
    return {"cache": str(out), "format": fmt, "videos": len(sources), "extracted": len(written),
            "up_to_date": len(sources) - len(written) - len(problems),
            "frames": sum(r[1] for r in written), "bytes": sum(r[2] for r in written), "problems": problems}
