"""Checkpoints: atomic writes under failure and kill -9, safe loading (no code runs), corruption
detection, choosing what to resume from, RNG capture, and official MoCo/CycleContrast import."""
import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import torchvision

from cckit.checkpoint import (backbone_state_dict, find_resumable, load_backbone, load_checkpoint, rng_state,
                              save_checkpoint, save_numbered, set_rng_state, state_digest)
from cckit.config import ModelConfig
from cckit.errors import DataError
from cckit.model import CycleContrastModel


def small_state(step: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {"model": {"w": torch.randn(64, 64, generator=g), "ids": torch.arange(8), "ptr": torch.tensor([step, step])},
            "optimizer": {"state": {0: {"momentum_buffer": torch.randn(64, generator=g)}},
                          "param_groups": [{"lr": 0.1, "params": [0]}]},
            "step": step, "epoch": 0, "config": {"run_dir": "x", "train": {"lr": 0.1, "knn_k": [5, 20]}, "none": None}}


# -- atomic writes -------------------------------------------------------------------------------

def test_failed_write_keeps_the_previous_file_and_leaves_no_temp(tmp_path, monkeypatch):
    save_checkpoint(tmp_path / "last.pt", small_state(2))
    real_save = torch.save

    def disk_full(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        save_checkpoint(tmp_path / "last.pt", small_state(4))
    monkeypatch.setattr(torch, "save", real_save)
    assert load_checkpoint(tmp_path / "last.pt")["step"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


WRITER = """
import sys, torch
from cckit.checkpoint import save_numbered
ckpt_dir = sys.argv[1]
for step in range(1, 100000):
    g = torch.Generator().manual_seed(step)
    save_numbered(ckpt_dir, {"model": {"w": torch.randn(2_000_000, generator=g)}, "step": step}, keep=2)
    print(step, flush=True)
"""


@pytest.mark.slow
def test_kill_9_while_writing_never_leaves_a_torn_checkpoint(tmp_path):
    """A process saving 8 MB checkpoints in a loop is killed at random moments, several times;
    every time, what find_resumable picks loads, passes its checksum and is one of the steps written."""
    rng = np.random.default_rng(0)
    for attempt in range(3):
        ckpt_dir = tmp_path / f"run{attempt}" / "checkpoints"
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(ckpt_dir)], stdout=subprocess.PIPE, text=True)
        first = proc.stdout.readline()  # one full save done: the process is warm, the next ones are in flight
        assert first.strip().isdigit()
        time.sleep(float(rng.uniform(0.0, 0.5)))
        proc.send_signal(signal.SIGKILL)
        written = [int(first)] + [int(line) for line in proc.stdout.read().split()]
        proc.wait()
        path, problems = find_resumable(ckpt_dir.parent)
        assert not problems and path is not None
        state = load_checkpoint(path)
        # the newest save it reported, or the one it finished before it could print
        assert state["step"] in (written[-1], written[-1] + 1)
        g = torch.Generator().manual_seed(state["step"])
        assert torch.equal(state["model"]["w"], torch.randn(2_000_000, generator=g))
    save_numbered(ckpt_dir, {"model": {}, "step": 10**6}, keep=2)  # temporary files of the kills are cleaned up
    assert not list(ckpt_dir.glob(".*"))


def test_save_numbered_links_last_and_keeps_the_newest(tmp_path):
    for step in (2, 4, 6):
        save_numbered(tmp_path, small_state(step), keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt", "step_00000004.pt", "step_00000006.pt"]
    assert os.path.samefile(tmp_path / "last.pt", tmp_path / "step_00000006.pt")  # a hard link, no second copy
    save_numbered(tmp_path, small_state(8), keep=2)
    assert load_checkpoint(tmp_path / "step_00000006.pt")["step"] == 6  # replacing last.pt left the link intact
    save_numbered(tmp_path / "only_last", small_state(2), keep=0)
    assert [p.name for p in (tmp_path / "only_last").iterdir()] == ["last.pt"]


# -- loading: safe, and damage is detected ---------------------------------------------------------

class Exploit:
    """Unpickling this runs ``open(marker, "w")``: harmless, but proof that code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def test_a_pickled_object_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1)}, "step": 1, "payload": Exploit(marker)}, path)
    with pytest.raises(DataError, match=r"evil.pt: cannot load checkpoint \(UnpicklingError"):
        load_checkpoint(path)
    with pytest.raises(DataError, match="evil.pt: cannot load checkpoint"):
        load_backbone(path, "resnet18")
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    os.link(path, tmp_path / "run" / "checkpoints" / "last.pt")
    assert find_resumable(tmp_path / "run")[0] is None
    assert not marker.exists()
    # the file is dangerous: an unsafe load does run its code
    torch.load(path, weights_only=False)["payload"].close()
    assert marker.exists()


@pytest.mark.parametrize("damage, message", [
    (lambda b: b[:len(b) // 2], "cannot load checkpoint"),  # truncated (a kill during a non-atomic copy)
    (lambda b: b"", "cannot load checkpoint"),  # empty
    (lambda b: b"not a checkpoint\n", "cannot load checkpoint"),  # text
    (lambda b: b[:b.index(b"data/0") + 300] + bytes(64) + b[b.index(b"data/0") + 364:], "corrupt checkpoint"),  # bit rot
])
def test_damaged_checkpoint_is_a_data_error_naming_the_file(tmp_path, damage, message):
    save_checkpoint(tmp_path / "good.pt", small_state(3))
    (tmp_path / "bad.pt").write_bytes(damage((tmp_path / "good.pt").read_bytes()))
    with pytest.raises(DataError, match=rf"bad.pt: {message}"):
        load_checkpoint(tmp_path / "bad.pt")
    with pytest.raises(DataError, match="missing.pt: checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_checksum_survives_the_round_trip_and_catches_one_changed_value(tmp_path):
    state = {**small_state(5), "rng": rng_state(), "half": torch.ones(3, dtype=torch.bfloat16),
             "flag": torch.tensor(True), "t": torch.arange(12).reshape(3, 4).t()}  # non-contiguous
    save_checkpoint(tmp_path / "a.pt", state)
    loaded = load_checkpoint(tmp_path / "a.pt")
    assert "cckit_checksum" not in loaded and state_digest(loaded) == state_digest(state)
    changed = {**state, "model": {**state["model"], "w": state["model"]["w"].clone()}}
    changed["model"]["w"][3, 7] += 1e-6
    assert state_digest(changed) != state_digest(state)


# -- what resume=auto picks ------------------------------------------------------------------------

def test_find_resumable_takes_the_newest_that_loads_and_reports_the_rest(tmp_path):
    ckpts = tmp_path / "checkpoints"
    assert find_resumable(tmp_path) == (None, [])
    for step in (2, 4):
        save_numbered(ckpts, small_state(step), keep=3)
    assert find_resumable(tmp_path) == (ckpts / "last.pt", [])  # last.pt wins a tie with step_4
    save_checkpoint(ckpts / "step_00000006.pt", small_state(6))  # newer than last.pt (e.g. a copy)
    assert find_resumable(tmp_path) == (ckpts / "step_00000006.pt", [])
    (ckpts / "step_00000006.pt").write_bytes(b"torn")
    (ckpts / ".last.pt.x1y2.tmp").write_bytes(b"a kill mid-write")  # never a candidate
    path, problems = find_resumable(tmp_path)
    assert path == ckpts / "last.pt" and len(problems) == 1 and "step_00000006.pt: skipped" in problems[0]
    raw = (ckpts / "last.pt").read_bytes()
    (ckpts / "last.pt").unlink()  # last.pt is a hard link of step_4: corrupt the shared bytes
    (ckpts / "last.pt").write_bytes(raw[:-100])
    path, problems = find_resumable(tmp_path)
    assert path == ckpts / "step_00000004.pt"
    assert [p.split(":")[0] for p in problems] == [str(ckpts / "last.pt"), str(ckpts / "step_00000006.pt")]


# -- RNG states ----------------------------------------------------------------------------------

def test_rng_state_restores_python_numpy_and_torch_through_a_weights_only_file(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    np.random.standard_normal()  # leaves a cached gaussian in numpy's legacy state
    save_checkpoint(tmp_path / "rng.pt", {"rng": rng_state(), "step": 0})
    expected = (random.random(), np.random.standard_normal(3).tolist(), torch.rand(3).tolist())
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    set_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"])
    assert (random.random(), np.random.standard_normal(3).tolist(), torch.rand(3).tolist()) == expected


# -- official MoCo / CycleContrast checkpoints -----------------------------------------------------

def official_cycle_contrast_checkpoint(arch: str = "resnet18", dim: int = 16):
    """What happywu/CycleContrast's train_cycle.py saves (DDP-wrapped CycleContrast with mlp and
    sep_head): ``state_dict`` with module.encoder_q/encoder_k (torchvision ResNet whose fc is the
    MLP fc.0/fc.2), module.q_cycle_fc/k_cycle_fc, the queues; plus epoch, arch, optimizer.
    Returns (checkpoint, the query network with fc removed, in eval mode)."""
    torch.manual_seed(0)
    net = getattr(torchvision.models, arch)(num_classes=dim)
    d = net.fc.weight.shape[1]
    net.fc = torch.nn.Sequential(torch.nn.Linear(d, d), torch.nn.ReLU(), net.fc)
    for m in net.modules():  # non-trivial BN statistics, so eval-mode features depend on them
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    cycle = torch.nn.Sequential(torch.nn.Linear(d, d), torch.nn.ReLU(), torch.nn.Linear(d, dim))
    state = {}
    for k, v in net.state_dict().items():
        state[f"module.encoder_q.{k}"] = v
        state[f"module.encoder_k.{k}"] = v + 1  # a different momentum encoder: must not be the one loaded
    for k, v in cycle.state_dict().items():
        state[f"module.q_cycle_fc.{k}"] = v
        state[f"module.k_cycle_fc.{k}"] = v
    state.update({"module.queue": torch.randn(dim, 32), "module.queue_cycle": torch.randn(dim, 32),
                  "module.queue_ptr": torch.zeros(1, dtype=torch.long), "module.queue_cycle_ptr": torch.zeros(1, dtype=torch.long),
                  "module.queue_labels": torch.zeros(1, 32, dtype=torch.long), "module.queue_indices": torch.zeros(1, 32, dtype=torch.long)})
    optimizer = torch.optim.SGD(net.parameters(), lr=0.06, momentum=0.9)
    for p in net.parameters():  # an optimizer mid-run: momentum buffers for every parameter
        optimizer.state[p]["momentum_buffer"] = torch.randn_like(p)
    ckpt = {"epoch": 200, "arch": arch, "state_dict": state, "optimizer": optimizer.state_dict()}
    net.fc = torch.nn.Identity()
    return ckpt, net.eval()


@pytest.mark.parametrize("zipfile", [True, False], ids=["zip", "legacy-format"])
def test_official_cycle_contrast_checkpoint_gives_the_same_features(tmp_path, zipfile):
    ckpt, source = official_cycle_contrast_checkpoint()
    torch.save(ckpt, tmp_path / "checkpoint_0199.pth.tar", _use_new_zipfile_serialization=zipfile)
    assert set(backbone_state_dict(ckpt)) == set(source.state_dict())  # fc.0/fc.2, q_cycle_fc, encoder_k, queues dropped
    net = load_backbone(tmp_path / "checkpoint_0199.pth.tar")  # arch read from the checkpoint
    x = torch.randn(4, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(net(x), source(x), rtol=0, atol=0)
    assert not net.training


def test_official_checkpoint_of_another_arch_lists_missing_unexpected_and_wrong_shape_keys(tmp_path):
    ckpt, _ = official_cycle_contrast_checkpoint("resnet18")
    state = ckpt["state_dict"]
    state["module.encoder_q.conv1.weight"] = torch.zeros(64, 3, 3, 3)
    del state["module.encoder_q.layer4.1.bn2.bias"]
    state["module.encoder_q.extra.weight"] = torch.zeros(1)
    torch.save(ckpt, tmp_path / "r18.pth.tar")
    with pytest.raises(DataError) as info:
        load_backbone(tmp_path / "r18.pth.tar", "resnet18")
    assert str(info.value) == (f"{tmp_path / 'r18.pth.tar'}: backbone weights do not fit resnet18 (missing: layer4.1.bn2.bias; "
                               "unexpected: extra.weight; wrong shape: conv1.weight)")
    with pytest.raises(DataError, match=r"do not fit resnet50 \(missing: .*layer1.0.conv3.weight.*\(\+\d+\); "
                                        r"unexpected: extra.weight; wrong shape: .*layer1.0.conv1.weight"):
        load_backbone(tmp_path / "r18.pth.tar", "resnet50")


def test_cckit_checkpoint_loads_the_online_backbone(tmp_path):
    cfg = ModelConfig(arch="resnet10", small_stem=True, queue_size=8, cycle_queue_size=8, bn_splits=2)
    model = CycleContrastModel(cfg)
    with torch.no_grad():
        for p in model.encoder_m.parameters():
            p.add_(1.0)  # the momentum copy differs: it must not be the one loaded
    save_checkpoint(tmp_path / "last.pt", {"config": {"model": {"arch": "resnet10", "small_stem": True}},
                                           "model": model.state_dict(), "step": 1})
    net = load_backbone(tmp_path / "last.pt")
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(net(x), model.encoder.backbone.eval()(x), rtol=0, atol=0)
