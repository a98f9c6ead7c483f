"""Tests for cckit.data.dataset: training items pure in (seed, epoch, index) whichever path the frame
store reads, frame sampling rules, and the replacement of a video that fails mid-run (counted, never a crash)."""

import json

import av
import pytest
import torch

from cckit.config import DataConfig, load_config
from cckit.data import frame_store
from cckit.data.dataset import TrainClips
from cckit.data.frame_store import FrameStore
from cckit.data.index import index_data
from cckit.errors import DataError
from media import private_index_cache, videos, write_video  # noqa: F401 (fixtures: the index cache applies to every test here)


def _cfg(root, **kw):
    kw.setdefault("augment", "loader")  # per-sample crops in the item; the batch path is tested below
    return DataConfig(source="videos", root=str(root), crop_size=16, workers=0, **kw)


def _records(root):
    return index_data(_cfg(root)).splits["train"]


def test_items_are_pure_and_identical_with_or_without_frames_in_memory(videos):
    records = _records(videos)
    cached = TrainClips(records, _cfg(videos, frames_in_memory=True), seed=3)
    streamed = TrainClips(records, _cfg(videos, frames_in_memory=False), seed=3)
    assert cached.frames.loaded is not None and streamed.frames.loaded is None
    for item in (5, (2, 7), (0, 0)):
        a, b, again = cached[item], streamed[item], cached[item]
        assert len(a) == 5 and a[4] is False and a[3] == records[item[1] if isinstance(item, tuple) else item].video_id
        for x, y, z in zip(a[:3], b[:3], again[:3]):
            assert x.shape == (3, 16, 16)
            torch.testing.assert_close(x, y, rtol=0, atol=0)  # exact frames through both paths
            torch.testing.assert_close(x, z, rtol=0, atol=0)
    assert not torch.equal(cached[(0, 5)][0], cached[(1, 5)][0])  # another epoch, other crops
    # data.augment=batch: the items are the uint8 frames f, f' and the seed, the same both ways
    cached = TrainClips(records, _cfg(videos, frames_in_memory=True, augment="batch", size=32), seed=3)
    streamed = TrainClips(records, _cfg(videos, frames_in_memory=False, augment="batch", size=32), seed=3)
    for item in (5, (2, 7), (0, 0)):
        a, b = cached[item], streamed[item]
        assert len(a) == 4 and a[0].dtype == torch.uint8 and a[0].shape == (2, 3, 32, 32)
        assert torch.equal(a[0], b[0]) and a[1] == b[1] and a[2] == b[2]


@pytest.mark.parametrize("in_memory", [True, False])
def test_a_batch_is_its_items_stacked(videos, in_memory):
    """TrainClips.batch (one index of the frame block, or per video when reading on demand) is the
    default collate of the items; the frames are exact, whatever the layout they arrive in."""
    records = _records(videos)
    clips = TrainClips(records, _cfg(videos, frames_in_memory=in_memory, augment="batch", size=32), seed=3)
    assert (clips.frames.block is not None) == in_memory  # all 32x32: one block
    items = [(2, 7), (0, 0), (5, 3), (2, 7), (1, 6)]
    frames, seeds, ids, replaced = clips.batch(items)
    assert frames.shape == (5, 2, 3, 32, 32) and frames.dtype == torch.uint8 and seeds.dtype == torch.int64
    for n, item in enumerate(items):
        one = clips[item]
        assert torch.equal(frames[n], one[0]) and int(seeds[n]) == one[1] and int(ids[n]) == one[2]
        f, f2 = clips.sample_frames(item[1], item[0])
        expected = FrameStore(records, in_memory=False).get(item[1], [f, f2])
        assert torch.equal(frames[n], torch.from_numpy(expected).permute(0, 3, 1, 2))
    assert not replaced.any() and len(set(seeds.tolist())) == 4  # (2, 7) twice: one seed
    loader = clips.batch([3, 4])  # plain indices use clips.epoch
    assert torch.equal(loader[0], clips.batch([(0, 3), (0, 4)])[0])


def test_frames_of_several_sizes_are_cached_per_video_and_resized_in_the_batch(tmp_path):
    root = tmp_path / "mixed"
    write_video(root / "a" / "v0.mp4", 3, seed=0, gop=3)
    write_video(root / "a" / "v1.mp4", 4, size=48, seed=1, gop=3)
    records = _records(root)
    clips = TrainClips(records, _cfg(root, frames_in_memory=True, augment="batch", size=32), seed=0)
    assert clips.frames.block is None and len(clips.frames.loaded) == 2  # no one block for two sizes
    frames = clips.batch([0, 1])[0]
    assert frames.shape == (2, 2, 3, 32, 32)
    big = [r.num_frames for r in records].index(4)
    f, f2 = clips.sample_frames(big)
    source = torch.from_numpy(clips.frames.get(big, [f, f2])).permute(0, 3, 1, 2)
    from torchvision.transforms import v2
    assert torch.equal(frames[big], v2.functional.resize(source, [32, 32], antialias=True))


def test_one_frame_videos_and_max_frame_distance(videos):
    records = _records(videos)
    clips = TrainClips(records, _cfg(videos, max_frame_distance=2), seed=0)
    assert clips.sample_frames(0) == (0, 0)  # one frame: x_p comes from the same frame
    for epoch in range(20):
        f, f2 = clips.sample_frames(7, epoch)
        assert 0 <= f < 8 and 0 <= f2 < 8 and abs(f - f2) <= 2
    uniform = TrainClips(records, _cfg(videos), seed=0)
    gaps = {abs(f - f2) for f, f2 in (uniform.sample_frames(7, e) for e in range(200))}
    assert max(gaps) > 2


def _break(path):
    path.write_bytes(b"\x00" * 1000)  # the file changed on disk after indexing


@pytest.mark.parametrize("cache", [False, True])
def test_a_video_that_breaks_after_indexing_is_replaced_deterministically(videos, cache):
    records = _records(videos)
    broken = [r.path for r in records].index(str(videos / "c1" / "v5.mp4"))
    cfg = _cfg(videos, frames_in_memory=cache, on_error="skip")
    _break(videos / "c1" / "v5.mp4")
    clips = TrainClips(records, cfg, seed=1)
    for epoch in range(3):
        x_q, x_k, x_p, video_id, replaced = clips[(epoch, broken)]
        assert replaced is True and video_id != records[broken].video_id
        again = clips[(epoch, broken)]
        assert again[3] == video_id and torch.equal(again[0], x_q)
    assert clips[(0, broken - 1)][4] is False
    batched = TrainClips(records, _cfg(videos, frames_in_memory=cache, on_error="skip", augment="batch", size=32), seed=1)
    frames, _, ids, replaced = batched.batch([(1, broken), (1, broken - 1)])  # per video: one failed
    assert replaced.tolist() == [True, False] and int(ids[0]) == clips[(1, broken)][3]
    assert torch.equal(frames[1], batched[(1, broken - 1)][0])
    if cache:  # with on_error=raise the store refuses to start instead
        with pytest.raises(DataError, match=r"v5\.mp4"):
            TrainClips(records, _cfg(videos, frames_in_memory=True), seed=1)


def test_replaced_samples_are_counted_in_the_training_metrics(videos, tmp_path, tiny_overrides, monkeypatch):
    """A read failure mid-run (here injected for one video) neither crashes training nor goes unseen."""
    from cckit.train import train

    broken = str(videos / "c0" / "v2.mp4")
    real = frame_store.read_frames

    def flaky(path, indices, **kw):
        if path == broken:
            raise DataError(f"{path}: decoding failed after 0 frames (injected)")
        return real(path, indices, **kw)

    monkeypatch.setattr(frame_store, "read_frames", flaky)
    overrides = [o for o in tiny_overrides if not o.startswith(("data.root", "run_dir"))]
    cfg = load_config(None, overrides + [f"data.root={videos}", "data.source=videos", "data.frames_in_memory=false",
                                         f"run_dir={tmp_path / 'run'}", "train.max_steps=3"])
    result = train(cfg, progress=False)
    assert result["steps"] == 3
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [line["replaced_samples"] for line in lines] == [1, 1, 1]  # batch 8 = all 8 videos, one broken
