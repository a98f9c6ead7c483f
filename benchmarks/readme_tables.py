"""The READMEs' measured tables and the commands that reproduce them, generated from the records in
``benchmarks/results/``, so that they can be refreshed and checked instead of copied by hand:

    python benchmarks/readme_tables.py --record runs/quickstart   # add a finished `make demo` run (this host)
    python benchmarks/readme_tables.py --write                    # rewrite the generated blocks of both READMEs
    python benchmarks/readme_tables.py --check                    # exit 1 when a README differs from the records

The READMEs are ``README.md`` and ``benchmarks/README.md`` (``--readme`` names others).

A generated block sits between ``<!-- generated: NAME -->`` and ``<!-- end generated -->``:

- ``demo``: the main jobs' kNN top-1 against their floors, as ranges over the recorded runs
  (``results/demo_runs.jsonl``: one line per run, with its seed and host) and over the seeds of the
  stored comparisons, which train the same presets;
- ``comparison``: from ``results/compare_paper_cpu/compare_methods.json`` (``cckit compare``): the
  metrics table and the paired differences at the end and along the kNN curve, with the
  differences at the end on ``results/compare_quickstart_long/`` (the quickstart at plateau) beside
  them;
- ``commands_paper_cpu``, ``commands_quickstart_long``: the ``cckit compare`` calls that train every
  stored run of that comparison again (``cckit.compare_report.reproduce_commands``), so the seeds a command
  names are the seeds its table has; ``commands``: the largest call of each (the paired methods);
- ``paired_paper_cpu``, ``paired_quickstart_long``: cycle_contrast − intra_video of that comparison,
  per protocol with its interval and the seeds a ±1-point one takes, along the kNN curve, and per
  seed, so the prose around them need not copy numbers that change with each added seed.

Results are exact only on the same host, thread count and library versions; across CPUs the float
arithmetic differs and so do the numbers, which is why the README gives ranges.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import re
import sys
from pathlib import Path

import torch

from cckit.compare_report import (PAIRED_KEYS, markdown_table, paired_curve_table, paired_difference, paired_seed_table,
                                  paired_table, reproduce_commands, seeds_needed, summarize)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DEMO_RUNS = RESULTS / "demo_runs.jsonl"
COMPARISONS = {"quickstart": RESULTS / "compare_quickstart" / "compare_methods.json",
               "paper_cpu": RESULTS / "compare_paper_cpu" / "compare_methods.json"}
PLATEAU = {"paper_cpu": RESULTS / "compare_paper_cpu" / "compare_methods.json",
           "quickstart_long": RESULTS / "compare_quickstart_long" / "compare_methods.json"}
# the monitor readings where the cycle led early on each preset: the per-seed table shows them
EARLY_STEPS = {"paper_cpu": (1500, 3000), "quickstart_long": (750, 1500)}
MAIN_METHOD = "cycle_contrast"  # what make demo and make demo-paper train
BLOCK = re.compile(r"(<!-- generated: (\w+) -->\n)(.*?)(<!-- end generated -->)", re.S)


def host() -> str:
    """CPU model, vector extensions and torch threads of this machine."""
    model = platform.processor() or platform.machine()
    flags = ""
    if Path("/proc/cpuinfo").is_file():
        text = Path("/proc/cpuinfo").read_text()
        model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), model)
        flags = " AVX-512" if " avx512f" in text else " AVX2" if " avx2" in text else ""
    return f"{model}{flags}, {torch.get_num_threads()} threads"


def record(run_dir: Path, source: str) -> dict:
    """A ``demo_runs.jsonl`` line from a finished main job's ``summary.json`` and ``config.yaml``."""
    import yaml

    summary = json.loads((run_dir / "summary.json").read_text())
    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    preset = "paper_cpu" if cfg["method"]["key_encoder"] == "momentum" else "quickstart"
    return {"preset": preset, "seed": cfg["train"]["seed"], "steps": summary["steps"], "host": host(),
            "source": source, "trained": summary["knn_top1_trained"], "random_init": summary["knn_top1_random_init"],
            "pixels": summary["knn_top1_pixels"], "train_seconds": summary["train_seconds"]}


def _runs(preset: str) -> list[dict]:
    """Recorded main jobs of ``preset`` and the seeds of its stored comparison (the same training)."""
    rows = [json.loads(line) for line in DEMO_RUNS.read_text().splitlines() if line.strip()] if DEMO_RUNS.is_file() else []
    rows = [r for r in rows if r["preset"] == preset]
    path = COMPARISONS.get(preset)
    if path and path.is_file():
        entries = json.loads(path.read_text())["entries"]
        floors = {e["seed"]: e["knn_top1"] for e in entries if e["method"] == "random_init"}
        pixels = next((e["knn_top1"] for e in entries if e["method"] == "pixels"), None)
        rows += [{"seed": e["seed"], "source": "comparison", "trained": e["knn_top1"], "random_init": floors.get(e["seed"]),
                  "pixels": pixels} for e in entries if e["method"] == MAIN_METHOD and e["seed"] in floors]
    return rows


def _span(values, digits: int = 3) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "—"
    lo, hi = min(values), max(values)
    return f"{lo:.{digits}f}" if round(lo, digits) == round(hi, digits) else f"{lo:.{digits}f}–{hi:.{digits}f}"


def demo_block() -> str:
    lines = ["| preset (command) | runs | seeds | hosts | kNN top-1, trained | random init | raw pixels "
             "| trained − highest floor |", "|---|---|---|---|---|---|---|---|"]
    for preset, command in (("quickstart", "`make demo`"), ("paper_cpu", "`make demo-paper`")):
        rows = _runs(preset)
        if not rows:
            continue
        gap = [r["trained"] - max(r["random_init"], r["pixels"]) for r in rows
               if r.get("random_init") is not None and r.get("pixels") is not None]
        hosts = {r["host"] for r in rows if "host" in r}
        lines.append(f"| {preset} ({command}) | {len(rows)} | {', '.join(map(str, sorted({r['seed'] for r in rows})))} "
                     f"| {len(hosts) or 1} | {_span(r['trained'] for r in rows)} | {_span(r.get('random_init') for r in rows)} "
                     f"| {_span(r.get('pixels') for r in rows)} | {_span(gap)} |")
    return "\n".join(lines) + "\n"


def paired_columns(comparisons: dict[str, dict], method: str = MAIN_METHOD, baseline: str = "intra_video") -> str:
    """Markdown: ``method - baseline`` per protocol (points, 95 % paired-t interval), one column per
    stored comparison, so the presets' answers read side by side."""
    diffs = {name: {key: paired_difference(results["entries"], method, baseline, key) for key in PAIRED_KEYS}
             for name, results in comparisons.items()}
    diffs = {name: d for name, d in diffs.items() if any(d.values())}
    if not diffs:
        return ""
    head = " | ".join(f"{name} ({max(x['n'] for x in d.values() if x)} seeds)" for name, d in diffs.items())
    rows = []
    for key in PAIRED_KEYS:
        cells = [f"{100 * d[key]['mean']:+.1f} [{100 * d[key]['low']:+.1f}, {100 * d[key]['high']:+.1f}]"
                 if d[key] else "—" for d in diffs.values()]
        rows.append(f"| {key} | " + " | ".join(cells) + " |")
    # the plateau: how much each method still gained at the end (compare's own per-method summary)
    summaries = {name: summarize(comparisons[name]["entries"]) for name in diffs}  # once per comparison
    tail = {name: {m: summaries[name].get(m, {}).get("knn_tail_gain") for m in (baseline, method)} for name in diffs}
    if any(all(g.values()) for g in tail.values()):
        rows.append(f"| kNN gain over the last fifth of the steps, {baseline} / {method} | " + " | ".join(
            " / ".join(f"{100 * v['mean']:+.1f}" if v else "—" for v in g.values()) for g in tail.values()) + " |")
    need = [seeds_needed(d["knn_top1"]["std"], 0.01) if d["knn_top1"] else None for d in diffs.values()]
    rows.append("| paired seeds a ±1-point kNN interval would take at this spread | "
                + " | ".join(str(n) if n else "—" for n in need) + " |")
    return "\n".join([f"| {method} − {baseline}, points [95 % paired-t CI] | {head} |",
                      "|---|" + "---|" * len(diffs), *rows]) + "\n"


@functools.cache
def plateau_comparisons() -> dict[str, dict]:
    """The stored comparisons at plateau that exist, read once per run of the script."""
    return {name: json.loads(path.read_text()) for name, path in PLATEAU.items() if path.is_file()}


def comparison_block() -> str:
    """The paper_cpu comparison's metrics table, the paired differences at the end for every stored
    comparison at plateau, and paper_cpu's along the kNN curve (the full set of tables is
    ``compare_methods.md`` beside each JSON)."""
    comparisons = plateau_comparisons()
    if "paper_cpu" not in comparisons:
        return ""
    parts = [markdown_table(comparisons["paper_cpu"]).split("\n\n")[0] + "\n", paired_columns(comparisons),
             paired_curve_table(comparisons["paper_cpu"], readings=5)]
    return "\n".join(p for p in parts if p)


def commands_block(presets=tuple(PLATEAU), every: bool = True) -> str:
    """A bash block of the ``cckit compare`` calls that train the stored comparisons of ``presets``
    again, each call on two lines; with ``every`` False only each one's largest call (the paired
    methods), and a line that points to the rest."""
    lines, left = [], 0
    for preset in presets:
        results = plateau_comparisons().get(preset)
        if results is not None:
            commands = reproduce_commands(results["entries"], f"configs/{preset}.yaml",
                                          f"benchmarks/results/compare_{preset}", f"runs/compare_{preset}")
            left += 0 if every else len(commands) - 1
            for command in commands if every else commands[:1]:
                head, tail = command.split(" --out ")
                lines += [f".venv/bin/{head} \\", f"    --out {tail}"]
    if left:
        lines.append("# the other methods' calls: benchmarks/README.md")
    return "```bash\n" + "\n".join(lines) + "\n```\n" if lines else ""


def paired_block(preset: str) -> str:
    """One stored comparison at plateau, cycle_contrast − intra_video: per protocol at the end, the
    kNN difference along the curve, and per seed (at the end and at ``EARLY_STEPS``)."""
    results = plateau_comparisons().get(preset)
    if results is None:
        return ""
    parts = [paired_table(results), paired_curve_table(results, readings=9),
             paired_seed_table(results, steps=EARLY_STEPS.get(preset, ()))]
    return "\n".join(p for p in parts if p)


GENERATORS = {"demo": demo_block, "comparison": comparison_block, "commands": lambda: commands_block(every=False),
              **{f"commands_{preset}": (lambda preset=preset: commands_block((preset,))) for preset in PLATEAU},
              **{f"paired_{preset}": (lambda preset=preset: paired_block(preset)) for preset in PLATEAU}}


def render(text: str) -> str:
    """``text`` with every generated block replaced by what its generator makes now."""
    def fill(m: re.Match) -> str:
        if m.group(2) not in GENERATORS:
            raise SystemExit(f"unknown generated block {m.group(2)!r}; known: {', '.join(GENERATORS)}")
        return m.group(1) + GENERATORS[m.group(2)]() + m.group(4)
    return BLOCK.sub(fill, text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--record", type=Path, help="a finished main job's run folder to add to demo_runs.jsonl")
    p.add_argument("--source", default="make demo", help="how the recorded run was made")
    p.add_argument("--readme", type=Path, action="append", help="a README to fill (repeatable; default: both)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true")
    mode.add_argument("--check", action="store_true")
    args = p.parse_args()
    if args.record:
        with open(DEMO_RUNS, "a") as f:
            f.write(json.dumps(record(args.record, args.source)) + "\n")
    stale = []
    for readme in args.readme or [ROOT / "README.md", ROOT / "benchmarks" / "README.md"]:
        text = readme.read_text()
        fresh = render(text)
        if args.check:
            if fresh != text:
                stale.append(str(readme))
            else:
                print(f"{readme}: generated tables match the records")
        elif args.write:
            tmp = readme.with_suffix(".md.tmp")
            tmp.write_text(fresh)
            os.replace(tmp, readme)
    if stale:
        sys.exit(f"{', '.join(stale)}: the generated tables differ from benchmarks/results/ "
                 f"(run python benchmarks/readme_tables.py --write)")
    if not (args.check or args.write):
        print("\n".join(f"<!-- {name} -->\n{make()}" for name, make in GENERATORS.items()))


if __name__ == "__main__":
    main()
