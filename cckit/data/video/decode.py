"""Frame-exact video reading through PyAV, seeking only where it is proven exact.

Frame ``i`` of a video is, by definition, the ``i``-th frame that a full sequential decode of
its first video stream yields (decoder output order, which is presentation order), converted to
RGB uint8 and turned upright as the display-rotation metadata asks (as players and the ffmpeg
command line show it; flips in the display matrix are ignored). Container metadata (declared
frame counts, durations) is never trusted: it is often missing or wrong.

The first use of a file decodes it once and records, per frame, its timestamp and a checksum of
its pixels, plus the seek points (see :mod:`cckit.data.video.seek_index`, cached on disk by path,
size and mtime). A read then seeks to the last seek point at or before each wanted frame and
decodes forward, matching frames to the index by timestamp and *verifying* the checksum of every
frame it returns. Files whose timestamps are missing, repeated or out of order, and files where
a verification ever fails, are read by decoding from the start: slower, never wrong.
"""

from __future__ import annotations

import bisect
import os
import threading
from collections.abc import Iterator, Sequence

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from cckit.errors import DataError

from .containers import truncation_problem
from .seek_index import FrameIndex, VideoInfo, default_cache_dir, fingerprint, load_index, save_index

__all__ = ["VideoInfo", "count_frames", "probe", "read_frames", "read_all_frames", "iter_frames",
           "default_cache_dir"]

PathLike = str | os.PathLike
# A seek plus a decoder flush costs about as much as decoding this many frames (threads refill).
SEEK_COST_FRAMES = 8
# Frame threading pays off for large frames; for small ones starting its threads costs more than
# decoding (64x64 H.264: ~2x slower per video with "AUTO" than "SLICE"; 640x272: ~1.3x faster).
FRAME_THREADS_MIN_PIXELS = 100_000


class _NotExact(Exception):
    """Seeking in this file did not reproduce the sequential decode."""


def _check_file(name: str) -> os.stat_result:
    if not os.path.exists(name):
        raise DataError(f"{name}: file not found")
    if not os.path.isfile(name):
        raise DataError(f"{name}: not a regular file")
    stat = os.stat(name)
    if stat.st_size == 0:
        raise DataError(f"{name}: empty file (0 bytes)")
    return stat


def _open(name: str) -> av.container.InputContainer:
    """Open ``name`` for reading, turning every way it can fail into a DataError."""
    _check_file(name)
    try:
        container = av.open(name, mode="r")
    except (av.FFmpegError, OSError) as error:
        problem = truncation_problem(name)
        why = problem or f"cannot be opened as a video, not a video file or corrupt ({error})"
        raise DataError(f"{name}: {why}") from error
    if container.format.name == "image2" or container.format.name.endswith("_pipe"):
        container.close()
        raise DataError(f"{name}: an image ({container.format.name}), not a video")
    return container


def _stream(container: av.container.InputContainer, name: str) -> av.video.stream.VideoStream:
    if not container.streams.video:
        problem = truncation_problem(name)
        raise DataError(f"{name}: {problem or 'no video stream'}")
    stream = container.streams.video[0]
    # Threading changes speed only: the decoder output is bit-identical.
    context = stream.codec_context
    large = (context.width or 0) * (context.height or 0) >= FRAME_THREADS_MIN_PIXELS
    stream.thread_type = "AUTO" if large else "SLICE"
    return stream


def _decode_error(name: str, decoded: int, error: Exception) -> DataError:
    """An FFmpeg failure mid-stream. Strict on purpose: a silently shortened stream would make
    the frame count depend on where the damage is, and the index must agree with every read."""
    problem = truncation_problem(name)
    return DataError(f"{name}: {problem or f'decoding failed after {decoded} frames ({error})'}")


def _rotation(frame: av.VideoFrame) -> int:
    """Display rotation of a frame, rounded to a multiple of 90 degrees counter-clockwise."""
    return int(round((frame.rotation or 0) / 90)) % 4 * 90


_local = threading.local()


def _rgb(frame: av.VideoFrame, rotation: int) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB, turned ``rotation`` degrees counter-clockwise (display upright)."""
    # One reformatter per thread keeps its swscale context between frames: ``to_ndarray(format=)``
    # builds a new one per call, which costs 10x the conversion of a 64x64 frame. Same output.
    if not hasattr(_local, "reformatter"):
        _local.reformatter = VideoReformatter()
    rgb = _local.reformatter.reformat(frame, format="rgb24").to_ndarray()
    return np.ascontiguousarray(np.rot90(rgb, rotation // 90)) if rotation else rgb


def _build(name: str, capture: set[int]) -> tuple[FrameIndex, dict[int, np.ndarray]]:
    """One full decode: the frame index of ``name``, plus RGB copies of the ``capture`` frames."""
    stat = _check_file(name)
    problem = truncation_problem(name)
    if problem:
        raise DataError(f"{name}: {problem}")
    pts, crc, key_pts, got = [], [], set(), {}
    first = None
    with _open(name) as container:
        stream = _stream(container, name)
        try:
            for packet in container.demux(stream):
                if packet.is_keyframe and packet.pts is not None:
                    key_pts.add(packet.pts)
                for frame in packet.decode():
                    if first is None:
                        first, rotation = frame, _rotation(frame)
                    elif (frame.width, frame.height) != (first.width, first.height):
                        raise DataError(f"{name}: frame size changes within the video "
                                        f"({first.width}x{first.height} to {frame.width}x{frame.height} "
                                        f"at frame {len(pts)})")
                    if len(pts) in capture:
                        got[len(pts)] = _rgb(frame, rotation)
                    pts.append(frame.pts)
                    crc.append(fingerprint(frame))
        except av.FFmpegError as error:
            raise _decode_error(name, len(pts), error) from error
        if first is None:
            raise DataError(f"{name}: no decodable frames")
        width, height = (first.height, first.width) if rotation in (90, 270) else (first.width, first.height)
        info = VideoInfo(path=name, num_frames=len(pts), width=width, height=height, rotation=rotation,
                         codec=stream.codec_context.name, pix_fmt=first.format.name,
                         declared_frames=int(stream.frames or 0),
                         fps=float(stream.average_rate or 0), seekable=False)
    index = FrameIndex.from_decode(info, pts, crc, key_pts, stat)
    return index, got


def _index(name: str, cache_dir: str | None, capture: set[int] = frozenset()):
    """The frame index of ``name`` (memory, then disk cache, then one decode pass)."""
    index = load_index(name, cache_dir)
    if index is not None:
        return index, {}
    index, got = _build(name, capture)
    save_index(index, cache_dir)
    return index, got


def probe(path: PathLike, *, cache_dir: str | None = None) -> VideoInfo:
    """Frame count, display size, rotation, codec and seekability of a video (one decode, cached).

    Args:
        path: Video file readable by FFmpeg (mp4, avi, webm, mkv, mov, ...).
        cache_dir: Folder of the per-file index cache; None: :func:`default_cache_dir`,
            ``"off"``: no disk cache.

    Raises:
        DataError: The file is missing, empty, truncated, not a video, has no video stream,
            fails to decode, changes frame size, or has no decodable frame. The message starts
            with the path and says why.
    """
    return _index(os.fspath(path), cache_dir)[0].info


def count_frames(path: PathLike, *, cache_dir: str | None = None) -> int:
    """Number of frames of the first video stream that actually decode (at least 1).

    Decodes the whole stream once (then cached); ``stream.frames`` and durations are ignored.
    Raises DataError as :func:`probe` does.
    """
    return probe(path, cache_dir=cache_dir).num_frames


def _as_indices(indices: Sequence[int] | np.ndarray, name: str) -> list[int]:
    """Validate requested frame indices: a 1-D sequence of non-negative integers."""
    array = np.asarray(indices)
    if array.size == 0:
        return []
    if array.ndim != 1 or array.dtype.kind not in "iu":
        raise TypeError(f"frame indices must be a 1-D sequence of ints, got {array.dtype} "
                        f"with shape {array.shape}")
    wanted = [int(i) for i in array]
    negative = [i for i in wanted if i < 0]
    if negative:
        raise DataError(f"{name}: frame index {negative[0]} out of range (negative)")
    return wanted


def _read_sequential(name: str, info: VideoInfo, targets: list[int]) -> dict[int, np.ndarray]:
    """Decode from the start up to the last target; frame ``j`` is the ``j``-th decoded frame."""
    out, want, decoded, rotation = {}, set(targets), 0, info.rotation
    with _open(name) as container:
        stream = _stream(container, name)
        try:
            for frame in container.decode(stream):
                if decoded in want:
                    out[decoded] = _rgb(frame, rotation)
                decoded += 1
                if decoded > targets[-1]:
                    return out
        except av.FFmpegError as error:
            raise _decode_error(name, decoded, error) from error
    raise DataError(f"{name}: frame index {targets[-1]} out of range (video has {decoded} "
                    f"decodable frames; the file changed since it was indexed)")


def _run(container, stream, index: FrameIndex, start: int) -> Iterator[tuple[int, av.VideoFrame]]:
    """Frames ``start, start+1, ...`` after seeking to seek point ``start``, matched by timestamp."""
    container.seek(index.pts[start], stream=stream, backward=True, any_frame=False)
    expected = start
    for frame in container.decode(stream):
        j = index.position.get(frame.pts)
        if j is None:
            raise _NotExact
        if expected == start and j < start:
            continue  # leading frames of an open GOP: never used, they may lack references
        if j != expected:
            raise _NotExact
        expected += 1
        yield j, frame


def _read_seeking(name: str, index: FrameIndex, targets: list[int]) -> dict[int, np.ndarray]:
    """Read sorted unique ``targets``, seeking forward whenever that beats decoding on."""
    out, rotation = {}, index.info.rotation
    with _open(name) as container:
        stream = _stream(container, name)
        run, position, seeked = None, -1, False
        try:
            for target in targets:
                start = index.keys[bisect.bisect_right(index.keys, target) - 1]
                if run is None or (start > position + 1
                                   and target - position > target - start + SEEK_COST_FRAMES):
                    if start == 0:
                        run = enumerate(container.decode(stream))
                    else:
                        run, seeked = _run(container, stream, index, start), True
                for j, frame in run:
                    position = j
                    if j == target:
                        if seeked and fingerprint(frame) != index.crc[j]:
                            raise _NotExact
                        out[j] = _rgb(frame, rotation)
                        break
                else:
                    raise _NotExact
        except av.FFmpegError as error:
            raise _decode_error(name, position + 1, error) from error
    return out


def read_frames(path: PathLike, indices: Sequence[int] | np.ndarray, *,
                cache_dir: str | None = None) -> np.ndarray:
    """Read frames by index, exactly as a full sequential decode would produce them.

    Indices may be unsorted or repeated; the output follows their order. Seeks where the file's
    index proves it exact (every returned frame's checksum is checked against the sequential
    decode), otherwise decodes from the start up to the largest index.

    Args:
        path: Video file readable by FFmpeg.
        indices: ``(N,)`` frame indices, ``0 <= i < count_frames(path)``.
        cache_dir: As for :func:`probe`.

    Returns:
        ``(N, H, W, 3)`` uint8 RGB frames, upright; ``out[j]`` is frame ``indices[j]``.

    Raises:
        DataError: As for :func:`probe`, or an index is out of range (the message gives the
            number of decodable frames).
        TypeError: ``indices`` is not a 1-D sequence of integers.
    """
    name = os.fspath(path)
    wanted = _as_indices(indices, name)
    index, got = _index(name, cache_dir, capture=set(wanted))
    info = index.info
    if wanted and max(wanted) >= info.num_frames:
        raise DataError(f"{name}: frame index {max(wanted)} out of range "
                        f"(video has {info.num_frames} decodable frames)")
    if not wanted:
        return np.empty((0, info.height, info.width, 3), dtype=np.uint8)
    targets = sorted(set(wanted) - set(got))
    if targets:
        if index.seekable and index.keys[-1] > 0:
            try:
                got.update(_read_seeking(name, index, targets))
            except _NotExact:
                index.seekable = False  # remembered in memory and on disk: read this file from the start
                save_index(index, cache_dir)
                got.update(_read_sequential(name, info, targets))
        else:
            got.update(_read_sequential(name, info, targets))
    return np.stack([got[i] for i in wanted])


def iter_frames(path: PathLike) -> Iterator[np.ndarray]:
    """Yield every frame, ``(H, W, 3)`` uint8 RGB upright, in one sequential pass (constant memory).

    Raises:
        DataError: As for :func:`probe` (possibly after some frames were yielded).
    """
    name = os.fspath(path)
    decoded, rotation, shape = 0, 0, None
    _check_file(name)
    problem = truncation_problem(name)
    if problem:
        raise DataError(f"{name}: {problem}")
    with _open(name) as container:
        stream = _stream(container, name)
        try:
            for frame in container.decode(stream):
                if shape is None:
                    rotation, shape = _rotation(frame), (frame.width, frame.height)
                elif (frame.width, frame.height) != shape:
                    raise DataError(f"{name}: frame size changes within the video ({shape[0]}x{shape[1]} "
                                    f"to {frame.width}x{frame.height} at frame {decoded})")
                decoded += 1
                yield _rgb(frame, rotation)
        except av.FFmpegError as error:
            raise _decode_error(name, decoded, error) from error
    if not decoded:
        problem = truncation_problem(name)
        raise DataError(f"{name}: {problem or 'no decodable frames'}")


def read_all_frames(path: PathLike) -> np.ndarray:
    """Decode every frame of the first video stream (one sequential pass).

    Returns:
        ``(T, H, W, 3)`` uint8 RGB frames, upright, ``T == count_frames(path)``.

    Raises:
        DataError: As for :func:`probe`.
    """
    return np.stack(list(iter_frames(path)))
