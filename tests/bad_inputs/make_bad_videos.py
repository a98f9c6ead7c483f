"""Regenerate the bad video files of ``tests/bad_inputs/videos`` (committed; a few KB in all).

Run from the repository root: ``python tests/bad_inputs/make_bad_videos.py``. Each file is one
way a video can be unusable; ``tests/test_reliability.py`` runs every one through the CLI.
"""
from __future__ import annotations

import io
import struct
from pathlib import Path

import av
import numpy as np

OUT = Path(__file__).resolve().parent / "videos"


def h264_mp4(num_frames: int, size: int = 32) -> bytes:
    """A valid 32x32 H.264 mp4 of ``num_frames`` grey frames (the source of the damaged ones)."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=10)
        s.width = s.height = size
        s.pix_fmt = "yuv420p"
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(np.full((size, size, 3), 20 * i, np.uint8), format="rgb24")
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return buf.getvalue()


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    good = h264_mp4(6)
    (OUT / "empty.mp4").write_bytes(b"")  # zero bytes
    (OUT / "text.mp4").write_text("this is a text file, not a video\n")  # text renamed .mp4
    (OUT / "random.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 2048, dtype=np.uint8).tobytes())
    (OUT / "truncated.mp4").write_bytes(good[:len(good) // 2])  # cut in the middle of the media data
    # a valid container whose H.264 payload is zeroed: zero decodable frames
    data = bytearray(good)
    at = data.find(b"mdat")
    size = struct.unpack(">I", data[at - 4:at])[0]
    data[at + 4:at - 4 + size] = bytes(size - 8)
    (OUT / "zero_frames.mp4").write_bytes(bytes(data))
    # a container with a video stream header and no frames at all
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as c:
        s = c.add_stream("mpeg4", rate=10)
        s.width = s.height = 32
        s.pix_fmt = "yuv420p"
        c.start_encoding()
    (OUT / "no_frames.mp4").write_bytes(buf.getvalue())
    # audio only: an mp4 with one AAC stream and no video stream
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as c:
        a = c.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 8000
        for k in range(4):
            frame.pts = 1024 * k
            for p in a.encode(frame):
                c.mux(p)
        for p in a.encode():
            c.mux(p)
    (OUT / "audio_only.mp4").write_bytes(buf.getvalue())
    # a PNG image renamed .mp4
    buf = io.BytesIO()
    with av.open(buf, "w", format="image2pipe") as c:
        s = c.add_stream("png", rate=1)
        s.width = s.height = 8
        s.pix_fmt = "rgb24"
        for p in s.encode(av.VideoFrame.from_ndarray(np.zeros((8, 8, 3), np.uint8), format="rgb24")):
            c.mux(p)
    (OUT / "image.mp4").write_bytes(buf.getvalue())
    for p in sorted(OUT.iterdir()):
        print(f"{p.name}: {p.stat().st_size} bytes")


if __name__ == "__main__":
    main()
