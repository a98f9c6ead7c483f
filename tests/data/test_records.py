"""Tests for cckit.data.records: one record per video carries what every consumer reads."""
import json
import shutil

from cckit.config import DataConfig, load_config
from cckit.data.index import load_splits
from cckit.data.records import VideoRecord, class_names

from conftest import TINY


def test_generated_records_carry_class_names_boxes_and_motion(tiny_data):
    splits = load_splits(load_config(None, TINY + [f"data.root={tiny_data}"]).data)
    manifest = {v["video_id"]: v for v in json.loads((tiny_data / "manifest.json").read_text())["videos"]}
    records = splits["train"] + splits["test"]
    assert len(records) == 40
    for r in records:
        m = manifest[r.video_id]
        assert (r.label, r.class_name, r.motion, r.num_frames, r.split) == (
            m["label"], m["class_name"], m["motion"], m["num_frames"], m["split"])
        assert r.boxes == tuple(tuple(b) for b in m["boxes"]) and len(r.boxes) == r.num_frames
        assert (r.width, r.height) == (32, 32)


def test_a_users_class_folders_name_the_classes(tiny_data, tmp_path):
    videos = sorted((tiny_data / "videos" / "train").glob("*.mp4"))
    for split, name, video in (("train", "cat", videos[0]), ("train", "dog", videos[1]), ("test", "dog", videos[2])):
        (tmp_path / split / name).mkdir(parents=True, exist_ok=True)
        shutil.copy(video, tmp_path / split / name / video.name)
    splits = load_splits(DataConfig(source="videos", root=str(tmp_path), workers=0))
    assert [(r.split, r.label, r.class_name, r.boxes) for r in splits["train"]] == [("train", 0, "cat", ()),
                                                                                     ("train", 1, "dog", ())]
    assert [(r.label, r.class_name) for r in splits["test"]] == [(1, "dog")]
    assert class_names(splits["train"] + splits["test"]) == ["cat", "dog"]


def test_class_names_fill_gaps_by_number():
    records = [VideoRecord(path="a", label=2, class_name="two"), VideoRecord(path="b", label=0, class_name="zero"),
               VideoRecord(path="c")]
    assert class_names(records) == ["zero", "1", "two"]
