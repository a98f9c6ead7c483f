"""The trainer: one explicit ``train_step`` and the loop around it (data, schedule, logs, checkpoints)."""
from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import torch
import yaml
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .atomic import atomic_write
from .config import Config, to_dict
from .data.dataset import Batched, RunBatches, TrainClips, steps_per_epoch
from .data.index import load_splits
from .data.batch_augment import BatchAugment
from .distributed import all_gather, all_reduce_mean, barrier, init_distributed
from .errors import ConfigError, TrainingError, TrainingInterrupted  # noqa: F401  (raised here; importable from cckit.train)
from .metrics import MetricsLog
from .model import CycleContrastModel, enqueue, update_momentum
from .methods import get_method
from .objective import Embeddings, Queues, compute_objective
from .runs import StopSignals, check_disk, check_run_dir, make_state, resume, save_state
from .schedule import cosine_schedule
from .utils import amp_dtype, autocast, get_device, seed_everything, step_generator

log = logging.getLogger(__name__)


def build_optimizer(model: CycleContrastModel, cfg: Config) -> torch.optim.Optimizer:
    """SGD (paper) or AdamW over the online encoder; biases and norms get no weight decay."""
    return optimizer_for(model.encoder.parameters(), cfg)


def optimizer_for(params, cfg: Config) -> torch.optim.Optimizer:
    """``train.optimizer`` over ``params``: weight decay on weights, none on biases and norms."""
    decay, no_decay = [], []
    for p in params:
        (no_decay if p.ndim <= 1 else decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.train.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.train.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.train.lr, momentum=cfg.train.momentum)
    return torch.optim.AdamW(groups, lr=cfg.train.lr)


def train_step(model: CycleContrastModel, optimizer: torch.optim.Optimizer, batch, cfg: Config, *,
               step: int, lr: float, dtype: torch.dtype | None = None,
               scaler: torch.amp.GradScaler | None = None, encoder: torch.nn.Module | None = None,
               timings: dict[str, float] | None = None, video_labels: torch.Tensor | None = None) -> dict[str, float]:
    """One optimisation step: EMA -> encode -> losses -> backward -> optimizer -> enqueue.

    ``batch`` is ``(x_q, x_k, x_p, video_ids)`` with images (N, 3, S, S); the device is the
    model's. ``encoder`` is the online encoder to run (its DDP wrapper under torchrun; default
    ``model.encoder``). With a ``timings`` dict, each phase's seconds are added to it (the device
    is synchronised between phases, so only benchmarks pass one). ``video_labels`` (the class of
    each video id, :func:`video_label_table`) is read only by ``method.support_oracle``. Returns
    the loss terms and diagnostics as floats (this rank's).
    """
    device = model.queue_intra.device
    mark = _Marks(timings, device)
    # A 5th element (TrainClips' per-sample 'replaced' flags) is counted by the loop, not used here.
    # x_k may be None where the objective never reads it (the online variant of the frame methods)
    x_q, x_k, x_p, video_ids = (None if t is None else t.to(device, non_blocking=True) for t in batch[:4])
    if cfg.train.channels_last:
        x_q, x_k, x_p = (None if x is None else x.contiguous(memory_format=torch.channels_last)
                         for x in (x_q, x_k, x_p))
    for group in optimizer.param_groups:
        group["lr"] = lr
    n = x_q.shape[0]
    needs_other_frame = get_method(cfg.method.name).needs_other_frame

    # 1. momentum encoder: EMA of the online encoder, before the key pass (as the official MoCo and
    # CycleContrast forward does; unused by the online variant's keys, kept in step)
    update_momentum(model.encoder, model.encoder_m, cfg.model.momentum)

    # 2. encode. Paper: online query, momentum keys (x_k) and positives (x_p) in one momentum pass.
    # method.key_encoder=online: the query and its second view (x_k for moco_v2, x_p otherwise) in
    # one online pass with gradient; the queues then take the second view's detached embeddings.
    online = cfg.method.key_encoder == "online"
    run = model.encoder if encoder is None else encoder
    with autocast(device, dtype):
        if online:
            second = x_k if not needs_other_frame else x_p
            z, c = run(torch.cat([x_q, second]))  # 2N x D each
            q_z, q_c, s_z, s_c = z[:n], c[:n], z[n:], c[n:]
            mark("forward_query")
        else:
            q_z, q_c = run(x_q)  # N x D each
            mark("forward_query")
            keys_in = torch.cat([x_k, x_p]) if needs_other_frame else x_k
            m_z, m_c = model.encode_momentum(keys_in, generator=step_generator(cfg.train.seed, step, salt=1))
    if online:
        k_z, k_c = s_z.detach(), s_c.detach()
        emb = Embeddings(query_intra=q_z, query_cycle=q_c, key_intra=k_z, positive_intra=s_z,
                         positive_cycle=k_c, key_cycle=k_c, video_ids=video_ids)
    else:
        k_z, k_c = m_z[:n], m_c[:n]
        p_z, p_c = (m_z[n:], m_c[n:]) if needs_other_frame else (None, None)
        emb = Embeddings(query_intra=q_z, query_cycle=q_c, key_intra=k_z, positive_intra=p_z,
                         positive_cycle=p_c, key_cycle=k_c, video_ids=video_ids)
    mark("forward_momentum")

    # 3. losses
    loss, stats = compute_objective(emb, Queues.of(model), cfg.method, step_generator(cfg.train.seed, step), step,
                                    video_labels)
    values = {k: float(v) for k, v in stats.items()}
    for name, value in values.items():
        if name.startswith("loss") and not math.isfinite(value):
            raise TrainingError(f"step {step + 1}: {name} is {value} (non-finite); stopped before updating "
                                f"the weights, the last checkpoint is kept")
    mark("loss")

    # 4. backward + optimizer
    optimizer.zero_grad(set_to_none=True)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
    else:
        loss.backward()
        optimizer.step()
    mark("backward_optimizer")

    # 5. enqueue the keys of x_k (both heads; online variant: the second view's) with their video ids,
    # gathered from every rank
    ids_all = all_gather(video_ids)
    enqueue(model.queue_intra, model.queue_intra_ids, model.queue_ptr, 0, all_gather(k_z), ids_all)
    enqueue(model.queue_cycle, model.queue_cycle_ids, model.queue_ptr, 1, all_gather(k_c), ids_all)
    mark("ema_enqueue")
    return values


class _Marks:
    """Adds the seconds since the previous mark to ``timings[name]`` (no-op without a dict)."""

    def __init__(self, timings: dict | None, device: torch.device):
        self.timings, self.device = timings, device
        self.last = time.perf_counter() if timings is not None else 0.0

    def __call__(self, name: str) -> None:
        if self.timings is None:
            return
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        now = time.perf_counter()
        self.timings[name] = self.timings.get(name, 0.0) + now - self.last
        self.last = now


def _knn_monitor(splits: dict, cfg: Config):
    """The kNN monitor of ``train.knn_every`` on the evaluation frames of the run's data."""
    from .eval.suite import eval_frame_sets  # evaluation stands beside training; imported when monitoring
    from .eval.monitor import KnnMonitor

    if not splits.get("test"):
        raise TrainingError(f"train.knn_every={cfg.train.knn_every}: {cfg.data.root} has no test videos to monitor "
                            f"(set train.knn_every=0)")
    memory_set, query_set = eval_frame_sets(splits, cfg)
    try:
        return KnnMonitor(memory_set, query_set, k=cfg.eval.knn_k[0], temperature=cfg.eval.knn_temperature,
                          max_queries=cfg.train.knn_queries)
    except ValueError as e:
        raise TrainingError(str(e)) from None


def _training_data(cfg: Config, dist_info):
    """The run's splits (rank 0 generates or validates the data first), its training clips, the
    steps per epoch and the run's total steps."""
    t = cfg.train
    splits = load_splits(cfg.data) if dist_info.is_main else None
    if dist_info.enabled:
        barrier()  # rank 0 generated / validated the data first
        splits = splits or load_splits(cfg.data, generate=False)
    dataset = TrainClips(splits["train"], cfg.data, seed=t.seed)
    per_epoch = steps_per_epoch(len(dataset), t.batch_size)
    if per_epoch == 0:
        raise TrainingError(f"{cfg.data.root}: {len(dataset)} training videos, fewer than train.batch_size={t.batch_size}")
    return splits, dataset, per_epoch, t.max_steps or t.epochs * per_epoch


def video_label_table(records, device: torch.device | str = "cpu") -> torch.Tensor:
    """(V,) the class of each training video, indexed by video id (-1 for ids with no video): what
    ``method.support_oracle`` reads. ConfigError naming a video without a label."""
    unlabelled = next((r for r in records if r.label < 0), None)
    if unlabelled is not None:
        raise ConfigError(f"method.support_oracle: needs the class of every training video; {unlabelled.path} has none")
    table = torch.full((max(r.video_id for r in records) + 1,), -1, dtype=torch.long)
    table[torch.tensor([r.video_id for r in records])] = torch.tensor([r.label for r in records])
    return table.to(device)


def _build(cfg: Config, device: torch.device, dist_info):
    """Model (seeded by ``train.seed``), optimizer, autocast dtype and fp16 gradient scaler."""
    t = cfg.train
    seed_everything(t.seed)
    model = CycleContrastModel(cfg.model)
    if dist_info.enabled and cfg.model.sync_bn:
        model.encoder = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model.encoder)
    model = model.to(device)
    if t.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, cfg)
    dtype = amp_dtype(t.amp, device)
    scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
    return model, optimizer, dtype, scaler


def training_batches(cfg: Config, dataset: TrainClips, device: torch.device, *, start_step: int = 0,
                     total: int | None = None, rank: int = 0, world_size: int = 1):
    """The trainer's batches from ``start_step`` to ``total`` (default: ``cfg``'s run length), each
    as :func:`train_step` takes it, with the seconds spent waiting for the frames and augmenting.

    Yields ``(batch, data_wait, augment_time)``; ``batch`` is ``(x_q, x_k, x_p, video_ids, replaced)``
    (``x_k`` None where the method never reads it). With ``data.augment=batch`` the loader gathers
    uint8 frames and :class:`BatchAugment` makes the views on ``device`` in one call; with
    ``loader`` the dataset's workers return the views. Benchmarks draw their batches from here too,
    so a change of batch format reaches them.
    """
    t = cfg.train
    total = total or t.max_steps or t.epochs * steps_per_epoch(len(dataset), t.batch_size)
    augment = BatchAugment(cfg.data) if cfg.data.augment == "batch" else None
    # the online variant of the frame methods never reads x_k: its pixels are skipped
    needs_key = get_method(cfg.method.name).needs_key_view(cfg.method.key_encoder)
    sampler = RunBatches(len(dataset), t.batch_size, t.seed, start_step, total, rank=rank, world_size=world_size)
    # each sampler item is a whole batch, gathered by TrainClips.batch in one pass (batch_size=None)
    loader = DataLoader(Batched(dataset), sampler=sampler, batch_size=None, num_workers=cfg.data.workers,
                        pin_memory=device.type == "cuda", persistent_workers=cfg.data.workers > 0,
                        generator=torch.Generator().manual_seed(t.seed))  # global RNG untouched
    tic = time.perf_counter()
    for batch in loader:
        data_wait = time.perf_counter() - tic
        if augment is not None:  # (frames, seeds, ids, replaced) -> (x_q, x_k, x_p, ids, replaced)
            batch = (*augment(batch[0], batch[1], device, need_key=needs_key), *batch[2:])
        yield batch, data_wait, time.perf_counter() - tic - data_wait
        tic = time.perf_counter()


def train(cfg: Config, *, progress: bool = True) -> dict:
    """Train ``cfg`` to the end (or resume it); returns a summary dict.

    Writes ``run_dir/config.yaml``, ``run_dir/metrics.jsonl`` (one JSON line per step) and
    ``run_dir/checkpoints/last.pt`` (atomically, every epoch or ``train.checkpoint_every`` steps).
    Under ``torchrun`` each rank trains on its slice of every global batch of ``train.batch_size``
    and only rank 0 writes. SIGINT/SIGTERM save a checkpoint of the last finished step and raise
    :class:`TrainingInterrupted`.
    """
    t = cfg.train
    run_dir = Path(cfg.run_dir)
    device = get_device(t.device)
    dist_info = init_distributed(device.type)
    if dist_info.enabled and device.type == "cuda":
        device = torch.device("cuda", dist_info.local_rank)
    if t.batch_size % dist_info.world_size:
        raise TrainingError(f"train.batch_size={t.batch_size} is not divisible by the {dist_info.world_size} processes")
    main = dist_info.is_main
    if main:
        check_run_dir(run_dir)
    if cfg.resume not in ("none", "auto") and not Path(cfg.resume).is_file():
        raise TrainingError(f"{cfg.resume}: checkpoint to resume from not found (resume=)")
    if t.threads > 0:
        torch.set_num_threads(t.threads)
    splits, dataset, per_epoch, total = _training_data(cfg, dist_info)
    video_labels = video_label_table(splits["train"], device) if cfg.method.support_oracle else None
    lrs = cosine_schedule(t.lr, t.min_lr, total, t.warmup_steps)

    model, optimizer, dtype, scaler = _build(cfg, device, dist_info)
    if main:
        check_disk(run_dir, model)

    step, resumed_from = resume(cfg, run_dir, model, optimizer, scaler, device)
    encoder = model.encoder
    if dist_info.enabled:
        encoder = torch.nn.parallel.DistributedDataParallel(
            model.encoder, device_ids=[device.index] if device.type == "cuda" else None)
    if t.compile:  # the compiled wrapper shares the parameters; checkpoints keep plain names
        encoder = torch.compile(encoder)
    monitor = _knn_monitor(splits, cfg) if main and t.knn_every > 0 else None
    if main:
        atomic_write(run_dir / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False))
    ckpt_path = run_dir / "checkpoints" / "last.pt"
    ckpt_every = t.checkpoint_every or per_epoch

    start_time, start_step, values = time.perf_counter(), step, {}
    bar = tqdm(total=total, initial=step, disable=not (progress and main), desc=cfg.method.name, unit="step")
    model.train()
    metrics = MetricsLog(run_dir, resume_step=step) if main else None
    knn_last = None
    cycle_settings = {"support_size": cfg.method.support_size,  # of the diagnostics logged with each kNN reading
                      "nn_temperature": cfg.method.nn_temperature or cfg.method.temperature}
    if monitor is not None and step == 0:  # the random-init point of the curve
        knn_last = monitor(model.encoder.backbone)
        metrics.write({"step": 0, "epoch": 0, "knn_top1": knn_last, **monitor.diagnostics(model, **cycle_settings)})
    try:
        with StopSignals() as stop:
            batches = training_batches(cfg, dataset, device, start_step=step, total=total,
                                       rank=dist_info.rank, world_size=dist_info.world_size)
            tic = time.perf_counter()
            for batch, data_wait, augment_time in batches:
                augmented = time.perf_counter()
                values = train_step(model, optimizer, batch, cfg, step=step, lr=float(lrs[step]), dtype=dtype, scaler=scaler,
                                    encoder=encoder, video_labels=video_labels)  # returns floats: the step has finished
                stepped = time.perf_counter()
                values = all_reduce_mean(values)
                step += 1
                elapsed = time.perf_counter() - tic
                epoch = (step - 1) // per_epoch
                values.update(step=step, epoch=epoch, lr=float(lrs[step - 1]), data_wait=data_wait,
                              augment_time=augment_time, step_time=stepped - augmented,
                              images_per_s=t.batch_size / max(elapsed, 1e-9),
                              replaced_samples=int(batch[4].sum()) if len(batch) > 4 else 0)
                if monitor is not None and (step % t.knn_every == 0 or step == total):
                    values["knn_top1"] = knn_last = monitor(model.encoder.backbone)
                    values.update(monitor.diagnostics(model, **cycle_settings))
                if main:
                    metrics.write(values)
                    bar.update(1)
                    if step % t.log_every == 0 or step == total:
                        metrics.flush()
                        shown = {k: f"{values[k]:.3g}" for k in ("loss", "intra_top1", "cycle_rate") if k in values}
                        if knn_last is not None:
                            shown["knn"] = f"{knn_last:.3f}"
                        bar.set_postfix(shown)
                if main and (step % ckpt_every == 0 or step == total or stop.received):
                    metrics.flush()  # metrics of every step a checkpoint holds survive a kill
                    save_state(ckpt_path.parent, make_state(model, optimizer, cfg, step, epoch, scaler), t.keep_checkpoints)
                if stop.received:
                    raise TrainingInterrupted(f"{stop.received} at step {step}: checkpoint saved to {ckpt_path}")
                if step >= total:
                    break
                tic = time.perf_counter()
    finally:
        bar.close()
        if metrics is not None:
            metrics.close()
    seconds = time.perf_counter() - start_time
    return {"run_dir": str(run_dir), "checkpoint": str(ckpt_path), "steps": step, "train_steps_this_run": step - start_step,
            "train_seconds": round(seconds, 2), "device": str(device), "world_size": dist_info.world_size,
            "method": cfg.method.name, "resumed_from": resumed_from, "final": values if step > start_step else None}
