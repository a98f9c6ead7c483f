"""The video index: which videos a config trains and evaluates on, every file checked before training.

:func:`index_data` lists the videos of a source (:mod:`cckit.data.sources`, or a cckit manifest),
checks every file (a video is decoded once, its frame index cached on disk; a frame file is
checked by header and end marker), and returns the records per split plus a report: counts,
resolutions, codecs, one-frame videos, and the files skipped under ``on_error="skip"``.
"""
from __future__ import annotations

import logging
from collections import Counter
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from ..config import DataConfig
from ..errors import DataError
from .check import check_entries
from .records import VideoRecord
from .sources import list_source

log = logging.getLogger(__name__)


@dataclass
class DataIndex:
    """Validated records per split (``"train"``, ``"test"``) and the report of how they were found."""
    splits: dict[str, list[VideoRecord]]
    report: dict = field(default_factory=dict)


def _manifest_entries(cfg: DataConfig, generate: bool) -> tuple[list[VideoRecord], dict[str, int], list[int], list[str]]:
    """Entries of a cckit manifest (generating the default data first for ``source=synthetic``)."""
    from .manifest import load_manifest
    from .synthetic import make_default_dataset

    root = Path(cfg.root)
    if cfg.source == "synthetic" and generate:
        make_default_dataset(root, num_train=cfg.num_train, num_test=cfg.num_test,
                             frames_per_video=tuple(cfg.frames_per_video), size=cfg.size,
                             style=cfg.style, seed=cfg.seed, workers=max(1, cfg.workers))
    if not root.is_dir():
        raise DataError(f"{root}: data folder does not exist (data.root)")
    if not (root / "manifest.json").is_file():
        raise DataError(f"{root}: no manifest.json — the folder is empty or not a cckit dataset "
                        f"(generate one with `cckit data`, or set data.source=videos|frames|r2v2)")
    records, meta = load_manifest(root)
    entries, declared, ids = [], {}, []
    for e in records:
        path = str(root / e["path"])
        entries.append(VideoRecord(key=str(e["path"]), path=path, label=int(e.get("label", -1)),
                                   class_name=str(e.get("class_name", "")), split=str(e.get("split", "train")),
                                   boxes=tuple(tuple(b) for b in e.get("boxes") or ()),
                                   motion=str(e.get("motion", ""))))
        declared[path] = int(e["num_frames"])
        ids.append(int(e["video_id"]))
    return entries, declared, ids, list(meta.get("class_names", []))


def summarise(entries: list[VideoRecord], checked: list[tuple[dict | None, str | None]], *,
              ids: list[int] | None = None, declared: dict[str, int] | None = None,
              on_error: str = "raise", single_frame: str = "same", classes: list[str] = (),
              root: str = "", source: str = "") -> DataIndex:
    """Records per split and the report, from entries and their :func:`check_entries` results.

    Raises:
        DataError: The first problem, when ``on_error="raise"``.
    """
    ids = list(range(len(entries))) if ids is None else ids
    declared = declared or {}
    splits: dict[str, list[VideoRecord]] = {}
    skipped, single, excluded, declared_wrong = [], 0, 0, 0
    resolutions, codecs = Counter(), Counter()
    for entry, video_id, (result, problem) in zip(entries, ids, checked):
        if result is not None and entry.path in declared and declared[entry.path] != result["num_frames"]:
            problem = (f"{entry.path}: manifest says {declared[entry.path]} frames but "
                       f"{result['num_frames']} decode")
        if problem is not None:
            if on_error == "raise":
                raise DataError(f"{problem} (on_error=skip would leave it out)")
            skipped.append({"video": entry.key, "path": entry.path, "reason": problem})
            continue
        if result["num_frames"] == 1:
            if single_frame == "exclude":
                excluded += 1
                continue
            single += 1
        declared_wrong += result.get("declared_frames", 0) not in (0, result["num_frames"])
        name = entry.class_name or (classes[entry.label] if 0 <= entry.label < len(classes) else "")
        record = dataclasses.replace(entry, video_id=video_id, num_frames=result["num_frames"], class_name=name,
                                     width=result["width"], height=result["height"])
        splits.setdefault(entry.split, []).append(record)
        resolutions[f"{result['width']}x{result['height']}"] += 1
        codecs[f"{result['codec']} {result['pix_fmt']}"] += 1
    report = {"root": str(root), "source": source,
              "videos": sum(len(v) for v in splits.values()),
              "splits": {k: len(v) for k, v in sorted(splits.items())},
              "frames": sum(r.num_frames for v in splits.values() for r in v),
              "single_frame_videos": single, "excluded_single_frame": excluded,
              "declared_frame_count_wrong": declared_wrong,
              "classes": len(classes), "class_names": list(classes),
              "resolutions": dict(resolutions.most_common()), "codecs": dict(codecs.most_common()),
              "skipped": skipped}
    return DataIndex(splits, report)


def source_entries(cfg: DataConfig, *, generate: bool = True):
    """``(entries, video ids, declared frame counts, class names)`` of a data config, unchecked."""
    if cfg.source in ("synthetic", "manifest"):
        entries, declared, ids, classes = _manifest_entries(cfg, generate)
        return entries, ids, declared, classes
    entries, classes = list_source(cfg.source, cfg.root, labels=cfg.labels,
                                   train_list=cfg.train_list, test_list=cfg.test_list)
    return entries, list(range(len(entries))), {}, classes


def index_data(cfg: DataConfig, *, generate: bool = True, progress: bool = False) -> DataIndex:
    """List, check and index the videos of a data config.

    Every file is checked up front. A bad file raises DataError naming it and the reason, or
    with ``cfg.on_error="skip"`` is left out and listed in ``report["skipped"]``. One-frame
    videos are kept (``x_p`` then uses the same frame; counted) or dropped
    (``cfg.single_frame="exclude"``).

    Raises:
        DataError: A bad file (``on_error="raise"``), a missing folder or split file, or no
            usable training video.
    """
    entries, ids, declared, classes = source_entries(cfg, generate=generate)
    checked = check_entries(entries, seek_index_cache=cfg.seek_index_cache, workers=cfg.workers, progress=progress)
    index = summarise(entries, checked, ids=ids, declared=declared, on_error=cfg.on_error,
                      single_frame=cfg.single_frame, classes=classes, root=cfg.root, source=cfg.source)
    skipped = index.report["skipped"]
    if skipped:
        log.warning("%d unusable file(s) skipped (data.on_error=skip), e.g. %s", len(skipped), skipped[0]["reason"])
    if not index.splits.get("train"):
        raise DataError(f"{cfg.root}: no usable training videos"
                        + (f" ({len(skipped)} skipped as unusable)" if skipped else ""))
    return index


def load_splits(cfg: DataConfig, *, generate: bool = True) -> dict[str, list[VideoRecord]]:
    """Video records per split (``"train"``, ``"test"``) for a data config.

    ``source="synthetic"`` generates the moving-digit videos into ``root`` first if they are not
    there yet (idempotent); ``source="manifest"`` reads ``root/manifest.json``; ``videos``,
    ``frames`` and ``r2v2`` list a folder (see :mod:`cckit.data.sources`). Every file is checked
    (see :func:`index_data`). Raises DataError naming the folder or file.
    """
    return index_data(cfg, generate=generate).splits
