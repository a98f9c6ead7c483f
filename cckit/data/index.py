"""The video index: which videos a config trains and evaluates on, validated before training."""
from __future__ import annotations

from pathlib import Path

from ..config import DataConfig
from ..errors import DataError
from .dataset import VideoRecord


def _records(root: Path, entries: list[dict]) -> dict[str, list[VideoRecord]]:
    splits: dict[str, list[VideoRecord]] = {}
    for e in entries:
        path = root / e["path"]
        if not path.is_file():
            raise DataError(f"{path}: listed in {root / 'manifest.json'} but missing")
        rec = VideoRecord(video_id=int(e["video_id"]), path=str(path), num_frames=int(e["num_frames"]),
                          label=int(e.get("label", -1)), split=str(e.get("split", "train")))
        if rec.num_frames < 1:
            raise DataError(f"{path}: has no frames")
        splits.setdefault(rec.split, []).append(rec)
    return splits


def load_splits(cfg: DataConfig, *, generate: bool = True) -> dict[str, list[VideoRecord]]:
    """Video records per split (``"train"``, ``"test"``) for a data config.

    ``source="synthetic"`` generates the moving-digit videos into ``root`` first if they are not
    there yet (idempotent); ``source="manifest"`` reads ``root/manifest.json``. Raises DataError
    naming the folder when it holds no usable training videos.
    """
    from .synthetic import load_manifest, make_default_dataset

    root = Path(cfg.root)
    if cfg.source == "synthetic" and generate:
        make_default_dataset(root, num_train=cfg.num_train, num_test=cfg.num_test,
                             frames_per_video=tuple(cfg.frames_per_video), size=cfg.size,
                             style=cfg.style, seed=cfg.seed, workers=max(1, cfg.workers))
    if not root.is_dir():
        raise DataError(f"{root}: data folder does not exist (data.root)")
    if not (root / "manifest.json").is_file():
        raise DataError(f"{root}: no manifest.json — the folder is empty or not a cckit dataset "
                        f"(generate one with `cckit data`)")
    entries, _ = load_manifest(root)
    splits = _records(root, entries)
    if not splits.get("train"):
        raise DataError(f"{root}: no training videos in manifest.json")
    return splits
