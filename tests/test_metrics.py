"""Tests for cckit.metrics: the one writer, trimmer and reader of metrics.jsonl."""
import json

from cckit.metrics import MetricsLog, read_metrics


def test_a_fresh_log_rounds_floats_and_reads_back(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 9}\n')  # an old run's file is replaced
    with MetricsLog(tmp_path) as log:
        log.write({"step": 1, "loss": 1 / 3, "ok": True})
        log.write({"step": 2, "loss": 2.0})
    assert read_metrics(tmp_path) == [{"step": 1, "loss": 0.333333, "ok": True}, {"step": 2, "loss": 2.0}]
    assert read_metrics(tmp_path / "metrics.jsonl") == read_metrics(tmp_path)


def test_resume_keeps_each_step_once_and_drops_a_torn_line(tmp_path):
    lines = [json.dumps({"step": s, "loss": float(s)}) for s in range(0, 8)]
    (tmp_path / "metrics.jsonl").write_text("\n".join(lines) + '\n{"step": 8, "lo')  # killed mid-line
    with MetricsLog(tmp_path, resume_step=5) as log:
        assert [r["step"] for r in read_metrics(tmp_path)] == [0, 1, 2, 3, 4, 5]
        log.write({"step": 6, "loss": 60.0})
        log.flush()
        assert read_metrics(tmp_path)[-1] == {"step": 6, "loss": 60.0}
    assert [r["step"] for r in read_metrics(tmp_path)] == [0, 1, 2, 3, 4, 5, 6]
