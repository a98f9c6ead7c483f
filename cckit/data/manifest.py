"""The dataset manifest: ``root/manifest.json`` listing every video with its split, class and
metadata. Generated data writes one; ``data.source=manifest`` reads any folder that has one."""
from __future__ import annotations

import json
import os
from pathlib import Path

from cckit.atomic import atomic_write
from cckit.errors import DataError

MANIFEST_VERSION = 1
_RECORD_FIELDS = ("video_id", "path", "split", "label", "num_frames")


def write_manifest(root: str | os.PathLike, records: list[dict], meta: dict) -> Path:
    """Atomically write ``root/manifest.json`` = ``{"version", "meta", "videos"}``.

    One record per line keeps the file readable and diffable. Written to a temp file in the same
    directory and renamed, so a reader sees either the old manifest or the complete new one.

    Returns:
        Path of the manifest.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    videos = ",\n".join("  " + json.dumps(record) for record in records)
    text = (f'{{"version": {MANIFEST_VERSION},\n"meta": {json.dumps(meta, indent=1)},\n'
            f'"videos": [\n{videos}\n]}}\n')
    path = atomic_write(root / "manifest.json", text)
    return path


def load_manifest(root: str | os.PathLike) -> tuple[list[dict], dict]:
    """Read ``root/manifest.json``.

    Returns:
        ``(records, meta)``; record paths stay relative to ``root``.

    Raises:
        DataError: The manifest is missing, not valid JSON, of another version, or a record
            lacks a required field. The message names the file.
    """
    path = Path(root) / "manifest.json"
    try:
        with open(path, encoding="utf-8") as f:
            payload = json.load(f)
    except FileNotFoundError as error:
        raise DataError(f"{path}: manifest not found") from error
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: not a readable JSON manifest ({error})") from error
    if not isinstance(payload, dict) or payload.get("version") != MANIFEST_VERSION:
        raise DataError(f"{path}: expected a manifest object with version {MANIFEST_VERSION}")
    meta, records = payload.get("meta"), payload.get("videos")
    if not isinstance(meta, dict) or not isinstance(records, list):
        raise DataError(f"{path}: manifest needs a 'meta' object and a 'videos' list")
    for i, record in enumerate(records):
        missing = [k for k in _RECORD_FIELDS if not isinstance(record, dict) or k not in record]
        if missing:
            raise DataError(f"{path}: video record {i} lacks field(s) {missing}")
    return records, meta
