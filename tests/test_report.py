"""Tests for cckit.report: report.md states the summary's numbers, report.png draws the floors."""
import json

import numpy as np

from cckit.report import training_figure, write_report

SUMMARY = {"method": "cycle_contrast", "data": "synthetic:data/x", "device": "cpu", "steps": 20, "batch_size": 8,
           "train_seconds": 1.5, "knn_k": 20, "knn_temperature": 0.07, "arch": "resnet18",
           "knn_top1_trained": 0.61, "knn_top5_trained": 0.9, "knn_top1_random_init": 0.2,
           "knn_top5_random_init": 0.6, "knn_top1_random_init_bn": 0.17, "knn_top1_pixels": 0.31,
           "knn_top5_pixels": 0.7, "above_highest_floor": 0.3, "chance": 0.1}


def _rows():
    rows = [{"step": 0, "epoch": 0, "knn_top1": 0.2}]
    rows += [{"step": s, "loss": 5.0 - 0.1 * s, "intra_top1": 0.01 * s, "lr": 0.001,
              **({"knn_top1": 0.2 + 0.02 * s} if s % 10 == 0 else {})} for s in range(1, 21)]
    return rows


def test_report_states_the_numbers_and_writes_the_figure(tmp_path):
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _rows()))
    path = write_report(tmp_path, SUMMARY)
    text = path.read_text()
    assert "| raw pixels | 0.310 | 0.700 |" in text
    assert "| trained resnet18 (cycle_contrast) | 0.610 | 0.900 |" in text
    assert "Trained minus the highest floor: +0.300." in text
    assert "Last step: loss 3, intra_top1 0.2" in text
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_knn_panel_shows_the_curve_the_floors_and_the_final_eval():
    fig = training_figure(_rows(), SUMMARY)
    knn = fig.axes[4]
    assert knn.get_title() == "kNN monitor (test frames)"
    lines = {line.get_label(): line for line in knn.lines}
    curve = lines["cycle_contrast"]
    np.testing.assert_allclose(curve.get_xdata(), [0, 10, 20])
    np.testing.assert_allclose(curve.get_ydata(), [0.2, 0.4, 0.6])
    for label, value in (("raw pixels 0.310", 0.31), ("random init 0.200", 0.2),
                         ("random init, BN on data 0.170", 0.17), ("chance 0.100", 0.1)):
        np.testing.assert_allclose(lines[label].get_ydata(), [value, value])
    np.testing.assert_allclose(lines["trained, final eval 0.610"].get_ydata(), [0.61])


def test_report_lists_the_cycle_diagnostics_at_the_first_and_last_reading(tmp_path):
    rows = _rows()
    keys = ("rank_backbone", "rank_intra", "rank_cycle", "purity_cycle", "purity_intra", "purity_chance", "cycle_rate",
            "cycle_rate_chance", "own_video_return", "support_entropy", "support_entropy_max")
    for r in rows:
        if "knn_top1" in r:
            r.update({f"diag_{k}": (i + 1) * 0.1 + r["step"] for i, k in enumerate(keys)})
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    text = write_report(tmp_path, SUMMARY).read_text()
    assert "| | step 0 | step 20 | reference |" in text
    assert "| effective rank of c (cycle head, of 128) | 0.300 | 20.300 |  |" in text
    assert "| cycle rate (back to the query's own video at rank 1) | 0.700 | 20.700 | 20.800 (chance) |" in text
    assert "| support entropy, nats | 1.000 | 21.000 | 21.100 (log M) |" in text
