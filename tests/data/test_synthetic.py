"""Tests for cckit.data.synthetic: deterministic moving-digit videos, boxes, splits and manifest."""

import json
import time

import numpy as np
import pytest

from cckit.data.manifest import load_manifest, write_manifest
from cckit.data.synthetic import STYLES, MotionStyle, load_digits_arrays, make_default_dataset, make_moving_videos
from cckit.data.video import count_frames, read_all_frames
from cckit.errors import ConfigError, DataError

TINY = dict(frames_per_video=(4, 6), size=32)


@pytest.fixture(scope="module")
def digits():
    return load_digits_arrays()


def _pixels(root, records):
    return [read_all_frames(root / record["path"]) for record in records]


def test_same_seed_same_pixels_other_seed_differs(tmp_path, digits):
    images, labels, _ = digits
    runs = {}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        records = make_moving_videos(images, labels, tmp_path / name, num_videos=4, seed=seed,
                                     **TINY)
        runs[name] = (records, _pixels(tmp_path / name, records))
    assert runs["a"][0] == runs["b"][0]
    for x, y in zip(runs["a"][1], runs["b"][1]):
        np.testing.assert_array_equal(x, y)
    assert runs["a"][0] != runs["c"][0]
    assert any(x.shape != y.shape or not np.array_equal(x, y)
               for x, y in zip(runs["a"][1], runs["c"][1]))


def test_workers_do_not_change_the_result(tmp_path, digits):
    images, labels, _ = digits
    serial = make_moving_videos(images, labels, tmp_path / "one", num_videos=6, seed=1, **TINY)
    parallel = make_moving_videos(images, labels, tmp_path / "two", num_videos=6, seed=1,
                                  workers=2, **TINY)
    assert serial == parallel
    for x, y in zip(_pixels(tmp_path / "one", serial), _pixels(tmp_path / "two", parallel)):
        np.testing.assert_array_equal(x, y)


def test_encoding_the_same_frames_gives_the_same_bytes(tmp_path, digits):
    """x264 with macroblock-tree rate control encoded about 1 video in 600 differently in one
    process (pixels off by up to 14): 360 encodes of the same six videos must all agree."""
    images, labels, _ = digits
    first = None
    for trial in range(60):
        records = make_moving_videos(images, labels, tmp_path, num_videos=6, seed=1, **TINY)
        data = [(tmp_path / r["path"]).read_bytes() for r in records]
        first = first or data
        assert data == first, f"trial {trial}: videos {[i for i, (a, b) in enumerate(zip(data, first)) if a != b]} differ"


@pytest.mark.parametrize("style", sorted(STYLES))
def test_records_boxes_and_files_agree(tmp_path, digits, style):
    images, labels, names = digits
    records = make_moving_videos(images, labels, tmp_path, num_videos=5, seed=0, style=style,
                                 split="val", first_video_id=40, class_names=names, **TINY)
    assert [r["video_id"] for r in records] == [40, 41, 42, 43, 44]
    assert len({r["source_index"] for r in records}) == 5  # no repeats while the pool lasts
    for record in records:
        assert list(record) == ["video_id", "path", "split", "label", "class_name", "motion",
                                "num_frames", "boxes", "source_index"]
        assert record["path"] == f"videos/val/{record['video_id']:06d}.mp4"
        assert record["label"] == labels[record["source_index"]]
        assert record["class_name"] == str(record["label"]) and record["split"] == "val"
        assert record["motion"] in MotionStyle().motions
        assert 4 <= record["num_frames"] <= 6
        decodable = count_frames(tmp_path / record["path"])
        assert len(record["boxes"]) == record["num_frames"] == decodable
        boxes = np.array(record["boxes"])
        assert (boxes >= 0).all() and (boxes <= 32).all()
        assert (boxes[:, 2] > boxes[:, 0] + 2).all() and (boxes[:, 3] > boxes[:, 1] + 2).all()
        assert np.array_equal(boxes, boxes.round(2))
    assert not list(tmp_path.rglob("*.tmp"))  # temp files were renamed into place


def test_easy_digit_is_clearly_visible(tmp_path, digits):
    images, labels, _ = digits
    records = make_moving_videos(images, labels, tmp_path, num_videos=5, seed=2, style="easy",
                                 **TINY)
    for record, frames in zip(records, _pixels(tmp_path, records)):
        for frame, (x0, y0, x1, y1) in zip(frames.astype(float), record["boxes"]):
            inside = np.zeros(frame.shape[:2], bool)
            inside[int(y0):int(np.ceil(y1)), int(x0):int(np.ceil(x1))] = True
            # Mean colour inside the digit box vs. the background around it, on 0..255.
            contrast = np.abs(frame[inside].mean(0) - frame[~inside].mean(0)).mean()
            assert contrast > 20, (record["video_id"], contrast)


def test_any_labelled_colour_array_works(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (9, 12, 12, 3), dtype=np.uint8)
    labels = np.array([0, 1, 2] * 3)
    names = {0: "cat", 1: "dog", 2: "ship"}
    records = make_moving_videos(images, labels, tmp_path, num_videos=12, frames_per_video=3,
                                 size=16, seed=0, class_names=names, style="hard")
    assert {r["class_name"] for r in records} == {"cat", "dog", "ship"}
    assert sorted(r["source_index"] for r in records[:9]) == list(range(9))  # pool used up first
    assert all(r["num_frames"] == 3 == count_frames(tmp_path / r["path"]) for r in records)
    assert read_all_frames(tmp_path / records[0]["path"]).shape == (3, 16, 16, 3)


@pytest.mark.parametrize("kwargs, match", [
    (dict(size=33), "size"), (dict(size=4), "size"), (dict(frames_per_video=0), "frames_per_video"),
    (dict(frames_per_video=(5, 3)), "frames_per_video"), (dict(split="a/b"), "split"),
])
def test_invalid_arguments_raise_value_error(tmp_path, digits, kwargs, match):
    images, labels, _ = digits
    args = dict(num_videos=1, seed=0, **TINY) | kwargs
    with pytest.raises(ValueError, match=match):
        make_moving_videos(images, labels, tmp_path, **args)


def test_unknown_style_raises_config_error(tmp_path, digits):
    images, labels, _ = digits
    with pytest.raises(ConfigError, match="style"):
        make_moving_videos(images, labels, tmp_path, num_videos=1, seed=0, style="medium", **TINY)
    with pytest.raises(ConfigError, match="background_contrast"):
        MotionStyle(background_contrast=2.0)
    with pytest.raises(ConfigError, match="background_level"):
        MotionStyle(background_level=(0.4, 0.2))


def test_default_dataset_splits_instances_and_is_idempotent(tmp_path):
    kwargs = dict(num_train=20, num_test=10, seed=3, workers=1, **TINY)
    records, meta = make_default_dataset(tmp_path, **kwargs)
    train = [r for r in records if r["split"] == "train"]
    test = [r for r in records if r["split"] == "test"]
    assert len(train) == 20 and len(test) == 10
    assert [r["video_id"] for r in records] == list(range(30))  # test ids follow train ids
    assert not {r["source_index"] for r in train} & {r["source_index"] for r in test}
    _, labels, _ = load_digits_arrays()
    assert all(labels[r["source_index"]] == r["label"] for r in records)
    assert load_manifest(tmp_path) == (records, meta)
    assert meta["size"] == 32 and meta["style"] == "easy" and meta["class_names"][9] == "9"

    manifest = tmp_path / "manifest.json"
    stamp = manifest.stat().st_mtime_ns
    assert make_default_dataset(tmp_path, **kwargs) == (records, meta)
    assert manifest.stat().st_mtime_ns == stamp  # reused, not regenerated
    (tmp_path / records[-1]["path"]).unlink()  # a missing video forces regeneration
    assert make_default_dataset(tmp_path, **kwargs) == (records, meta)
    assert (tmp_path / records[-1]["path"]).is_file()
    other, other_meta = make_default_dataset(tmp_path, **(kwargs | {"seed": 4}))
    assert other_meta["seed"] == 4 and other != records and load_manifest(tmp_path)[1] == other_meta


def test_manifest_round_trip_and_errors(tmp_path):
    records = [{"video_id": 0, "path": "videos/train/000000.mp4", "split": "train", "label": 1,
                "num_frames": 2, "boxes": [[0, 0, 1, 1], [0, 0, 2, 2]]}]
    path = write_manifest(tmp_path, records, {"size": 8, "frames": (1, 2)})
    assert json.loads(path.read_text())["version"] == 1
    assert load_manifest(tmp_path) == (records, {"size": 8, "frames": [1, 2]})
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]  # no temp file left

    with pytest.raises(DataError, match="manifest.json: manifest not found"):
        load_manifest(tmp_path / "nowhere")
    path.write_text("{not json")
    with pytest.raises(DataError, match="manifest.json: not a readable JSON"):
        load_manifest(tmp_path)
    write_manifest(tmp_path, [{"video_id": 0, "path": "x.mp4"}], {})
    with pytest.raises(DataError, match=r"manifest.json: video record 0 lacks .*label"):
        load_manifest(tmp_path)


def test_nuisance_per_frame_redraws_background_and_digit_colour(tmp_path, digits):
    images, labels, _ = digits
    still = dict(digit_scale=(0.35, 0.35), max_shift=0.0, max_rotation_deg=0.0, scale_jitter=0.0,
                 brightness_jitter=0.0, background_contrast=0.0, background_colour_strength=1.0,
                 foreground_colour_strength=1.0, noise_std=0.0, motions=("linear",))
    changes = {}
    for per_frame in (False, True):
        style = MotionStyle(**still, nuisance_per_frame=per_frame)
        root = tmp_path / str(per_frame)
        records = make_moving_videos(images, labels, root, num_videos=3, seed=5, style=style,
                                     frames_per_video=6, size=32)
        corner, digit = [], []
        for record, frames in zip(records, _pixels(root, records)):
            frames = frames.astype(float)
            x0, y0, x1, y1 = (int(round(v)) for v in record["boxes"][0])  # the digit does not move
            corner.append(np.abs(np.diff(frames[:, :4, :4].mean((1, 2)), axis=0)).max())
            ink = frames[:, y0:y1, x0:x1].reshape(6, -1, 3)
            brightest = ink[:, ink.sum(-1).mean(0).argsort()[-5:]].mean(1)  # (6, 3) digit colour
            digit.append(np.abs(np.diff(brightest, axis=0)).max())
        changes[per_frame] = (max(corner), max(digit))
    # One background and digit colour per video: frames differ only by H.264 rounding.
    assert changes[False][0] < 4 and changes[False][1] < 8, changes
    # Drawn anew every frame (saturated hues): the colours jump between frames.
    assert changes[True][0] > 40 and changes[True][1] > 40, changes


def _generate_into(root, out, go):
    go.wait(60)  # both processes start generating at the same moment
    records, _ = make_default_dataset(root, num_train=60, num_test=4, frames_per_video=(2, 3), size=16,
                                      workers=2, test_instances=20)
    out.put([r["path"] for r in records])


def test_two_processes_generating_one_root_both_succeed(tmp_path):
    """Two runs started together on one data root (the resume test does this): the second waits
    for the first and reuses its dataset; neither trips over the other's temporary files."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    out, go = ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_generate_into, args=(tmp_path, out, go)) for _ in range(2)]
    for p in procs:
        p.start()
    time.sleep(1.5)  # both have imported the generator
    go.set()
    for p in procs:
        p.join(120)  # the results are a few hundred bytes: they fit the queue's pipe
    assert [p.exitcode for p in procs] == [0, 0]
    results = [out.get(timeout=10) for _ in procs]
    assert results[0] == results[1] and len(results[0]) == 64
    records, _ = load_manifest(tmp_path)
    assert [r["path"] for r in records] == results[0]
    assert not list(tmp_path.rglob("*.tmp"))
