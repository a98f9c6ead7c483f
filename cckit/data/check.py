"""Check videos before training: decode each video file once (its frame index is cached on disk),
check each frame file by header and end marker. Runs in worker threads for large sets."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

from tqdm.auto import tqdm

from ..errors import DataError
from .frame_store import check_frame_file
from .records import VideoRecord
from .video import probe

__all__ = ["check_entry", "check_entries", "worker_pool"]

MIN_JOBS_FOR_POOL = 16  # starting workers costs more than checking a few videos


def worker_pool(workers: int) -> ThreadPoolExecutor:
    """Threads, not processes: FFmpeg decodes and zlib/PIL work with the GIL released, and
    threads neither re-run the caller's script (spawn) nor copy locks held by other threads (fork)."""
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cckit-data")


def check_entry(entry: VideoRecord, seek_index_cache: str = "") -> dict:
    """Check one video: frame count, display size and format.

    Returns:
        ``{"num_frames", "width", "height", "codec", "pix_fmt", "seekable"}``.

    Raises:
        DataError: The video (or one of its frame files) is unusable; the message names the file.
    """
    if not entry.frames:
        info = probe(entry.path, cache_dir=seek_index_cache or None)
        return {"num_frames": info.num_frames, "width": info.width, "height": info.height,
                "codec": info.codec, "pix_fmt": info.pix_fmt, "seekable": info.seekable,
                "declared_frames": info.declared_frames}
    sizes = {check_frame_file(os.path.join(entry.path, name)) for name in entry.frames}
    if len(sizes) > 1:
        raise DataError(f"{os.path.join(entry.path, entry.frames[0])}: frames of video {entry.key} "
                        f"differ in size ({', '.join(f'{w}x{h}' for w, h in sorted(sizes))})")
    (width, height), = sizes
    codec = os.path.splitext(entry.frames[0])[1].lstrip(".").lower().replace("jpeg", "jpg")
    return {"num_frames": len(entry.frames), "width": width, "height": height, "codec": codec,
            "pix_fmt": "image", "seekable": True}


def _check_job(job: tuple[VideoRecord, str]) -> tuple[dict | None, str | None]:
    try:
        return check_entry(*job), None
    except DataError as error:
        return None, str(error)


def check_entries(entries: list[VideoRecord], *, seek_index_cache: str = "", workers: int = 0,
                  progress: bool = False) -> list[tuple[dict | None, str | None]]:
    """``check_entry`` for every entry, in ``workers`` processes: ``(result, None)`` or ``(None, reason)``."""
    jobs = [(entry, seek_index_cache) for entry in entries]
    bar = dict(total=len(jobs), disable=not progress, desc="checking videos", unit="video")
    if workers <= 1 or len(jobs) < MIN_JOBS_FOR_POOL:
        return [_check_job(job) for job in tqdm(jobs, **bar)]
    with worker_pool(workers) as pool:
        return list(tqdm(pool.map(_check_job, jobs), **bar))
