"""Tests for cckit.data.sources: the three layouts, labels, split files, the VINCE file list."""

import pickle
from pathlib import Path

import pytest

from cckit.data.sources import detect_layout, list_frame_folders, list_r2v2, list_source, list_videos
from cckit.errors import DataError


def _touch(root: Path, *relative: str) -> None:
    for rel in relative:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")  # listing never opens files


def _ucf(root: Path) -> None:
    """UCF101's layout: <Class>/v_<Class>_g<group>_c<clip>.avi plus ucfTrainTestlist/."""
    _touch(root, "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi",
           "HandstandPushups/v_HandStandPushups_g01_c01.avi", "HandstandPushups/v_HandStandPushups_g08_c01.avi",
           "YoYo/v_YoYo_g01_c01.avi", "YoYo/v_YoYo_g08_c01.avi", ".hidden/x.mp4", "YoYo/notes.txt")
    lists = root / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 HandstandPushups\n3 YoYo\n")
    # UCF101's own lists spell HandStandPushups with a capital S in the folder part too.
    (lists / "trainlist01.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\n"
                                           "HandStandPushups/v_HandStandPushups_g08_c01.avi 2\nYoYo/v_YoYo_g08_c01.avi 3\n")
    (lists / "testlist01.txt").write_text("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi\n"
                                          "HandStandPushups/v_HandStandPushups_g01_c01.avi\nYoYo/v_YoYo_g01_c01.avi\n")


def test_ucf101_layout_with_split_files_and_class_index(tmp_path):
    _ucf(tmp_path)
    entries, classes = list_videos(tmp_path, train_list="ucfTrainTestlist/trainlist01.txt",
                                   test_list="ucfTrainTestlist/testlist01.txt")
    assert classes == ["ApplyEyeMakeup", "HandstandPushups", "YoYo"]
    by_key = {e.key: e for e in entries}
    assert len(entries) == 6 and ".hidden/x.mp4" not in by_key
    assert {(e.split, e.label) for e in entries} == {(s, c) for s in ("train", "test") for c in range(3)}
    assert by_key["YoYo/v_YoYo_g01_c01.avi"].split == "test"
    assert by_key["HandstandPushups/v_HandStandPushups_g08_c01.avi"].split == "train"
    assert by_key["YoYo/v_YoYo_g01_c01.avi"].path == str(tmp_path / "YoYo/v_YoYo_g01_c01.avi")


def test_only_a_test_list_puts_everything_else_in_train_and_without_lists_all_is_train(tmp_path):
    _ucf(tmp_path)
    entries, _ = list_videos(tmp_path, test_list="ucfTrainTestlist/testlist01.txt")
    assert sorted(e.split for e in entries) == ["test"] * 3 + ["train"] * 3
    entries, classes = list_videos(tmp_path, labels="none")
    assert {e.split for e in entries} == {"train"} and {e.label for e in entries} == {-1} and classes == []


def test_split_file_listing_a_missing_video_names_it(tmp_path):
    _ucf(tmp_path)
    (tmp_path / "YoYo/v_YoYo_g01_c01.avi").unlink()
    with pytest.raises(DataError, match=r"v_yoyo_g01_c01\.avi: listed in a split file but not found"):
        list_videos(tmp_path, test_list="ucfTrainTestlist/testlist01.txt")
    with pytest.raises(DataError, match="split file not found"):
        list_videos(tmp_path, test_list="nope.txt")


def test_kinetics_layout_train_and_val_folders(tmp_path):
    _touch(tmp_path, "train/abseiling/a1.mp4", "train/zumba/z1.webm", "train/zumba/z2.mkv",
           "val/abseiling/a9.mov", "val/zumba/z9.mp4")
    entries, classes = list_videos(tmp_path)
    assert classes == ["abseiling", "zumba"]
    got = {(e.key, e.split, e.label) for e in entries}
    assert ("val/zumba/z9.mp4", "test", 1) in got and ("train/abseiling/a1.mp4", "train", 0) in got
    assert len(got) == 5


def test_frame_folders_in_natural_order_with_class_folders(tmp_path):
    names = [f"frame_{i}.jpg" for i in (1, 2, 10, 11, 3)]
    _touch(tmp_path, *[f"cat/vid1/{n}" for n in names], *[f"dog/vid2/{n}" for n in names[:2]], "dog/vid2/x.txt")
    entries, classes = list_frame_folders(tmp_path)
    assert classes == ["cat", "dog"] and [e.key for e in entries] == ["cat/vid1", "dog/vid2"]
    assert entries[0].frames == ("frame_1.jpg", "frame_2.jpg", "frame_3.jpg", "frame_10.jpg", "frame_11.jpg")
    assert entries[1].label == 1 and entries[0].path == str(tmp_path / "cat/vid1")
    _touch(tmp_path, "stray.jpg")
    with pytest.raises(DataError, match="one folder of frames per video"):
        list_frame_folders(tmp_path)


def _r2v2(root: Path) -> None:
    _touch(root, *[f"train/AA/AA2pFq9pFTA_{i:06d}.jpg" for i in (1, 2, 3, 4)],
           *[f"train/Zx/Zx_9_k-Qq1w_{i:06d}.jpg" for i in (3, 1)], "val/BB/BBc0ffee123_000001.jpg")


def test_r2v2_folders_are_listed_by_video_id(tmp_path):
    _r2v2(tmp_path)
    entries, classes = list_r2v2(tmp_path)
    assert classes == [] and [(e.key, e.split) for e in entries] == [
        ("AA2pFq9pFTA", "train"), ("Zx_9_k-Qq1w", "train"), ("BBc0ffee123", "test")]
    assert entries[1].frames == ("Zx_9_k-Qq1w_000001.jpg", "Zx_9_k-Qq1w_000003.jpg")
    assert entries[0].path == str(tmp_path / "train" / "AA")
    train_only, _ = list_r2v2(tmp_path / "train")  # the CycleContrast code passes the train folder itself
    assert [e.key for e in train_only] == ["AA2pFq9pFTA", "Zx_9_k-Qq1w"]


def test_r2v2_uses_the_vince_file_list_cache(tmp_path):
    _r2v2(tmp_path)
    # VINCE writes <root>/<split>_names.pkl = sorted [(video id, [frame ids])]; it wins over a scan.
    with open(tmp_path / "train_names.pkl", "wb") as f:
        pickle.dump([("AA2pFq9pFTA", [1, 2]), ("Zx_9_k-Qq1w", [1])], f)
    entries, _ = list_r2v2(tmp_path)
    assert [(e.key, e.frames) for e in entries if e.split == "train"] == [
        ("AA2pFq9pFTA", ("AA2pFq9pFTA_000001.jpg", "AA2pFq9pFTA_000002.jpg")), ("Zx_9_k-Qq1w", ("Zx_9_k-Qq1w_000001.jpg",))]


def test_a_file_list_pickle_cannot_run_code(tmp_path):
    _r2v2(tmp_path)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with open(tmp_path / "train_names.pkl", "wb") as f:
        pickle.dump([("AA2pFq9pFTA", Evil())], f)
    with pytest.raises(DataError, match="refusing to load builtins.print"):
        list_r2v2(tmp_path)


def test_detect_layout_and_empty_sources(tmp_path):
    _r2v2(tmp_path / "r2v2")
    _ucf(tmp_path / "ucf")
    _touch(tmp_path / "frames", "v1/0001.png")
    assert detect_layout(tmp_path / "r2v2") == "r2v2"
    assert detect_layout(tmp_path / "ucf") == "videos"
    assert detect_layout(tmp_path / "frames") == "frames"
    assert detect_layout(tmp_path / "ucf" / "YoYo" / "v_YoYo_g01_c01.avi") == "file"
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no video files or image frames"):
        detect_layout(tmp_path / "empty")
    with pytest.raises(DataError, match=r"empty: no video files \(.mp4"):
        list_source("videos", tmp_path / "empty")
    with pytest.raises(DataError, match="data folder does not exist"):
        list_source("frames", tmp_path / "missing")
