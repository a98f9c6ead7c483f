"""The evaluation suite: the kNN sweep equals knn_accuracy per (k, T); every protocol on a tiny
trained checkpoint, through the library and through `cckit eval`."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cckit.eval.knn import knn_accuracy
from cckit.eval.suite import knn_sweep


def test_knn_sweep_equals_knn_accuracy_at_every_grid_point():
    rng = np.random.default_rng(0)
    memory = {"features": torch.tensor(rng.normal(size=(120, 8))), "labels": torch.tensor(rng.integers(0, 5, 120))}
    queries = {"features": torch.tensor(rng.normal(size=(40, 8))), "labels": torch.tensor(rng.integers(0, 5, 40))}
    out = knn_sweep(memory, queries, ks=(1, 7, 50), temperatures=(0.05, 0.5))
    assert [(g["k"], g["temperature"]) for g in out["grid"]] == [(1, .05), (1, .5), (7, .05), (7, .5), (50, .05), (50, .5)]
    for g in out["grid"]:
        ref = knn_accuracy(memory["features"], memory["labels"], queries["features"], queries["labels"],
                           k=g["k"], temperature=g["temperature"], num_classes=5)
        assert (g["top1"], g["top5"]) == (ref["top1"], ref["top5"])
    assert out["best"]["top1"] == max(g["top1"] for g in out["grid"])


@pytest.fixture(scope="module")
def tiny_checkpoint(tiny_data, tmp_path_factory):
    from conftest import TINY

    from cckit.config import load_config
    from cckit.train import train

    run = tmp_path_factory.mktemp("suite") / "run"
    overrides = TINY + [f"data.root={tiny_data}", f"run_dir={run}", "train.max_steps=2", "eval.track_max_videos=3",
                        "eval.linear_weight_decay=[0.01, 1.0]", "eval.linear_max_iter=50", "eval.knn_sweep_k=[1, 5]",
                        "eval.knn_sweep_temperature=[0.1]"]
    result = train(load_config(None, overrides), progress=False)
    return result["checkpoint"], overrides


def test_every_protocol_on_a_checkpoint(tiny_checkpoint):
    from cckit.checkpoint import load_backbone
    from cckit.config import load_config
    from cckit.eval.cache import file_fingerprint
    from cckit.eval.suite import PROTOCOLS, evaluate

    ckpt, overrides = tiny_checkpoint
    cfg = load_config(None, overrides)
    out = evaluate(load_backbone(ckpt), cfg, PROTOCOLS, weights_id=file_fingerprint(ckpt))
    assert out["eval_frames_test"] == 16  # 8 test videos x 2 frames
    assert 0 <= out["knn5_top1"] <= out["knn5_top5"] <= 1
    assert [(g["k"], g["temperature"]) for g in out["knn_sweep"]["grid"]] == [(1, 0.1), (5, 0.1)]
    assert out["linear_weight_decay"] in (0.01, 1.0) and len(out["linear_per_class"]) == 10
    assert out["video_videos_test"] == 8 and 0 <= out["video_linear_top1"] <= 1
    track = out["track"]
    assert track["sequences"] == 3 and track["threshold"] == pytest.approx(20 * 32 / 480)
    assert 0 <= track["precision"] <= 1 and 0 <= track["success_auc"] <= 20 / 21 + 1e-9
    assert len(list((Path(cfg.run_dir) / "features").glob("*.pt"))) == 2  # train and test features, cached


def test_cli_eval_protocols_print_json_and_fail_in_one_line(tiny_checkpoint, tmp_path, capsys):
    from cckit.cli import main

    ckpt, overrides = tiny_checkpoint
    assert main(["eval", "linear", "--checkpoint", ckpt, *overrides]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["protocol"] == "linear" and 0 <= out["linear_top1"] <= 1
    plot = tmp_path / "otb.png"
    assert main(["eval", "track", "--checkpoint", ckpt, "--plot", str(plot), *overrides]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["track"]["sequences"] == 3 and plot.stat().st_size > 1000
    assert main(["eval", "track", "--checkpoint", ckpt, "--otb", str(tmp_path / "nothing"), *overrides]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cckit: error: ") and "no OTB sequences" in err and err.count("\n") == 1
    assert main(["eval", "video", "--checkpoint", ckpt, "--otb", str(tmp_path), *overrides]) == 2
    assert capsys.readouterr().err == "cckit: error: --otb only applies to `cckit eval track`\n"


def test_track_protocol_on_otb_format_sequences(tmp_path):
    from PIL import Image

    from cckit.config import load_config
    from cckit.model import random_backbone
    from cckit.eval.suite import evaluate

    for name, (dx, dy) in {"Square": (2, 1), "Still": (0, 0)}.items():
        (tmp_path / name / "img").mkdir(parents=True)
        lines = []
        for t in range(5):
            x, y = 20 + dx * t, 24 + dy * t
            frame = np.full((64, 80, 3), 40, np.uint8)
            frame[y:y + 16, x:x + 16] = (240, 220, 30)
            Image.fromarray(frame).save(tmp_path / name / "img" / f"{t + 1:04d}.jpg", quality=95)
            lines.append(f"{x + 1},{y + 1},16,16")  # OTB: 1-based
        (tmp_path / name / "groundtruth_rect.txt").write_text("\n".join(lines) + "\n")
    cfg = load_config(None, ["model.arch=resnet10", f"run_dir={tmp_path / 'run'}"])
    out = evaluate(random_backbone(cfg), cfg, ("track",), otb_root=tmp_path)["track"]
    assert out["sequences"] == 2 and out["frames"] == 10  # OTB scores every frame, the first included
    assert out["threshold"] == 20.0 and out["precision"] == 1.0  # a 16-px square never drifts 20 px
