"""The frame store: frames of every video of an index, from wherever they are kept.

:class:`FrameStore` tries, in this order:

1. memory: every video decoded once (``data.frames_in_memory``, while the frames fit in
   ``data.cache_limit_gb``);
2. the frame files of a frame-folder dataset (R2V2, ``<video>/<frame>.jpg``):
   :func:`read_frame_files` (:func:`check_frame_file` checks one cheaply at indexing);
3. the extracted-frames folder written by ``cckit data extract`` (``data.extracted_frames``):
   :class:`ExtractedFrames`;
4. the video itself, with exact seeking (:func:`~cckit.data.video.read_frames`), each video's seek
   index cached on disk (``data.seek_index_cache``).

Extracted-frames layout: ``<folder>/<aa>/<digest>/`` per source video (digest of its absolute
path) holding ``meta.json`` (source path, size, mtime, frame count, format) and either
``000000.jpg ...`` / ``000000.png ...`` or one ``frames.npy`` (``(T, H, W, 3)`` uint8, memory
mapped). An entry whose source changed (size or mtime) is ignored and the video is decoded.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..config import DataConfig
from ..errors import DataError
from .records import VideoRecord
from .video import read_all_frames, read_frames

__all__ = ["FORMATS", "LAYOUT_VERSION", "ExtractedFrames", "FrameStore", "check_frame_file", "read_frame_files"]

log = logging.getLogger(__name__)
FORMATS = ("jpg", "png", "npy")  # formats of an extracted-frames entry
LAYOUT_VERSION = 1  # of the extracted-frames folder; an entry of another version is ignored


class FrameStore:
    """Frames of every video: all decoded once and kept in memory (``in_memory=True``, while they
    fit in ``cache_limit_gb``), or read on demand from the frame files, the ``extracted_frames``
    folder of ``cckit data extract`` or the video itself (exact seeking, ``seek_index_cache``).

    With ``on_error="skip"`` a video that fails while loading into memory is remembered and raises
    DataError on :meth:`get` (the training set then replaces it); with ``"raise"`` the constructor raises.
    """

    def __init__(self, records: list[VideoRecord], in_memory: bool, *, extracted_frames: str = "",
                 seek_index_cache: str = "", cache_limit_gb: float = 8.0, on_error: str = "raise"):
        self.records = records
        self.seek_index_cache = seek_index_cache or None
        extracted = ExtractedFrames(extracted_frames) if extracted_frames else None
        self.extracted = [extracted.find(r.path) if extracted and not r.frames else None for r in records]
        self.errors: dict[int, str] = {}
        self.loaded = None  # in memory: per video, its (num_frames, H, W, 3) frames (views into `block` when one)
        # all frames in memory in one (frames, H, 3, W) array when they share one size: each row of
        # pixels stored channel by channel, the layout BatchAugment's first product reads in place
        self.block, self.offsets = None, None
        if in_memory and self.memory_bytes() <= cache_limit_gb * 2**30:
            self._load_into_memory(on_error)
        elif in_memory:
            log.warning("not caching frames: %.1f GB of decoded frames exceed data.cache_limit_gb=%g; "
                        "reading on demand (`cckit data extract` makes that fast)",
                        self.memory_bytes() / 2**30, cache_limit_gb)

    @classmethod
    def from_config(cls, records: list[VideoRecord], cfg: DataConfig) -> FrameStore:
        """The store of ``records`` that the ``data`` config asks for (``frames_in_memory``,
        ``extracted_frames``, ``seek_index_cache``, ``cache_limit_gb``, ``on_error``)."""
        return cls(records, cfg.frames_in_memory, extracted_frames=cfg.extracted_frames,
                   seek_index_cache=cfg.seek_index_cache, cache_limit_gb=cfg.cache_limit_gb, on_error=cfg.on_error)

    def _load_into_memory(self, on_error: str) -> None:
        """Decode every video once. Videos of one known size go into one array (each frame written
        once, no copy of the whole set), so :meth:`take` gathers a batch with one index; each
        video's (T, H, W, 3) frames are a view of it."""
        sizes = {(r.height, r.width) for r in self.records}
        if len(sizes) != 1 or 0 in next(iter(sizes)) or not self.records:
            self.loaded = [self._load_all(i, on_error) for i in range(len(self.records))]
            return
        (height, width), = sizes
        counts = np.array([r.num_frames for r in self.records], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
        block = np.zeros((int(counts.sum()), height, 3, width), dtype=np.uint8)
        self.loaded = []
        for i, (start, count) in enumerate(zip(offsets, counts)):
            frames = self._load_all(i, on_error)
            if frames is not None and frames.shape[1:3] != (height, width):  # the index's size was off
                message = (f"{self.records[i].path}: frames decode at {frames.shape[2]}x{frames.shape[1]}, "
                           f"the index says {width}x{height}")
                if on_error == "raise":
                    raise DataError(message)
                self.errors[i], frames = message, None
            if frames is not None:
                block[start:start + count] = frames.transpose(0, 1, 3, 2)
            self.loaded.append(None if frames is None else block[start:start + count].transpose(0, 1, 3, 2))
        self.block, self.offsets = block, offsets

    def take(self, videos: np.ndarray, frame_indices: np.ndarray) -> np.ndarray | None:
        """(N, K, H, 3, W) frames ``frame_indices[n]`` (N, K) of videos ``videos`` (N,) in one index
        of the in-memory block, in its row-planar layout; None when there is no block or a video
        failed (use :meth:`get`)."""
        if self.block is None or (self.errors and any(int(i) in self.errors for i in videos)):
            return None
        return self.block[self.offsets[videos][:, None] + frame_indices]

    def memory_bytes(self) -> int:
        """Bytes all decoded frames take (records of unknown size count as 0)."""
        return sum(r.num_frames * r.width * r.height * 3 for r in self.records)

    def _read(self, i: int, frame_indices: list[int]) -> np.ndarray:
        r = self.records[i]
        if r.frames:
            if max(frame_indices, default=0) >= len(r.frames):
                raise DataError(f"{r.path}: frame index {max(frame_indices)} out of range ({len(r.frames)} frames)")
            return read_frame_files([os.path.join(r.path, r.frames[k]) for k in frame_indices])
        if self.extracted[i] is not None:
            return ExtractedFrames.read(self.extracted[i], frame_indices)
        return read_frames(r.path, frame_indices, cache_dir=self.seek_index_cache)

    def _load_all(self, i: int, on_error: str) -> np.ndarray | None:
        r = self.records[i]
        try:
            if r.frames or self.extracted[i] is not None:
                frames = self._read(i, list(range(r.num_frames)))
            else:
                frames = read_all_frames(r.path)
            if len(frames) != r.num_frames:
                raise DataError(f"{r.path}: index says {r.num_frames} frames but {len(frames)} decode")
            return frames
        except DataError as error:
            if on_error == "raise":
                raise
            self.errors[i] = str(error)
            return None

    def get(self, i: int, frame_indices: list[int]) -> np.ndarray:
        """(len(frame_indices), H, W, 3) uint8 frames of video ``i``.

        Raises:
            DataError: The video cannot be read (any more); the message names the file.
        """
        if i in self.errors:
            raise DataError(self.errors[i])
        if self.loaded is not None:
            return self.loaded[i][frame_indices]
        return self._read(i, frame_indices)


class ExtractedFrames:
    """Reader of an extracted-frames folder written by :func:`~cckit.data.extract.extract_frames`."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise DataError(f"{self.folder}: frame cache folder does not exist (data.extracted_frames; "
                            f"write one with `cckit data extract`)")

    def entry_folder(self, source: str) -> Path:
        """The folder of video file ``source``'s entry, ``<folder>/<aa>/<digest>`` (digest of its absolute path)."""
        digest = hashlib.blake2b(os.path.abspath(source).encode(), digest_size=16).hexdigest()
        return self.folder / digest[:2] / digest

    def find(self, source: str) -> dict | None:
        """The entry of video file ``source`` if it is complete and up to date, else None."""
        entry = self.entry_folder(source)
        try:
            meta = json.loads((entry / "meta.json").read_text())
            stat = os.stat(source)
        except (OSError, ValueError):
            return None
        if (meta.get("version"), meta.get("source"), meta.get("size"), meta.get("mtime_ns")) != (
                LAYOUT_VERSION, os.path.abspath(source), stat.st_size, stat.st_mtime_ns):
            return None
        return {**meta, "dir": str(entry)}

    @staticmethod
    def read(entry: dict, indices: list[int]) -> np.ndarray:
        """``(N, H, W, 3)`` uint8 frames ``indices`` of an entry from :meth:`find`."""
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


def _tail(path: str, n: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(max(0, os.path.getsize(path) - n))
        return f.read()


def check_frame_file(path: str) -> tuple[int, int]:
    """Cheap check of one frame file without decoding it: header, size and end marker.

    A JPEG must end with its end-of-image marker and a PNG with its IEND chunk, which catches
    truncated copies at the cost of reading a few bytes.

    Returns:
        ``(width, height)``.

    Raises:
        DataError: Missing, empty, not an image, or truncated; the message starts with the path.
    """
    if not os.path.isfile(path):
        raise DataError(f"{path}: file not found")
    if os.path.getsize(path) == 0:
        raise DataError(f"{path}: empty file (0 bytes)")
    try:
        with Image.open(path) as image:
            size, kind = image.size, image.format
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise DataError(f"{path}: not a readable image ({error})") from error
    tail = _tail(path, 64)
    if kind == "JPEG" and b"\xff\xd9" not in tail:
        raise DataError(f"{path}: truncated JPEG (no end-of-image marker)")
    if kind == "PNG" and b"IEND" not in tail:
        raise DataError(f"{path}: truncated PNG (no IEND chunk)")
    return size


def read_frame_files(paths: Sequence[str]) -> np.ndarray:
    """Decode image files to ``(N, H, W, 3)`` uint8 RGB (grayscale and palette images converted).

    Raises:
        DataError: A file is missing or does not decode, or the frames differ in size.
    """
    frames = []
    for path in paths:
        try:
            with Image.open(path) as image:
                frames.append(np.asarray(image.convert("RGB")))
        except (UnidentifiedImageError, OSError, ValueError) as error:
            raise DataError(f"{path}: cannot read frame ({error})") from error
    if len({f.shape for f in frames}) > 1:
        raise DataError(f"{os.path.dirname(paths[0])}: frames of one video differ in size "
                        f"({sorted({f.shape[:2] for f in frames})})")
    return np.stack(frames) if frames else np.empty((0, 0, 0, 3), np.uint8)
