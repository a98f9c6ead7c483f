"""On-disk cache of extracted features, keyed by the weights, the data and the transform.

A cache entry is one ``torch.save`` dict of tensors under ``<cache_dir>/<key>.pt``; the key is a
sha256 of three identities:

- **weights**: :func:`file_fingerprint` of the checkpoint (sha256 of its bytes by default, or
  ``path + size + mtime`` with ``mode="stat"``, which skips reading a large file but trusts the
  file system clock), or :func:`module_fingerprint` of an in-memory backbone (sha256 of its
  state-dict tensors: a random-init floor or an official checkpoint loaded by hand);
- **data**: :func:`dataset_fingerprint` — every video's path, size, mtime and the frame indices used;
- **transform**: the ``repr`` of the evaluation transform (size and normalisation constants).

Entries are written atomically and read with ``weights_only=True``; a torn or foreign file is a miss.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable

import torch

from ..atomic import atomic_path

_CHUNK = 1 << 22


def file_fingerprint(path: str | os.PathLike, mode: str = "sha256") -> str:
    """Identity of a checkpoint file: ``sha256`` of its bytes, or ``stat`` (resolved path, size, mtime_ns)."""
    path = Path(path)
    if mode == "stat":
        st = path.stat()
        return f"stat:{path.resolve()}:{st.st_size}:{st.st_mtime_ns}"
    if mode != "sha256":
        raise ValueError(f"fingerprint mode must be 'sha256' or 'stat', got {mode!r}")
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return f"sha256:{h.hexdigest()}"


def module_fingerprint(module: torch.nn.Module) -> str:
    """sha256 over the names, shapes and bytes of a module's state dict (parameters and buffers)."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")  # 0-d: reshape first
    return f"module:{h.hexdigest()}"


def dataset_fingerprint(dataset) -> str:
    """Identity of an :class:`~cckit.data.dataset.EvalFrames`: files (path, size, mtime), labels,
    the (video, frame) items and the transform's repr."""
    h = hashlib.sha256()
    for r in dataset.records:
        st = os.stat(r.path)
        h.update(f"{r.path}|{st.st_size}|{st.st_mtime_ns}|{r.video_id}|{r.label}|{r.num_frames}\n".encode())
    h.update(json.dumps(dataset.items).encode())
    h.update(repr(dataset.transform).encode())
    return f"data:{h.hexdigest()}"


def cache_key(*parts: str) -> str:
    """A short file-name-safe key from identity strings (order matters)."""
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def load_cached(path: str | os.PathLike) -> dict | None:
    """A cached dict of tensors, or None when the file is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torn or foreign file: recompute rather than fail an evaluation
        return None


def save_cached(path: str | os.PathLike, value: dict) -> Path:
    """Write a dict of tensors atomically (temp file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, durable=False) as tmp, open(tmp, "wb") as f:  # a cache can be recomputed
        torch.save(value, f)
    return path


def cached(cache_dir: str | os.PathLike | None, key: str, compute: Callable[[], dict]) -> tuple[dict, bool]:
    """``compute()`` once per key: returns ``(value, hit)``; ``cache_dir=None`` disables the cache."""
    if cache_dir is None:
        return compute(), False
    path = Path(cache_dir) / f"{key}.pt"
    value = load_cached(path)
    if value is not None:
        return value, True
    value = compute()
    save_cached(path, value)
    return value, False
