"""The supervised ceiling: the same backbone trained with the class labels, on the same frames,
augmentation, optimiser, schedule and budget as a self-supervised run of the same config.

Cross-entropy of a linear classifier on the pooled features of ``x_q`` (one augmented crop of a
random frame of each video, drawn exactly as the trainer draws it). The run directory holds what a
cckit run holds (``config.yaml``, ``metrics.jsonl``, ``checkpoints/last.pt`` with the backbone under
``encoder.backbone.*``), so every evaluation protocol and :func:`cckit.checkpoint.load_backbone`
read it unchanged. It is the top row of a comparison (floor -> self-supervised -> supervised),
not a method of CycleContrast.
"""
from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
import yaml

from .atomic import atomic_path, atomic_write
from .config import Config, to_dict
from .data.batch_augment import BatchAugment
from .data.dataset import RunBatches, TrainClips, steps_per_epoch
from .data.index import load_splits
from .errors import TrainingError
from .metrics import MetricsLog
from .model import build_backbone
from .schedule import cosine_schedule
from .utils import get_device, seed_everything


def train_supervised(cfg: Config, *, progress: bool = False) -> dict:
    """Train the supervised ceiling of ``cfg`` into ``cfg.run_dir``; returns a summary dict
    (``checkpoint``, ``steps``, ``train_seconds``, ``device``, ``final``). Labels come from the
    training videos' records; an unlabelled video raises :class:`TrainingError` naming it."""
    from .train import _knn_monitor, optimizer_for  # the trainer's monitor and optimiser

    t = cfg.train
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    device = get_device(t.device)
    seed_everything(t.seed)
    splits = load_splits(cfg.data)
    records = splits["train"]
    unlabelled = [r for r in records if r.label < 0]
    if unlabelled:
        raise TrainingError(f"{cfg.data.root}: the supervised ceiling needs class labels; video "
                            f"{unlabelled[0].video_id} ({unlabelled[0].path}) has none")
    dataset = TrainClips(records, cfg.data, seed=t.seed)
    per_epoch = steps_per_epoch(len(dataset), t.batch_size)
    total = t.max_steps or t.epochs * per_epoch
    label_of = torch.full((max(r.video_id for r in records) + 1,), -1, dtype=torch.long)
    for r in records:
        label_of[r.video_id] = r.label
    num_classes = int(label_of.max()) + 1

    net, dim = build_backbone(cfg.model.arch, small_stem=cfg.model.small_stem, bn_splits=1, width=cfg.model.width)
    classifier = nn.Linear(dim, num_classes)
    net, classifier = net.to(device).train(), classifier.to(device).train()
    optimizer = optimizer_for([*net.parameters(), *classifier.parameters()], cfg)
    lrs = cosine_schedule(t.lr, t.min_lr, total, t.warmup_steps)
    augment = BatchAugment(cfg.data)
    monitor = _knn_monitor(splits, cfg) if t.knn_every > 0 else None
    atomic_write(run_dir / "config.yaml", yaml.safe_dump({**to_dict(cfg), "supervised": True}, sort_keys=False))
    metrics = MetricsLog(run_dir)
    if monitor is not None:
        metrics.write({"step": 0, "epoch": 0, "knn_top1": monitor(net)})
    tic, row = time.perf_counter(), {}
    for step, items in enumerate(RunBatches(len(dataset), t.batch_size, t.seed, 0, total), start=1):
        frames, seeds, ids, _ = dataset.batch(items)
        x_q, _, _ = augment(frames, seeds, device, need_key=False)
        labels = label_of[ids].to(device)
        for group in optimizer.param_groups:
            group["lr"] = float(lrs[step - 1])
        logits = classifier(net(x_q))  # N x classes
        loss = F.cross_entropy(logits, labels)
        if not torch.isfinite(loss):
            raise TrainingError(f"step {step}: supervised loss is {float(loss)} (non-finite)")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        row = {"step": step, "epoch": (step - 1) // per_epoch, "loss": float(loss.detach()), "lr": float(lrs[step - 1]),
               "train_top1": float((logits.argmax(1) == labels).float().mean())}
        if monitor is not None and (step % t.knn_every == 0 or step == total):
            row["knn_top1"] = monitor(net)
        metrics.write(row)
    metrics.flush()
    train_seconds = round(time.perf_counter() - tic, 2)
    state = {"config": to_dict(cfg), "step": total, "supervised": True,
             "model": {**{f"encoder.backbone.{k}": v for k, v in net.state_dict().items()},
                       **{f"classifier.{k}": v for k, v in classifier.state_dict().items()}}}
    path = run_dir / "checkpoints" / "last.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return {"checkpoint": str(path), "steps": total, "train_seconds": train_seconds, "device": str(device),
            "train_steps_this_run": total, "final": row}
