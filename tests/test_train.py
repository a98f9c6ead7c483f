"""One explicit train_step and the training loop (the objective: tests/test_objective.py)."""
import copy
import json
import subprocess
import sys

import pytest
import torch

from cckit.checkpoint import load_checkpoint
from cckit.config import load_config
from cckit.model import CycleContrastModel
from cckit.train import build_optimizer, train, train_step
from cckit.utils import step_generator

from conftest import TINY


def test_train_step_runs_each_piece_in_order():
    cfg = load_config(None, TINY + ["method.name=cycle_contrast", "model.momentum=0.9"])
    torch.manual_seed(0)
    model = CycleContrastModel(cfg.model)
    opt = build_optimizer(model, cfg)
    x = [torch.randn(8, 3, 32, 32) for _ in range(3)]
    ids = torch.arange(100, 108)
    with torch.no_grad():  # a momentum encoder that differs from the online one, so the EMA shows
        for p in model.encoder_m.parameters():
            p.add_(0.1 * torch.randn_like(p))
    mom_before = [p.clone() for p in model.encoder_m.parameters()]
    online_before = [p.clone() for p in model.encoder.parameters()]
    twin = copy.deepcopy(model)
    from cckit.model import update_momentum
    update_momentum(twin.encoder, twin.encoder_m, 0.9)
    with torch.no_grad():  # the keys train_step will enqueue: momentum encoder after its update
        k_z, k_c = twin.encode_momentum(torch.cat([x[1], x[2]]), generator=step_generator(cfg.train.seed, 0, salt=1))
    stats = train_step(model, opt, (*x, ids), cfg, step=0, lr=0.1)
    assert set(stats) >= {"loss", "loss_intra", "loss_cycle", "intra_top1", "cycle_rate", "support_entropy"}
    torch.testing.assert_close(model.queue_intra[:8], k_z[:8])
    torch.testing.assert_close(model.queue_cycle[:8], k_c[:8])
    assert model.queue_intra_ids[:8].tolist() == ids.tolist() and model.queue_ptr.tolist() == [8, 8]
    for before, m, o in zip(mom_before, model.encoder_m.parameters(), online_before):
        torch.testing.assert_close(m, 0.9 * before + 0.1 * o)  # EMA of the online weights before the step
    assert all(g["lr"] == 0.1 for g in opt.param_groups)


def test_training_loop_logs_checkpoints_and_resumes_exactly(tiny_overrides, tmp_path):
    full = load_config(None, tiny_overrides + ["train.max_steps=6", f"run_dir={tmp_path / 'full'}"])
    train(full, progress=False)
    rows = [json.loads(l) for l in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert {"loss", "loss_intra", "loss_cycle", "intra_top1", "cycle_rate", "lr", "images_per_s"} <= set(rows[0])
    assert (tmp_path / "full" / "config.yaml").is_file()
    # the same run stopped after step 4 (its later checkpoints removed), resumed with resume=auto
    import shutil
    full_ckpts = sorted(p.name for p in (tmp_path / "full" / "checkpoints").glob("step_*.pt"))
    assert full_ckpts == ["step_00000004.pt", "step_00000006.pt"]  # every 4 steps (one epoch) and at the end
    shutil.copytree(tmp_path / "full", tmp_path / "part")
    for name in ("last.pt", "step_00000006.pt"):
        (tmp_path / "part" / "checkpoints" / name).unlink()
    part = [f"run_dir={tmp_path / 'part'}"]
    result = train(load_config(None, tiny_overrides + ["train.max_steps=6", "resume=auto"] + part), progress=False)
    assert result["resumed_from"].endswith("step_00000004.pt") and result["train_steps_this_run"] == 2
    a = load_checkpoint(tmp_path / "full" / "checkpoints" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "part" / "checkpoints" / "last.pt")["model"]
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    rows = [json.loads(l) for l in (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "cckit", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("overrides, message", [
    (["train.lrr=1"], "unknown config key 'train.lrr'"),
    (["train.batch_size=big"], "train.batch_size: expected an integer"),
])
def test_cli_bad_config_is_one_line(overrides, message):
    r = run_cli("train", "configs/quickstart.yaml", *overrides)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [f"cckit: error: {r.stderr.split('error: ', 1)[1].strip()}"]
    assert message in r.stderr


def test_cli_empty_data_directory_is_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    r = run_cli("train", "configs/quickstart.yaml", "data.source=manifest", f"data.root={tmp_path / 'empty'}",
                f"run_dir={tmp_path / 'run'}")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "empty: no manifest.json" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_cli_train_then_eval_knn(tiny_overrides):
    r = run_cli("train", "configs/quickstart.yaml", *tiny_overrides, "train.max_steps=2", "--quiet")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["steps"] == 2
    r = run_cli("eval", "knn", "--checkpoint", out["checkpoint"], "--config", "configs/quickstart.yaml", *tiny_overrides)
    assert r.returncode == 0, r.stderr
    metrics = json.loads(r.stdout)
    assert metrics["eval_frames_test"] == 16 and metrics["protocol"] == "knn"
    # the same numbers by hand: features of the checkpoint's backbone and of raw pixels, plain kNN
    from cckit.checkpoint import load_backbone
    from cckit.data.index import load_splits
    from cckit.eval import eval_frame_sets, extract_features, knn_accuracy, pixel_features

    cfg = load_config("configs/quickstart.yaml", tiny_overrides)
    memory_set, query_set = eval_frame_sets(load_splits(cfg.data), cfg)
    net = load_backbone(out["checkpoint"])
    for suffix, (memory, queries) in (("", (extract_features(net, memory_set, device="cpu"), extract_features(net, query_set, device="cpu"))),
                                      ("_pixels", (pixel_features(memory_set), pixel_features(query_set)))):
        acc = knn_accuracy(memory["features"], memory["labels"], queries["features"], queries["labels"], k=5,
                           temperature=cfg.eval.knn_temperature, num_classes=10)
        assert metrics[f"knn5_top1{suffix}"] == pytest.approx(acc["top1"], abs=1e-6)
    floors = [metrics[f"knn5_top1_{name}"] for name in ("random_init", "random_init_bn", "pixels")]
    assert metrics["highest_floor"] == max(floors)


def test_the_support_oracle_trains_from_the_videos_labels(tiny_overrides, tmp_path):
    """method.support_oracle reaches the cycle term through the trainer (it raises without the labels)."""
    run = tmp_path / "oracle"
    cfg = load_config(None, tiny_overrides + ["method.name=cycle_contrast", "method.support_oracle=true",
                                              "train.max_steps=2", f"run_dir={run}"])
    train(cfg, progress=False)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2] and all(r["loss_cycle"] > 0 for r in rows)
