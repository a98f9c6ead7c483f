"""Checkpoints: atomic writes, safe loads (``weights_only=True``), official MoCo/CycleContrast import.

A training checkpoint is one dict (see :func:`cckit.runs.make_state`). :func:`save_checkpoint`
writes it to a temporary file in the same folder, fsyncs it and renames it over the target, and
stores a digest of its contents under ``"cckit_checksum"``; :func:`load_checkpoint` loads with
``weights_only=True`` (a checkpoint can never run code) and checks the digest, because a torn zip
is noticed by ``torch.load`` but flipped bytes inside a tensor are not.
"""
from __future__ import annotations

import os
import random
import re
import zlib
from pathlib import Path

import numpy as np
import torch

from .atomic import atomic_path, remove_temporaries
from .config import config_from_dict
from .errors import DataError
from .model import CycleContrastModel, build_backbone

CHECKPOINT_RE = re.compile(r"step_(\d+)\.pt$")
CHECKSUM_KEY = "cckit_checksum"


def state_digest(state) -> str:
    """``crc32:<hex>`` over every tensor's dtype, shape and bytes and every other leaf's repr, in
    order; identical for a state and its ``torch.load`` round trip. CRC-32 because it only has to
    catch damage, not tampering (``weights_only`` handles that), and it hashes at several GB/s."""
    crc = 0

    def update(data) -> None:
        nonlocal crc
        crc = zlib.crc32(data, crc)

    def feed(x):
        if isinstance(x, torch.Tensor):
            t = x.detach().cpu().contiguous()
            update(f"T{t.dtype}{tuple(t.shape)}".encode())
            update(t.reshape(-1).view(torch.uint8).numpy().data)
        elif isinstance(x, dict):
            update(b"D%d" % len(x))
            for k, v in x.items():
                feed(k)
                feed(v)
        elif isinstance(x, (list, tuple)):
            update(b"L%d" % len(x))
            for v in x:
                feed(v)
        else:
            update(f"{type(x).__name__}:{x!r};".encode())
    feed(state)
    return f"crc32:{crc:08x}"


def save_checkpoint(path: str | Path, state: dict, *, checksum: bool = True) -> Path:
    """Write ``state`` to ``path`` atomically: a temp file in the same folder, fsync, rename.

    A crash or kill at any moment leaves either the previous file or the new one, never a torn
    one. With ``checksum`` the file also holds ``state_digest(state)`` (checked and removed by
    :func:`load_checkpoint`). An ``OSError`` (disk full, read-only) leaves no temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if checksum:
        state = {**state, CHECKSUM_KEY: state_digest(state)}
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(state, f)
    return path


def save_numbered(ckpt_dir: str | Path, state: dict, keep: int) -> Path:
    """Save ``last.pt`` and, when ``keep > 0``, link it as ``step_<N>.pt``, pruning all but the
    newest ``keep`` numbered ones. Each file appears atomically; temporary files left by an
    earlier kill are removed first."""
    ckpt_dir = Path(ckpt_dir)
    remove_temporaries(ckpt_dir, "*.pt")
    last = save_checkpoint(ckpt_dir / "last.pt", state)
    if keep > 0:
        numbered = ckpt_dir / f"step_{int(state['step']):08d}.pt"
        try:
            with atomic_path(numbered) as tmp:
                os.link(last, tmp)  # the same bytes under a second name, at no cost
        except OSError:  # no hard links on this file system: write a second copy
            save_checkpoint(numbered, state)
        for old in sorted(ckpt_dir.glob("step_*.pt"))[:-keep]:
            old.unlink(missing_ok=True)
    return last


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a checkpoint without running code from it (``weights_only=True``).

    Raises DataError naming the file when it is missing, truncated, corrupt (its checksum does
    not match), holds anything but tensors and plain containers, or is not a checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises several types for torn / foreign / unsafe files
        first = (str(e).strip().splitlines() or [""])[0][:200]
        raise DataError(f"{path}: cannot load checkpoint ({e.__class__.__name__}: {first})") from None
    if isinstance(state, dict) and CHECKSUM_KEY in state:
        stored = state.pop(CHECKSUM_KEY)
        if stored != state_digest(state):
            raise DataError(f"{path}: corrupt checkpoint (contents do not match the checksum written with it)")
    return state


def find_resumable(run_dir: str | Path) -> tuple[Path | None, list[str]]:
    """Newest checkpoint in ``run_dir/checkpoints`` that loads; returns ``(path, problems)`` where
    ``problems`` lists the checkpoints that were tried, skipped, and why.

    ``last.pt`` is tried first; a numbered ``step_<N>.pt`` wins only when it is newer. When
    ``last.pt`` does not load, the numbered ones are tried newest first. Only the files needed
    are loaded.
    """
    ckpt_dir = Path(run_dir) / "checkpoints"
    if not ckpt_dir.is_dir():
        return None, []
    numbered = sorted(((int(m.group(1)), p) for p in ckpt_dir.glob("step_*.pt")
                       if p.is_file() and (m := CHECKPOINT_RE.search(p.name))), reverse=True)
    problems: list[str] = []
    failed_inodes: set[tuple[int, int]] = set()

    def step_of(p: Path) -> int | None:
        st = p.stat()
        if (st.st_dev, st.st_ino) in failed_inodes:  # a hard link of a file that already failed
            problems.append(f"{p}: skipped (same file as a checkpoint that failed)")
            return None
        try:
            return int(load_checkpoint(p)["step"])
        except (DataError, KeyError, TypeError, ValueError) as e:
            problems.append(f"{p}: skipped ({e})")
            failed_inodes.add((st.st_dev, st.st_ino))
            return None

    last = ckpt_dir / "last.pt"
    last_step = step_of(last) if last.is_file() else None
    for n, p in numbered:
        if last_step is not None and n <= last_step:
            break
        if step_of(p) is not None:
            return p, problems
    return (last if last_step is not None else None), problems


def rng_state() -> dict:
    """Every global RNG state of this process: python, numpy, torch CPU and CUDA.

    Stored as tensors and plain values so that ``weights_only`` loading accepts it.
    """
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(),
             "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached_gaussian": float(gauss)},
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore what :func:`rng_state` captured (CUDA only when the device count matches)."""
    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    if "numpy" in state:
        s = state["numpy"]
        np.random.set_state((s["kind"], s["keys"].numpy().astype(np.uint32), s["pos"], s["has_gauss"],
                             s["cached_gaussian"]))
    if "torch" in state:
        torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])


def _strip_prefix(state: dict, prefixes: tuple[str, ...]) -> dict | None:
    for prefix in prefixes:
        sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if sub:
            return sub
    return None


def backbone_state_dict(ckpt: dict) -> dict:
    """Backbone weights (torchvision names, no ``fc``) from a cckit or official checkpoint.

    cckit: ``model["encoder.backbone.*"]``. Official MoCo / CycleContrast releases:
    ``state_dict["module.encoder_q.*"]`` (the MLP ``fc.0``/``fc.2``, the momentum encoder
    ``encoder_k``, the cycle heads ``q_cycle_fc``/``k_cycle_fc`` and the queues are dropped).
    A bare torchvision state dict also works.
    """
    if "model" in ckpt and isinstance(ckpt["model"], dict):
        sub = _strip_prefix(ckpt["model"], ("encoder.backbone.",))
        if sub is not None:
            return sub
    state = ckpt.get("state_dict", ckpt)
    sub = _strip_prefix(state, ("module.encoder_q.", "encoder_q.", "module.")) or state
    return {k: v for k, v in sub.items() if not k.startswith(("fc.", "q_cycle_fc", "cycle_fc"))}


def load_model(path: str | Path, device: torch.device | str = "cpu"):
    """The whole :class:`~cckit.model.CycleContrastModel` (both encoders, both queues), in eval
    mode, and the :class:`~cckit.config.Config` of a cckit training checkpoint."""
    state = load_checkpoint(path, map_location=device)
    if not isinstance(state, dict) or "config" not in state or "model" not in state:
        raise DataError(f"{path}: not a cckit training checkpoint (no 'config' and 'model')")
    cfg = config_from_dict(state["config"])
    model = CycleContrastModel(cfg.model).to(device)
    model.load_state_dict(state["model"])
    return model.eval(), cfg


def load_backbone(path: str | Path, arch: str | None = None, *, small_stem: bool | None = None) -> torch.nn.Module:
    """Backbone (fc removed, plain BatchNorm, eval mode) from a cckit or official checkpoint.

    ``arch``/``small_stem`` default to what a cckit checkpoint records (or an official one's
    ``"arch"``); otherwise pass ``arch`` (e.g. ``"resnet50"``). The base width (``model.width``)
    is the recorded one, or read off the stem's output channels. A key or shape mismatch raises
    DataError listing the missing, unexpected and wrong-shape keys.
    """
    ckpt = load_checkpoint(path)
    if not isinstance(ckpt, dict):
        raise DataError(f"{path}: not a checkpoint (a {type(ckpt).__name__}, expected a dict of weights)")
    model_cfg = (ckpt.get("config") or {}).get("model", {}) if isinstance(ckpt.get("config"), dict) else {}
    arch = arch or model_cfg.get("arch") or (ckpt.get("arch") if isinstance(ckpt.get("arch"), str) else None)
    if arch is None:
        raise DataError(f"{path}: checkpoint does not record its architecture; pass arch=")
    if small_stem is None:
        small_stem = bool(model_cfg.get("small_stem", False))
    state = backbone_state_dict(ckpt)
    # base channels: what the run recorded, else read off the stem (official checkpoints: 64)
    stem = state.get("conv1.weight")
    width = int(model_cfg.get("width") or (stem.shape[0] if isinstance(stem, torch.Tensor) else 64))
    try:
        net, _ = build_backbone(arch, small_stem=small_stem, bn_splits=1, width=width)
    except ValueError as e:
        raise DataError(f"{path}: {e}") from None
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong_shape = sorted(k for k in set(own) & set(state)
                         if not isinstance(state[k], torch.Tensor) or own[k].shape != state[k].shape)
    if missing or unexpected or wrong_shape:
        def show(keys):
            return ", ".join(keys[:8]) + (f" … (+{len(keys) - 8})" if len(keys) > 8 else "") if keys else "none"
        raise DataError(f"{path}: backbone weights do not fit {arch} (missing: {show(missing)}; "
                        f"unexpected: {show(unexpected)}; wrong shape: {show(wrong_shape)})")
    net.load_state_dict(state)
    return net.eval()
