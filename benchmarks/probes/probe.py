"""One learning probe = one `cckit train` run with the kNN monitor; its curve goes to a JSON-lines log.

    python benchmarks/probes/probe.py NAME [key=value ...]       # appends to benchmarks/results/learning_probes.jsonl
    python benchmarks/probes/probe.py NAME --detach-second [key=value ...]
    python benchmarks/probes/probe.py NAME --log=benchmarks/results/regime_paper_cpu.jsonl configs/paper_cpu.yaml [key=value ...]
    python benchmarks/probes/probe.py NAME --runs=/tmp/probes [key=value ...]   # the run in /tmp/probes/NAME

``--detach-second`` (a bisect step, not a library option): with ``method.key_encoder=online``, the
second view's embedding enters NT-Xent without gradient, so the only change from the online
variant is the stop-gradient that momentum keys have.

The base is configs/quickstart.yaml; the overrides are the probe. The row holds the command, the
kNN curve (step -> top-1), the loss / intra_top1 / query_std / cycle stats and the cycle diagnostics
(``diag_*``: effective ranks, neighbour purity, cycle rate, own-video return) at each kNN reading,
and the img/s.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from cckit.config import load_config
from cckit.train import train


OPTIONS = {"--log": "benchmarks/results/learning_probes.jsonl",  # the record the row is appended to
           "--runs": "runs/probes"}  # the folder of the run directory NAME (replaced if present)


def main() -> None:
    name, overrides = sys.argv[1], sys.argv[2:]
    options = OPTIONS | dict(o.split("=", 1) for o in overrides if o.startswith(tuple(f"{k}=" for k in OPTIONS)))
    overrides = [o for o in overrides if o.split("=", 1)[0] not in OPTIONS]
    given = list(overrides)
    if "--detach-second" in overrides:
        overrides = [o for o in overrides if o != "--detach-second"]
        import cckit.objective as objective
        online = objective.online_intra_term

        def detached(emb, *args):
            from dataclasses import replace
            return online(replace(emb, positive_intra=emb.positive_intra.detach()), *args)
        objective.online_intra_term = detached
    config = "configs/quickstart.yaml"
    if overrides and overrides[0].endswith(".yaml"):
        config, overrides = overrides[0], overrides[1:]
    run_dir = Path(options["--runs"]) / name
    if run_dir.exists():
        import shutil
        shutil.rmtree(run_dir)
    cfg = load_config(config, overrides + [f"run_dir={run_dir}"])
    tic = time.perf_counter()
    result = train(cfg, progress=False)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    curve = [[r["step"], round(r["knn_top1"], 4)] for r in rows if "knn_top1" in r]
    at = {r["step"]: r for r in rows}
    keys = ("loss", "loss_intra", "loss_cycle", "intra_top1", "query_std", "cycle_rate", "support_entropy")
    diag = {s: {k: round(v, 4) for k, v in at[s].items() if k in keys or k.startswith("diag_")}
            for s, _ in curve if s in at}
    speed = [r["images_per_s"] for r in rows if "images_per_s" in r][5:]
    row = {"probe": name, "config": config, "overrides": given, "knn_curve": curve, "diagnostics": diag,
           "images_per_s_median": round(sorted(speed)[len(speed) // 2], 1) if speed else None,
           "seconds": round(time.perf_counter() - tic, 1), "steps": result["steps"]}
    out = Path(options["--log"])
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(name, "knn:", " ".join(f"{s}:{v:.3f}" for s, v in curve))
    print("  ", {s: d for s, d in diag.items()}, "img/s", row["images_per_s_median"], "s", row["seconds"])


if __name__ == "__main__":
    main()
