"""Running the method comparison: diagnostics by hand, curve statistics, the comparison key, and a
resumable end-to-end run."""
import json

import pytest
import torch

from cckit.compare import frozen_cycle_stats, training_diagnostics
from cckit.compare_report import markdown_table


def test_cycle_diagnostics_by_hand():
    # frames of videos 0, 0, 1, 2 with classes 0, 0, 0, 1
    feats = torch.tensor([[1.0, 0.0], [0.9, 0.1], [1.0, 0.05], [0.0, 1.0]])
    vids, labels = torch.tensor([0, 0, 1, 2]), torch.tensor([0, 0, 0, 1])
    # forward NN (other videos): 0->2, 1->2, 2->0, 3->1; back NN (not the NN's video): 2->0, 2->0, 0->2, 1->2
    out = frozen_cycle_stats(feats, vids, labels)
    assert out == {"nn_same_class": 0.75, "cycle_back_video": 0.75, "cycle_back_class": 0.75}


def test_training_diagnostics_average_the_last_tenth(tmp_path):
    rows = [{"step": i + 1, "loss": float(i), "intra_top1": 0.5, "cycle_rate": i / 100, "images_per_s": 8.0}
            for i in range(20)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"torn')
    d = training_diagnostics(tmp_path / "metrics.jsonl", batch_size=16)
    assert d["final_loss"] == pytest.approx(18.5) and d["final_cycle_rate"] == pytest.approx(0.185)
    assert d["final_intra_top1"] == 0.5 and "final_support_entropy" not in d
    assert d["step_seconds_total"] == pytest.approx(20 * 16 / 8.0)


def test_compare_runs_every_method_and_floor_then_resumes_without_retraining(tiny_overrides, tmp_path, monkeypatch):
    import cckit.train
    from cckit.compare import compare_methods
    from cckit.config import load_config
    from cckit.errors import ConfigError

    cfg = load_config(None, tiny_overrides + ["train.max_steps=2", "eval.track_max_videos=2",
                                              "eval.linear_weight_decay=[0.01]", "eval.linear_max_iter=50"])
    out, runs = tmp_path / "results", tmp_path / "runs"
    res = compare_methods(cfg, methods=("moco_v2", "cycle_contrast", "supervised"), seeds=(0,), out_dir=out, runs_root=runs)
    got = [(e["method"], e["seed"]) for e in res["entries"]]
    # trained methods before the floors of their seed, so a run cut short keeps the methods
    assert got == [("static_box", 0), ("moco_v2", 0), ("cycle_contrast", 0), ("supervised", 0), ("random_init", 0),
                   ("pixels", 0)]
    cc = res["entries"][2]
    for key in ("knn_top1", "linear_top1", "video_knn_top1", "video_linear_top1", "track_precision", "track_auc",
                "train_seconds", "final_cycle_rate", "final_support_entropy", "cycle_back_video"):
        assert isinstance(cc[key], float), key
    assert cc["steps"] == 2 and "final_cycle_rate" not in res["entries"][1]  # moco_v2 has no cycle
    assert "track_precision" not in res["entries"][5] and "knn_top1" not in res["entries"][0]
    ceiling = res["entries"][3]  # the supervised ceiling: the same budget, evaluated the same way
    assert ceiling["steps"] == 2 and isinstance(ceiling["knn_top1"], float) and isinstance(ceiling["track_auc"], float)
    assert json.loads((out / "compare_methods.json").read_text())["entries"] == res["entries"]
    table = (out / "compare_methods.md").read_text()
    assert table.count("\n| cycle_contrast |") == 2 and (out / "compare_methods_tracking.png").is_file()

    def no_training(*args, **kwargs):
        raise AssertionError("a finished (method, seed) was trained again")

    monkeypatch.setattr(cckit.train, "train", no_training)
    again = compare_methods(cfg, methods=("moco_v2", "cycle_contrast"), seeds=(0,), out_dir=out, runs_root=runs)
    assert again["entries"] == res["entries"]
    other = load_config(None, tiny_overrides + ["train.max_steps=3"])
    with pytest.raises(ConfigError, match="another config"):
        compare_methods(other, methods=("moco_v2",), seeds=(0,), out_dir=out, runs_root=runs)


def test_knn_curve_stats_tail_gain_and_flat_step(tmp_path):
    from cckit.compare import knn_curve_stats
    curve = [(0, 0.2), (250, 0.5), (500, 0.7), (750, 0.74), (1000, 0.76), (1250, 0.765)]
    rows = [{"step": s, "loss": 1.0} for s in range(1, 1251, 50)] + [{"step": s, "knn_top1": v} for s, v in curve]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = knn_curve_stats(tmp_path / "metrics.jsonl")
    assert out["knn_curve"] == [list(c) for c in curve]
    # the last fifth starts at step 1000 (0.8 * 1250); within 0.01 of 0.765 first at step 1000
    assert out["knn_tail_gain"] == pytest.approx(0.005) and out["knn_flat_step"] == 1000
    (tmp_path / "none.jsonl").write_text(json.dumps({"step": 1, "loss": 1.0}) + "\n")
    assert knn_curve_stats(tmp_path / "none.jsonl") == {}  # a run without the kNN monitor
    table = markdown_table({"entries": [{"method": "intra_video", "seed": s, "knn_top1": 0.7, **out} for s in (0, 1)]})
    assert "| intra_video | 0.5 ± 0.0 | 1000 ± 0 |" in table


@pytest.mark.parametrize("preset", ["quickstart", "quickstart_long", "paper_cpu"])
def test_the_stored_comparisons_stay_the_presets_own(preset):
    """The stored comparisons must stay their presets' as the kit gains config fields: else
    `cckit compare` refuses to add seeds to them, and their runs are trained again."""
    from pathlib import Path

    from cckit.compare import same_comparison
    from cckit.config import load_config

    repo = Path(__file__).resolve().parents[1]
    stored = json.loads((repo / f"benchmarks/results/compare_{preset}/compare_methods.json").read_text())
    assert same_comparison(stored, load_config(repo / f"configs/{preset}.yaml"))
    assert not same_comparison(stored, load_config(repo / f"configs/{preset}.yaml", ["train.lr=0.123"]))


def test_a_field_added_since_a_comparison_was_stored_is_read_at_its_default():
    from cckit.compare import comparison_key, same_comparison
    from cckit.config import load_config, to_dict

    cfg = load_config(None, ["train.max_steps=7"])
    config = to_dict(cfg)
    del config["method"]["cycle_spread_weight"]  # as stored by a kit without the field
    stored = {"comparison_key": "an older kit's key", "config": config}
    assert comparison_key(cfg) != stored["comparison_key"] and same_comparison(stored, cfg)
    # the current config sets the new field away from its default: another comparison
    assert not same_comparison(stored, load_config(None, ["train.max_steps=7", "method.cycle_spread_weight=0.1"]))
    # a field the stored config holds must be equal; what does not change results may differ
    assert not same_comparison(stored, load_config(None, ["train.max_steps=8"]))
    assert same_comparison(stored, load_config(None, ["train.max_steps=7", "train.seed=3", "method.name=moco_v2",
                                                      "train.threads=1", "run_dir=elsewhere"]))
    # a field the kit no longer has, or no stored config: not today's comparison
    gone = {"comparison_key": "x", "config": {**config, "method": {**config["method"], "removed_knob": 1}}}
    assert not same_comparison(gone, cfg) and not same_comparison({"comparison_key": "x"}, cfg)
