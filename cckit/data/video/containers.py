"""Byte-level sanity checks of video containers: is the file cut short?

FFmpeg happily decodes the first part of a truncated Matroska or AVI file and reports a clean
end of stream, and a truncated MP4 often opens with no streams at all. Both would make a
half-downloaded file look like a short video. The top-level structure of these containers
declares how long each part is, so a truncation shows as a part that runs past the end of the
file. Reading a few headers is cheap, so :mod:`cckit.data.video` runs this on every new file.
"""
from __future__ import annotations

import os
import struct
from typing import BinaryIO

__all__ = ["truncation_problem"]

_MP4_TOP_LEVEL = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"uuid", b"pnot", b"pdin"}
_EBML_MAGIC = b"\x1a\x45\xdf\xa3"
_MKV_SEGMENT = b"\x18\x53\x80\x67"
_MAX_PARTS = 1_000_000  # fragmented MP4s have many boxes; this only bounds a corrupt loop


def truncation_problem(path: str | os.PathLike) -> str | None:
    """Say why the container structure shows ``path`` to be cut short, or return None.

    Checks MP4/MOV (top-level boxes, presence of ``moov``), AVI (RIFF chunk sizes) and
    Matroska/WebM (the Segment size). Other formats and unknown-size (live) streams pass.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(12)
        if head[4:8] in _MP4_TOP_LEVEL:
            return _mp4_problem(f, size)
        if head[:4] == b"RIFF":
            return _riff_problem(f, size)
        if head[:4] == _EBML_MAGIC:
            return _matroska_problem(f, size)
    return None


def _mp4_problem(f: BinaryIO, size: int) -> str | None:
    offset, seen = 0, set()
    for _ in range(_MAX_PARTS):
        if offset >= size:
            break
        f.seek(offset)
        header = f.read(16)
        if len(header) < 8:
            return f"truncated: a box header at byte {offset} is cut off (file ends at byte {size})"
        length, kind = struct.unpack(">I4s", header[:8])
        if length == 1:  # 64-bit "largesize" follows the type
            if len(header) < 16:
                return f"truncated: a box header at byte {offset} is cut off (file ends at byte {size})"
            length = struct.unpack(">Q", header[8:16])[0]
        elif length == 0:  # the last box runs to the end of the file by definition
            seen.add(kind)
            break
        if length < 8:
            return f"corrupt MP4: box {kind!r} at byte {offset} declares {length} bytes"
        if offset + length > size:
            name = kind.decode("latin-1")
            return (f"truncated: the '{name}' box at byte {offset} needs {length} bytes but the file "
                    f"ends at byte {size} (an incomplete download or copy)")
        seen.add(kind)
        offset += length
    if b"moov" not in seen:
        return "truncated or unfinished: no 'moov' box (the recording was not closed, or the file is cut short)"
    return None


def _riff_problem(f: BinaryIO, size: int) -> str | None:
    # AVI is a RIFF chunk, followed by RIFF 'AVIX' chunks in OpenDML files over 1 GB.
    offset = 0
    for _ in range(_MAX_PARTS):
        if offset + 8 > size:
            break
        f.seek(offset)
        tag, length = struct.unpack("<4sI", f.read(8))
        end = offset + 8 + length + (length & 1)
        if tag != b"RIFF":
            break  # trailing bytes after the last RIFF chunk are harmless
        if offset + 8 + length > size:  # a missing pad byte at the very end is tolerated
            return (f"truncated: the RIFF chunk at byte {offset} needs {length + 8} bytes but the "
                    f"file ends at byte {size} (an incomplete download or copy)")
        offset = end
    return None


def _vint(f: BinaryIO) -> tuple[int | None, int]:
    """Read an EBML variable-length size: (value or None for 'unknown', bytes read)."""
    first = f.read(1)
    if not first:
        raise EOFError
    byte = first[0]
    length = 1
    while length <= 8 and not byte & (0x80 >> (length - 1)):
        length += 1
    if length > 8:
        raise ValueError("invalid EBML size")
    rest = f.read(length - 1)
    if len(rest) < length - 1:
        raise EOFError
    value = byte & (0xFF >> length)
    for b in rest:
        value = value << 8 | b
    unknown = value == (1 << (7 * length)) - 1
    return (None if unknown else value), length


def _matroska_problem(f: BinaryIO, size: int) -> str | None:
    try:
        f.seek(4)
        header_size, n = _vint(f)
        if header_size is None:
            return "corrupt Matroska: EBML header of unknown size"
        f.seek(4 + n + header_size)
        if f.read(4) != _MKV_SEGMENT:
            return None  # not the usual layout; let FFmpeg judge
        segment_size, n = _vint(f)
        start = f.tell()
    except EOFError:
        return f"truncated: the Matroska header is cut off (file ends at byte {size})"
    except ValueError as error:
        return f"corrupt Matroska header ({error})"
    if segment_size is not None and start + segment_size > size:
        return (f"truncated: the Matroska segment needs {start + segment_size} bytes but the file "
                f"ends at byte {size} (an incomplete download or copy)")
    return None
