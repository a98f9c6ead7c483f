"""A frame cache: decode every video once (``cckit data extract``) so that epochs read frames directly.

Random access into a long-GOP video costs a decode from the previous keyframe; a cached frame
costs one image read. Layout: ``<cache>/<aa>/<digest>/`` per source video (digest of its absolute
path) holding ``meta.json`` (source path, size, mtime, frame count, format) and either
``000000.jpg ...`` / ``000000.png ...`` or one ``frames.npy`` (``(T, H, W, 3)`` uint8, memory
mapped). An entry whose source changed (size or mtime) is ignored and the video is decoded.
``jpg`` (quality 95) is small but lossy; ``png`` and ``npy`` keep the frames exact.
"""
from __future__ import annotations

import hashlib
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
from .video import iter_frames, probe

__all__ = ["FORMATS", "FrameCache", "extract_frames"]

FORMATS = ("jpg", "png", "npy")
CACHE_VERSION = 1


def _entry_dir(root: Path, source: str) -> Path:
    digest = hashlib.blake2b(os.path.abspath(source).encode(), digest_size=16).hexdigest()
    return root / digest[:2] / digest


class FrameCache:
    """Reader of a frame cache folder written by :func:`extract_frames`."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise DataError(f"{self.folder}: frame cache folder does not exist (data.extracted_frames; "
                            f"write one with `cckit data extract`)")

    def find(self, source: str) -> dict | None:
        """The cache entry of video file ``source`` if it is complete and up to date, else None."""
        entry = _entry_dir(self.folder, source)
        try:
            meta = json.loads((entry / "meta.json").read_text())
            stat = os.stat(source)
        except (OSError, ValueError):
            return None
        if (meta.get("version"), meta.get("source"), meta.get("size"), meta.get("mtime_ns")) != (
                CACHE_VERSION, os.path.abspath(source), stat.st_size, stat.st_mtime_ns):
            return None
        return {**meta, "dir": str(entry)}

    @staticmethod
    def read(entry: dict, indices: list[int]) -> np.ndarray:
        """``(N, H, W, 3)`` uint8 frames ``indices`` of a cache entry from :meth:`find`."""
        folder = entry["dir"]
        try:
            if entry["format"] == "npy":
                frames = np.load(os.path.join(folder, "frames.npy"), mmap_mode="r")
                return np.ascontiguousarray(frames[np.asarray(indices, dtype=np.int64)])
            out = []
            for i in indices:
                with Image.open(os.path.join(folder, f"{i:06d}.{entry['format']}")) as image:
                    out.append(np.asarray(image.convert("RGB")))
            return np.stack(out)
        except (OSError, ValueError, IndexError) as error:
            raise DataError(f"{folder}: frame cache entry of {entry['source']} is unreadable ({error})") from error


def _extract_one(job: tuple[str, str, str, int]) -> tuple[str, int, int, str | None]:
    """Write one video's frames; returns (source, frames, bytes, problem)."""
    source, out, fmt, quality = job
    root = Path(out)
    if FrameCache(root).find(source) is not None:
        return source, 0, 0, None
    entry = _entry_dir(root, source)
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
            meta = {"version": CACHE_VERSION, "source": os.path.abspath(source), "size": stat.st_size,
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
    """Decode every video file of ``sources`` into the frame cache ``out`` (up-to-date entries kept).

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
