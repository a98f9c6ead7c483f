"""Videos stored as folders of image frames (R2V2, ``<video>/<frame>.jpg``): check and read them."""
from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import DataError

__all__ = ["check_frame_file", "read_frame_files"]


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
