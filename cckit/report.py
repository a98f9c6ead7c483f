"""The main job's report: ``report.md`` with a figure of the training curves and the kNN floors."""
from __future__ import annotations

from pathlib import Path

from .atomic import atomic_write
from .metrics import read_metrics
from .viz.curves import training_curves_figure

FLOORS = (("knn_top1_pixels", "raw pixels"), ("knn_top1_random_init", "random init"),
          ("knn_top1_random_init_bn", "random init, BN on data"), ("chance", "chance"))


def training_figure(rows: list[dict], summary: dict):
    """The run's training curves (:func:`cckit.viz.curves.training_curves_figure`) with the kNN
    floors of ``summary`` on the kNN panel."""
    floors = {label: summary[key] for key, label in FLOORS if summary.get(key) is not None}
    fig = training_curves_figure({summary.get("method", ""): rows}, floors=floors)
    if "knn_top1_trained" in summary and rows:
        knn = next(ax for ax in fig.axes if ax.get_title() == "kNN monitor (test frames)")
        knn.plot([rows[-1]["step"]], [summary["knn_top1_trained"]], "*", ms=12, color="#d62728",
                 label=f"trained, final eval {summary['knn_top1_trained']:.3f}")
        knn.legend(fontsize=9, loc="lower right")
    return fig


def write_report(run_dir: str | Path, summary: dict) -> Path:
    """Write ``report.md`` and ``report.png`` into ``run_dir`` from its metrics and ``summary``."""
    run_dir = Path(run_dir)
    rows = read_metrics(run_dir / "metrics.jsonl")
    fig = training_figure(rows, summary)
    fig.savefig(run_dir / "report.png", dpi=110)  # a plain Figure: no pyplot, no backend to set
    last = rows[-1] if rows else {}
    lines = [
        f"# cckit run: {summary.get('method')} on {summary.get('data')}",
        "",
        f"Device `{summary.get('device')}`, {summary.get('steps')} steps of batch {summary.get('batch_size')}, "
        f"training took {summary.get('train_seconds')} s.",
        "",
        "## Frame kNN on the test videos",
        "",
        f"Weighted kNN (k={summary.get('knn_k')}, T={summary.get('knn_temperature')}) of test-video frames against "
        f"train-video frames; test and train videos use disjoint digit instances.",
        "",
        "| features | top-1 | top-5 |",
        "|---|---|---|",
        f"| raw pixels | {summary['knn_top1_pixels']:.3f} | {summary.get('knn_top5_pixels', float('nan')):.3f} |",
        f"| random-init {summary.get('arch')} | {summary['knn_top1_random_init']:.3f} | {summary.get('knn_top5_random_init', float('nan')):.3f} |",
        f"| random-init {summary.get('arch')}, BN statistics of the train frames | {summary.get('knn_top1_random_init_bn', float('nan')):.3f} | |",
        f"| trained {summary.get('arch')} ({summary.get('method')}) | {summary['knn_top1_trained']:.3f} | {summary.get('knn_top5_trained', float('nan')):.3f} |",
        "",
        f"Chance is {summary.get('chance', float('nan')):.3f}. Trained minus the highest floor: "
        f"{summary.get('above_highest_floor', float('nan')):+.3f}.",
        "",
        "## Training",
        "",
        "![training curves and kNN](report.png)",
        "",
        "Last step: " + ", ".join(f"{k} {v:.4g}" for k, v in last.items()
                                  if k in ("loss", "loss_intra", "loss_cycle", "intra_top1", "cycle_rate", "support_entropy")),
        "",
        "The cycle-consistency rate is the fraction of queries whose soft nearest neighbour (drawn from",
        "other videos) ranks the query's own-video positive first among the cycle-queue candidates.",
        "",
        *diagnostics_lines(rows),
        "Files: `config.yaml` (resolved config), `metrics.jsonl` (one line per step), `checkpoints/last.pt`, "
        "`summary.json`.",
    ]
    return atomic_write(run_dir / "report.md", "\n".join(lines) + "\n")


def diagnostics_lines(rows: list[dict]) -> list[str]:
    """Markdown lines of the cycle diagnostics (``diag_*``) at the first and last kNN readings."""
    have = [r for r in rows if "diag_rank_cycle" in r]
    if not have:
        return []
    first, last = have[0], have[-1]
    items = [("effective rank of the backbone features", "diag_rank_backbone", None),
             ("effective rank of z (intra head, of 128)", "diag_rank_intra", None),
             ("effective rank of c (cycle head, of 128)", "diag_rank_cycle", None),
             ("share of the soft neighbour's weight on the query's class, c", "diag_purity_cycle", "diag_purity_chance"),
             ("the same with z", "diag_purity_intra", "diag_purity_chance"),
             ("cycle rate (back to the query's own video at rank 1)", "diag_cycle_rate", "diag_cycle_rate_chance"),
             ("back-ranking returns to the query's own video", "diag_own_video_return", None),
             ("support entropy, nats", "diag_support_entropy", "diag_support_entropy_max")]
    lines = ["## Cycle diagnostics (test frames; half of the test videos as the support bank)", "",
             f"| | step {first['step']} | step {last['step']} | reference |", "|---|---|---|---|"]
    for label, key, ref in items:
        ref_text = f"{last[ref]:.3f} ({'chance' if 'chance' in ref else 'log M'})" if ref else ""
        lines.append(f"| {label} | {first[key]:.3f} | {last[key]:.3f} | {ref_text} |")
    return lines + [""]
