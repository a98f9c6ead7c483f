"""Tests for cckit.atomic: whole-or-nothing writes, unique temporaries, the inter-process lock."""

import multiprocessing
import time

import pytest

from cckit.atomic import atomic_path, atomic_write, file_lock, remove_temporaries


def test_atomic_write_replaces_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "sub" / "a.json"
    atomic_write(target, "one")
    atomic_write(target, b"two")
    assert target.read_text() == "two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.json"]
    assert oct(target.stat().st_mode & 0o777) == oct(0o644)


def test_an_error_mid_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "a.bin"
    atomic_write(target, b"old")
    with pytest.raises(RuntimeError, match="disk on fire"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half of the new")
            raise RuntimeError("disk on fire")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_a_folder_appears_whole_and_a_failed_one_is_removed(tmp_path):
    target = tmp_path / "entry"
    with atomic_path(target, durable=False) as tmp:
        tmp.mkdir()
        (tmp / "meta.json").write_text("{}")
    assert (target / "meta.json").read_text() == "{}"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(tmp_path / "other") as tmp:
            tmp.mkdir()
            (tmp / "0.jpg").write_bytes(b"x")
            raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["entry"]


def test_remove_temporaries_removes_only_matching_leftovers(tmp_path):
    for name in (".last.pt.ab12.tmp", ".step_00000004.pt.cd34.tmp", ".cache.bin.ef56.tmp", "last.pt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / ".last.pt.dir.tmp").mkdir()
    remove_temporaries(tmp_path, "*.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".cache.bin.ef56.tmp", "last.pt"]


def _write_many(target, tag, count):
    for i in range(count):
        atomic_write(target, f"{tag}:{i}:" + tag * 20000, durable=False)


def test_concurrent_writers_of_one_target_never_collide(tmp_path):
    """Two processes rewriting one file: every rename succeeds (no shared temporary name) and the
    file always holds one writer's complete content."""
    target = tmp_path / "shared.txt"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write_many, args=(target, tag, 60)) for tag in "ab"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    tag, index, body = target.read_text().split(":")
    assert body == tag * 20000 and index == "59"
    assert [p.name for p in tmp_path.iterdir()] == ["shared.txt"]


def _hold_lock(lock, log, tag):
    with file_lock(lock):
        with open(log, "a") as f:
            f.write(f"{tag}+")
        time.sleep(0.3)
        with open(log, "a") as f:
            f.write(f"{tag}-")


def test_file_lock_serialises_processes(tmp_path):
    lock, log = tmp_path / ".lock", tmp_path / "log"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_hold_lock, args=(lock, log, tag)) for tag in "ab"]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert log.read_text() in ("a+a-b+b-", "b+b-a+a-")  # never a+b+...: one holder at a time
