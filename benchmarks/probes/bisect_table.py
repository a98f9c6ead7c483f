"""The bisect tables of benchmarks/README.md ("The paper's recipe at CPU scale"), printed as markdown
from the probe records, so they can be regenerated and checked:

    python benchmarks/probes/bisect_table.py

Reads ``results/reference_moco.jsonl`` (runs of ``reference_moco.py``) and
``results/learning_probes.jsonl`` (``cckit train`` probes). For each run: kNN top-1 at steps 0,
1000 and 2000 (or the last reading), the intra loss minus its chance value at the end (log(K+1);
< 0: the positive is picked out), and the query spread at the end.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

RESULTS = Path(__file__).resolve().parents[1] / "results"  # benchmarks/results
REF_DEFAULTS = {"style": "clutter", "positive": "frame", "K": 4096, "m": 0.99, "T": 0.1, "lr": 0.015, "head": "linear",
                "head_bn": False, "opt": "sgd", "batch_neg": False, "mask_own": False, "small_stem": False, "wd": 5e-4}


def _at(curve, step):
    got = [v for s, v in curve if s == step]
    return f"{got[0]:.3f}" if got else "—"


def reference_rows() -> list[str]:
    rows = []
    for line in (RESULTS / "reference_moco.jsonl").read_text().splitlines():
        r = json.loads(line)
        a = r["args"]
        change = ", ".join(f"{k}={a[k]}" for k, v in REF_DEFAULTS.items() if k not in ("style", "positive") and a.get(k, v) != v)
        last = r["diagnostics"][-1]
        rows.append(f"| {a['style']} | {a['positive']} | {change or 'colab settings'} | {a['steps']} | "
                    f"{_at(r['knn_curve'], 0)} | {_at(r['knn_curve'], 1000)} | {_at(r['knn_curve'], 2000)} | "
                    f"{r['knn_curve'][-1][1]:.3f} | {last['loss'] - math.log(a['K'] + 1):+.2f} | {last['spread']:.2f} |")
    return ["| style | positive | change from the colab's settings | steps | kNN 0 | kNN 1000 | kNN 2000 | kNN end "
            "| loss − log(K+1), end | query spread, end |", "|---|---|---|---|---|---|---|---|---|---|"] + rows


def kit_rows(prefixes=("B1_", "O", "C")) -> list[str]:  # the bisect probes, not the presets
    rows = []
    for line in (RESULTS / "learning_probes.jsonl").read_text().splitlines():
        r = json.loads(line)
        if not r["probe"].startswith(prefixes) or r["probe"].startswith("P_"):
            continue
        ov = dict(o.split("=", 1) for o in r["overrides"])
        k = int(ov.get("model.queue_size", 1024))
        online = ov.get("method.key_encoder") == "online"
        last = r["diagnostics"][str(r["knn_curve"][-1][0])] if r["diagnostics"] else {}
        extra = 128 * ((ov.get("method.batch_negatives") == "true") + (ov.get("method.query_negatives") == "true"))
        base = math.log(2 * 128 - 1) if online else math.log(k + extra + 1)  # the chance value of its logits
        loss = f"{last['loss'] - base:+.2f}" if "loss" in last else "—"
        spread = f"{last['query_std']:.2f}" if "query_std" in last else "—"
        rows.append(f"| {r['probe']} | {' '.join(o for o in r['overrides'] if not o.startswith(('train.knn_every', 'train.checkpoint_every')))} | "
                    f"{_at(r['knn_curve'], 0)} | {_at(r['knn_curve'], 1000)} | {_at(r['knn_curve'], 2000)} | "
                    f"{r['knn_curve'][-1][1]:.3f} | {loss} | {spread} |")
    return ["| probe | overrides of configs/quickstart.yaml | kNN 0 | kNN 1000 | kNN 2000 | kNN end | loss − uniform, end "
            "| query_std, end |", "|---|---|---|---|---|---|---|---|"] + rows


def preset_rows() -> list[str]:
    """The kNN curves of ``configs/paper_cpu.yaml`` runs (``preset_*`` records) and their floors."""
    rows, steps = [], None
    for line in (RESULTS / "learning_probes.jsonl").read_text().splitlines():
        r = json.loads(line)
        if not r["probe"].startswith("preset_"):
            continue
        steps = steps or [s for s, _ in r["knn_curve"]][::2]
        s = r["summary"]
        rows.append(f"| `{r['command']}` | " + " | ".join(_at(r["knn_curve"], k) for k in steps)
                    + f" | {s['highest_floor']:.3f} | **{s['above_highest_floor']:+.3f}** | {r['train_seconds']:.0f} |")
    if not rows:
        return []
    return ["| run | " + " | ".join(f"kNN {k}" for k in steps) + " | highest floor | trained − floor | training s |",
            "|---|" + "---|" * (len(steps) + 3)] + rows


REGIME_STEPS = (1000, 2000, 3000, 4000, 6000)
REGIME_DIAG = (("diag_rank_cycle", "rank c", 1), ("diag_purity_cycle", "purity of w (c)", 3),
               ("diag_cycle_rate", "cycle rate", 3), ("diag_own_video_return", "own-video return", 3))


def comparison_entries(preset: str = "paper_cpu") -> list[dict]:
    """The entries of the stored comparison of ``configs/<preset>.yaml`` (none when it is absent)."""
    path = RESULTS / f"compare_{preset}" / "compare_methods.json"
    return json.loads(path.read_text())["entries"] if path.is_file() else []


def regime_records(preset: str = "paper_cpu") -> list[dict]:
    """The rows of ``results/regime_<preset>.jsonl`` (none when it is absent)."""
    path = RESULTS / f"regime_{preset}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def regime_rows(entries: list[dict], records: list[dict], preset: str = "paper_cpu") -> list[str]:
    """The regime search on ``configs/<preset>.yaml`` (``records``, its ``regime_records``, seed 0),
    each probe's kNN curve and final cycle diagnostics beside the seed-0 runs of intra_video and
    cycle_contrast (λ 0.1) of the stored comparison (``entries``, its ``comparison_entries``), which
    it differs from only by its overrides."""
    rows = []
    for e in entries:
        if e["method"] in ("intra_video", "cycle_contrast") and e["seed"] == 0 and "knn_curve" in e:
            rows.append((f"{e['method']} (comparison, seed 0)", "—", e["knn_curve"], {}))
    for r in records:
        last = r["diagnostics"].get(str(r["knn_curve"][-1][0]), {})
        rows.append((r["probe"], " ".join(r["overrides"][1:]), r["knn_curve"], last))
    out = []
    for name, overrides, curve, last in rows:
        end_step, end = curve[-1]
        tail = next(v for k, v in curve if k >= 0.8 * end_step)
        diag = " | ".join(f"{last[k]:.{d}f}" if k in last else "—" for k, _, d in REGIME_DIAG)
        out.append(f"| {name} | {overrides} | " + " | ".join(_at(curve, k) for k in REGIME_STEPS)
                   + f" | {end:.3f} ({end_step}) | {100 * (end - tail):+.1f} | {diag} |")
    if not out:
        return []
    return [f"| run | overrides of configs/{preset}.yaml | " + " | ".join(f"kNN {k}" for k in REGIME_STEPS)
            + " | kNN at the end (step) | gain over the last fifth (points) | " + " | ".join(h for _, h, _ in REGIME_DIAG)
            + " |", "|---|---|" + "---|" * (len(REGIME_STEPS) + 2 + len(REGIME_DIAG))] + out


def regime_seed_rows(entries: list[dict], records: list[dict]) -> list[str]:
    """Probes of ``records`` repeated over seeds (``NAME_s<N>`` with ``train.seed=N``; the seed-0 run
    is ``NAME``), paired by seed with the intra_video and cycle_contrast runs of the stored comparison
    ``entries`` (``regime_records`` and ``comparison_entries`` of one preset): the kNN monitor's
    last reading of each, the mean difference and its 95 % paired-t interval (``cckit.compare_report``)."""
    import re

    from cckit.compare_report import paired_difference

    points = [{"method": e["method"], "seed": e["seed"], "knn": e["knn_curve"][-1][1]}
              for e in entries if "knn_curve" in e]
    groups: dict[str, list] = {}
    for r in records:
        seed = next((int(o.split("=")[1]) for o in r["overrides"] if o.startswith("train.seed=")), 0)
        groups.setdefault(re.sub(r"_s\d+$", "", r["probe"]), []).append((seed, r))
    out = []
    for name, runs in groups.items():
        if len(runs) < 2:
            continue
        rows = points + [{"method": name, "seed": seed, "knn": r["knn_curve"][-1][1]} for seed, r in runs]
        cells = []
        for baseline in ("intra_video", "cycle_contrast"):
            d = paired_difference(rows, name, baseline, "knn")
            cells.append(f"{100 * d['mean']:+.2f} [{100 * d['low']:+.2f}, {100 * d['high']:+.2f}]" if d else "—")
        knn = sorted((seed, r["knn_curve"][-1][1]) for seed, r in runs)
        overrides = " ".join(o for o in runs[0][1]["overrides"][1:] if not o.startswith("train.seed="))
        out.append(f"| {name} | {overrides} | {', '.join(str(s) for s, _ in knn)} "
                   f"| {' / '.join(f'{v:.3f}' for _, v in knn)} | {cells[0]} | {cells[1]} |")
    if not out:
        return []
    return ["| probe | override | seeds | kNN at the end, per seed | − intra_video, points [95 % CI] "
            "| − cycle_contrast (λ 0.1, M 512), points [95 % CI] |", "|---|---|---|---|---|---|"] + out


if __name__ == "__main__":
    for preset in ("paper_cpu", "quickstart_long"):
        entries, records = comparison_entries(preset), regime_records(preset)  # each file read once
        print(f"### The cycle's regime on configs/{preset}.yaml (seed 0)\n")
        print("\n".join(regime_rows(entries, records, preset)))
        print(f"\n### Regime probes on configs/{preset}.yaml repeated over seeds, paired with its comparison\n")
        print("\n".join(regime_seed_rows(entries, records)) + "\n")
    print("### configs/paper_cpu.yaml\n")
    print("\n".join(preset_rows()))
    print("### reference_moco.py\n")
    print("\n".join(reference_rows()))
    print("\n### cckit train\n")
    print("\n".join(kit_rows()))
