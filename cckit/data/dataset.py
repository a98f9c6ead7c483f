"""Datasets over a video index: training triplets ``(x_q, x_k, x_p, video_id, replaced)`` and evaluation frames.

Every random choice of a training item is a pure function of ``(seed, epoch, index)``, so the
data order and augmentations do not depend on the number of workers and a resumed run sees the
same samples as an uninterrupted one. That includes the replacement of a video that fails to
decode mid-run (a file changed on disk): the stand-in video is drawn from the same seed.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate
from torchvision.transforms import v2

from ..config import DataConfig
from ..errors import DataError
from .batch_augment import BatchAugment, mix_seeds, uniforms
from .frame_store import FrameStore
from .records import VideoRecord
from .transforms import eval_transform, seeded_views, train_transform

log = logging.getLogger(__name__)
MAX_REPLACEMENTS = 10  # stand-in videos tried for one item before the failure is raised


def _item_seed(*parts: int) -> int:
    digest = hashlib.blake2b(np.asarray(parts, dtype=np.int64).tobytes(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & 0x7FFF_FFFF_FFFF_FFFF


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
        self.frames = frames or FrameStore.from_config(records, cfg)
        self.transform = train_transform(cfg)
        self.num_frames = np.array([r.num_frames for r in records], dtype=np.int64)
        self.video_ids = np.array([r.video_id for r in records], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def sample_frames(self, i: int, epoch: int | None = None) -> tuple[int, int]:
        """Frames ``(f, f')`` of video ``i``: f uniform, f' uniform or within ``max_frame_distance``."""
        f, f2 = self._frame_picks(np.array([self.epoch if epoch is None else epoch]), np.array([i]))
        return int(f[0]), int(f2[0])

    def _frame_picks(self, epochs: np.ndarray, videos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(f, f')`` of every ``(epoch, video)`` pair at once, from two counter-based uniforms of
        the item's seed (:func:`~cckit.data.batch_augment.uniforms`): a pure function of the item."""
        u = uniforms(mix_seeds(self.seed, epochs, videos, 1), 0, 2)
        return _pick_frames(self.num_frames[videos], u[:, 0], u[:, 1], self.cfg.max_frame_distance)

    def _read_pair(self, epoch: int, i: int, picks: tuple[int, int]) -> tuple[int, np.ndarray, bool]:
        """(video actually used, its 2 x H x W x 3 frames f and f', whether it replaced video i)."""
        j, (f, f2) = i, picks
        for attempt in range(1, MAX_REPLACEMENTS + 2):
            try:
                return j, self.frames.get(j, [f, f2]), attempt > 1
            except DataError as error:
                if attempt > MAX_REPLACEMENTS:
                    raise DataError(f"{error} (and {MAX_REPLACEMENTS} stand-in videos failed too)") from error
                log.warning("%s; using another video for this sample", error)
                u = uniforms([_item_seed(self.seed, epoch, i, 3, attempt)], 0, 3)
                j = min(int(u[0, 0] * len(self.records)), len(self.records) - 1)
                f, f2 = (int(x[0]) for x in _pick_frames(self.num_frames[[j]], u[:, 1], u[:, 2],
                                                          self.cfg.max_frame_distance))

    def __getitem__(self, item):
        """``item`` is a video index (uses ``self.epoch``) or an ``(epoch, index)`` pair from
        :class:`RunBatches`, which lets one persistent DataLoader span epochs."""
        if self.cfg.augment == "batch":
            frames, seeds, ids, replaced = self.batch([item])
            return frames[0], int(seeds[0]), int(ids[0]), bool(replaced[0])
        epoch, i = item if isinstance(item, tuple) else (self.epoch, item)
        j, frames, replaced = self._read_pair(epoch, i, self.sample_frames(i, epoch))
        images = torch.from_numpy(frames).permute(0, 3, 1, 2)  # 2 x 3 x H x W
        seed = int(mix_seeds(self.seed, epoch, i, 2)[0])  # augmentations are pure in (seed, epoch, i)
        x_q, x_k, x_p = seeded_views(self.transform, images[0], images[1], seed)
        return x_q, x_k, x_p, self.records[j].video_id, replaced

    def batch(self, items) -> tuple:
        """The collated batch of ``items`` (indices or ``(epoch, index)`` pairs): what the default
        collate makes of ``[self[item] for item in items]``. With ``data.augment=batch`` it is
        gathered in one pass, ``(frames (N, 2, 3, size, size) uint8, seeds, video_ids, replaced)``;
        from the in-memory block the frames are a view of its row-planar (N, 2, H, 3, W) layout."""
        if self.cfg.augment != "batch":
            return default_collate([self[item] for item in items])
        pairs = [item if isinstance(item, tuple) else (self.epoch, item) for item in items]
        epochs, videos = (np.array(column, dtype=np.int64) for column in zip(*pairs))
        picks = np.stack(self._frame_picks(epochs, videos), axis=1)  # N x 2
        frames = self.frames.take(videos, picks)  # one index of the in-memory block
        if frames is not None:
            ids, replaced = self.video_ids[videos], np.zeros(len(videos), dtype=bool)
            images = torch.from_numpy(frames).permute(0, 1, 3, 2, 4)  # N x 2 x 3 x H x W, as stored
        else:  # read per video (on demand, or a video failed and another stands in)
            frames, ids, replaced = [], [], []
            for epoch, i, pick in zip(epochs, videos, picks):
                j, pair, was_replaced = self._read_pair(int(epoch), int(i), (int(pick[0]), int(pick[1])))
                frames.append(self._resized(torch.from_numpy(pair).permute(0, 3, 1, 2)))  # sizes may differ
                ids.append(self.records[j].video_id)
                replaced.append(was_replaced)
            images = torch.stack(frames)
        images = self._resized(images)
        return (images, torch.from_numpy(mix_seeds(self.seed, epochs, videos, 2)),  # BatchAugment draws from these
                torch.as_tensor(ids), torch.as_tensor(replaced))

    def _resized(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames (..., 3, H, W) at ``data.size`` (frames of one size batch together)."""
        size = self.cfg.size
        if frames.shape[-2:] == (size, size):
            return frames
        lead = frames.shape[:-3]
        out = v2.functional.resize(frames.reshape(-1, *frames.shape[-3:]), [size, size], antialias=True)
        return out.reshape(*lead, *out.shape[-3:])

    def views(self, items, device: torch.device | str = "cpu") -> tuple[torch.Tensor, ...]:
        """``(x_q, x_k, x_p, video_ids)`` of ``items`` (indices or ``(epoch, index)`` pairs) exactly
        as the trainer sees them, whichever ``data.augment`` (batch: augmented here on ``device``)."""
        batch = self.batch(items)
        if self.cfg.augment != "batch":
            return tuple(batch[:4])
        return (*BatchAugment(self.cfg)(batch[0], batch[1], torch.device(device)), batch[2])


class EvalFrames(Dataset):
    """``frames_per_video`` evenly spaced frames of each video: ``(image, label, video_id, frame_index)``."""

    def __init__(self, records: list[VideoRecord], frames_per_video: int, size: int, frames: FrameStore | None = None):
        self.records = records
        self.frames = frames or FrameStore(records, in_memory=False)
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


def _pick_frames(num_frames: np.ndarray, u: np.ndarray, u2: np.ndarray, max_distance: int):
    """Frames ``f`` (uniform over each video) and ``f'`` (uniform over the video, or over the frames
    within ``max_distance`` of f) of videos of ``num_frames`` frames, from uniforms ``u``, ``u2`` in [0, 1)."""
    f = np.minimum(np.floor(u * num_frames).astype(np.int64), num_frames - 1)
    if max_distance <= 0:
        lo, hi = np.zeros_like(f), num_frames - 1
    else:
        lo, hi = np.maximum(0, f - max_distance), np.minimum(num_frames - 1, f + max_distance)
    return f, lo + np.minimum(np.floor(u2 * (hi - lo + 1)).astype(np.int64), hi - lo)


class Batched(Dataset):
    """Item ``items`` is the whole collated batch ``dataset.batch(items)``: for a DataLoader with
    ``sampler=RunBatches(...)`` and ``batch_size=None``, so a batch is gathered in one pass."""

    def __init__(self, dataset: "TrainClips"):
        self.dataset = dataset

    def __getitem__(self, items):
        return self.dataset.batch(items)


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
