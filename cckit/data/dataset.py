"""Datasets over a video index: training triplets ``(x_q, x_k, x_p, video_id, replaced)`` and evaluation frames.

Every random choice of a training item is a pure function of ``(seed, epoch, index)``, so the
data order and augmentations do not depend on the number of workers and a resumed run sees the
same samples as an uninterrupted one. That includes the replacement of a video that fails to
decode mid-run (a file changed on disk): the stand-in video is drawn from the same seed.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision.transforms import v2

from ..config import DataConfig
from ..errors import DataError
from .batch_augment import BatchAugment
from .extract import FrameCache
from .frames import read_frame_files
from .records import VideoRecord
from .transforms import eval_transform, seeded_views, train_transform
from .video import read_all_frames, read_frames

log = logging.getLogger(__name__)
MAX_REPLACEMENTS = 10  # stand-in videos tried for one item before the failure is raised


def _item_seed(*parts: int) -> int:
    digest = hashlib.blake2b(np.asarray(parts, dtype=np.int64).tobytes(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF


class FrameStore:
    """Frames of every video: all decoded once and kept in memory (``cache=True``, while they fit
    in ``cache_limit_gb``), or read on demand from the frame files, the frame cache of
    ``cckit data extract`` (``frame_cache``) or the video itself (exact seeking, ``video_cache``).

    With ``on_error="skip"`` a video that fails while caching is remembered and raises DataError
    on :meth:`get` (the training set then replaces it); with ``"raise"`` the constructor raises.
    """

    def __init__(self, records: list[VideoRecord], cache: bool, *, frame_cache: str = "",
                 video_cache: str = "", cache_limit_gb: float = 8.0, on_error: str = "raise"):
        self.records = records
        self.video_cache = video_cache or None
        extracted = FrameCache(frame_cache) if frame_cache else None
        self.extracted = [extracted.find(r.path) if extracted and not r.frames else None for r in records]
        self.errors: dict[int, str] = {}
        self.cache = None
        if cache and self.memory_bytes() <= cache_limit_gb * 2**30:
            self.cache = [self._load_all(i, on_error) for i in range(len(records))]
        elif cache:
            log.warning("not caching frames: %.1f GB of decoded frames exceed data.cache_limit_gb=%g; "
                        "reading on demand (`cckit data extract` makes that fast)",
                        self.memory_bytes() / 2**30, cache_limit_gb)

    def memory_bytes(self) -> int:
        """Bytes all decoded frames take (records of unknown size count as 0)."""
        return sum(r.num_frames * r.width * r.height * 3 for r in self.records)

    def _read(self, i: int, frame_indices: list[int]) -> np.ndarray:
        r = self.records[i]
        if r.frames:
            if max(frame_indices, default=0) >= len(r.frames):
                raise DataError(f"{r.path}: frame index {max(frame_indices)} out of range ({len(r.frames)} frames)")
            return read_frame_files([os.path.join(r.path, r.frames[k]) for k in frame_indices])
        if self.extracted[i] is not None:
            return FrameCache.read(self.extracted[i], frame_indices)
        return read_frames(r.path, frame_indices, cache_dir=self.video_cache)

    def _load_all(self, i: int, on_error: str) -> np.ndarray | None:
        r = self.records[i]
        try:
            if r.frames or self.extracted[i] is not None:
                frames = self._read(i, list(range(r.num_frames)))
            else:
                frames = read_all_frames(r.path)
            if len(frames) != r.num_frames:
                raise DataError(f"{r.path}: index says {r.num_frames} frames but {len(frames)} decode")
            return frames
        except DataError as error:
            if on_error == "raise":
                raise
            self.errors[i] = str(error)
            return None

    def get(self, i: int, frame_indices: list[int]) -> np.ndarray:
        """(len(frame_indices), H, W, 3) uint8 frames of video ``i``.

        Raises:
            DataError: The video cannot be read (any more); the message names the file.
        """
        if i in self.errors:
            raise DataError(self.errors[i])
        if self.cache is not None:
            return self.cache[i][frame_indices]
        return self._read(i, frame_indices)


class TrainClips(Dataset):
    """Item ``i`` of epoch ``e``: two crops of a random frame f and one crop of a frame f' of video i.

    Returns ``(x_q, x_k, x_p, video_id, replaced)`` with images (3, S, S) float; with
    ``data.augment=batch`` (the default) it returns ``(frames, seed, video_id, replaced)`` instead, the
    uint8 frames f and f' (2, 3, size, size) for :class:`~cckit.data.batch_augment.BatchAugment`. ``f'`` is uniform
    over the video, or within ``max_frame_distance`` of f; a one-frame video uses f itself. If
    video i fails to read (a file changed on disk since it was indexed), another video drawn from
    ``(seed, epoch, i)`` stands in, ``video_id`` is the stand-in's and ``replaced`` is True.
    """

    def __init__(self, records: list[VideoRecord], cfg: DataConfig, seed: int = 0, frames: FrameStore | None = None):
        self.records = records
        self.cfg = cfg
        self.seed = seed
        self.epoch = 0
        self.frames = frames or FrameStore(records, cfg.frames_in_memory, frame_cache=cfg.extracted_frames,
                                           video_cache=cfg.seek_index_cache, cache_limit_gb=cfg.cache_limit_gb,
                                           on_error=cfg.on_error)
        self.transform = train_transform(cfg)

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def sample_frames(self, i: int, epoch: int | None = None) -> tuple[int, int]:
        """Frames ``(f, f')`` of video ``i``: f uniform, f' uniform or within ``max_frame_distance``."""
        epoch = self.epoch if epoch is None else epoch
        rng = np.random.default_rng(_item_seed(self.seed, epoch, i, 1))
        return self._pick_frames(self.records[i].num_frames, rng)

    def _pick_frames(self, n: int, rng: np.random.Generator) -> tuple[int, int]:
        f = int(rng.integers(n))
        d = self.cfg.max_frame_distance
        lo, hi = (0, n - 1) if d <= 0 else (max(0, f - d), min(n - 1, f + d))
        return f, int(rng.integers(lo, hi + 1))

    def _read_pair(self, epoch: int, i: int) -> tuple[int, np.ndarray, bool]:
        """(video actually used, its 2 x H x W x 3 frames f and f', whether it replaced video i)."""
        j, (f, f2) = i, self.sample_frames(i, epoch)
        for attempt in range(1, MAX_REPLACEMENTS + 2):
            try:
                return j, self.frames.get(j, [f, f2]), attempt > 1
            except DataError as error:
                if attempt > MAX_REPLACEMENTS:
                    raise DataError(f"{error} (and {MAX_REPLACEMENTS} stand-in videos failed too)") from error
                log.warning("%s; using another video for this sample", error)
                rng = np.random.default_rng(_item_seed(self.seed, epoch, i, 3, attempt))
                j = int(rng.integers(len(self.records)))
                f, f2 = self._pick_frames(self.records[j].num_frames, rng)

    def __getitem__(self, item):
        """``item`` is a video index (uses ``self.epoch``) or an ``(epoch, index)`` pair from
        :class:`RunBatches`, which lets one persistent DataLoader span epochs."""
        epoch, i = item if isinstance(item, tuple) else (self.epoch, item)
        j, frames, replaced = self._read_pair(epoch, i)
        images = torch.from_numpy(frames).permute(0, 3, 1, 2)  # 2 x 3 x H x W
        seed = _item_seed(self.seed, epoch, i, 2)  # augmentations are pure in (seed, epoch, i)
        if self.cfg.augment == "batch":  # BatchAugment draws this sample's parameters from `seed`
            if images.shape[-2:] != (self.cfg.size, self.cfg.size):  # frames of one size batch together
                images = v2.functional.resize(images, [self.cfg.size, self.cfg.size], antialias=True)
            return images, seed, self.records[j].video_id, replaced
        x_q, x_k, x_p = seeded_views(self.transform, images[0], images[1], seed)
        return x_q, x_k, x_p, self.records[j].video_id, replaced


    def views(self, items, device: torch.device | str = "cpu") -> tuple[torch.Tensor, ...]:
        """``(x_q, x_k, x_p, video_ids)`` of ``items`` (indices or ``(epoch, index)`` pairs) exactly
        as the trainer sees them, whichever ``data.augment`` (batch: augmented here on ``device``)."""
        batch = [self[item] for item in items]
        if self.cfg.augment != "batch":
            return tuple(torch.stack([b[j] for b in batch]) for j in range(3)) + (torch.tensor([b[3] for b in batch]),)
        frames = torch.stack([b[0] for b in batch])
        seeds = torch.tensor([b[1] for b in batch])
        return (*BatchAugment(self.cfg)(frames, seeds, torch.device(device)), torch.tensor([b[2] for b in batch]))


class EvalFrames(Dataset):
    """``frames_per_video`` evenly spaced frames of each video: ``(image, label, video_id, frame_index)``."""

    def __init__(self, records: list[VideoRecord], frames_per_video: int, size: int, frames: FrameStore | None = None):
        self.records = records
        self.frames = frames or FrameStore(records, cache=False)
        self.items = []
        for i, r in enumerate(records):
            k = min(frames_per_video, r.num_frames)
            for f in np.unique(np.linspace(0, r.num_frames - 1, k).round().astype(int)):
                self.items.append((i, int(f)))
        self.transform = eval_transform(size)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, j: int):
        i, f = self.items[j]
        image = torch.from_numpy(self.frames.get(i, [f])[0]).permute(2, 0, 1)
        r = self.records[i]
        return self.transform(image), r.label, r.video_id, f


class EpochBatches(torch.utils.data.Sampler):
    """Batches of a seeded permutation of ``n`` items for one epoch, dropping the last partial batch.

    ``start_batch`` skips batches already trained on (resume mid-epoch); ``rank``/``world_size``
    give each process its slice of every global batch.
    """

    def __init__(self, n: int, batch_size: int, seed: int, epoch: int, start_batch: int = 0,
                 rank: int = 0, world_size: int = 1):
        if batch_size * 1 > n:
            raise DataError(f"only {n} training videos, fewer than train.batch_size={batch_size}")
        self.n, self.batch_size, self.seed, self.epoch = n, batch_size, seed, epoch
        self.start_batch, self.rank, self.world_size = start_batch, rank, world_size

    def __len__(self) -> int:
        return self.n // self.batch_size - self.start_batch

    def __iter__(self):
        order = np.random.default_rng(_item_seed(self.seed, self.epoch, 0)).permutation(self.n)
        per_rank = self.batch_size // self.world_size
        for b in range(self.start_batch, self.n // self.batch_size):
            batch = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield batch[self.rank * per_rank:(self.rank + 1) * per_rank].tolist()


class RunBatches(torch.utils.data.Sampler):
    """Batches of ``(epoch, index)`` pairs for global steps ``start_step .. total_steps - 1``.

    Step ``s`` is batch ``s % steps_per_epoch`` of epoch ``s // steps_per_epoch`` of
    :class:`EpochBatches`, so a run resumed at any step sees exactly the batches an uninterrupted
    run would; one DataLoader (with persistent workers) serves the whole run.
    """

    def __init__(self, n: int, batch_size: int, seed: int, start_step: int, total_steps: int,
                 rank: int = 0, world_size: int = 1):
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.start_step, self.total_steps, self.rank, self.world_size = start_step, total_steps, rank, world_size
        self.per_epoch = steps_per_epoch(n, batch_size)
        if self.per_epoch == 0:
            raise DataError(f"only {n} training videos, fewer than train.batch_size={batch_size}")

    def __len__(self) -> int:
        return max(0, self.total_steps - self.start_step)

    def __iter__(self):
        step = self.start_step
        while step < self.total_steps:
            epoch, start_batch = divmod(step, self.per_epoch)
            batches = EpochBatches(self.n, self.batch_size, self.seed, epoch, start_batch, self.rank, self.world_size)
            for batch in batches:
                yield [(epoch, i) for i in batch]
                step += 1
                if step >= self.total_steps:
                    return


def steps_per_epoch(n: int, batch_size: int) -> int:
    return n // batch_size


def resolve(root: str | Path, rel: str) -> str:
    return str((Path(root) / rel).resolve())
