"""Fault injection through the real CLI and the trainer: kill -9 and resume, SIGTERM/SIGINT, corrupt
checkpoints, a non-finite loss, an unwritable or full run directory, and the bad-input corpus
(tests/bad_inputs/): every failure exits non-zero with one line naming the file or key, no traceback.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

import cckit.runs
import cckit.train
from cckit.checkpoint import find_resumable, load_checkpoint
from cckit.config import load_config
from cckit.train import TrainingError, train

from conftest import TINY

ROOT = Path(__file__).resolve().parents[1]
BAD = Path(__file__).resolve().parent / "bad_inputs"
TIMING_KEYS = {"images_per_s", "data_wait", "augment_time", "step_time"}  # wall-clock measurements, the only metrics that may differ


def run_cckit(*args) -> subprocess.Popen:
    """``python -m cckit ARGS`` in its own session (so a kill reaches its DataLoader workers too)."""
    return subprocess.Popen([sys.executable, "-m", "cckit", *map(str, args)], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)


def finish(proc: subprocess.Popen, timeout: float = 600) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 600, what: str = "") -> None:
    """Poll ``predicate`` every 10 ms while ``proc`` runs; fail if it ends or times out first."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            _, out, err = finish(proc)
            pytest.fail(f"the run ended (rc {proc.returncode}) before {what}:\n{err[-2000:]}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


def metric_rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def assert_same_state(a: dict, b: dict) -> None:
    """Bit-identical model (online + momentum encoder, heads, queues, ids, pointers), optimizer
    state, step, epoch and every RNG state; on failure the message gives the max abs difference."""
    assert (a["step"], a["epoch"]) == (b["step"], b["epoch"])
    assert list(a["model"]) == list(b["model"])
    for key in a["model"]:
        x, y = a["model"][key], b["model"][key]
        assert x.dtype == y.dtype and x.shape == y.shape, key
        assert torch.equal(x, y), f"model[{key}]: max abs difference {(x.double() - y.double()).abs().max():.3g}"
    assert a["optimizer"]["param_groups"] == b["optimizer"]["param_groups"]
    assert a["optimizer"]["state"].keys() == b["optimizer"]["state"].keys()
    for i, slots in a["optimizer"]["state"].items():
        for name, x in slots.items():
            y = b["optimizer"]["state"][i][name]
            assert torch.equal(x, y), f"optimizer[{i}][{name}]: max abs difference {(x - y).abs().max():.3g}"
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    assert torch.equal(a["rng"]["numpy"]["keys"], b["rng"]["numpy"]["keys"])
    assert a["rng"]["numpy"]["pos"] == b["rng"]["numpy"]["pos"] and a["rng"]["python"] == b["rng"]["python"]
    drop = ("run_dir", "resume")
    assert {k: v for k, v in a["config"].items() if k not in drop} == {k: v for k, v in b["config"].items() if k not in drop}


# -- 2. exact resume after SIGKILL, through the CLI ------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("preset", ["configs/quickstart.yaml", "configs/paper_cpu.yaml"])
def test_sigkill_mid_epoch_then_resume_auto_is_bit_identical(preset, tiny_overrides, tmp_path):
    """Two CLI runs start together; one is killed (-9, with its DataLoader workers) right after its
    mid-epoch checkpoint of step 6 (4 steps per epoch) and resumed with resume=auto. Both end with
    bit-identical weights, momentum encoder, queues, ids, pointers, optimizer state and RNG states,
    and identical metrics for every step, each step logged exactly once."""
    steps = 10  # 4 per epoch: killed after step 6 (mid-epoch 1), resumed across the epoch boundary at 8
    args = ["train", preset, *tiny_overrides, f"train.max_steps={steps}",
            "train.checkpoint_every=2", "data.workers=2", "train.knn_every=3",  # kNN readings at 0, 3, 6, 9, 10
            "train.log_every=100",  # metrics must reach the disk with each checkpoint, not only every log_every
            "--quiet"]
    full = run_cckit(*args, f"run_dir={tmp_path / 'full'}")
    killed = run_cckit(*args, f"run_dir={tmp_path / 'killed'}")
    ckpts = tmp_path / "killed" / "checkpoints"
    wait_for(lambda: (ckpts / "step_00000006.pt").exists(), killed, what="the checkpoint of step 6")
    os.killpg(killed.pid, signal.SIGKILL)  # preemption: the trainer and its workers, no warning
    rc, _, _ = finish(killed)
    assert rc == -signal.SIGKILL
    newest, problems = find_resumable(tmp_path / "killed")
    killed_at = load_checkpoint(newest)["step"]
    assert 6 <= killed_at < steps and not problems

    rc, out, err = finish(run_cckit(*args, f"run_dir={tmp_path / 'killed'}", "resume=auto"))
    assert rc == 0, err
    result = json.loads(out)
    assert result["train_steps_this_run"] == steps - killed_at and result["steps"] == steps
    assert f"at step {killed_at}" in err  # "cckit: resumed from ... at step N"
    rc, _, err = finish(full)
    assert rc == 0, err

    a = load_checkpoint(tmp_path / "full" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "killed" / "checkpoints" / "last.pt")
    assert a["step"] == steps and a["model"]["queue_ptr"].tolist() == [steps * 8 % 64] * 2
    assert_same_state(a, b)
    rows_a, rows_b = metric_rows(tmp_path / "full"), metric_rows(tmp_path / "killed")
    assert [r["step"] for r in rows_b] == list(range(0, steps + 1))  # step 0: the kNN of the random init
    assert [r["step"] for r in rows_b if "knn_top1" in r] == [0, 3, 6, 9, 10]
    assert [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in rows_a] == \
           [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in rows_b]
    assert not list(ckpts.glob(".*"))  # temporary files of the killed run were cleaned up


# -- 2. SIGTERM / SIGINT save a checkpoint, then exit ---------------------------------------------

@pytest.mark.slow
def test_sigterm_and_ctrl_c_save_the_last_finished_step_then_exit_130(tiny_overrides, tmp_path):
    """SIGTERM to the trainer (workers=0) and SIGINT to the whole process group, as Ctrl-C sends it
    (workers=2): exit 130, one line, a loadable checkpoint of exactly the steps in metrics.jsonl."""
    base = ["train", "configs/quickstart.yaml", *tiny_overrides, "train.max_steps=10000",
            "train.checkpoint_every=10000", "--quiet"]
    procs = {"SIGTERM": run_cckit(*base, f"run_dir={tmp_path / 'term'}"),
             "SIGINT": run_cckit(*base, "data.workers=2", f"run_dir={tmp_path / 'int'}")}
    dirs = {"SIGTERM": tmp_path / "term", "SIGINT": tmp_path / "int"}
    for name, proc in procs.items():
        metrics = dirs[name] / "metrics.jsonl"
        # the first line is the kNN reading of step 0 (the quickstart monitors), then one per step
        wait_for(lambda: metrics.exists() and metrics.read_text().count("\n") >= 3, proc, what="two steps")
        if name == "SIGTERM":
            proc.send_signal(signal.SIGTERM)
        else:
            os.killpg(proc.pid, signal.SIGINT)
    for name, proc in procs.items():
        rc, out, err = finish(proc)
        assert rc == 130 and "Traceback" not in err, err
        last_line = err.strip().splitlines()[-1]
        m = re.fullmatch(rf"cckit: interrupted: {name} at step (\d+): checkpoint saved to (\S+last\.pt)", last_line)
        assert m, err
        step = int(m.group(1))
        state = load_checkpoint(m.group(2))
        assert state["step"] == step >= 2
        assert [r["step"] for r in metric_rows(dirs[name])] == list(range(0, step + 1))
        assert (dirs[name] / "checkpoints" / f"step_{step:08d}.pt").is_file()


# -- 1. a truncated or corrupt newest checkpoint is skipped and reported ---------------------------

@pytest.mark.slow
def test_resume_auto_skips_corrupt_newest_checkpoint_and_still_ends_identical(tiny_overrides, tmp_path, caplog):
    run = tmp_path / "run"
    cfg = load_config(None, tiny_overrides + ["train.max_steps=6", "train.checkpoint_every=2"])
    train(cfg, progress=False)
    ckpts = run / "checkpoints"
    assert sorted(p.name for p in ckpts.glob("*.pt")) == ["last.pt", "step_00000004.pt", "step_00000006.pt"]
    reference = load_checkpoint(ckpts / "last.pt")
    # flip bytes inside the tensor data of step 6 (last.pt is the same file: a hard link)
    raw = bytearray((ckpts / "step_00000006.pt").read_bytes())
    at = raw.index(b"data/0") + 200
    raw[at:at + 64] = bytes(64)
    (ckpts / "step_00000006.pt").write_bytes(raw)
    assert (ckpts / "last.pt").read_bytes() == bytes(raw)
    path, problems = find_resumable(run)
    assert path == ckpts / "step_00000004.pt"
    assert any("last.pt" in p and "corrupt" in p for p in problems)

    caplog.set_level("WARNING", logger="cckit.train")
    result = train(load_config(None, tiny_overrides + ["train.max_steps=6", "train.checkpoint_every=2", "resume=auto"]),
                   progress=False)
    assert result["resumed_from"] == str(ckpts / "step_00000004.pt") and result["train_steps_this_run"] == 2
    assert "corrupt" in caplog.text and "last.pt" in caplog.text  # reported, not silently skipped
    assert_same_state(reference, load_checkpoint(ckpts / "last.pt"))

    # truncated: the newest numbered one cut in half, last.pt gone
    (ckpts / "last.pt").unlink()
    data = (ckpts / "step_00000006.pt").read_bytes()
    (ckpts / "step_00000006.pt").unlink()
    (ckpts / "step_00000006.pt").write_bytes(data[:len(data) // 2])
    path, problems = find_resumable(run)
    assert path == ckpts / "step_00000004.pt" and "step_00000006.pt" in problems[0]


def test_resume_auto_refuses_to_start_over_when_no_checkpoint_loads(tiny_overrides, tmp_path):
    ckpts = tmp_path / "run" / "checkpoints"
    ckpts.mkdir(parents=True)
    (ckpts / "last.pt").write_bytes(b"PK\x03\x04 torn")
    with pytest.raises(TrainingError, match=r"checkpoints: no checkpoint loads \(1 skipped, newest: .*last.pt"):
        train(load_config(None, tiny_overrides + ["train.max_steps=2", "resume=auto"]), progress=False)
    assert (ckpts / "last.pt").read_bytes() == b"PK\x03\x04 torn"


# -- 4. non-finite loss, unwritable and full run directory -----------------------------------------

@pytest.mark.slow
def test_non_finite_loss_names_step_and_term_and_keeps_last_checkpoint(tiny_overrides, tmp_path, monkeypatch):
    """The cycle loss turns NaN at step 3: TrainingError names step 3 and loss_cycle; the checkpoint
    of step 2 is untouched (bytes and mtime), no later one is written, metrics stop at step 2."""
    real = cckit.train.compute_objective
    calls, before = [], {}
    last = tmp_path / "run" / "checkpoints" / "last.pt"

    def poisoned(*args, **kwargs):
        loss, stats = real(*args, **kwargs)
        calls.append(1)
        if len(calls) == 3:
            before.update(bytes=last.read_bytes(), mtime=last.stat().st_mtime_ns)
            stats = {**stats, "loss_cycle": torch.tensor(float("nan")), "loss": torch.tensor(float("nan"))}
            loss = loss * float("nan")
        return loss, stats

    monkeypatch.setattr(cckit.train, "compute_objective", poisoned)
    cfg = load_config(None, tiny_overrides + ["train.max_steps=6", "train.checkpoint_every=2"])
    with pytest.raises(TrainingError, match=r"^step 3: loss_cycle is nan \(non-finite\).*last checkpoint is kept"):
        train(cfg, progress=False)
    assert last.read_bytes() == before["bytes"] and last.stat().st_mtime_ns == before["mtime"]
    assert load_checkpoint(last)["step"] == 2
    assert sorted(p.name for p in last.parent.glob("*.pt")) == ["last.pt", "step_00000002.pt"]
    assert [r["step"] for r in metric_rows(tmp_path / "run")] == [1, 2]


@pytest.mark.slow
def test_non_finite_weights_are_never_saved(tiny_overrides, tmp_path, monkeypatch):
    """The update of step 4 overflows (loss still finite): the checkpoint of step 4 is refused,
    naming the step and the tensor; the checkpoint of step 2 stays the newest."""
    real_update, real_enqueue = cckit.train.update_momentum, cckit.train.enqueue
    encoders, calls = [], []

    def remembering(online, momentum, m):
        real_update(online, momentum, m)
        encoders.append(momentum)

    def overflowing(*args):  # the last enqueue of step 4: after its loss, before its checkpoint
        real_enqueue(*args)
        calls.append(1)
        if len(calls) == 8:
            with torch.no_grad():
                next(encoders[-1].parameters()).fill_(float("inf"))

    monkeypatch.setattr(cckit.train, "update_momentum", remembering)
    monkeypatch.setattr(cckit.train, "enqueue", overflowing)
    cfg = load_config(None, tiny_overrides + ["train.max_steps=6", "train.checkpoint_every=2"])
    with pytest.raises(TrainingError, match=r"^step 4: non-finite weights after the update \(encoder_m\.backbone\.conv1\.weight\)"):
        train(cfg, progress=False)
    ckpts = tmp_path / "run" / "checkpoints"
    assert load_checkpoint(ckpts / "last.pt")["step"] == 2
    assert sorted(p.name for p in ckpts.iterdir()) == ["last.pt", "step_00000002.pt"]


@pytest.mark.slow
def test_exploding_lr_through_cli_stops_with_one_line_and_no_bad_checkpoint(tiny_overrides, tmp_path):
    """A real divergence (lr 1e30): training stops with one line naming the step and what is
    non-finite (a loss term, or the weights before they would be saved); every checkpoint on disk
    loads and holds finite weights."""
    rc, _, err = finish(run_cckit("train", "configs/quickstart.yaml", *tiny_overrides, "train.lr=1.0e+30",
                              "train.warmup_steps=0", "train.max_steps=8", "train.checkpoint_every=1", "--quiet"))
    assert rc == 2 and "Traceback" not in err, err
    line = err.strip().splitlines()[-1]
    assert re.match(r"cckit: error: step \d+: (loss\w* is (nan|inf|-inf) \(non-finite\)|non-finite weights)", line), err
    for p in (tmp_path / "run" / "checkpoints").glob("*.pt"):
        state = load_checkpoint(p)
        assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point()), p


def test_unwritable_run_dir_is_detected_before_anything_runs(tiny_overrides, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(TrainingError, match=r"a_file/sub: run directory is not writable"):
        train(load_config(None, tiny_overrides + [f"run_dir={blocker / 'sub'}"]), progress=False)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_run_dir_is_detected_before_anything_runs(tiny_overrides, tmp_path):
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o500)
    try:
        with pytest.raises(TrainingError, match=r"ro/run: run directory is not writable"):
            train(load_config(None, tiny_overrides + [f"run_dir={tmp_path / 'ro' / 'run'}"]), progress=False)
    finally:
        (tmp_path / "ro").chmod(0o700)


def test_full_disk_is_detected_before_the_first_step(tiny_overrides, tmp_path, monkeypatch):
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=1 << 20))
    with pytest.raises(TrainingError, match=r"run: only 1 MiB free, a checkpoint needs about \d+ MiB"):
        train(load_config(None, tiny_overrides + ["train.max_steps=2"]), progress=False)
    assert not (tmp_path / "run" / "metrics.jsonl").exists() and not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.slow
def test_disk_full_while_saving_keeps_previous_checkpoint(tiny_overrides, tmp_path, monkeypatch):
    """ENOSPC at the second checkpoint: TrainingError naming the folder, step and reason; the first
    checkpoint stays and loads, and no temporary file is left behind."""
    real = cckit.runs.save_numbered
    saves = []

    def filling(ckpt_dir, state, keep):
        saves.append(state["step"])
        if len(saves) == 2:
            raise OSError(28, "No space left on device")
        return real(ckpt_dir, state, keep)

    monkeypatch.setattr(cckit.runs, "save_numbered", filling)
    with pytest.raises(TrainingError, match=r"checkpoints: cannot write the checkpoint of step 4 \(No space left on device\)"):
        train(load_config(None, tiny_overrides + ["train.max_steps=6", "train.checkpoint_every=2"]), progress=False)
    ckpts = tmp_path / "run" / "checkpoints"
    assert load_checkpoint(ckpts / "last.pt")["step"] == 2
    assert sorted(p.name for p in ckpts.iterdir()) == ["last.pt", "step_00000002.pt"]


# -- 5. the bad-input corpus, each case through the real CLI ---------------------------------------

CONFIG_CASES = {  # tests/bad_inputs/configs/<name>.yaml -> what the one line must say
    "unknown_key": "unknown config key 'train.lrr'",
    "unknown_section": "unknown config key 'trainer'",
    "wrong_type": "train.batch_size: expected an integer, got 'big'",
    "wrong_type_list": "data.frames_per_video: expected a list",
    "section_not_mapping": "train: expected a mapping of keys",
    "bad_choice": "method.name: must be one of",
    "support_larger_than_queue": "method.support_size: must be in [1, model.cycle_queue_size) = [1, 1024), got 2048",
    "support_equal_to_queue": "method.support_size: must be in [1, model.cycle_queue_size)",
    "queue_not_divisible_by_batch": "model.queue_size: must be a multiple of train.batch_size (128), got 1000",
    "cycle_queue_not_divisible_by_batch": "model.cycle_queue_size: must be a multiple of train.batch_size (96)",
    "negative_lr": "train.lr: must be > 0",
    "zero_batch_size": "train.batch_size: must be >= 1",
    "zero_log_every": "train.log_every: must be >= 1",
    "momentum_out_of_range": "model.momentum: must be in [0, 1)",
    "bad_yaml": "bad_yaml.yaml: not valid YAML at line 4",
    "not_a_mapping": "not_a_mapping.yaml: expected a mapping at the top level",
}
VIDEO_CASES = {  # tests/bad_inputs/videos/<name> -> the reason the one line must give
    "empty.mp4": "empty file (0 bytes)",
    "text.mp4": "not a video file or corrupt",
    "random.mp4": "not a video file or corrupt",
    "truncated.mp4": "truncated",
    "zero_frames.mp4": "decoding failed after 0 frames",
    "no_frames.mp4": "no video stream",
    "audio_only.mp4": "no video stream",
    "image.mp4": "an image (png_pipe), not a video",
}
TRAIN_ON = ("truncated.mp4", "text.mp4")  # also listed in a manifest and trained on (same checks as scan)


def corpus_cases(tmp: Path, data_root: Path) -> dict[str, tuple[list[str], str | tuple[str, ...]]]:
    """Every case: ``name -> (cckit argv, text(s) the error line must contain)``."""
    run = [f"run_dir={tmp / 'run'}"]
    cases = {f"config:{name}": (["train", BAD / "configs" / f"{name}.yaml", *run], message)
             for name, message in CONFIG_CASES.items()}
    (tmp / "not_utf8.yaml").write_bytes(b"train:\n  lr: \xff\xfe\n")
    cases["config:not_utf8"] = (["train", tmp / "not_utf8.yaml", *run], "not_utf8.yaml: cannot read the config")
    cases["config:missing_file"] = (["train", tmp / "nope.yaml", *run], "nope.yaml: config file not found")
    cases["override:unparsable"] = (["train", "configs/quickstart.yaml", "train.lr=[", *run], "train.lr: cannot parse value")
    cases["override:not_key_value"] = (["train", "configs/quickstart.yaml", "train.lr", *run], "override 'train.lr' is not of the form key=value")
    cases["override:resume_missing"] = (["train", "configs/quickstart.yaml", f"resume={tmp / 'gone.pt'}", *run],
                                        "gone.pt: checkpoint to resume from not found")
    for name, reason in VIDEO_CASES.items():
        cases[f"scan:{name}"] = (["data", "scan", BAD / "videos" / name, "--quiet"], (f"videos/{name}: ", reason))
    for name in TRAIN_ON:  # a manifest with one good video and the bad one: cckit train stops before training
        root = tmp / f"manifest_{name}"
        (root / "videos").mkdir(parents=True)
        shutil.copy(BAD / "videos" / name, root / "videos" / name)
        manifest = json.loads((data_root / "manifest.json").read_text())
        good = manifest["videos"][0]
        shutil.copy(data_root / good["path"], root / "videos" / "good.mp4")
        manifest["videos"] = [{**good, "path": "videos/good.mp4"},
                              {**good, "video_id": 1, "path": f"videos/{name}", "num_frames": 6}]
        (root / "manifest.json").write_text(json.dumps(manifest))
        cases[f"train:{name}"] = (["train", "configs/quickstart.yaml", *TINY, "data.source=manifest",
                                   f"data.root={root}", f"run_dir={tmp / ('run_' + name)}", "--quiet"],
                                  (f"videos/{name}: ", VIDEO_CASES[name]))
    return cases


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, tiny_data):
    """Run every case of the corpus through ``python -m cckit`` (a few at a time); name -> result."""
    tmp = tmp_path_factory.mktemp("corpus")
    cases = corpus_cases(tmp, Path(tiny_data))

    def run(item):
        name, (argv, message) = item
        proc = subprocess.run([sys.executable, "-m", "cckit", *map(str, argv)], cwd=ROOT, capture_output=True,
                              text=True, timeout=600)
        return name, (proc.returncode, proc.stdout, proc.stderr, message)

    with ThreadPoolExecutor(max_workers=6) as pool:
        return dict(pool.map(run, cases.items()))


CORPUS_NAMES = ([f"config:{n}" for n in CONFIG_CASES] + ["config:not_utf8", "config:missing_file",
                "override:unparsable", "override:not_key_value", "override:resume_missing"]
                + [f"scan:{n}" for n in VIDEO_CASES] + [f"train:{n}" for n in TRAIN_ON])


@pytest.mark.slow
@pytest.mark.parametrize("name", CORPUS_NAMES)
def test_bad_input_exits_nonzero_with_one_line_naming_it(corpus, name):
    rc, out, err, message = corpus[name]
    assert rc == 2 and "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("cckit: error: "), err
    for text in (message,) if isinstance(message, str) else message:
        assert text in lines[0], err


def test_corpus_holds_every_case():
    """Every committed bad input is exercised (a new file must get an expectation above)."""
    assert sorted(p.stem for p in (BAD / "configs").glob("*.yaml")) == sorted(CONFIG_CASES)
    assert sorted(p.name for p in (BAD / "videos").iterdir()) == sorted(VIDEO_CASES)
