"""Datasets over a video index: training triplets ``(x_q, x_k, x_p, video_id)`` and evaluation frames.

Every random choice of a training item is a pure function of ``(seed, epoch, index)``, so the
data order and augmentations do not depend on the number of workers and a resumed run sees the
same samples as an uninterrupted one.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..config import DataConfig
from ..errors import DataError
from .transforms import eval_transform, train_transform
from .video import read_all_frames, read_frames


@dataclass(frozen=True)
class VideoRecord:
    """One video of an index."""
    video_id: int
    path: str  # absolute path of the video file
    num_frames: int  # frames that decode
    label: int = -1  # class label (-1: unlabelled)
    split: str = "train"


def _item_seed(*parts: int) -> int:
    digest = hashlib.blake2b(np.asarray(parts, dtype=np.int64).tobytes(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF


class FrameStore:
    """Decoded frames of every video, read once (``cache=True``) or on demand."""

    def __init__(self, records: list[VideoRecord], cache: bool):
        self.records = records
        self.cache = [read_all_frames(r.path) for r in records] if cache else None
        if self.cache is not None:
            for r, frames in zip(records, self.cache):
                if len(frames) != r.num_frames:
                    raise DataError(f"{r.path}: index says {r.num_frames} frames but {len(frames)} decode")

    def get(self, i: int, frame_indices: list[int]) -> np.ndarray:
        """(len(frame_indices), H, W, 3) uint8 frames of video ``i``."""
        if self.cache is not None:
            return self.cache[i][frame_indices]
        return read_frames(self.records[i].path, frame_indices)


class TrainClips(Dataset):
    """Item ``i`` of epoch ``e``: two crops of a random frame f and one crop of a frame f' of video i.

    Returns ``(x_q, x_k, x_p, video_id)`` with images (3, S, S) float. ``f'`` is uniform over the
    video, or within ``max_frame_distance`` of f; a one-frame video uses f itself.
    """

    def __init__(self, records: list[VideoRecord], cfg: DataConfig, seed: int = 0, frames: FrameStore | None = None):
        self.records = records
        self.cfg = cfg
        self.seed = seed
        self.epoch = 0
        self.frames = frames or FrameStore(records, cfg.cache_frames)
        self.transform = train_transform(cfg)

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def sample_frames(self, i: int) -> tuple[int, int]:
        rng = np.random.default_rng(_item_seed(self.seed, self.epoch, i, 1))
        n = self.records[i].num_frames
        f = int(rng.integers(n))
        d = self.cfg.max_frame_distance
        lo, hi = (0, n - 1) if d <= 0 else (max(0, f - d), min(n - 1, f + d))
        return f, int(rng.integers(lo, hi + 1))

    def __getitem__(self, i: int):
        f, f2 = self.sample_frames(i)
        images = torch.from_numpy(self.frames.get(i, [f, f2])).permute(0, 3, 1, 2)  # 2 x 3 x H x W
        state = torch.get_rng_state()
        torch.manual_seed(_item_seed(self.seed, self.epoch, i, 2))  # augmentations: pure in (seed, epoch, i)
        x_q, x_k, x_p = self.transform(images[0]), self.transform(images[0]), self.transform(images[1])
        torch.set_rng_state(state)
        return x_q, x_k, x_p, self.records[i].video_id


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


def steps_per_epoch(n: int, batch_size: int) -> int:
    return n // batch_size


def resolve(root: str | Path, rel: str) -> str:
    return str((Path(root) / rel).resolve())
