"""Reading a method comparison (``cckit.compare``): per-method means over seeds, paired
differences with Student-t intervals and the seeds a given interval takes, the markdown tables,
the ``cckit compare`` calls that train a stored comparison again, and the OTB plot.

Functions of the stored results (``compare_methods.json``): nothing here trains or evaluates, and
only ``write_outputs`` writes files (the table and the plot beside the JSON).
"""
from __future__ import annotations

import itertools
import json
import os
import re
from pathlib import Path

import numpy as np

from .eval.otb import plot_otb
from .methods import METHODS

SUPERVISED = "supervised"  # the ceiling row: the same backbone and budget trained with the labels
METHOD_ORDER = (*METHODS, SUPERVISED)  # the registry order, from the image baseline to the full method, then the ceiling
FLOORS = ("random_init", "pixels", "static_box")

SUMMARY_KEYS = ("knn_top1", "linear_top1", "video_knn_top1", "video_linear_top1", "track_precision", "track_auc",
                "train_seconds", "final_intra_top1", "final_cycle_rate", "final_support_entropy",
                "nn_same_class", "cycle_back_video", "cycle_back_class")
PLATEAU_KEYS = ("knn_tail_gain", "knn_flat_step")


def summarize(entries: list[dict]) -> dict:
    """Per method: ``{key: {"mean", "std", "n"}}`` over seeds (sample std, ddof=1; 0 for one seed)."""
    out = {}
    for method in dict.fromkeys(e["method"] for e in entries):
        rows = [e for e in entries if e["method"] == method]
        stats = {}
        for key in SUMMARY_KEYS + PLATEAU_KEYS:
            values = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
            if values:
                stats[key] = {"mean": float(np.mean(values)), "std": float(np.std(values, ddof=1)) if len(values) > 1 else 0.0,
                              "n": len(values)}
        out[method] = stats
    return out


def parse_seeds(text: str) -> list[int]:
    """``"0-3,7"`` -> ``[0, 1, 2, 3, 7]``: comma-separated non-negative seeds and inclusive ranges
    ``a-b``, in the order given, each seed once. ``ValueError`` naming the item that is neither."""
    seeds: dict[int, None] = {}  # ordered, each seed once
    for item in filter(None, (s.strip() for s in text.split(","))):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", item)
        low, high = (int(m[1]), int(m[2] or m[1])) if m else (0, -1)
        if high < low:
            raise ValueError(f"{item!r} is not a seed (0, 1, ...) or a range of seeds low-high (0-9)")
        seeds.update(dict.fromkeys(range(low, high + 1)))
    return list(seeds)


def format_seeds(seeds) -> str:
    """Sorted seeds as ``parse_seeds`` reads them, a run of three or more as ``low-high``:
    ``[0, 1, 2, 3, 7, 8]`` -> ``"0-3,7,8"``."""
    parts: list[str] = []
    for _, run in itertools.groupby(enumerate(sorted(set(seeds))), key=lambda p: p[1] - p[0]):
        run = [s for _, s in run]
        parts += [f"{run[0]}-{run[-1]}"] if len(run) >= 3 else map(str, run)
    return ",".join(parts)


def reproduce_commands(entries: list[dict], config: str, out_dir: str, runs: str) -> list[str]:
    """The ``cckit compare`` calls that train every stored (method, seed) of ``entries`` again into
    ``out_dir`` and ``runs``: one per set of seeds, the largest set first, its methods in the registry
    order (the floors come with every call, so they need none)."""
    seeds: dict[str, set] = {}
    for e in entries:
        if e["method"] not in FLOORS:
            seeds.setdefault(e["method"], set()).add(e["seed"])
    groups: dict[tuple, list] = {}
    for m in sorted(seeds, key=lambda m: METHOD_ORDER.index(m) if m in METHOD_ORDER else len(METHOD_ORDER)):
        groups.setdefault(tuple(sorted(seeds[m])), []).append(m)
    return [f"cckit compare {config} --methods {','.join(methods)} --seeds {format_seeds(group)} "
            f"--out {out_dir} --runs {runs}" for group, methods in sorted(groups.items(), key=lambda g: -len(g[0]))]


def comparison_report(path: str | Path, config: str, root: str | Path = ".") -> str:
    """A stored comparison ``<out_dir>/compare_methods.json`` as markdown: its tables
    (``markdown_table``), then the ``cckit compare`` calls that train it again, to be run from
    ``root`` (the repository root, where ``config`` and the runs folder are relative to)."""
    results = json.loads(Path(path).read_text())
    commands = reproduce_commands(results["entries"], config, os.path.relpath(Path(path).parent, root),
                                  str(Path(results["runs_root"]).parent))
    return markdown_table(results) + "\n```bash\n" + "\n".join(commands) + "\n```\n"


PAIRED_KEYS = ("knn_top1", "linear_top1", "video_knn_top1", "video_linear_top1", "track_precision", "track_auc")


def _paired_values(entries: list[dict], method: str, baseline: str, key: str):
    """The seeds both ``method`` and ``baseline`` have a number for on ``key``, and their values there
    (two float64 arrays in seed order)."""
    a = {e["seed"]: e[key] for e in entries if e["method"] == method and isinstance(e.get(key), (int, float))}
    b = {e["seed"]: e[key] for e in entries if e["method"] == baseline and isinstance(e.get(key), (int, float))}
    seeds = sorted(set(a) & set(b))
    return seeds, np.array([a[s] for s in seeds], dtype=np.float64), np.array([b[s] for s in seeds], dtype=np.float64)


def paired_difference(entries: list[dict], method: str, baseline: str, key: str, *, level: float = 0.95) -> dict | None:
    """``method - baseline`` on ``key`` over the seeds both have (paired: same seed, same data order,
    same initialisation): mean, sample std, n and the two-sided Student-t interval at ``level``
    (None with fewer than two pairs)."""
    from scipy import stats

    seeds, x, y = _paired_values(entries, method, baseline, key)
    if len(seeds) < 2:
        return None
    d = x - y
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    half = float(stats.t.ppf(0.5 + level / 2, len(d) - 1) * sd / np.sqrt(len(d)))
    return {"mean": mean, "std": sd, "n": len(d), "low": mean - half, "high": mean + half, "seeds": seeds}


def seeds_needed(std: float, half_width: float, *, level: float = 0.95, most: int = 1000) -> int | None:
    """Paired seeds whose Student-t interval at ``level`` is at most ``half_width`` wide on each
    side, for differences of sample std ``std``: the least n with t(n-1) * std / sqrt(n) <= half_width
    (None past ``most``)."""
    from scipy import stats

    return next((n for n in range(2, most + 1) if stats.t.ppf(0.5 + level / 2, n - 1) * std / np.sqrt(n) <= half_width),
                None)


def paired_spread(entries: list[dict], method: str, baseline: str, key: str) -> dict | None:
    """How ``method`` and ``baseline`` spread over the seeds both have on ``key``: each one's sample
    std, the variance ratio ``method / baseline``, the correlation ``r`` of the two across seeds (what
    pairing by seed gains: the paired difference has variance ``s_m² + s_b² - 2 r s_m s_b``), and the
    Pitman-Morgan test of equal variances for paired samples (``pm_r``: the correlation of the sums
    with the differences, zero exactly when the variances are equal; ``pm_p``: its two-sided p-value,
    Student t on n - 2 degrees of freedom). None with fewer than three pairs."""
    from scipy import stats

    seeds, x, y = _paired_values(entries, method, baseline, key)
    if len(seeds) < 3:
        return None
    pm = stats.pearsonr(x + y, x - y)
    return {"n": len(seeds), "std_method": float(x.std(ddof=1)), "std_baseline": float(y.std(ddof=1)),
            "ratio": float(x.var(ddof=1) / y.var(ddof=1)), "r": float(np.corrcoef(x, y)[0, 1]),
            "pm_r": float(pm.statistic), "pm_p": float(pm.pvalue)}


def paired_table(results: dict, method: str = "cycle_contrast", baseline: str = "intra_video") -> str:
    """Markdown table of ``method - baseline`` per protocol, points, with 95 % paired-t intervals and
    the paired seeds a ±1-point interval would take at the measured spread."""
    rows = []
    for key in PAIRED_KEYS:
        d = paired_difference(results["entries"], method, baseline, key)
        if d is not None:
            need = seeds_needed(d["std"], 0.01)
            rows.append(f"| {key} | {d['n']} | {100 * d['mean']:+.2f} | [{100 * d['low']:+.2f}, {100 * d['high']:+.2f}] "
                        f"| {need if need is not None else '> 1000'} |")
    if not rows:
        return ""
    return "\n".join([f"| {method} − {baseline} | paired seeds | mean (points) | 95 % CI (paired t) "
                      "| seeds for ±1 point |", "|---|---|---|---|---|", *rows]) + "\n"


def paired_curve(entries: list[dict], method: str, baseline: str, *, level: float = 0.95) -> list[dict]:
    """``method - baseline`` kNN top-1 at every monitor reading both curves have, over the paired
    seeds: ``{"step", "mean", "low", "high", "n"}`` per reading (paired t, as :func:`paired_difference`)."""
    curves = {(e["method"], e["seed"]): dict(map(tuple, e["knn_curve"])) for e in entries if "knn_curve" in e}
    seeds = sorted(s for m, s in curves if m == method and (baseline, s) in curves)
    if len(seeds) < 2:
        return []
    steps = sorted(set.intersection(*(set(curves[(m, s)]) for s in seeds for m in (method, baseline))))
    rows = []
    for step in steps:
        points = [{"method": m, "seed": s, "v": curves[(m, s)][step]} for s in seeds for m in (method, baseline)]
        d = paired_difference(points, method, baseline, "v", level=level)
        rows.append({"step": step, **{k: d[k] for k in ("mean", "low", "high", "n")}})
    return rows


def paired_curve_table(results: dict, method: str = "cycle_contrast", baseline: str = "intra_video",
                       readings: int = 7) -> str:
    """Markdown: ``method - baseline`` kNN top-1 (points, 95 % paired-t interval) at about ``readings``
    evenly spaced monitor readings after step 0 (one initialisation: always 0), the last one among
    them, so a difference that opens and closes during training shows."""
    rows = [r for r in paired_curve(results["entries"], method, baseline) if r["step"] > 0]  # step 0: one init, 0
    if not rows:
        return ""
    # evenly spaced back from the end, so the end is always a row
    pick = rows[::-1][::max(1, round((len(rows) - 1) / (readings - 1)))][::-1] if len(rows) > readings else rows
    return "\n".join([f"| step | {method} − {baseline}, kNN (points) | 95 % CI (paired t, {rows[0]['n']} seeds) |",
                      "|---|---|---|",
                      *(f"| {r['step']} | {100 * r['mean']:+.2f} | [{100 * r['low']:+.2f}, {100 * r['high']:+.2f}] |"
                        for r in pick)]) + "\n"


def paired_seed_table(results: dict, method: str = "cycle_contrast", baseline: str = "intra_video",
                      steps: tuple[int, ...] = ()) -> str:
    """Markdown, one row per paired seed: ``baseline`` and ``method`` kNN top-1 at the end (%), their
    difference (points), and the kNN difference at each monitor reading of ``steps`` (— where a
    curve lacks it), so the seeds behind a wide interval can be named."""
    by = {(e["method"], e["seed"]): e for e in results["entries"] if isinstance(e.get("knn_top1"), (int, float))}
    seeds = sorted(s for m, s in by if m == method and (baseline, s) in by)
    curves = {k: dict(map(tuple, e.get("knn_curve", []))) for k, e in by.items()}

    def at(seed: int, step: int) -> str:
        a, b = curves[(method, seed)].get(step), curves[(baseline, seed)].get(step)
        return "—" if a is None or b is None else f"{100 * (a - b):+.1f}"

    rows = [[str(s), f"{100 * by[(baseline, s)]['knn_top1']:.2f}", f"{100 * by[(method, s)]['knn_top1']:.2f}",
             f"{100 * (by[(method, s)]['knn_top1'] - by[(baseline, s)]['knn_top1']):+.1f}", *(at(s, t) for t in steps)]
            for s in seeds]
    head = ["seed", f"{baseline} kNN", f"{method} kNN", "difference at the end (points)",
            *(f"difference at step {t}" for t in steps)]
    if not rows:
        return ""
    return "\n".join(["| " + " | ".join(head) + " |", "|" + "---|" * len(head),
                      *("| " + " | ".join(r) + " |" for r in rows)]) + "\n"


def _cell(stats: dict, key: str, scale: float = 100.0, digits: int = 1) -> str:
    if key not in stats:
        return "—"
    s = stats[key]
    return f"{s['mean'] * scale:.{digits}f} ± {s['std'] * scale:.{digits}f}" if s["n"] > 1 else f"{s['mean'] * scale:.{digits}f}"


def markdown_table(results: dict) -> str:
    """The comparison as two markdown tables: metrics (%, mean ± std over seeds) and diagnostics."""
    summary = results.get("summary") or summarize(results["entries"])
    order = [m for m in (*METHOD_ORDER, *FLOORS) if m in summary] + [m for m in summary if m not in METHOD_ORDER + FLOORS]
    lines = ["| method | seeds | kNN top-1 | linear top-1 | video kNN top-1 | video linear top-1 | track precision "
             "| track AUC | train time (s) |", "|---|---|---|---|---|---|---|---|---|"]
    for m in order:
        s = summary[m]
        n = max((v["n"] for v in s.values()), default=0)
        lines.append(f"| {m} | {n} | " + " | ".join(_cell(s, k) for k in SUMMARY_KEYS[:6])
                     + f" | {_cell(s, 'train_seconds', 1.0, 0)} |")
    lines += ["", "| method | intra top-1 (train) | cycle rate (train) | support entropy (nats) | NN same class "
              "| cycle back to video | cycle back to class |", "|---|---|---|---|---|---|---|"]
    for m in order:
        s = summary[m]
        if any(k in s for k in SUMMARY_KEYS[7:]):
            lines.append(f"| {m} | {_cell(s, 'final_intra_top1')} | {_cell(s, 'final_cycle_rate')} | "
                         f"{_cell(s, 'final_support_entropy', 1.0, 2)} | {_cell(s, 'nn_same_class')} | "
                         f"{_cell(s, 'cycle_back_video')} | {_cell(s, 'cycle_back_class')} |")
    if any("knn_tail_gain" in summary[m] for m in order):
        lines += ["", "| method | kNN gain over the last fifth of the steps (points) | first reading within 1 point "
                  "of the end (step) |", "|---|---|---|"]
        lines += [f"| {m} | {_cell(summary[m], 'knn_tail_gain')} | {_cell(summary[m], 'knn_flat_step', 1.0, 0)} |"
                  for m in order if "knn_tail_gain" in summary[m]]
    paired = paired_table(results)
    curve = paired_curve_table(results)
    return "\n".join(lines) + "\n" + ("\n" + paired if paired else "") + ("\n" + curve if curve else "")


def write_outputs(results: dict, out_dir: str | Path, name: str = "compare_methods") -> None:
    """``<name>.md`` (the tables) and ``<name>_tracking.png`` (OTB plots, curves averaged over seeds)."""
    out_dir = Path(out_dir)
    (out_dir / f"{name}.md").write_text(markdown_table(results))
    curves = {}
    for method in dict.fromkeys(e["method"] for e in results["entries"]):
        rows = [e["track_curves"] for e in results["entries"] if e["method"] == method and "track_curves" in e]
        if rows:
            avg = {k: np.mean([r[k] for r in rows], axis=0).tolist() for k in ("precision_curve", "success_curve")}
            curves[method] = {**rows[0], **avg, "precision": avg["precision_curve"][20],
                              "success_auc": float(np.mean(avg["success_curve"]))}
    if curves:
        plot_otb(curves, out_dir / f"{name}_tracking.png", title="SiamFC on frozen features, default data (mean over seeds)")
