"""Tests for cckit.session: the notebooks' configs, checkpoints trained on demand, models and banks."""
import torch

from cckit.checkpoint import load_model
from cckit.config import load_config
from cckit.model import random_model
from cckit.session import FAST_OVERRIDES, ensure_checkpoint, method_config, notebook_config


def test_notebook_config_layers_preset_fast_mode_and_overrides(tmp_path):
    cfg = notebook_config("configs/quickstart.yaml", fast=True, run_dir=tmp_path / "r", data_root=tmp_path / "d",
                          overrides=["train.max_steps=7"])
    assert (cfg.model.arch, cfg.train.batch_size, cfg.train.max_steps) == ("resnet10", 16, 7)  # fast, then own
    assert (cfg.run_dir, cfg.data.root, cfg.resume) == (str(tmp_path / "r"), str(tmp_path / "d"), "auto")
    assert cfg.method.key_encoder == "online"  # the preset's choices the fast mode leaves alone
    full = notebook_config("configs/quickstart.yaml")
    assert (full.model.arch, full.train.max_steps) == ("resnet18", 1000)
    assert "train.max_steps=12" in FAST_OVERRIDES


def test_method_config_puts_other_methods_beside_the_run():
    cfg = load_config(None, ["run_dir=runs/x"])
    assert method_config(cfg, cfg.method.name) is cfg
    other = method_config(cfg, "moco_v2")
    assert (other.run_dir, other.method.name) == ("runs/x_moco_v2", "moco_v2")


def test_checkpoint_trained_on_demand_once_then_loaded_whole(tiny_overrides, tmp_path):
    cfg = load_config(None, tiny_overrides + ["train.max_steps=2"])
    path = ensure_checkpoint(cfg, progress=False)
    mtime = path.stat().st_mtime_ns
    assert ensure_checkpoint(cfg, progress=False) == path and path.stat().st_mtime_ns == mtime  # finished: reused
    model, ckpt_cfg = load_model(path)
    state = torch.load(path, weights_only=True)["model"]
    assert ckpt_cfg.train.max_steps == 2 and not model.training
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    a, b = random_model(cfg, seed=3), random_model(cfg, seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not torch.equal(a.encoder.backbone.conv1.weight, random_model(cfg, seed=4).encoder.backbone.conv1.weight)
