"""Command line: ``cckit data|train|eval|demo|bench``. Errors print one line and exit 2."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys

from .config import load_config, to_dict
from .errors import ConfigError, DataError, TrainingError, TrainingInterrupted  # no torch: a bad config fails fast
from .methods import METHODS


def _cfg(args):
    config, overrides = args.config, list(args.overrides)
    if config is not None and "=" in config and not os.path.exists(config):
        config, overrides = None, [config] + overrides  # `cckit data key=value`: an override, not a preset
    return load_config(config, overrides)


def cmd_data(args) -> dict:
    from .data.index import index_data
    cfg = _cfg(args)
    index = index_data(cfg.data, progress=not args.quiet and sys.stderr.isatty())
    splits, report = index.splits, index.report
    return {"root": cfg.data.root, **{f"{k}_videos": len(v) for k, v in splits.items()},
            "frames": sum(r.num_frames for v in splits.values() for r in v),
            **{k: report[k] for k in ("single_frame_videos", "excluded_single_frame", "skipped")}}


def cmd_data_scan(args) -> str | dict:
    from .data.scan import format_report, scan
    report = scan(args.path, source=args.source, on_error=args.on_error, labels=args.labels,
                  train_list=args.train_list, test_list=args.test_list, workers=args.workers,
                  progress=not args.quiet and sys.stderr.isatty())
    if report["videos"] == 0 and report["skipped"]:  # --on-error skip left nothing: list why, then fail
        print(json.dumps(report, indent=2) if args.json else format_report(report))
        raise DataError(f"{args.path}: no usable video ({len(report['skipped'])} files with problems, listed above)")
    return report if args.json else format_report(report)


def cmd_data_extract(args) -> dict:
    from .data.extract import extract_frames
    from .data.index import index_data
    cfg = _cfg(args)
    out = args.out or cfg.data.extracted_frames
    if not out:
        raise ConfigError("cckit data extract: pass --out DIR (or set data.extracted_frames)")
    index = index_data(cfg.data, progress=not args.quiet and sys.stderr.isatty())
    videos = sorted({r.path for v in index.splits.values() for r in v if not r.frames})
    summary = extract_frames(videos, out, fmt=args.format, quality=args.quality,
                             workers=cfg.data.workers if args.workers is None else args.workers,
                             progress=not args.quiet and sys.stderr.isatty())
    return {**summary, "use": f"data.extracted_frames={out}"}


def build_data_tool_parser() -> argparse.ArgumentParser:
    """``cckit data scan PATH`` and ``cckit data extract [CONFIG] [overrides] --out DIR``."""
    p = argparse.ArgumentParser(prog="cckit data", description="inspect and prepare video data")
    sub = p.add_subparsers(dest="tool", required=True)
    s = sub.add_parser("scan", help="check every video under PATH and print a report")
    s.add_argument("path", help="a folder of videos, frame folders, R2V2 frames, or one video file")
    s.add_argument("--source", default="auto", choices=["auto", "videos", "frames", "r2v2", "manifest"])
    s.add_argument("--on-error", default="raise", choices=["raise", "skip"],
                   help="raise: stop at the first bad file; skip: list every problem")
    s.add_argument("--labels", default="folders", choices=["folders", "none"])
    s.add_argument("--train-list", default="", help="split file of training videos (UCF101 style)")
    s.add_argument("--test-list", default="", help="split file of test videos")
    s.add_argument("--workers", type=int, default=0, help="decoding processes (0: this one)")
    s.add_argument("--json", action="store_true", help="print the report as JSON")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(fn=cmd_data_scan)
    e = sub.add_parser("extract", help="decode the videos of a config once into a frame cache")
    e.add_argument("config", nargs="?", default=None, help="YAML preset (default: built-in defaults)")
    e.add_argument("overrides", nargs="*", help="key=value overrides, e.g. data.source=videos data.root=...")
    e.add_argument("--out", default="", help="frame cache folder (default: data.extracted_frames)")
    e.add_argument("--format", default="jpg", choices=["jpg", "png", "npy"],
                   help="jpg: small, lossy (quality 95); png, npy: exact frames")
    e.add_argument("--quality", type=int, default=95, help="JPEG quality")
    e.add_argument("--workers", type=int, default=None, help="decoding processes (default: data.workers)")
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    e.set_defaults(fn=cmd_data_extract)
    return p


def cmd_train(args) -> dict:
    cfg = _cfg(args)  # validated before torch is even imported
    from .train import train
    from .distributed import cleanup

    try:
        return train(cfg, progress=not args.quiet)
    finally:  # under torchrun: leave the process group before exit (its threads abort a bare exit)
        cleanup()


def cmd_demo(args) -> dict:
    from .job import run_main_job
    return run_main_job(_cfg(args), progress=not args.quiet)


def cmd_eval(args) -> dict:
    """``cckit eval knn|sweep|linear|video|track``: :func:`cckit.eval.suite.evaluate` on a checkpoint."""
    from pathlib import Path

    from .checkpoint import find_resumable
    from .eval.otb import plot_otb
    from .eval.suite import evaluate
    cfg = _cfg(args)
    if args.otb and args.protocol != "track":
        raise ConfigError("--otb only applies to `cckit eval track`")
    checkpoint = args.checkpoint
    if checkpoint is None:
        checkpoint, _ = find_resumable(cfg.run_dir)
        if checkpoint is None:
            raise DataError(f"{cfg.run_dir}: no checkpoint to evaluate (pass --checkpoint)")
    try:
        out = evaluate(checkpoint, cfg, (args.protocol,), floors=args.floors, otb_root=args.otb,
                       progress=sys.stderr.isatty())  # a bar in a terminal; piped, stderr keeps one-line errors
    except ValueError as e:  # e.g. a split without videos; DataError (a ValueError) keeps its message
        raise DataError(str(e)) from None
    if args.protocol == "track" and args.plot:
        curves = {Path(checkpoint).stem: out["track"]}
        if "track_static_box" in out:
            curves["static box"] = out["track_static_box"]
        out["plot"] = str(plot_otb(curves, args.plot))
    return {"checkpoint": str(checkpoint), "protocol": args.protocol, **out}


def cmd_compare(args) -> dict:
    from .compare import compare_methods
    from .compare_report import METHOD_ORDER, parse_seeds
    methods = [m for m in args.methods.split(",") if m]
    if not methods or set(methods) - set(METHOD_ORDER):
        raise ConfigError(f"--methods: expected a comma-separated subset of {','.join(METHOD_ORDER)}, got {args.methods!r}")
    try:
        seeds = parse_seeds(args.seeds)
    except ValueError as e:
        raise ConfigError(f"--seeds: {e}") from None
    if not seeds:
        raise ConfigError(f"--seeds: no seed in {args.seeds!r}")
    results = compare_methods(_cfg(args), methods=methods, seeds=seeds, out_dir=args.out,
                              runs_root=args.runs, progress=not args.quiet)
    return {"results": f"{args.out}/compare_methods.json", "table": f"{args.out}/compare_methods.md",
            "summary": results["summary"]}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cckit", description="CycleContrast research kit")
    sub = p.add_subparsers(dest="command", required=True)

    def add(name, fn, help, config_required=False):
        s = sub.add_parser(name, help=help)
        if config_required:
            s.add_argument("config", help="YAML preset, e.g. configs/quickstart.yaml")
        else:
            s.add_argument("config", nargs="?", default=None, help="YAML preset (default: built-in defaults)")
        s.add_argument("overrides", nargs="*", help="key=value overrides, e.g. train.max_steps=100")
        s.add_argument("--quiet", action="store_true", help="no progress bar")
        s.set_defaults(fn=fn)
        return s

    add("data", cmd_data, "generate (if needed) and index the data of a config")
    add("train", cmd_train, "train a config", config_required=True)
    add("demo", cmd_demo, "the main job: data, train, evaluate, report", config_required=True)
    e = sub.add_parser("eval", help="evaluate a checkpoint")
    e.add_argument("protocol", choices=["knn", "sweep", "linear", "video", "track"],
                   help="knn: frame kNN vs floors; sweep: kNN over k x T; linear: logistic probe; "
                        "video: video-level kNN + probe; track: SiamFC with OTB metrics")
    e.add_argument("--checkpoint", default=None, help="checkpoint path (default: newest in run_dir)")
    e.add_argument("--config", default=None, help="YAML preset describing the data (default: built-in)")
    e.add_argument("--no-floors", dest="floors", action="store_false", help="skip the floors (random init, random init with BN statistics of the data, raw pixels; static box for track)")
    e.add_argument("--otb", default=None, help="track: OTB-format sequences (<seq>/img/*.jpg + groundtruth_rect.txt)")
    e.add_argument("--plot", default=None, help="track: write the precision and success plots to this PNG")
    e.add_argument("overrides", nargs="*", help="key=value overrides")
    e.set_defaults(fn=cmd_eval, quiet=True)
    c = add("compare", cmd_compare, "train every method over seeds, evaluate all protocols, write a table",
            config_required=True)
    c.add_argument("--methods", default=",".join(METHODS),
                   help="comma-separated methods (default: all four; add supervised for the ceiling: the same backbone and budget trained with the labels)")
    c.add_argument("--seeds", default="0,1,2", help="comma-separated seeds and ranges, e.g. 0-4,9 (default: 0,1,2)")
    c.add_argument("--out", default="benchmarks/results", help="folder of compare_methods.{json,md} and the plot")
    c.add_argument("--runs", default="runs/compare", help="folder of the training runs (<method>_s<seed>)")
    b = sub.add_parser("bench", help="benchmarks (see benchmarks/)")
    b.add_argument("name", choices=["step"], help="step: train-step throughput of each method")
    b.add_argument("config", nargs="?", default=None)
    b.add_argument("overrides", nargs="*")
    b.set_defaults(fn=cmd_bench, quiet=True)
    return p


def cmd_bench(args) -> dict:
    from .bench import step_throughput
    return step_throughput(_cfg(args))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    tool = argv[:1] == ["data"] and argv[1:2] in (["scan"], ["extract"])
    parser = build_data_tool_parser() if tool else build_parser()
    args, extra = parser.parse_known_args(argv[1:] if tool else argv)
    # overrides may follow options (`eval knn --checkpoint X key=value`): argparse leaves them over
    bad = [a for a in extra if "=" not in a or a.startswith("-")]
    if bad:
        parser.error(f"unrecognized arguments: {' '.join(bad)}")
    args.overrides = list(getattr(args, "overrides", []) or []) + extra
    logging.basicConfig(level=logging.INFO, format="cckit: %(message)s")
    try:
        result = args.fn(args)
    except (ConfigError, DataError, TrainingError) as e:
        print(f"cckit: error: {' '.join(str(e).split())}", file=sys.stderr)  # always one line
        return 2
    except TrainingInterrupted as e:
        print(f"cckit: interrupted: {e}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("cckit: interrupted", file=sys.stderr)
        return 130
    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 reports
        print(result if isinstance(result, str) else json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
