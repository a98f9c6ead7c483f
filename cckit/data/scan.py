"""``cckit data scan PATH``: check every video under a path and report what training would see."""
from __future__ import annotations

import os
from pathlib import Path

from ..config import DataConfig
from .index import check_entries, source_entries, summarise
from .records import VideoRecord
from .sources import detect_layout

__all__ = ["scan", "format_report"]


def scan(path: str | os.PathLike, *, source: str = "auto", on_error: str = "raise", labels: str = "folders",
         train_list: str = "", test_list: str = "", single_frame: str = "same", workers: int = 0,
         seek_index_cache: str = "", progress: bool = False) -> dict:
    """Check every video under ``path`` (a folder of any supported layout, or one video file).

    Args:
        path: Data folder or video file.
        source: ``"auto"`` (guess the layout), ``"videos"``, ``"frames"``, ``"r2v2"`` or ``"manifest"``.
        on_error: ``"raise"``: the first bad file raises DataError; ``"skip"``: all problems are
            listed in the report.
        workers: Processes that decode in parallel (0 or 1: this process).

    Returns:
        The index report (see :func:`cckit.data.index.index_data`) plus ``"layout"``.

    Raises:
        DataError: ``path`` does not exist or holds no videos, or (``on_error="raise"``) a file
            is unusable; the message names the file and the reason.
    """
    path = Path(path)
    layout = source
    if layout == "auto":
        layout = "manifest" if (path / "manifest.json").is_file() else detect_layout(path)
    if layout == "file":
        entries, ids, declared, classes = [VideoRecord(key=path.name, path=str(path))], [0], {}, []
    else:
        cfg = DataConfig(source=layout, root=str(path), labels=labels, train_list=train_list,
                         test_list=test_list)
        entries, ids, declared, classes = source_entries(cfg, generate=False)
    checked = check_entries(entries, seek_index_cache=seek_index_cache, workers=workers, progress=progress)
    index = summarise(entries, checked, ids=ids, declared=declared, on_error=on_error,
                      single_frame=single_frame, classes=classes, root=str(path), source=layout)
    return {"layout": layout, **index.report}


def _counts(counter: dict, limit: int = 6) -> str:
    items = [f"{key} ({n})" for key, n in list(counter.items())[:limit]]
    more = len(counter) - limit
    return ", ".join(items) + (f", and {more} more" if more > 0 else "") if items else "-"


def format_report(report: dict) -> str:
    """The scan report as a few lines of text (what ``cckit data scan`` prints)."""
    splits = ", ".join(f"{k} {n}" for k, n in report["splits"].items())
    lines = [f"{report['root']} ({report['layout']}): {report['videos']} videos ({splits or 'none usable'}), "
             f"{report['frames']} frames, {report['classes']} classes",
             f"resolutions: {_counts(report['resolutions'])}",
             f"codecs: {_counts(report['codecs'])}"]
    if report["class_names"]:
        lines.append(f"classes: {_counts({c: '' for c in report['class_names']}).replace(' ()', '')}")
    if report["single_frame_videos"] or report["excluded_single_frame"]:
        lines.append(f"one-frame videos: {report['single_frame_videos']} kept (x_p uses the same frame), "
                     f"{report['excluded_single_frame']} excluded")
    if report["declared_frame_count_wrong"]:
        lines.append(f"container frame count wrong: {report['declared_frame_count_wrong']} videos "
                     f"(the decoded count is used)")
    skipped = report["skipped"]
    lines.append(f"problems: {len(skipped)}" + (" (these files are left out)" if skipped else ""))
    lines += [f"  {item['reason']}" for item in skipped]
    return "\n".join(lines)
