"""Small media files for the tests: PyAV-encoded videos of random frames, and a video stream
without a single frame; and the fixture that gives a test its own seek-index cache (import it
into a test module to use it there)."""
from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from cckit.data.video import seek_index


@pytest.fixture(autouse=True)
def private_index_cache(tmp_path, monkeypatch):
    """The importing module's tests each get their own on-disk seek-index cache and an empty in-memory one."""
    monkeypatch.setenv("CCKIT_CACHE_DIR", str(tmp_path / "cache"))
    seek_index._MEMORY.clear()


def write_video(path: Path, num_frames: int, size: int = 32, seed: int = 0, gop: int = 4) -> Path:
    """A small H.264 file of random frames (``size`` square, keyframe every ``gop`` frames)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width = stream.height = size
        stream.pix_fmt, stream.options = "yuv420p", {"g": str(gop)}
        for _ in range(num_frames):
            array = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def write_video_without_frames(path: Path) -> Path:
    """A container with an H.264 video stream that holds no frame (and one audio frame)."""
    with av.open(str(path), mode="w") as container:
        v = container.add_stream("libx264", rate=10)
        v.width = v.height = 32
        a = container.add_stream("aac", rate=8000)
        tone = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        tone.sample_rate = 8000
        container.mux(a.encode(tone))
        container.mux(a.encode(None))
    return path


@pytest.fixture
def videos(tmp_path):
    """8 videos of 1-8 frames under <root>/<class>/."""
    root = tmp_path / "videos"
    for v in range(8):
        write_video(root / f"c{v % 2}" / f"v{v}.mp4", v + 1, seed=v, gop=3)
    return root
