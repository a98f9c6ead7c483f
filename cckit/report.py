"""The main job's report: ``report.md`` with a figure of the training curves and the kNN floors."""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # the report is written headless; notebooks use their own backend
import matplotlib.pyplot as plt  # noqa: E402


def read_metrics(path: str | Path) -> list[dict]:
    """Rows of a ``metrics.jsonl`` (a torn last line from a kill is skipped)."""
    rows = []
    for line in Path(path).read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def _smooth(values: list[float], window: int) -> list[float]:
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= window:
            acc -= values[i - window]
        out.append(acc / min(i + 1, window))
    return out


def training_figure(rows: list[dict], summary: dict):
    """Three panels: loss terms, intra top-1 / cycle-consistency rate, and kNN top-1 vs the floors."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    steps = [r["step"] for r in rows]
    window = max(1, len(rows) // 50)
    ax = axes[0]
    for key in ("loss", "loss_intra", "loss_cycle"):
        have = [r for r in rows if key in r]  # the step-0 kNN row has no loss
        if have:
            ax.plot([r["step"] for r in have], _smooth([r[key] for r in have], window), label=key)
    ax.set(xlabel="step", ylabel="loss", title="Training loss")
    ax.legend()
    ax = axes[1]
    for key, label in (("intra_top1", "intra top-1 (positive ranked first)"),
                       ("cycle_rate", "cycle-consistency rate")):
        have = [r for r in rows if key in r]
        if have:
            ax.plot([r["step"] for r in have], _smooth([r[key] for r in have], window), label=label)
    ax.set(xlabel="step", ylabel="fraction of queries", title="Contrastive accuracy", ylim=(0, 1))
    ax.legend()
    ax = axes[2]
    knn = [r for r in rows if "knn_top1" in r]
    if knn:
        ax.plot([r["step"] for r in knn], [r["knn_top1"] for r in knn], "o-", color="#1f77b4",
                label=f"kNN monitor ({summary.get('method', '')})")
    last = steps[-1] if steps else 1
    ax.plot([last], [summary.get("knn_top1_trained", 0)], "*", ms=12, color="#d62728",
            label=f"trained, final eval {summary.get('knn_top1_trained', 0):.3f}")
    for key, label, colour in (("knn_top1_pixels", "raw pixels", "#7f7f7f"),
                               ("knn_top1_random_init", "random init", "#bcbd22"),
                               ("knn_top1_random_init_bn", "random init, BN on data", "#ff7f0e")):
        if key in summary:
            ax.axhline(summary[key], color=colour, ls="--", lw=1, label=f"{label} {summary[key]:.3f}")
    chance = summary.get("chance")
    if chance:
        ax.axhline(chance, color="k", ls=":", lw=1, label=f"chance {chance:.2f}")
    ax.legend(loc="lower right", fontsize=7)
    ax.set(xlabel="step", ylabel=f"kNN top-1 (k={summary.get('knn_k', 20)})", title="Test-frame kNN accuracy",
           ylim=(0, 1))
    fig.tight_layout()
    return fig


def write_report(run_dir: str | Path, summary: dict) -> Path:
    """Write ``report.md`` and ``report.png`` into ``run_dir`` from its metrics and ``summary``."""
    run_dir = Path(run_dir)
    rows = read_metrics(run_dir / "metrics.jsonl")
    fig = training_figure(rows, summary)
    fig.savefig(run_dir / "report.png", dpi=110)
    plt.close(fig)
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
        "Files: `config.yaml` (resolved config), `metrics.jsonl` (one line per step), `checkpoints/last.pt`, "
        "`summary.json`.",
    ]
    path = run_dir / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
