"""A notebook session: the fast-mode config, checkpoints trained on demand, models, frames and banks.

This is the job layer's counterpart for notebooks (it trains and loads; :mod:`cckit.viz` only
draws). Library code does not read the environment; a notebook's parameters cell reads
``CCKIT_FAST`` and passes ``fast=`` here.
"""
from __future__ import annotations

from pathlib import Path

import torch

from .checkpoint import load_checkpoint, load_model
from .config import Config, load_config, replace
from .data.dataset import EvalFrames, steps_per_epoch
from .data.frame_store import FrameStore
from .data.index import load_splits
from .data.records import class_names as records_class_names
from .model import random_model
from .utils import get_device
from .viz.bank import FrameBank, frame_bank

# Fast mode (CCKIT_FAST=1): small enough that every notebook runs in well under two minutes on a
# 2-core CPU, big enough that each figure has something in it (a few frames of every class).
FAST_OVERRIDES = [
    "data.num_train=48", "data.num_test=16", "data.size=32", "data.crop_size=32", "data.frames_per_video=[4,8]",
    "data.workers=0", "model.arch=resnet10", "model.queue_size=128", "model.cycle_queue_size=128",
    "model.bn_splits=2", "method.support_size=64", "train.batch_size=16", "train.max_steps=12",
    "train.warmup_steps=2", "train.log_every=1", "train.checkpoint_every=12", "train.keep_checkpoints=0",
    "eval.frames_per_video=4", "eval.knn_k=[5,20]", "eval.batch_size=64", "eval.linear_weight_decay=[0.001,0.01]",
    "eval.linear_max_iter=50",
]


def notebook_config(config: str | Path | None, *, fast: bool = False, run_dir: str | Path | None = None,
                    data_root: str | Path | None = None, overrides: list[str] | tuple = ()) -> Config:
    """The config a notebook runs: a preset, the fast-mode overrides when ``fast``, then the notebook's own.

    ``resume`` is ``auto`` so that a notebook continues (or reuses) the run another notebook started.
    """
    extra = list(FAST_OVERRIDES if fast else []) + ["resume=auto"]
    if run_dir is not None:
        extra.append(f"run_dir={run_dir}")
    if data_root is not None:
        extra.append(f"data.root={data_root}")
    return load_config(config, extra + list(overrides))


def method_config(cfg: Config, method: str) -> Config:
    """The same setting with another method; its run goes to ``<run_dir>_<method>`` unless it is cfg's own."""
    if method == cfg.method.name:
        return cfg
    return replace(cfg, run_dir=f"{cfg.run_dir}_{method}", method={"name": method})


def ensure_checkpoint(cfg: Config, *, progress: bool = True) -> Path:
    """``run_dir/checkpoints/last.pt``, training ``cfg`` first (resuming a partial run) if it is not finished."""
    from .train import train  # deferred: the trainer pulls in the data loaders

    path = Path(cfg.run_dir) / "checkpoints" / "last.pt"
    if path.is_file():
        total = cfg.train.max_steps or cfg.train.epochs * steps_per_epoch(len(load_splits(cfg.data)["train"]),
                                                                          cfg.train.batch_size)
        if int(load_checkpoint(path)["step"]) >= total:
            return path
    if progress:
        print(f"training {cfg.method.name} into {cfg.run_dir} ({cfg.train.max_steps or cfg.train.epochs} "
              f"{'steps' if cfg.train.max_steps else 'epochs'}; a partial run there is resumed)", flush=True)
    return Path(train(replace(cfg, resume="auto"), progress=progress)["checkpoint"])


def class_names(cfg: Config) -> list[str]:
    """Class names by label, from the records of the data (generated, a manifest, or a user's class folders)."""
    splits = load_splits(cfg.data)
    return records_class_names([r for records in splits.values() for r in records])


def eval_frames(cfg: Config, split: str = "test", *, frames_per_video: int | None = None,
                max_videos: int | None = None) -> EvalFrames:
    """Evenly spaced frames of the videos of one split (decoded once), as the evaluation uses them."""
    records = load_splits(cfg.data)[split][:max_videos]
    return EvalFrames(records, frames_per_video or cfg.eval.frames_per_video, cfg.data.crop_size,
                      frames=FrameStore(records, in_memory=True))


def checkpoint_bank(checkpoint: str | Path | None, cfg: Config, dataset: EvalFrames, *, name: str | None = None,
                    device: torch.device | str | None = None) -> FrameBank:
    """A bank of ``dataset`` under a checkpoint's model (``None``: a random-init model of ``cfg``)."""
    device = get_device(cfg.train.device) if device is None else device
    if checkpoint is None:
        model, label = random_model(cfg, cfg.train.seed), "random init"
    else:
        model, ckpt_cfg = load_model(checkpoint, device)
        label = ckpt_cfg.method.name
    return frame_bank(model, dataset, name=name or label, device=device, batch_size=cfg.eval.batch_size,
                      class_names=records_class_names(dataset.records))  # the frames' own records: no re-indexing


def model_banks(cfg: Config, dataset: EvalFrames, methods=(), *, random_init: bool = True,
                progress: bool = True) -> dict[str, FrameBank]:
    """Banks of the same frames under ``cfg``'s model, under each of ``methods`` (each trained on
    demand in ``<run_dir>_<method>``) and, with ``random_init``, under an untrained model."""
    banks = {}
    for method in dict.fromkeys([cfg.method.name, *methods]):
        method_cfg = method_config(cfg, method)
        banks[method] = checkpoint_bank(ensure_checkpoint(method_cfg, progress=progress), method_cfg, dataset)
    if random_init:
        banks["random init"] = checkpoint_bank(None, cfg, dataset)
    return banks


def first_batch(cfg: Config, *, epoch: int = 0) -> tuple:
    """The batch ``(x_q, x_k, x_p, video_ids)`` the trainer draws first in ``epoch`` (step 0 for epoch 0)."""
    from .data.dataset import EpochBatches, TrainClips

    clips = TrainClips(load_splits(cfg.data)["train"], cfg.data, seed=cfg.train.seed)
    batch = next(iter(EpochBatches(len(clips), cfg.train.batch_size, cfg.train.seed, epoch)))
    return clips.views([(epoch, i) for i in batch])


def diagnostics_table(cfg: Config, dataset: EvalFrames, *, device: torch.device | str | None = None) -> dict:
    """:func:`cckit.diagnostics.cycle_diagnostics` of ``cfg``'s trained run and of a random-init model
    on the frames of ``dataset`` (support bank: half of its videos): ``{"trained": {...}, "random init": {...}}``."""
    from .diagnostics import cycle_diagnostics
    from .eval.monitor import stack_frames

    device = get_device(cfg.train.device) if device is None else device
    frames, labels, videos = stack_frames(dataset, with_videos=True)
    trained, _ = load_model(ensure_checkpoint(cfg), device)
    models = {"trained": trained, "random init": random_model(cfg, cfg.train.seed).to(device)}
    t_nn = cfg.method.nn_temperature or cfg.method.temperature
    return {name: cycle_diagnostics(model, frames, labels, videos, support_size=cfg.method.support_size,
                                    nn_temperature=t_nn, batch_size=cfg.eval.batch_size)
            for name, model in models.items()}
