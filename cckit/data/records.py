"""One record per video, from the moment a source finds it to every consumer (training, evaluation,
tracking, figures): the one type the data layer hands up."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class VideoRecord:
    """One video. A source (:mod:`cckit.data.sources`, a manifest) fills what the files and folders
    say; indexing (:func:`cckit.data.index.index_data`) checks the file and fills ``video_id``,
    ``num_frames`` and the size."""
    path: str  # the video file, or the folder holding the frame files
    key: str = ""  # id relative to the data root, e.g. "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"
    video_id: int = -1  # unique in the dataset (the manifest's id, else the listing order); -1: not indexed
    split: str = "train"
    label: int = -1  # class label (-1: unlabelled)
    class_name: str = ""  # the label's name ("" when unlabelled)
    frames: tuple[str, ...] = ()  # frame file names inside ``path``, in order (frame-folder videos)
    num_frames: int = 0  # frames that decode (0: not checked yet)
    width: int = 0  # display width in pixels (0: unknown)
    height: int = 0  # display height in pixels (0: unknown)
    boxes: tuple[tuple[float, float, float, float], ...] = ()  # per-frame x0, y0, x1, y1 when known
    motion: str = ""  # the generated data's motion type ("" elsewhere)


def class_names(records) -> list[str]:
    """Names indexed by label, from records that carry them (missing labels named by their number)."""
    named = {r.label: r.class_name for r in records if r.label >= 0}
    return [named.get(label) or str(label) for label in range(max(named, default=-1) + 1)]
