"""Frame-exact video reading through PyAV.

Frame ``i`` of a video is, by definition, the ``i``-th frame that a full sequential decode of
its first video stream yields (decoder output order, which is presentation order). Container
metadata (``stream.frames``, durations, timestamps) is never trusted: it is often missing or
wrong, and B-frames or broken timestamps make seeking by time inexact. This basic version
always decodes from the start and stops after the largest requested index.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence

import av
import numpy as np

from cckit.errors import DataError

__all__ = ["count_frames", "read_frames", "read_all_frames"]

PathLike = str | os.PathLike


def _open(name: str) -> av.container.InputContainer:
    """Open ``name`` for reading, turning every way it can fail into a DataError."""
    if not os.path.exists(name):
        raise DataError(f"{name}: file not found")
    if not os.path.isfile(name):
        raise DataError(f"{name}: not a regular file")
    if os.path.getsize(name) == 0:
        raise DataError(f"{name}: empty file (0 bytes)")
    try:
        return av.open(name, mode="r")
    except (av.FFmpegError, OSError) as error:
        raise DataError(f"{name}: cannot be opened as a video ({error})") from error


def _decode(container: av.container.InputContainer, name: str) -> Iterator[av.VideoFrame]:
    """Yield the frames of the first video stream in decode-output (presentation) order."""
    if not container.streams.video:
        raise DataError(f"{name}: no video stream")
    stream = container.streams.video[0]
    # Frame/slice threading changes speed only; the decoder output is bit-identical.
    stream.thread_type = "AUTO"
    frames = container.decode(stream)
    decoded = 0
    while True:
        try:
            frame = next(frames)
        except StopIteration:
            break
        except av.FFmpegError as error:
            # Strict on purpose: silently truncating here would make the frame count depend on
            # where the corruption is, and the index must agree with every later read.
            raise DataError(f"{name}: decoding failed after {decoded} frames ({error})") from error
        decoded += 1
        yield frame
    if decoded == 0:
        raise DataError(f"{name}: no decodable frames")


def _stack(frames: list[np.ndarray], name: str) -> np.ndarray:
    """Stack ``(H, W, 3)`` frames, refusing streams whose frame size changes mid-video."""
    shapes = {frame.shape for frame in frames}
    if len(shapes) > 1:
        raise DataError(f"{name}: frame size changes within the video ({sorted(shapes)})")
    return np.stack(frames)


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


def count_frames(path: PathLike) -> int:
    """Count the frames of the first video stream that actually decode.

    Decodes the whole stream; ``stream.frames`` and durations are ignored.

    Args:
        path: Video file readable by FFmpeg (mp4, avi, webm, mkv, ...).

    Returns:
        Number of decodable frames, at least 1.

    Raises:
        DataError: The file is missing, empty, unreadable, has no video stream, fails to decode,
            or has no decodable frame. The message starts with the path.
    """
    name = os.fspath(path)
    with _open(name) as container:
        return sum(1 for _ in _decode(container, name))


def read_frames(path: PathLike, indices: Sequence[int] | np.ndarray) -> np.ndarray:
    """Read frames by index, exactly as a full sequential decode would produce them.

    Decodes from the start and stops after the largest requested index, converting only the
    requested frames. Indices may be unsorted or repeated; the output follows their order.

    Args:
        path: Video file readable by FFmpeg.
        indices: ``(N,)`` frame indices, ``0 <= i < count_frames(path)``.

    Returns:
        ``(N, H, W, 3)`` uint8 RGB frames; ``out[j]`` is frame ``indices[j]``.

    Raises:
        DataError: As for :func:`count_frames`, or an index is out of range (the message gives
            the number of decodable frames).
        TypeError: ``indices`` is not a 1-D sequence of integers.
    """
    name = os.fspath(path)
    wanted = _as_indices(indices, name)
    last = max(wanted, default=0)  # with no indices, still decode frame 0 to validate and size
    needed = set(wanted)
    rgb: dict[int, np.ndarray] = {}
    with _open(name) as container:
        decoded = 0
        for index, frame in enumerate(_decode(container, name)):
            decoded, shape = index + 1, (0, frame.height, frame.width, 3)
            if index in needed:
                rgb[index] = frame.to_ndarray(format="rgb24")
            if index >= last:
                break
    if last >= decoded:
        # The loop only ends without reaching `last` by exhausting the stream, so `decoded`
        # is the true frame count here.
        raise DataError(f"{name}: frame index {last} out of range "
                        f"(video has {decoded} decodable frames)")
    if not wanted:
        return np.empty(shape, dtype=np.uint8)
    return _stack([rgb[i] for i in wanted], name)


def read_all_frames(path: PathLike) -> np.ndarray:
    """Decode every frame of the first video stream.

    Args:
        path: Video file readable by FFmpeg.

    Returns:
        ``(T, H, W, 3)`` uint8 RGB frames, ``T == count_frames(path)``.

    Raises:
        DataError: As for :func:`count_frames`.
    """
    name = os.fspath(path)
    with _open(name) as container:
        frames = [frame.to_ndarray(format="rgb24") for frame in _decode(container, name)]
    return _stack(frames, name)
