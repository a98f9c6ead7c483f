"""Exact video decoding with PyAV: frame ``i`` of a file is the ``i``-th frame of a full sequential decode.

- :mod:`.decode`: probe, read frames by index (seeking only where it is proven exact), iterate;
- :mod:`.seek_index`: each file's frame / keyframe index with per-frame checksums, cached on disk;
- :mod:`.containers`: structural checks of mp4/mkv/avi files (truncation, missing ``moov``).
"""
from .decode import VideoInfo, count_frames, iter_frames, probe, read_all_frames, read_frames

__all__ = ["VideoInfo", "count_frames", "iter_frames", "probe", "read_all_frames", "read_frames"]
