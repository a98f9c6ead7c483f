"""Data sources: find the videos of a folder, before any file is opened.

Three layouts, one result (unchecked :class:`~cckit.data.records.VideoRecord` s, plus class names):

- ``videos``: video files anywhere under ``root`` (mp4, avi, mkv, webm, mov, m4v). With
  ``labels="folders"`` the class is the first sub-folder under the split root, as in UCF101
  (``<root>/<Class>/v_<Class>_g01_c01.avi``) and Kinetics (``<root>/train/<class>/<id>.mp4``).
- ``frames``: every folder that holds image files is one video, its frames in natural name order
  (``<root>/[<class>/]<video>/<frame>.jpg``).
- ``r2v2``: the R2V2 frame folders of the VINCE download, ``<root>/train/<2 chars>/<video id>_<frame:06d>.jpg``
  (also ``val/``), read from VINCE's file-list cache ``train_names.pkl`` when present.

Splits: a UCF101-style split file (``data.train_list`` / ``data.test_list``: one relative path per
line, optionally followed by a label), else top-level ``train/`` and ``test/`` (or ``val/``)
folders, else everything is ``train``.
"""
from __future__ import annotations

import os
import pickle
import re
from pathlib import Path

from ..errors import DataError
from .records import VideoRecord

__all__ = ["VIDEO_EXTENSIONS", "IMAGE_EXTENSIONS", "list_source", "detect_layout"]

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
SPLIT_FOLDERS = {"train": "train", "test": "test", "val": "test", "validation": "test"}
_R2V2_FRAME = re.compile(r"^(?P<video>.+)_(?P<frame>\d{6})\.jpg$")


def _natural(name: str) -> list:
    """Sort key that puts frame_2.jpg before frame_10.jpg."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _walk(root: Path, extensions: tuple[str, ...]) -> dict[str, list[str]]:
    """Folder (relative, '/'-separated) -> sorted file names with one of ``extensions``; hidden skipped."""
    found: dict[str, list[str]] = {}
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        names = [f for f in files if f.lower().endswith(extensions) and not f.startswith(".")]
        if names:
            rel = Path(folder).relative_to(root).as_posix()
            found["" if rel == "." else rel] = sorted(names, key=_natural)
    return found


def _read_split_file(root: Path, name: str) -> tuple[Path, list[str]]:
    path = Path(name) if os.path.isabs(name) else root / name
    if not path.is_file():
        raise DataError(f"{path}: split file not found")
    lines = [line.split()[0] for line in path.read_text().splitlines() if line.strip()]
    return path, [line.replace("\\", "/").lstrip("./") for line in lines]


def _class_index(split_file: Path | None) -> dict[str, int] | None:
    """UCF101's classInd.txt ("1 ApplyEyeMakeup") next to a split file: class name -> 0-based id."""
    if split_file is None or not (split_file.parent / "classInd.txt").is_file():
        return None
    pairs = [line.split() for line in (split_file.parent / "classInd.txt").read_text().splitlines() if line.strip()]
    return {name: int(number) - 1 for number, name in pairs}


def _assign_splits(root: Path, keys: list[str], train_list: str, test_list: str):
    """(split per key or None when unlisted, key with the split folder removed, split file used)."""
    if train_list or test_list:
        listed: dict[str, str] = {}
        used = None
        for split, name in (("train", train_list), ("test", test_list)):
            if name:
                used, paths = _read_split_file(root, name)
                for p in paths:
                    listed[p.lower()] = split
        missing = set(listed) - {k.lower() for k in keys}
        if missing:
            example = sorted(missing)[0]
            raise DataError(f"{root / example}: listed in a split file but not found "
                            f"({len(missing)} listed videos missing)")
        default = None if train_list else "train"
        # Case-insensitive: UCF101's lists spell some names differently from its files.
        return [(listed.get(k.lower(), default), k) for k in keys], used
    tops = {k.split("/", 1)[0] for k in keys}
    if keys and all("/" in k for k in keys) and tops <= set(SPLIT_FOLDERS) and "train" in tops:
        return [(SPLIT_FOLDERS[k.split("/", 1)[0]], k.split("/", 1)[1]) for k in keys], None
    return [("train", k) for k in keys], None


def _labelled(items: list[tuple[str, str, str, tuple[str, ...], str]], labels: str,
              split_file: Path | None) -> tuple[list[VideoRecord], list[str]]:
    """Entries from ``(split, key, split-relative key, frames, path)`` items; the class is the
    first folder of the split-relative key (none for videos directly in the split root)."""
    def class_of(rel: str) -> str | None:
        parts = rel.split("/")
        return parts[0] if labels == "folders" and len(parts) >= 2 else None

    names = sorted({c for _, _, rel, _, _ in items if (c := class_of(rel)) is not None})
    index = _class_index(split_file) if names else None
    if index is None or not set(names) <= set(index):
        index = {name: i for i, name in enumerate(names)}
    classes = [name for name, _ in sorted(index.items(), key=lambda kv: kv[1])] if names else []
    entries = [VideoRecord(key=key, path=path, frames=frames, split=split,
                           label=index[c] if (c := class_of(rel)) is not None else -1, class_name=c or "")
               for split, key, rel, frames, path in items]
    return entries, classes


def list_videos(root: str | os.PathLike, *, labels: str = "folders", train_list: str = "",
                test_list: str = "") -> tuple[list[VideoRecord], list[str]]:
    """Video files under ``root`` (recursive), with labels and splits. Returns (entries, class names)."""
    root = Path(root)
    keys = [f"{folder}/{name}" if folder else name
            for folder, names in _walk(root, VIDEO_EXTENSIONS).items() for name in names]
    assigned, split_file = _assign_splits(root, keys, train_list, test_list)
    items = [(split, key, rel, (), str(root / key)) for key, (split, rel) in zip(keys, assigned) if split]
    return _labelled(items, labels, split_file)


def list_frame_folders(root: str | os.PathLike, *, labels: str = "folders", train_list: str = "",
                       test_list: str = "") -> tuple[list[VideoRecord], list[str]]:
    """Folders of frames under ``root``: each folder holding images is one video."""
    root = Path(root)
    found = _walk(root, IMAGE_EXTENSIONS)
    keys = sorted(k for k in found if k)
    if "" in found:
        raise DataError(f"{root}: image files directly in the data root; frame sources expect one "
                        f"folder of frames per video (<root>/<video>/<frame>.jpg)")
    assigned, split_file = _assign_splits(root, keys, train_list, test_list)
    items = [(split, key, rel, tuple(found[key]), str(root / key))
             for key, (split, rel) in zip(keys, assigned) if split]
    return _labelled(items, labels, split_file)


class _PlainUnpickler(pickle.Unpickler):
    """Unpickles lists, tuples, dicts, strings and numbers only: a file list must not run code."""

    def find_class(self, module, name):
        raise DataError(f"refusing to load {module}.{name} from a file-list pickle")


def _r2v2_split(split_dir: Path, cache_candidates: list[Path]) -> dict[str, list[int]]:
    """Video id -> sorted frame numbers of one R2V2 split folder."""
    for cache in cache_candidates:
        if cache.is_file():
            try:
                with open(cache, "rb") as f:
                    pairs = _PlainUnpickler(f).load()
                return {str(video): sorted(int(i) for i in frames) for video, frames in pairs}
            except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
                raise DataError(f"{cache}: not a VINCE file list ({error})") from error
    videos: dict[str, list[int]] = {}
    for sub in sorted(os.scandir(split_dir), key=lambda e: e.name):
        if not sub.is_dir() or sub.name.startswith("."):
            continue
        for item in os.scandir(sub.path):
            match = _R2V2_FRAME.match(item.name)
            if match:
                videos.setdefault(match["video"], []).append(int(match["frame"]))
    return {video: sorted(frames) for video, frames in videos.items()}


def list_r2v2(root: str | os.PathLike) -> tuple[list[VideoRecord], list[str]]:
    """R2V2 videos: ``<root>/{train,val}/<vid[:2]>/<vid>_<frame:06d>.jpg`` (``root`` may also be
    the ``train`` folder itself, as in the CycleContrast code). Unlabelled; ``val`` becomes test."""
    root = Path(root)
    splits = [(name, root / name) for name in ("train", "val") if (root / name).is_dir()]
    if not splits:
        splits = [("train", root)]
    entries = []
    for name, split_dir in splits:
        caches = [root / f"{name}_names.pkl", split_dir / f"{name}_names.pkl"]
        for video, frames in sorted(_r2v2_split(split_dir, caches).items()):
            entries.append(VideoRecord(key=video, path=str(split_dir / video[:2]),
                                 frames=tuple(f"{video}_{i:06d}.jpg" for i in frames),
                                 split=SPLIT_FOLDERS[name]))
    return entries, []


def _looks_like_r2v2(path: Path) -> bool:
    if list(path.glob("*_names.pkl")) or list(path.glob("train/*_names.pkl")):
        return True
    for split_dir in (path / "train", path):
        if not split_dir.is_dir():
            continue
        subs = [e for e in os.scandir(split_dir) if e.is_dir() and len(e.name) == 2]
        for sub in subs[:3]:
            first = next((e.name for e in os.scandir(sub.path) if e.is_file()), None)
            if first and _R2V2_FRAME.match(first) and first.startswith(sub.name):
                return True
    return False


def detect_layout(path: str | os.PathLike) -> str:
    """Guess the layout of ``path``: "file" (one video), "r2v2", "videos" or "frames"."""
    path = Path(path)
    if path.is_file():
        return "file"
    if not path.is_dir():
        raise DataError(f"{path}: no such file or folder")
    if _looks_like_r2v2(path):
        return "r2v2"
    images = False
    for _, dirs, files in os.walk(path, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        if any(f.lower().endswith(VIDEO_EXTENSIONS) for f in files):
            return "videos"
        images = images or any(f.lower().endswith(IMAGE_EXTENSIONS) for f in files)
    if images:
        return "frames"
    raise DataError(f"{path}: no video files or image frames found")


def list_source(source: str, root: str | os.PathLike, *, labels: str = "folders", train_list: str = "",
                test_list: str = "") -> tuple[list[VideoRecord], list[str]]:
    """Entries and class names of a ``videos``, ``frames`` or ``r2v2`` source rooted at ``root``.

    Raises:
        DataError: ``root`` is missing or holds no videos of that kind, or a split file is
            missing or lists a video that is not there.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: data folder does not exist (data.root)")
    if source == "videos":
        entries, classes = list_videos(root, labels=labels, train_list=train_list, test_list=test_list)
        kind = f"video files ({', '.join(VIDEO_EXTENSIONS)})"
    elif source == "frames":
        entries, classes = list_frame_folders(root, labels=labels, train_list=train_list, test_list=test_list)
        kind = f"folders of frames ({', '.join(IMAGE_EXTENSIONS)})"
    elif source == "r2v2":
        entries, classes = list_r2v2(root)
        kind = "R2V2 frames (train/<2 chars>/<video id>_<frame:06d>.jpg)"
    else:
        raise DataError(f"unknown data source {source!r}")
    if not entries:
        raise DataError(f"{root}: no {kind} found")
    return entries, classes
