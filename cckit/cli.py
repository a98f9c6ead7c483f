"""Command line: ``cckit data|train|eval|demo|bench``. Errors print one line and exit 2."""
from __future__ import annotations

import argparse
import json
import logging
import sys

from .checkpoint import find_resumable
from .config import load_config, to_dict
from .errors import ConfigError, DataError
from .train import TrainingError


def _cfg(args):
    return load_config(args.config, args.overrides)


def cmd_data(args) -> dict:
    from .data.index import load_splits
    cfg = _cfg(args)
    splits = load_splits(cfg.data)
    return {"root": cfg.data.root, **{f"{k}_videos": len(v) for k, v in splits.items()},
            "frames": sum(r.num_frames for v in splits.values() for r in v)}


def cmd_train(args) -> dict:
    from .train import train
    return train(_cfg(args), progress=not args.quiet)


def cmd_demo(args) -> dict:
    from .job import run_main_job
    return run_main_job(_cfg(args), progress=not args.quiet)


def cmd_eval(args) -> dict:
    from .job import evaluate_checkpoint
    cfg = _cfg(args)
    checkpoint = args.checkpoint
    if checkpoint is None:
        checkpoint, _ = find_resumable(cfg.run_dir)
        if checkpoint is None:
            raise DataError(f"{cfg.run_dir}: no checkpoint to evaluate (pass --checkpoint)")
    if args.protocol == "knn":
        return {"checkpoint": str(checkpoint), **evaluate_checkpoint(checkpoint, cfg, floors=args.floors)}
    raise ConfigError(f"unknown eval protocol {args.protocol!r}")


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
    e.add_argument("protocol", choices=["knn"], help="evaluation protocol")
    e.add_argument("--checkpoint", default=None, help="checkpoint path (default: newest in run_dir)")
    e.add_argument("--config", default=None, help="YAML preset describing the data (default: built-in)")
    e.add_argument("--no-floors", dest="floors", action="store_false", help="skip random-init and pixel floors")
    e.add_argument("overrides", nargs="*", help="key=value overrides")
    e.set_defaults(fn=cmd_eval, quiet=True)
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
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # overrides may follow options (`eval knn --checkpoint X key=value`): argparse leaves them over
    bad = [a for a in extra if "=" not in a or a.startswith("-")]
    if bad:
        parser.error(f"unrecognized arguments: {' '.join(bad)}")
    args.overrides = list(getattr(args, "overrides", []) or []) + extra
    logging.basicConfig(level=logging.INFO, format="cckit: %(message)s")
    try:
        result = args.fn(args)
    except (ConfigError, DataError, TrainingError) as e:
        print(f"cckit: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cckit: interrupted", file=sys.stderr)
        return 130
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
