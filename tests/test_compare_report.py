"""Reading a stored comparison: means over seeds, paired intervals by hand, the tables and the
commands that train it again."""
import json
import re

import pytest

from cckit.compare_report import (comparison_report, format_seeds, markdown_table, paired_curve, paired_curve_table,
                                  paired_difference, paired_seed_table, paired_spread, paired_table, parse_seeds,
                                  reproduce_commands, seeds_needed, summarize)


def test_summary_and_table_are_mean_and_sample_std_over_seeds():
    entries = [{"method": "cycle_contrast", "seed": s, "knn_top1": v, "train_seconds": t, "final_cycle_rate": c}
               for s, v, t, c in ((0, 0.5, 100.0, 0.1), (1, 0.6, 110.0, 0.2), (2, 0.7, 120.0, 0.3))]
    entries.append({"method": "pixels", "seed": 0, "knn_top1": 0.42})
    summary = summarize(entries)
    assert summary["cycle_contrast"]["knn_top1"] == {"mean": pytest.approx(0.6), "std": pytest.approx(0.1), "n": 3}
    assert summary["pixels"]["knn_top1"] == {"mean": 0.42, "std": 0.0, "n": 1}
    table = markdown_table({"entries": entries})
    metrics_table = table.split("\n\n")[0]
    rows = {line.split(" | ")[0].strip("| "): line for line in metrics_table.splitlines() if line.startswith("| ")}
    assert "| 60.0 ± 10.0 |" in rows["cycle_contrast"] and "| 110 ± 10 |" in rows["cycle_contrast"]
    assert "| 42.0 |" in rows["pixels"] and "—" in rows["pixels"]
    assert "20.0 ± 10.0" in table  # the cycle rate in the diagnostics table


def test_paired_difference_is_the_paired_t_interval_by_hand():

    entries = [{"method": "cycle_contrast", "seed": s, "knn_top1": v} for s, v in enumerate([0.62, 0.60, 0.65, 0.61])]
    entries += [{"method": "intra_video", "seed": s, "knn_top1": v} for s, v in enumerate([0.60, 0.61, 0.62, 0.60])]
    entries += [{"method": "intra_video", "seed": 9, "knn_top1": 0.0}]  # unpaired: left out
    d = paired_difference(entries, "cycle_contrast", "intra_video", "knn_top1")
    diffs = [0.02, -0.01, 0.03, 0.01]  # mean 0.0125, sample sd 0.0170783, t(0.975, 3) = 3.1824463
    assert d["n"] == 4 and d["seeds"] == [0, 1, 2, 3]
    assert d["mean"] == pytest.approx(sum(diffs) / 4)
    assert d["std"] == pytest.approx(0.017078251, rel=1e-6)
    half = 3.182446305 * 0.017078251 / 2
    assert (d["low"], d["high"]) == (pytest.approx(0.0125 - half, rel=1e-6), pytest.approx(0.0125 + half, rel=1e-6))
    # a +-1-point interval at this spread: t(0.975, 12) * 1.7078 / sqrt(13) = 2.1788 * 1.7078 / 3.6056 = 1.032 > 1,
    # t(0.975, 13) * 1.7078 / sqrt(14) = 2.1604 * 1.7078 / 3.7417 = 0.986 <= 1: 14 paired seeds
    assert seeds_needed(d["std"], 0.01) == 14 and seeds_needed(0.0, 0.01) == 2 and seeds_needed(1.0, 0.01) is None
    assert "| knn_top1 | 4 | +1.25 | [-1.47, +3.97] | 14 |" in paired_table({"entries": entries})
    assert paired_difference(entries[:1] + entries[4:5], "cycle_contrast", "intra_video", "knn_top1") is None


def test_paired_curve_is_the_paired_interval_at_every_reading():
    from scipy import stats as st
    a = {0: [[0, 0.2], [500, 0.40], [1000, 0.70]], 1: [[0, 0.2], [500, 0.44], [1000, 0.66]],
         2: [[0, 0.2], [500, 0.42], [1000, 0.71]]}
    b = {0: [[0, 0.2], [500, 0.35], [1000, 0.72]], 1: [[0, 0.2], [500, 0.36], [1000, 0.70]],
         2: [[0, 0.2], [500, 0.40], [1000, 0.70]]}
    entries = [{"method": "cycle_contrast", "seed": s, "knn_curve": c} for s, c in a.items()]
    entries += [{"method": "intra_video", "seed": s, "knn_curve": c} for s, c in b.items()]
    rows = paired_curve(entries, "cycle_contrast", "intra_video")
    assert [r["step"] for r in rows] == [0, 500, 1000] and rows[0]["mean"] == 0 and rows[1]["n"] == 3
    d = [0.05, 0.08, 0.02]  # at step 500
    half = st.t.ppf(0.975, 2) * st.tstd(d) / 3 ** 0.5
    assert rows[1]["mean"] == pytest.approx(0.05) and rows[1]["low"] == pytest.approx(0.05 - half)
    table = paired_curve_table({"entries": entries})
    assert "| 500 | +5.00 |" in table and "3 seeds" in table and "| 0 |" not in table  # step 0: one init
    long = [{**e, "knn_curve": [[250 * i, 0.2 + 0.01 * i * (e["method"] == "cycle_contrast")] for i in range(17)]}
            for e in entries]
    steps = [line.split(" | ")[0][2:] for line in paired_curve_table({"entries": long}, readings=5).splitlines()[2:]]
    assert steps == ["1000", "2000", "3000", "4000"]  # spaced back from the end, which is always a row


def test_reproduce_commands_train_every_stored_run_again():
    """Methods with the same seeds share one call, the largest set first, in the registry order;
    the floors come with every call; each line parses as the CLI's own command."""
    import shlex

    from cckit.cli import build_parser

    stored = [("cycle_contrast", 0), ("intra_video", 0), ("cycle_contrast", 1), ("intra_video", 1), ("cycle_contrast", 2),
              ("intra_video", 2), ("supervised", 0), ("supervised", 1), ("moco_v2", 0), ("moco_v2", 1),
              ("random_init", 0), ("random_init", 1), ("random_init", 2), ("pixels", 0), ("static_box", 0)]
    lines = reproduce_commands([{"method": m, "seed": s} for m, s in stored], "configs/x.yaml", "out/x", "runs/x")
    assert lines == ["cckit compare configs/x.yaml --methods intra_video,cycle_contrast --seeds 0-2 --out out/x --runs runs/x",
                     "cckit compare configs/x.yaml --methods moco_v2,supervised --seeds 0,1 --out out/x --runs runs/x"]
    args = build_parser().parse_args(shlex.split(lines[1])[1:])
    assert (args.methods, args.seeds, args.out, args.runs) == ("moco_v2,supervised", "0,1", "out/x", "runs/x")


def test_seeds_read_as_lists_and_ranges_and_print_back_the_same():
    assert parse_seeds("0-3,7") == [0, 1, 2, 3, 7]
    assert parse_seeds(" 5, 2-3 ,3,") == [5, 2, 3]  # the order given, each seed once
    assert parse_seeds("4-4") == [4] and parse_seeds("") == []
    for bad in ("x", "3-1", "1-", "-2", "0.5", "1-2-3", "²"):
        with pytest.raises(ValueError, match=re.escape(repr(bad))):
            parse_seeds(bad)
    assert format_seeds([8, 0, 1, 2, 3, 7, 10, 11, 12]) == "0-3,7,8,10-12"
    assert format_seeds([0, 1]) == "0,1" and format_seeds([5]) == "5" and format_seeds([]) == ""
    seeds = [0, 2, 3, 4, 9, 10, 12, 13, 14, 15]
    assert parse_seeds(format_seeds(seeds)) == seeds


def test_cli_compare_names_the_bad_seed_before_training(capsys, tmp_path):
    from cckit.cli import main

    assert main(["compare", "configs/quickstart.yaml", "--seeds", "0,2-1", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == ("cckit: error: --seeds: '2-1' is not a seed (0, 1, ...) "
                                               "or a range of seeds low-high (0-9)")
    assert not any(tmp_path.iterdir())


def test_comparison_report_is_the_tables_then_the_calls_from_the_root(tmp_path):

    results = {"runs_root": "runs/cmp/0123456789ab", "entries": [
        {"method": m, "seed": s, "knn_top1": 0.5 + 0.01 * s} for m in ("intra_video", "cycle_contrast") for s in (0, 1)]}
    path = tmp_path / "bench" / "cmp" / "compare_methods.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(results))
    assert comparison_report(path, "configs/x.yaml", root=tmp_path) == markdown_table(results) + (
        "\n```bash\ncckit compare configs/x.yaml --methods intra_video,cycle_contrast --seeds 0,1 "
        "--out bench/cmp --runs runs/cmp\n```\n")


def test_paired_seed_table_names_each_seeds_difference_at_the_end_and_along_the_curve():
    entries = [{"method": "intra_video", "seed": 0, "knn_top1": 0.70, "knn_curve": [[0, 0.2], [500, 0.40]]},
               {"method": "cycle_contrast", "seed": 0, "knn_top1": 0.725, "knn_curve": [[0, 0.2], [500, 0.47]]},
               {"method": "intra_video", "seed": 1, "knn_top1": 0.75},  # stored before the curves were kept
               {"method": "cycle_contrast", "seed": 1, "knn_top1": 0.74},
               {"method": "cycle_contrast", "seed": 2, "knn_top1": 0.9},  # unpaired: no row
               {"method": "pixels", "seed": 0, "knn_top1": 0.3}]
    assert paired_seed_table({"entries": entries}, steps=(500,)).splitlines() == [
        "| seed | intra_video kNN | cycle_contrast kNN | difference at the end (points) | difference at step 500 |",
        "|---|---|---|---|---|",
        "| 0 | 70.00 | 72.50 | +2.5 | +7.0 |",
        "| 1 | 75.00 | 74.00 | -1.0 | — |"]
    assert paired_seed_table({"entries": entries[4:]}) == ""


def _pairs(method_values, baseline_values):
    return ([{"method": "cycle_contrast", "seed": s, "knn_top1": v} for s, v in enumerate(method_values)]
            + [{"method": "intra_video", "seed": s, "knn_top1": v} for s, v in enumerate(baseline_values)])


def test_paired_spread_by_hand_and_against_the_pitman_morgan_closed_form():
    # equal variances (1 and 1), deviations [-1, 0, 1] and [-1, 1, 0]: covariance 1/2, so r = 0.5;
    # the sums and differences are uncorrelated exactly when the variances are equal: pm_r 0, p 1
    d = paired_spread(_pairs([1.0, 2.0, 3.0], [1.0, 3.0, 2.0]), "cycle_contrast", "intra_video", "knn_top1")
    assert d["n"] == 3 and d["std_method"] == pytest.approx(1.0) and d["std_baseline"] == pytest.approx(1.0)
    assert d["ratio"] == pytest.approx(1.0) and d["r"] == pytest.approx(0.5)
    assert d["pm_r"] == pytest.approx(0.0, abs=1e-12) and d["pm_p"] == pytest.approx(1.0)
    # baseline = 2 x method: variance ratio 1/4, r 1; sums 3x and differences -x: pm_r -1, p 0
    d = paired_spread(_pairs([0.0, 1.0, 2.0, 3.0], [0.0, 2.0, 4.0, 6.0]), "cycle_contrast", "intra_video", "knn_top1")
    assert d["ratio"] == pytest.approx(0.25) and d["r"] == pytest.approx(1.0)
    assert d["pm_r"] == pytest.approx(-1.0) and d["pm_p"] == pytest.approx(0.0, abs=1e-12)
    # any data: Pitman's t = (F - 1) sqrt(n - 2) / (2 sqrt(F (1 - r^2))), F the variance ratio
    from scipy import stats
    x, y = [0.71, 0.74, 0.78, 0.69, 0.80, 0.75, 0.73], [0.70, 0.79, 0.77, 0.72, 0.74, 0.76, 0.71]
    d = paired_spread(_pairs(x, y), "cycle_contrast", "intra_video", "knn_top1")
    f, r, n = d["ratio"], d["r"], 7
    t = (f - 1) * (n - 2) ** 0.5 / (2 * (f * (1 - r * r)) ** 0.5)
    assert d["pm_p"] == pytest.approx(2 * stats.t.sf(abs(t), n - 2), rel=1e-9)
    assert d["pm_r"] == pytest.approx(t / (t * t + n - 2) ** 0.5, rel=1e-9)
    assert paired_spread(_pairs([0.5, 0.6], [0.4, 0.5]), "cycle_contrast", "intra_video", "knn_top1") is None
