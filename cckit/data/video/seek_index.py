"""Per-file frame index of a video, cached in memory and on disk by path, size and mtime.

One decode pass of a file records, per frame in decode-output order, its timestamp and a
checksum of its pixels, plus which frames start at a keyframe packet (the points a demuxer can
seek to). :mod:`cckit.data.video` uses it to seek and to prove each seek exact.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field

import av
import numpy as np

from ...atomic import atomic_write

__all__ = ["VideoInfo", "FrameIndex", "fingerprint", "default_cache_dir", "load_index", "save_index"]

INDEX_VERSION = 1  # bump when the stored fields or the fingerprint change
_MEMORY: OrderedDict[str, "FrameIndex"] = OrderedDict()  # most recently used last
_MEMORY_SIZE = 4096
_LOCK = threading.Lock()  # the checks of cckit.data.check run in threads


@dataclass
class VideoInfo:
    """What one decode pass learns about a video."""
    path: str
    num_frames: int  # frames that decode
    width: int  # display width (after rotation)
    height: int  # display height (after rotation)
    rotation: int  # degrees counter-clockwise applied for display: 0, 90, 180 or 270
    codec: str  # decoder name, e.g. "h264"
    pix_fmt: str  # decoded pixel format, e.g. "yuv420p", "gray", "yuv420p10le"
    declared_frames: int  # frame count the container states (0: none); informational only
    fps: float  # average frame rate the container states (0: unknown); informational only
    seekable: bool  # reads may seek (timestamps unique and increasing, not disproved since)


@dataclass
class FrameIndex:
    """Timestamps, checksums and seek points of every decodable frame of one file."""
    info: VideoInfo
    size: int  # file size in bytes when indexed
    mtime_ns: int  # modification time when indexed
    pts: list  # (T,) timestamp of frame j (None where the decoder gave none)
    crc: list[int]  # (T,) fingerprint of frame j
    keys: list[int]  # sorted frame indices a seek can start at; always begins with 0
    position: dict = field(default_factory=dict, repr=False)  # pts -> frame index

    def __post_init__(self):
        if self.info.seekable:
            self.position = {p: j for j, p in enumerate(self.pts)}

    @property
    def seekable(self) -> bool:
        return self.info.seekable

    @seekable.setter
    def seekable(self, value: bool) -> None:
        self.info.seekable = value

    @classmethod
    def from_decode(cls, info: VideoInfo, pts: list, crc: list[int], key_pts: set[int],
                    stat: os.stat_result) -> "FrameIndex":
        """Index from a sequential decode; seekable iff every timestamp exists and they strictly
        increase (only then does a timestamp name one frame and a seek target make sense)."""
        ordered = all(p is not None for p in pts) and all(a < b for a, b in zip(pts, pts[1:]))
        keys = sorted({0} | {j for j, p in enumerate(pts) if p in key_pts}) if ordered else [0]
        info = dataclasses.replace(info, seekable=ordered)
        return cls(info, stat.st_size, stat.st_mtime_ns, list(pts), list(crc), keys)


def fingerprint(frame: av.VideoFrame) -> int:
    """CRC32 of the visible bytes of the first (luma or packed) plane of a decoded frame.

    Cheap (no colour conversion) and identical for identical decoder output. Row padding is
    excluded: its content is undefined and differs between decodes.
    """
    plane = frame.planes[0]
    bits = sum(c.bits for c in frame.format.components if c.plane == 0)
    row = max(1, min(plane.line_size, plane.width * bits // 8))
    data = np.frombuffer(plane, np.uint8)
    rows = min(plane.height, data.size // plane.line_size)
    visible = data[:rows * plane.line_size].reshape(rows, plane.line_size)[:, :row]
    return zlib.crc32(np.ascontiguousarray(visible), zlib.crc32(f"{frame.width}x{frame.height}".encode()))


def default_cache_dir() -> str | None:
    """``$CCKIT_CACHE_DIR/video_index`` if set (``off``: no disk cache), else
    ``$XDG_CACHE_HOME/cckit/video_index`` or ``~/.cache/cckit/video_index``."""
    env = os.environ.get("CCKIT_CACHE_DIR")
    if env is not None:
        return None if env.lower() in ("", "off", "none") else os.path.join(env, "video_index")
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "cckit", "video_index")


def _cache_file(path: str, cache_dir: str | None) -> str | None:
    folder = default_cache_dir() if cache_dir is None else cache_dir
    if not folder or folder.lower() in ("off", "none"):
        return None
    digest = hashlib.blake2b(os.path.abspath(path).encode(), digest_size=16).hexdigest()
    return os.path.join(folder, digest[:2], digest + ".json")


def load_index(path: str, cache_dir: str | None) -> FrameIndex | None:
    """The cached index of ``path`` if the file's size and mtime still match, else None."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    key = os.path.abspath(path)
    with _LOCK:
        index = _MEMORY.get(key)
        if index is not None and (index.size, index.mtime_ns) == (stat.st_size, stat.st_mtime_ns):
            _MEMORY.move_to_end(key)
            return index
    cache_file = _cache_file(path, cache_dir)
    if cache_file is None:
        return None
    try:
        with open(cache_file, encoding="utf-8") as f:
            data = json.load(f)
        if (data["version"], data["path"], data["size"], data["mtime_ns"]) != (
                INDEX_VERSION, key, stat.st_size, stat.st_mtime_ns):
            return None
        info = VideoInfo(**{**data["info"], "path": path})
        index = FrameIndex(info, data["size"], data["mtime_ns"], data["pts"], data["crc"], data["keys"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # missing, stale or unreadable cache: index the file again
    _remember(key, index)
    return index


def save_index(index: FrameIndex, cache_dir: str | None) -> None:
    """Keep ``index`` in memory and, best effort, on disk (an unwritable cache is not an error)."""
    path = index.info.path
    _remember(os.path.abspath(path), index)
    cache_file = _cache_file(path, cache_dir)
    if cache_file is None:
        return
    data = {"version": INDEX_VERSION, "path": os.path.abspath(path), "size": index.size,
            "mtime_ns": index.mtime_ns, "info": dataclasses.asdict(index.info),
            "keys": index.keys, "pts": index.pts, "crc": index.crc}
    try:  # atomic: concurrent workers see the old or the new file
        atomic_write(cache_file, json.dumps(data, separators=(",", ":")), durable=False)
    except OSError:
        pass


def _remember(key: str, index: FrameIndex) -> None:
    with _LOCK:
        _MEMORY[key] = index
        _MEMORY.move_to_end(key)
        while len(_MEMORY) > _MEMORY_SIZE:
            _MEMORY.popitem(last=False)
