"""Tests for cckit.data.frame_store: exact frames from memory and from frame files, frame files
checked by header and end marker, a video of the wrong size named or skipped, the memory limit,
and the store the data config asks for (extracted frames: test_index's extract test)."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cckit.config import DataConfig
from cckit.data.frame_store import FrameStore
from cckit.data.index import index_data
from cckit.errors import DataError
from media import private_index_cache, videos, write_video  # noqa: F401 (fixtures: the index cache applies to every test here)


def _cfg(root, **kw):
    return DataConfig(source="videos", root=str(root), workers=0, **kw)


def _records(root):
    return index_data(_cfg(root)).splits["train"]


def _frames_folder(root: Path) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = []
    for v in range(2):
        for t in range(3):
            array = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
            (root / f"v{v}").mkdir(parents=True, exist_ok=True)
            Image.fromarray(array).save(root / f"v{v}" / f"{t:04d}.png")
            arrays.append(array)
    return arrays


def test_frame_folders_are_checked_and_read_exactly(tmp_path):
    arrays = _frames_folder(tmp_path / "frames")
    index = index_data(DataConfig(source="frames", root=str(tmp_path / "frames")))
    records = index.splits["train"]
    assert [r.num_frames for r in records] == [3, 3] and index.report["codecs"] == {"png image": 2}
    for in_memory in (False, True):
        store = FrameStore(records, in_memory=in_memory)
        np.testing.assert_array_equal(store.get(1, [2, 0]), np.stack([arrays[5], arrays[3]]))
    cut = tmp_path / "frames" / "v1" / "0001.png"
    cut.write_bytes(cut.read_bytes()[:-20])
    with pytest.raises(DataError, match=r"0001\.png: truncated PNG"):
        index_data(DataConfig(source="frames", root=str(tmp_path / "frames")))
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(cut)
    with pytest.raises(DataError, match="differ in size"):
        index_data(DataConfig(source="frames", root=str(tmp_path / "frames")))


def test_a_video_whose_frames_are_not_the_indexed_size_is_named_or_skipped(tmp_path):
    root = tmp_path / "wrong"
    write_video(root / "a" / "v0.mp4", 3, seed=0, gop=3)
    write_video(root / "a" / "v1.mp4", 4, size=48, seed=1, gop=3)
    records = [dataclasses.replace(r, width=32, height=32) for r in _records(root)]  # the index is off for v1
    with pytest.raises(DataError, match=r"v1\.mp4: frames decode at 48x48, the index says 32x32"):
        FrameStore(records, in_memory=True)
    store = FrameStore(records, in_memory=True, on_error="skip")
    wrong = [r.path for r in records].index(str(root / "a" / "v1.mp4"))
    assert store.block is not None and list(store.errors) == [wrong]
    assert store.take(np.array([wrong]), np.array([[0, 1]])) is None  # the batch reads per video then
    with pytest.raises(DataError, match="48x48"):
        store.get(wrong, [0])


def test_cache_limit_falls_back_to_reading_on_demand(videos):
    records = _records(videos)
    store = FrameStore(records, in_memory=True, cache_limit_gb=1e-6)
    assert store.loaded is None and store.memory_bytes() == sum(r.num_frames for r in records) * 32 * 32 * 3
    np.testing.assert_array_equal(store.get(7, [6, 1]), FrameStore(records, in_memory=True).get(7, [6, 1]))


def test_from_config_reads_the_data_keys(videos, tmp_path):
    records = _records(videos)
    index = str(tmp_path / "index")
    store = FrameStore.from_config(records, _cfg(videos, frames_in_memory=False, seek_index_cache=index))
    assert store.loaded is None and store.seek_index_cache == index
    np.testing.assert_array_equal(store.get(7, [6, 1]), FrameStore(records, in_memory=True).get(7, [6, 1]))
    assert FrameStore.from_config(records, _cfg(videos, cache_limit_gb=1e-6)).loaded is None
    with pytest.raises(DataError, match=r"missing: frame cache folder does not exist \(data\.extracted_frames"):
        FrameStore.from_config(records, _cfg(videos, extracted_frames=str(tmp_path / "missing")))
