"""Tests for cckit.data.index, scan and extract: every file checked before training, clear errors
for bad files (also through the real CLI), skip reports, one-frame videos, extracting frames."""

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from cckit import cli
from cckit.config import DataConfig
from cckit.data.video import seek_index as video_index
from cckit.data.frame_store import FrameStore
from cckit.data.index import index_data
from cckit.data.scan import format_report, scan
from cckit.data.video import read_frames
from cckit.errors import DataError
from media import private_index_cache, write_video, write_video_without_frames  # noqa: F401 (the fixture applies to every test here)

ROOT = Path(__file__).resolve().parents[2]


def make_bad(folder: Path, kind: str) -> Path:
    """One unusable file of ``kind`` (see REASONS) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "zero_byte":
        (path := folder / "zero.mp4").touch()
    elif kind == "non_video":
        (path := folder / "notes.mkv").write_text("not a video\n" * 40)
    elif kind == "truncated":
        good = write_video(folder / "tmp_source.mp4", 12, seed=9)
        (path := folder / "cut.mp4").write_bytes(good.read_bytes()[:good.stat().st_size * 2 // 3])
        good.unlink()
    else:  # zero_frames: a video stream without a single frame (audio only)
        path = write_video_without_frames(folder / "silent.mkv")
    return path


REASONS = {"zero_byte": "empty file (0 bytes)", "non_video": "cannot be opened as a video",
           "truncated": "truncated", "zero_frames": "no decodable frames"}


@pytest.fixture
def class_folders(tmp_path):
    """<root>/<class>/<video>.mp4: 2 classes x 3 videos of 3-6 frames, plus a one-frame video."""
    root = tmp_path / "videos"
    for c, name in enumerate(("cat", "dog")):
        for v in range(3):
            write_video(root / name / f"{name}{v}.mp4", 3 + v + c, seed=10 * c + v)
    write_video(root / "dog" / "still.mp4", 1, seed=99)
    return root


def test_videos_source_index_and_report(class_folders):
    index = index_data(DataConfig(source="videos", root=str(class_folders), workers=0))
    records = index.splits["train"]
    assert len(records) == 7 and "test" not in index.splits
    assert [r.label for r in records] == [0, 0, 0, 1, 1, 1, 1]
    assert sum(r.num_frames for r in records) == index.report["frames"] == 3 + 4 + 5 + 4 + 5 + 6 + 1
    assert index.report["single_frame_videos"] == 1 and index.report["class_names"] == ["cat", "dog"]
    assert index.report["resolutions"] == {"32x32": 7} and index.report["codecs"] == {"h264 yuv420p": 7}
    assert len({r.video_id for r in records}) == 7 and records[0].width == 32
    excluded = index_data(DataConfig(source="videos", root=str(class_folders), single_frame="exclude"))
    assert len(excluded.splits["train"]) == 6 and excluded.report["excluded_single_frame"] == 1


@pytest.mark.parametrize("kind", sorted(REASONS))
def test_a_bad_file_raises_naming_it_or_is_skipped_and_listed(class_folders, kind):
    bad = make_bad(class_folders / "cat", kind)
    cfg = DataConfig(source="videos", root=str(class_folders))
    with pytest.raises(DataError) as caught:
        index_data(cfg)
    assert str(caught.value).startswith(str(bad)) and REASONS[kind] in str(caught.value)
    index = index_data(DataConfig(source="videos", root=str(class_folders), on_error="skip"))
    assert len(index.splits["train"]) == 7
    assert [s["path"] for s in index.report["skipped"]] == [str(bad)]
    assert REASONS[kind] in index.report["skipped"][0]["reason"]


def test_all_bad_gives_a_clear_error(tmp_path):
    for kind in REASONS:
        make_bad(tmp_path / "bad", kind)
    with pytest.raises(DataError, match=r"bad: no usable training videos \(4 skipped"):
        index_data(DataConfig(source="videos", root=str(tmp_path / "bad"), on_error="skip"))


def test_manifest_frame_count_is_verified(tiny_data, tmp_path):
    manifest = json.loads((tiny_data / "manifest.json").read_text())
    manifest["videos"][0]["num_frames"] += 1
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "videos").symlink_to(tiny_data / "videos")
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="manifest says .* frames but .* decode"):
        index_data(DataConfig(source="manifest", root=str(copy)))


def test_scan_report_and_text(class_folders):
    for kind in REASONS:
        make_bad(class_folders / "dog", kind)
    report = scan(class_folders, on_error="skip")
    assert report["layout"] == "videos" and report["videos"] == 7 and len(report["skipped"]) == 4
    text = format_report(report)
    assert "7 videos (train 7), 28 frames, 2 classes" in text and "problems: 4" in text
    assert "one-frame videos: 1 kept" in text and "32x32 (7)" in text


@pytest.mark.parametrize("kind", sorted(REASONS))
def test_cli_scan_stops_at_a_bad_file_with_one_line(tmp_path, capsys, kind):
    path = make_bad(tmp_path / "data", kind)
    assert cli.main(["data", "scan", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"cckit: error: {path}: ") and REASONS[kind] in err and len(err.splitlines()) == 1


@pytest.mark.slow  # two fresh interpreters importing torch
def test_cli_scan_in_a_real_process(class_folders):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "cckit", "data", "scan", *map(str, args)],
                              capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONWARNINGS": "ignore"})

    bad = make_bad(class_folders / "cat", "truncated")
    failed = run(class_folders)
    assert failed.returncode == 2 and failed.stdout == ""
    assert failed.stderr.strip().splitlines() == [failed.stderr.strip()]
    assert failed.stderr.startswith(f"cckit: error: {bad}: truncated")
    listed = run(class_folders, "--on-error", "skip", "--workers", "2")
    assert listed.returncode == 0 and "7 videos (train 7)" in listed.stdout
    assert f"problems: 1 (these files are left out)\n  {bad}: truncated" in listed.stdout


def test_cli_scan_skip_with_nothing_usable_lists_the_problems_and_fails(tmp_path, capsys):
    make_bad(tmp_path / "data", "truncated")
    path = tmp_path / "data"
    assert cli.main(["data", "scan", str(path), "--on-error", "skip", "--quiet"]) == 2
    out, err = capsys.readouterr()
    assert "problems: 1 (these files are left out)" in out and "truncated" in out
    assert err.strip().startswith(f"cckit: error: {path}: no usable video (1 files with problems")


def test_cli_scan_json(class_folders, capsys):
    assert cli.main(["data", "scan", str(class_folders), "--json", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["videos"] == 7 and report["skipped"] == [] and report["layout"] == "videos"


def test_cli_data_with_a_config_still_works(class_folders, capsys):
    assert cli.main(["data", f"data.root={class_folders}", "data.source=videos", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["train_videos"] == 7 and out["frames"] == 28 and out["single_frame_videos"] == 1


@pytest.mark.parametrize("fmt", ["npy", "png", "jpg"])
def test_extract_writes_frames_that_the_store_reads(class_folders, tmp_path, capsys, fmt):
    out = tmp_path / f"cache_{fmt}"
    args = ["data", "extract", f"data.root={class_folders}", "data.source=videos", "--out", str(out),
            "--format", fmt, "--quiet"]
    assert cli.main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["extracted"] == 7 and summary["frames"] == 28 and summary["use"] == f"data.extracted_frames={out}"
    assert cli.main(args) == 0 and json.loads(capsys.readouterr().out)["up_to_date"] == 7
    records = index_data(DataConfig(source="videos", root=str(class_folders))).splits["train"]
    store = FrameStore(records, in_memory=False, extracted_frames=str(out))
    assert all(e is not None for e in store.extracted)
    for i, r in enumerate(records):
        wanted = list(range(r.num_frames))[::-1]
        got, exact = store.get(i, wanted), read_frames(r.path, wanted)
        if fmt == "jpg":  # lossy by design
            assert got.shape == exact.shape and np.abs(got.astype(int) - exact).mean() < 12
        else:
            np.testing.assert_array_equal(got, exact)
    write_video(Path(records[0].path), 2, seed=5)  # a changed source is decoded, not read stale
    assert FrameStore(records, in_memory=False, extracted_frames=str(out)).extracted[0] is None


def test_checking_in_worker_processes_gives_the_same_index(tmp_path):
    root = tmp_path / "many"
    for v in range(16):  # the pool starts at 16 videos
        write_video(root / f"v{v:02d}.mp4", 1 + v % 3, size=16, seed=v)
    make_bad(root, "non_video")
    one = index_data(DataConfig(source="videos", root=str(root), workers=0, on_error="skip"))
    video_index._MEMORY.clear()
    two = index_data(DataConfig(source="videos", root=str(root), workers=2, on_error="skip"))
    assert one.splits == two.splits and one.report == two.report and len(two.report["skipped"]) == 1
