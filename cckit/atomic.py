"""Atomic file writes and an inter-process lock: every artefact of the kit appears whole or not at all.

:func:`atomic_path` is the one way the kit writes a file (or a folder) that someone may read
while it is written or after a kill: the content goes to a uniquely named temporary entry in the
same folder, is fsynced, and is renamed over the target. A reader, a concurrent writer or a
crash at any moment sees either the old target or the complete new one. Unique temporary names
matter: two processes writing the same target (two runs generating the same dataset) must never
share one temporary file.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

try:  # POSIX; elsewhere the lock is a no-op and concurrent writers rely on the atomic renames
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

TEMP_SUFFIX = ".tmp"


def _fsync_path(path: Path) -> None:
    """fsync a file, or a folder's entries (best effort where folders cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, durable: bool = True, mode: int = 0o644) -> Iterator[Path]:
    """Yield a fresh temporary path beside ``path``; on normal exit rename it over ``path``.

    The caller writes a file (or creates a folder) at the yielded path. On an exception nothing
    is renamed and the temporary entry is removed, so the old ``path`` (if any) is untouched.

    Args:
        path: Target file or folder; its parent folder is created.
        durable: fsync the new content and the parent folder, so the rename survives a power
            loss (checkpoints, manifests); caches that can be recomputed may skip it.
        mode: Permission bits of a new file (``mkstemp`` would make it 0600).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    tmp.unlink()  # the caller creates the entry it wants (file or folder) under this unique name
    try:
        yield tmp
        if tmp.is_file():
            os.chmod(tmp, mode)
        if durable:
            _fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise
    if durable:
        _fsync_path(path.parent)


def atomic_write(path: str | os.PathLike, data: str | bytes, *, durable: bool = True) -> Path:
    """Write ``data`` (text as UTF-8, or bytes) to ``path`` atomically; returns ``path``."""
    path = Path(path)
    with atomic_path(path, durable=durable) as tmp:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def remove_temporaries(folder: str | os.PathLike, name: str = "*") -> None:
    """Delete temporary entries that a killed :func:`atomic_path` left in ``folder`` for targets
    matching ``name`` (a glob)."""
    folder = Path(folder)
    if not folder.is_dir():
        return
    for stale in folder.glob(f".{name}.*{TEMP_SUFFIX}"):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


@contextlib.contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (created if missing) for the ``with`` body.

    Serialises processes that would otherwise build the same artefact at once (two training
    runs generating one dataset): the second waits, then finds the first one's result.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
