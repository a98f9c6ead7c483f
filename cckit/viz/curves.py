"""Training curves from ``metrics.jsonl``: loss terms, intra top-1, cycle-consistency rate, learning rate, kNN monitor."""
from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np

from ..metrics import read_metrics
from .images import new_figure

PANELS = (
    ("loss", "loss", "Loss terms", ("loss", "loss_intra", "loss_cycle")),
    ("intra top-1", "fraction of queries", "Intra top-1 (positive ranked first)", ("intra_top1",)),
    ("cycle rate", "fraction of queries", "Cycle-consistency rate", ("cycle_rate",)),
    ("lr", "learning rate", "Learning rate", ("lr",)),
    ("knn", "kNN top-1", "kNN monitor (test frames)", ("knn_top1",)),
)
STYLES = {"loss": "-", "loss_intra": "--", "loss_cycle": ":"}


def smooth(values, window: int) -> np.ndarray:
    """Trailing moving average (the first points average what exists so far)."""
    v = np.asarray(values, dtype=float)
    if window <= 1 or len(v) == 0:
        return v
    c = np.cumsum(np.insert(v, 0, 0.0))
    idx = np.arange(1, len(v) + 1)
    lo = np.maximum(idx - window, 0)
    return (c[idx] - c[lo]) / (idx - lo)


FLOOR_STYLES = {"raw pixels": "#7f7f7f", "random init": "#bcbd22", "random init, BN on data": "#ff7f0e",
                "chance": "k"}


NOTES = ("How to read these panels",
         "Loss: the total and its terms, a moving average.\n"
         "Intra top-1: share of queries whose positive outranks\nevery negative.\n"
         "Cycle rate: share of queries whose soft neighbour in\nother videos ranks the query's own positive first.\n"
         "For the first K_c / N steps the cycle queue still holds\nthe random vectors it starts with, so its first\n"
         "readings (often 0.2-0.3) measure those, not the model.\n"
         "kNN: test frames against train frames, step 0 = random\ninit; dashed lines: the floors it must beat.")


def floor_lines(metrics: dict, k: int = 20) -> dict[str, float]:
    """The kNN floors of an :func:`cckit.eval.evaluate` result (``floors=True``) as ``floors`` lines."""
    names = {"raw pixels": "pixels", "random init": "random_init", "random init, BN on data": "random_init_bn"}
    out = {label: metrics[f"knn{k}_top1_{suffix}"] for label, suffix in names.items() if f"knn{k}_top1_{suffix}" in metrics}
    if "chance" in metrics:
        out["chance"] = metrics["chance"]
    return out


def training_curves_figure(runs, *, smoothing: int | None = None, floors: dict[str, float] | None = None):
    """Five panels of one or more runs and a panel that says how to read them.

    Args:
        runs: a ``metrics.jsonl`` path, a run directory, a list of metric rows, or a dict
            name -> any of these (one colour per run).
        smoothing: moving-average window in steps (default: 1/50 of the longest run).
        floors: name -> kNN top-1 drawn as horizontal lines on the kNN panel (e.g. raw pixels,
            random init; :func:`floor_lines` makes them from an evaluation), so the curve shows
            where it crosses them.

    The kNN panel is the one titled "kNN monitor (test frames)".
    """
    if not isinstance(runs, dict):
        runs = {"": runs}
    runs = {name: read_metrics(r) if isinstance(r, (str, Path)) else list(r) for name, r in runs.items()}
    longest = max((len(r) for r in runs.values()), default=0)
    window = smoothing or max(1, longest // 50)
    fig = new_figure(15, 7.6, layout="constrained")
    axes = fig.subplots(2, 3).ravel()
    colours = matplotlib.colormaps["tab10"]
    for ax, (_, ylabel, title, keys) in zip(axes, PANELS):
        for i, (name, rows) in enumerate(runs.items()):
            for key in keys:
                have = [r for r in rows if key in r]  # e.g. kNN readings only every train.knn_every steps
                if not have:
                    continue
                label = " ".join(x for x in (name, key if len(keys) > 1 else "") if x) or None
                steps, values = [r["step"] for r in have], [r[key] for r in have]
                raw = key in ("lr", "knn_top1")
                ax.plot(steps, values if raw else smooth(values, window), "o-" if key == "knn_top1" else STYLES.get(key, "-"),
                        color=colours(i), label=label)
        if keys == ("knn_top1",):
            for name, value in (floors or {}).items():
                ax.axhline(value, color=FLOOR_STYLES.get(name, "#9467bd"), ls=":" if name == "chance" else "--",
                           lw=1.2, label=f"{name} {value:.3f}")
        ax.set_xlabel("step", fontsize=10)
        ax.set_ylabel(ylabel, fontsize=10)
        ax.set_title(title, fontsize=12)
        if ylabel in ("fraction of queries", "kNN top-1"):
            ax.set_ylim(-0.02, 1.02)
        if not ax.lines:
            ax.text(0.5, 0.5, "not logged by this method", ha="center", va="center", transform=ax.transAxes,
                    color="grey", fontsize=11)
        elif any(line.get_label() and not line.get_label().startswith("_") for line in ax.lines):
            ax.legend(fontsize=9)
    notes = axes[len(PANELS)]
    notes.axis("off")
    notes.set_title(NOTES[0], fontsize=12)
    notes.text(0.0, 1.0, NOTES[1], va="top", ha="left", fontsize=9.5, transform=notes.transAxes)
    if window > 1:
        fig.suptitle(f"moving average over {window} steps (learning rate and kNN unsmoothed)", fontsize=11)
    return fig


def uniform_loss(config: dict) -> float:
    """The intra loss at which the positive is no more similar than any negative: ``log(K + 1)``
    against a queue of K momentum keys, ``log(2N - 1)`` for the online variant's in-batch NT-Xent."""
    if config["method"].get("key_encoder", "momentum") == "online":
        return float(np.log(2 * config["train"]["batch_size"] - 1))
    return float(np.log(config["model"]["queue_size"] + 1))


def key_encoders_figure(runs: dict, *, floors: dict[str, float] | None = None, smoothing: int | None = None):
    """Runs with different key encoders side by side, against training views (steps x batch).

    Three panels: the kNN monitor (with ``floors`` as lines); the intra loss over its uniform value
    (``loss_intra - log(K+1)``, or ``- log(2N-1)`` online; 0 means the positive is picked out no
    better than chance: below 0 the model tells its positive from the negatives); and the query
    spread ``query_std`` (1 = spread over the sphere, 0 = every query the same direction).

    Args:
        runs: name -> run directory (holding ``config.yaml`` and ``metrics.jsonl``).
    """
    import yaml

    fig = new_figure(15, 4.6, layout="constrained")
    axes = fig.subplots(1, 3)
    colours = matplotlib.colormaps["tab10"]
    for i, (name, run_dir) in enumerate(runs.items()):
        config = yaml.safe_load((Path(run_dir) / "config.yaml").read_text())
        rows = read_metrics(run_dir)
        batch = config["train"]["batch_size"]
        window = smoothing or max(1, len(rows) // 50)
        knn = [r for r in rows if "knn_top1" in r]
        axes[0].plot([r["step"] * batch for r in knn], [r["knn_top1"] for r in knn], "o-", ms=3, color=colours(i),
                     label=name)
        steps = [r for r in rows if "loss_intra" in r]
        views = [r["step"] * batch for r in steps]
        base = uniform_loss(config)
        axes[1].plot(views, smooth([r["loss_intra"] - base for r in steps], window), color=colours(i),
                     label=f"{name} (uniform {base:.2f})")
        axes[2].plot(views, smooth([r["query_std"] for r in steps], window), color=colours(i), label=name)
    for name, value in (floors or {}).items():
        axes[0].axhline(value, color=FLOOR_STYLES.get(name, "#9467bd"), ls=":" if name == "chance" else "--", lw=1,
                        label=f"{name} {value:.3f}")
    axes[1].axhline(0, color="k", lw=0.8)
    axes[0].set(xlabel="training views", ylabel="kNN top-1", title="kNN monitor (test frames)", ylim=(0, 1))
    axes[1].set(xlabel="training views", ylabel="loss - uniform loss",
                title="Intra loss against its chance value")
    axes[2].set(xlabel="training views", ylabel="query_std", title="Spread of the queries (0 = collapsed)",
                ylim=(0, 1.1))
    for ax in axes:
        ax.legend(fontsize=10)
    return fig
