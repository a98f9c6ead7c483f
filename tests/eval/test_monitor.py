"""The kNN monitor during training, BN statistics estimated on data, and the online-key variant."""
import json

import pytest
import torch

from cckit.checkpoint import load_checkpoint
from cckit.config import load_config
from cckit.data.index import load_splits
from cckit.eval import eval_frame_sets, extract_features, frame_knn_metrics
from cckit.model import random_backbone
from cckit.eval.monitor import KnnMonitor, stack_frames, with_estimated_bn
from cckit.train import train


def _rows(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_step_zero_of_the_curve_is_the_random_init_floor(tiny_overrides, tmp_path):
    cfg = load_config(None, tiny_overrides + ["train.max_steps=4", "train.knn_every=2"])
    train(cfg, progress=False)
    rows = _rows(tmp_path / "run")
    readings = {r["step"]: r["knn_top1"] for r in rows if "knn_top1" in r}
    assert sorted(readings) == [0, 2, 4]
    memory_set, query_set = eval_frame_sets(load_splits(cfg.data), cfg)
    net = random_backbone(cfg, seed=cfg.train.seed)  # the weights the run started from
    cpu = torch.device("cpu")
    floor = frame_knn_metrics(extract_features(net, memory_set, device=cpu), extract_features(net, query_set, device=cpu), cfg)
    assert readings[0] == pytest.approx(floor["knn5_top1"], abs=1e-6)


def test_a_monitored_run_trains_exactly_like_an_unmonitored_one(tiny_overrides, tmp_path):
    states = {}
    for every in (0, 1):
        run = tmp_path / f"every{every}"
        cfg = load_config(None, tiny_overrides + ["train.max_steps=3", f"train.knn_every={every}", f"run_dir={run}"])
        train(cfg, progress=False)
        states[every] = load_checkpoint(run / "checkpoints" / "last.pt")["model"]
    for key, value in states[0].items():
        torch.testing.assert_close(states[1][key], value, rtol=0, atol=0, msg=key)


def test_monitor_refuses_unlabelled_frames(tiny_overrides):
    cfg = load_config(None, tiny_overrides)
    memory_set, query_set = eval_frame_sets(load_splits(cfg.data), cfg)
    memory_set.records = [r.__class__(**{**r.__dict__, "label": -1}) for r in memory_set.records]
    with pytest.raises(ValueError, match="knn_every=0"):
        KnnMonitor(memory_set, query_set)


def test_estimated_bn_statistics_are_the_data_averages(tiny_overrides):
    cfg = load_config(None, tiny_overrides)
    memory_set, _ = eval_frame_sets(load_splits(cfg.data), cfg)
    images = stack_frames(memory_set)[0]
    net = random_backbone(cfg)
    est = with_estimated_bn(net, images, batch_size=len(images))  # one batch: exact statistics
    with torch.no_grad():
        pre = net.conv1(images)  # N x C x h x w, the input of bn1
    torch.testing.assert_close(est.bn1.running_mean, pre.mean(dim=(0, 2, 3)), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(est.bn1.running_var, pre.var(dim=(0, 2, 3)), atol=1e-4, rtol=1e-4)
    halves = with_estimated_bn(net, images, batch_size=(len(images) + 1) // 2)  # two batches: their average
    means = torch.stack([c.mean(dim=(0, 2, 3)) for c in pre.tensor_split(2)]).mean(0)
    torch.testing.assert_close(halves.bn1.running_mean, means, atol=1e-5, rtol=1e-5)
    assert float(net.bn1.running_mean.abs().max()) == 0.0  # the original keeps mean 0 / var 1
    assert not est.training


def test_online_variant_trains_and_logs_a_spread(tiny_overrides, tmp_path):
    cfg = load_config(None, tiny_overrides + ["train.max_steps=3", "method.key_encoder=online", "model.bn_splits=1"])
    train(cfg, progress=False)
    rows = _rows(tmp_path / "run")
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert all(0.0 < r["query_std"] <= 1.5 for r in rows)
    assert all(r["loss_cycle"] > 0 for r in rows)
