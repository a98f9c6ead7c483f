"""Checkpoints: atomic writes, safe loads (``weights_only=True``), official MoCo/CycleContrast import."""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

import torch

from .errors import DataError
from .model import build_backbone

CHECKPOINT_RE = re.compile(r"step_(\d+)\.pt$")


def save_checkpoint(path: str | Path, state: dict) -> Path:
    """Write ``state`` to ``path`` atomically: a temp file in the same folder, fsync, rename.

    A crash or kill at any moment leaves either the previous file or the new one, never a torn one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def save_numbered(ckpt_dir: str | Path, state: dict, keep: int) -> Path:
    """Save ``last.pt`` and, when ``keep > 0``, link it as ``step_<N>.pt``, pruning all but the
    newest ``keep`` numbered ones. Each file appears atomically."""
    ckpt_dir = Path(ckpt_dir)
    last = save_checkpoint(ckpt_dir / "last.pt", state)
    if keep > 0:
        numbered = ckpt_dir / f"step_{int(state['step']):08d}.pt"
        tmp = ckpt_dir / f".{numbered.name}.link"
        tmp.unlink(missing_ok=True)
        try:
            os.link(last, tmp)
        except OSError:  # no hard links on this file system: write a second copy
            save_checkpoint(numbered, state)
        else:
            os.replace(tmp, numbered)
        for old in sorted(ckpt_dir.glob("step_*.pt"))[:-keep]:
            old.unlink(missing_ok=True)
    return last


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a checkpoint without running code from it (``weights_only=True``).

    Raises DataError naming the file when it is missing, truncated or not a checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises several types for torn / foreign files
        raise DataError(f"{path}: cannot load checkpoint ({e.__class__.__name__}: {str(e).splitlines()[0][:200]})") from None


def find_resumable(run_dir: str | Path) -> tuple[Path | None, list[str]]:
    """Newest checkpoint in ``run_dir/checkpoints`` that loads; returns ``(path, problems)`` where
    ``problems`` lists checkpoints that were skipped and why."""
    ckpt_dir = Path(run_dir) / "checkpoints"
    candidates = [p for p in ckpt_dir.glob("*.pt") if p.is_file()] if ckpt_dir.is_dir() else []

    def key(p: Path):
        state_step = CHECKPOINT_RE.search(p.name)
        return (int(state_step.group(1)) if state_step else -1, p.stat().st_mtime)

    problems = []
    seen = {}
    for p in sorted(candidates, key=key, reverse=True):
        try:
            state = load_checkpoint(p)
            step = int(state["step"])
        except (DataError, KeyError, TypeError) as e:
            problems.append(f"{p}: skipped ({e})")
            continue
        seen[p] = step
    if not seen:
        return None, problems
    best = max(seen, key=lambda p: (seen[p], p.name == "last.pt"))
    return best, problems


def _strip_prefix(state: dict, prefixes: tuple[str, ...]) -> dict | None:
    for prefix in prefixes:
        sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if sub:
            return sub
    return None


def backbone_state_dict(ckpt: dict) -> dict:
    """Backbone weights (torchvision names, no ``fc``) from a cckit or official checkpoint.

    cckit: ``model["encoder.backbone.*"]``. Official MoCo / CycleContrast releases:
    ``state_dict["module.encoder_q.*"]`` (the MLP ``fc.0``/``fc.2`` and ``q_cycle_fc`` are
    dropped). A bare torchvision state dict also works.
    """
    if "model" in ckpt and isinstance(ckpt["model"], dict):
        sub = _strip_prefix(ckpt["model"], ("encoder.backbone.",))
        if sub is not None:
            return sub
    state = ckpt.get("state_dict", ckpt)
    sub = _strip_prefix(state, ("module.encoder_q.", "encoder_q.", "module.")) or state
    return {k: v for k, v in sub.items() if not k.startswith(("fc.", "q_cycle_fc", "cycle_fc"))}


def load_backbone(path: str | Path, arch: str | None = None, *, small_stem: bool | None = None) -> torch.nn.Module:
    """Backbone (fc removed, plain BatchNorm, eval mode) from a cckit or official checkpoint.

    ``arch``/``small_stem`` default to what a cckit checkpoint records; for official
    checkpoints pass ``arch`` (e.g. ``"resnet50"``). A key or shape mismatch raises DataError
    listing the missing and unexpected keys.
    """
    ckpt = load_checkpoint(path)
    model_cfg = (ckpt.get("config") or {}).get("model", {}) if isinstance(ckpt.get("config"), dict) else {}
    arch = arch or model_cfg.get("arch")
    if arch is None:
        raise DataError(f"{path}: checkpoint does not record its architecture; pass arch=")
    if small_stem is None:
        small_stem = bool(model_cfg.get("small_stem", False))
    net, _ = build_backbone(arch, small_stem=small_stem, bn_splits=1)
    state = backbone_state_dict(ckpt)
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong_shape = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong_shape:
        def show(keys):
            return ", ".join(keys[:8]) + (f" … (+{len(keys) - 8})" if len(keys) > 8 else "") if keys else "none"
        raise DataError(f"{path}: backbone weights do not fit {arch} (missing: {show(missing)}; "
                        f"unexpected: {show(unexpected)}; wrong shape: {show(wrong_shape)})")
    net.load_state_dict(state)
    return net.eval()
