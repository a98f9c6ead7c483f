"""A run directory: checks before training, the checkpoint state of a step, saving and resuming it,
and the signals that stop a run cleanly."""
from __future__ import annotations

import logging
import shutil
import signal
import threading
from pathlib import Path

import torch

from .checkpoint import find_resumable, load_checkpoint, rng_state, save_numbered, set_rng_state
from .config import Config, to_dict
from .errors import TrainingError

log = logging.getLogger(__name__)


def check_run_dir(run_dir: Path) -> None:
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write_test"
        probe.write_bytes(b"0" * 1024)
        probe.unlink()
    except OSError as e:
        raise TrainingError(f"{run_dir}: run directory is not writable ({e.strerror or e})") from None


def make_state(model, optimizer, cfg: Config, step: int, epoch: int, scaler=None) -> dict:
    """Everything a run needs to continue exactly after ``step`` finished steps.

    ``model`` holds the online and momentum encoders, both heads, both queues with their video
    ids and ``queue_ptr``; ``optimizer`` its momentum buffers; ``rng`` the python, numpy, torch and
    CUDA generators (:func:`cckit.checkpoint.rng_state`); ``scaler`` the fp16 loss scale. The
    scheduler position is ``step`` (the learning rates are an array indexed by step).

    No DataLoader worker state is needed: every random choice of the data (order, frames,
    augmentations) is a pure function of ``(seed, epoch, index)`` (:class:`TrainClips`,
    :class:`RunBatches`), the support draw and key shuffle come from ``step_generator(seed, step)``,
    and the loader's own seed from a generator seeded with ``train.seed``. A run killed and
    resumed ends bit-identical to an uninterrupted one on CPU (tests/test_runs.py).
    """
    state = {"config": to_dict(cfg), "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "step": step, "epoch": epoch, "rng": rng_state()}
    if scaler is not None:
        state["scaler"] = scaler.state_dict()
    return state


def save_state(ckpt_dir: Path, state: dict, keep: int) -> None:
    """``save_numbered``, refusing non-finite weights (an update that overflowed) and turning a
    write failure (disk full) into a TrainingError; either way the previous checkpoint is kept."""
    step = state["step"]
    bad = [k for k, v in state["model"].items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise TrainingError(f"step {step}: non-finite weights after the update ({', '.join(bad[:3])}"
                            f"{', ...' if len(bad) > 3 else ''}); not saved, the last checkpoint is kept")
    try:
        save_numbered(ckpt_dir, state, keep)
    except OSError as e:
        raise TrainingError(f"{ckpt_dir}: cannot write the checkpoint of step {step} ({e.strerror or e}); "
                            f"the previous checkpoint is kept") from None


class StopSignals:
    """Turn SIGINT/SIGTERM into a flag checked between steps (restored on exit)."""

    def __init__(self):
        self.received = None

    def __enter__(self):
        self._old = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.received = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, handler in self._old.items():
            signal.signal(sig, handler)
        return False


def check_disk(run_dir: Path, model: torch.nn.Module) -> None:
    """Fail before training when the run directory cannot hold two checkpoints (temp + renamed)."""
    need = 3 * sum(t.numel() * t.element_size() for t in model.state_dict().values())  # model + optimizer state
    free = shutil.disk_usage(run_dir).free
    if free < 2 * need:
        raise TrainingError(f"{run_dir}: only {free / 2**20:.0f} MiB free, a checkpoint needs about "
                            f"{need / 2**20:.0f} MiB (twice that while it is written)")


def resume(cfg: Config, run_dir: Path, model, optimizer, scaler, device) -> tuple[int, str | None]:
    """Restore ``cfg.resume`` (a checkpoint path, ``auto`` = the newest loadable one in ``run_dir``,
    or ``none``) into the model, optimizer, scaler and every RNG; returns ``(step, path or None)``."""
    if cfg.resume == "none":
        return 0, None
    path, problems = (Path(cfg.resume), []) if cfg.resume != "auto" else find_resumable(run_dir)
    for problem in problems:
        log.warning("resume=auto: %s", problem)
    if path is None and problems:
        raise TrainingError(f"{run_dir / 'checkpoints'}: no checkpoint loads ({len(problems)} skipped, "
                            f"newest: {problems[0]}); move them away to start over")
    if path is None:
        return 0, None
    state = load_checkpoint(path, map_location=device)
    try:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        if scaler is not None and "scaler" in state:
            scaler.load_state_dict(state["scaler"])
    except (KeyError, RuntimeError, ValueError) as e:
        first = (str(e).strip().splitlines() or [""])[0][:300]
        raise TrainingError(f"{path}: checkpoint does not fit this config ({e.__class__.__name__}: {first})") from None
    set_rng_state(state.get("rng", {"torch": state["torch_rng"]} if "torch_rng" in state else {}))
    log.info("resumed from %s at step %d", path, int(state["step"]))
    return int(state["step"]), str(path)
