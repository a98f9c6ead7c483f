"""``metrics.jsonl``: one JSON object per training step, written, trimmed on resume and read here only."""
from __future__ import annotations

import json
from pathlib import Path

from .atomic import atomic_write

FILE_NAME = "metrics.jsonl"


def _path(path: str | Path) -> Path:
    path = Path(path)
    return path / FILE_NAME if path.is_dir() else path


def read_metrics(path: str | Path) -> list[dict]:
    """Rows of a ``metrics.jsonl`` (a run directory works too); a torn last line from a kill is skipped."""
    rows = []
    for line in _path(path).read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


class MetricsLog:
    """The append-only log of one run: ``MetricsLog(run_dir, resume_step)`` starts it afresh
    (step 0) or keeps exactly the rows of steps ``<= resume_step``, so that a resumed run logs
    each step once; floats are rounded to 6 digits; :meth:`flush` makes the rows written so far
    survive a kill (the trainer flushes with every checkpoint)."""

    def __init__(self, run_dir: str | Path, resume_step: int = 0):
        self.path = Path(run_dir) / FILE_NAME
        if resume_step and self.path.is_file():
            keep = [row for row in read_metrics(self.path) if row.get("step", 0) <= resume_step]
            # a kill while trimming leaves the old file, never half of it
            atomic_write(self.path, "".join(json.dumps(row) + "\n" for row in keep))
        else:
            atomic_write(self.path, "")
        self._file = open(self.path, "a")

    def write(self, row: dict) -> None:
        self._file.write(json.dumps({k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()}) + "\n")

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "MetricsLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
