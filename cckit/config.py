"""Configuration: frozen dataclasses (one per concern), YAML presets and ``key=value`` overrides.

A preset under ``configs/`` is a YAML mapping with the sections below; any field can be
overridden as ``train.lr=0.03``. Every key and value is checked before anything runs and a
mistake raises :class:`cckit.errors.ConfigError` naming the key.
"""
from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import ConfigError
from .methods import METHODS as _METHODS

METHODS = tuple(_METHODS)  # the registry of cckit.methods, in its order


@dataclass(frozen=True)
class DataConfig:
    source: str = "synthetic"  # "synthetic" (generated moving digits) or "manifest" (a cckit manifest.json root)
    root: str = "data/digits"  # dataset folder (holds manifest.json and videos/)
    style: str = "easy"  # synthetic difficulty preset: "easy", "clutter" (quickstart: per-frame background clutter) or "hard"
    num_train: int = 1000  # synthetic: training videos
    num_test: int = 200  # synthetic: test videos (disjoint digit instances)
    frames_per_video: tuple[int, int] = (8, 16)  # synthetic: frames per video, drawn in [lo, hi]
    size: int = 64  # synthetic: frame side in pixels
    seed: int = 0  # synthetic: generator seed
    crop_size: int = 64  # side of the augmented training crops
    max_frame_distance: int = 0  # x_p is at most this many frames from x_q (0: anywhere in the video)
    crop_scale: tuple[float, float] = (0.2, 1.0)  # RandomResizedCrop area range (MoCo v2: 0.2-1)
    color_jitter: float = 0.4  # brightness/contrast/saturation jitter
    hue: float = 0.1  # hue jitter (MoCo v2: 0.1; 0.5 = any hue, for data whose colour is a per-video nuisance)
    color_jitter_prob: float = 0.8  # probability of colour jitter
    grayscale_prob: float = 0.2  # probability of grayscale
    blur_prob: float = 0.5  # probability of Gaussian blur (sigma scaled to the crop size)
    flip: bool = True  # random horizontal flip
    color_ops: str = "torchvision"  # "torchvision": ColorJitter's ops exactly (clamp after each, hue in HSV); "matrix": each op a 3x3 colour matrix (hue a YIQ rotation), one affine map and one clamp per view, blur folded into the crop (faster on a CPU)
    augment: str = "batch"  # "batch": the loader gathers uint8 frames, one batched call per step augments them on the training device; "loader": per-sample torchvision ops in the loader workers
    workers: int = 2  # DataLoader worker processes (0: load in the main process)
    frames_in_memory: bool = True  # decode every video once and keep the frames in memory (small data)
    on_error: str = "raise"  # unusable video/frame file while indexing: "raise" (DataError) or "skip" (listed in the report)
    single_frame: str = "same"  # one-frame videos: "same" (x_p = x_q's frame; counted in the report) or "exclude"
    labels: str = "folders"  # videos/frames/r2v2: "folders" (class = first sub-folder under the split root) or "none"
    train_list: str = ""  # videos/frames: split file of training videos, UCF101 style (relative to root); "" = all not in test_list
    test_list: str = ""  # videos/frames: split file of test videos, e.g. ucfTrainTestlist/testlist01.txt
    extracted_frames: str = ""  # folder written by `cckit data extract`; frames are read from it instead of decoding
    seek_index_cache: str = ""  # folder of each video's frame/keyframe index ("": $CCKIT_CACHE_DIR or ~/.cache/cckit/video_index, "off": none)
    cache_limit_gb: float = 8.0  # frames_in_memory only while all decoded frames fit in this many GB, else read on demand


@dataclass(frozen=True)
class ModelConfig:
    arch: str = "resnet18"  # torchvision ResNet: resnet10 (BasicBlock [1,1,1,1]), resnet18, resnet34, resnet50
    width: int = 64  # ResNet base channels (64 = torchvision exactly; 16 or 32 for CPU presets)
    small_stem: bool = False  # 3x3 stride-1 stem without max-pool, for small frames (<= 64 px)
    embed_dim: int = 128  # output of both heads (paper: 128)
    shared_heads: bool = False  # use the intra head z for the cycle too (ablation)
    head_bn: bool = False  # BatchNorm after the hidden layer of both heads (MoCo v2/paper: no)
    momentum: float = 0.999  # EMA coefficient m of the momentum encoder
    bn_splits: int = 8  # split-BN groups on one device, standing in for shuffle-BN (1: plain BN)
    sync_bn: bool = False  # under torchrun: SyncBatchNorm in the online encoder (keys still shuffle-BN)
    queue_size: int = 65536  # K, length of the intra queue Q_z
    cycle_queue_size: int = 81920  # K_c, length of the cycle queue Q_c


@dataclass(frozen=True)
class MethodConfig:
    name: str = "cycle_contrast"  # moco_v2 | intra_video | cycle_contrast | forward_nn
    temperature: float = 0.07  # T of every InfoNCE
    nn_temperature: float | None = None  # T_nn of the soft neighbour (None: same as temperature)
    cycle_weight: float = 0.1  # lambda, weight of L_cycle (cycle_contrast)
    cycle_steps: tuple[int, int] = (0, 0)  # [start, stop): the steps that add L_cycle (stop 0: to the end); outside them lambda is 0 and the cycle stats are still logged
    cycle_spread_weight: float = 0.0  # weight of a uniformity term (Wang & Isola 2020) on the cycle-head queries c, against the head's collapse (paper: 0; cycle_contrast only)
    support_size: int = 16384  # M, rows of the cycle queue drawn as the support set U
    nn: str = "soft"  # "soft" or "hard" nearest neighbour (cycle_contrast and forward_nn)
    exclude_own_video: bool = True  # keys of the query's own video are neither negatives nor support rows
    support_oracle: bool = False  # probe, not the paper: U keeps only rows of the query's class (needs labels), so the soft neighbour is never of another class; the cycle's upper bound
    batch_negatives: bool = False  # also use this step's keys of other videos as negatives (paper: queue only)
    key_encoder: str = "momentum"  # "momentum": positives from the EMA copy, no gradient (paper); "online": both views through the online encoder with gradient, symmetric in-batch InfoNCE (small-scale variant)
    query_negatives: bool = False  # also use the other videos' queries, with gradient, as negatives (SimCLR-style; paper: no)


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0  # seeds python, numpy, torch and the data order
    batch_size: int = 128  # videos per step (global batch)
    epochs: int = 10  # passes over the training videos (ignored when max_steps > 0)
    max_steps: int = 0  # stop after this many steps (0: use epochs)
    optimizer: str = "sgd"  # "sgd" (paper) or "adamw"
    lr: float = 0.06  # base learning rate (paper: 0.06 for batch 512, SGD)
    momentum: float = 0.9  # SGD momentum
    weight_decay: float = 1e-4  # weight decay
    warmup_steps: int = 0  # linear warm-up before the cosine schedule
    min_lr: float = 0.0  # final learning rate of the cosine schedule
    device: str = "auto"  # "auto" (cuda -> mps -> cpu), "cpu", "cuda", "cuda:1", ...
    amp: str = "auto"  # "auto" (bf16 on CUDA, off elsewhere), "bf16", "fp16", "off"
    channels_last: bool = False  # NHWC memory format (faster on GPUs with tensor cores)
    log_every: int = 10  # steps between progress-bar metric updates
    knn_every: int = 0  # kNN monitor: weighted-kNN top-1 of test frames vs train frames every N steps and at step 0 (0: off)
    knn_queries: int = 0  # test frames the kNN monitor classifies (0: all evaluation frames of the test videos)
    checkpoint_every: int = 0  # steps between checkpoints (0: once per epoch)
    keep_checkpoints: int = 2  # numbered checkpoints step_<N>.pt kept beside last.pt (0: only last.pt)
    threads: int = 0  # torch CPU threads (0: torch default)
    compile: bool = False  # torch.compile the online encoder (first steps slower while it compiles)


@dataclass(frozen=True)
class EvalConfig:
    frames_per_video: int = 4  # frames sampled evenly from each video for frame-level evaluation
    knn_k: tuple[int, ...] = (20, 200)  # neighbours of the weighted kNN
    knn_temperature: float = 0.07  # T of the kNN votes exp(sim / T)
    batch_size: int = 256  # frames per forward pass when extracting features
    cache_dir: str = ""  # feature cache ("": <run_dir>/features, "none": off), keyed by weights + data + transform
    knn_sweep_k: tuple[int, ...] = (1, 5, 10, 20, 50, 100, 200)  # k values of `cckit eval sweep`
    knn_sweep_temperature: tuple[float, ...] = (0.02, 0.05, 0.07, 0.1, 0.2, 0.5)  # T values of `cckit eval sweep`
    linear_weight_decay: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)  # probe L2 candidates, picked on held-out train videos
    linear_max_iter: int = 300  # L-BFGS iterations of the linear probe
    track_layer: str = "layer2"  # backbone stage the SiamFC tracker correlates (layer2: stride 8, see eval/tracking.py)
    track_exemplar_size: int = 64  # SiamFC exemplar crop side in px (SiamFC: 127 on OTB-size frames)
    track_search_size: int = 128  # SiamFC search crop side in px (SiamFC: 255 on OTB-size frames)
    track_max_videos: int = 0  # test videos tracked on manifest data (0: all)


@dataclass(frozen=True)
class Config:
    run_dir: str = "runs/default"  # where config.yaml, metrics.jsonl and checkpoints/ go
    resume: str = "none"  # "none", "auto" (newest checkpoint in run_dir) or a checkpoint path
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


CHOICES = {
    "data.source": ("synthetic", "manifest", "videos", "r2v2", "frames"),
    "data.on_error": ("raise", "skip"),
    "data.single_frame": ("same", "exclude"),
    "data.labels": ("folders", "none"),
    "data.style": ("easy", "clutter", "hard"),
    "model.arch": ("resnet10", "resnet18", "resnet34", "resnet50"),
    "method.name": METHODS,
    "method.nn": ("soft", "hard"),
    "method.key_encoder": ("momentum", "online"),
    "train.optimizer": ("sgd", "adamw"),
    "train.amp": ("auto", "bf16", "fp16", "off"),
    "eval.track_layer": ("layer1", "layer2", "layer3", "layer4"),
}


def _coerce(key: str, value, annotation):
    """Check ``value`` against a field annotation; returns the value in its canonical type."""
    hint = annotation
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _coerce(key, value, args[0])
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(key, v, args[0]) for v in value)
        if len(value) != len(args):
            raise ConfigError(f"{key}: expected {len(args)} values, got {list(value)!r}")
        return tuple(_coerce(key, v, a) for v, a in zip(value, args))
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, str):  # YAML 1.1 reads "1e-3" (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported type {hint}")


# keys whose old names collided ("cache" meant three things); the old name fails with the new one
RENAMED = {"data.cache_frames": "data.frames_in_memory", "data.frame_cache": "data.extracted_frames",
           "data.video_cache": "data.seek_index_cache"}


def _build(cls, values: dict, prefix: str = ""):
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        full = f"{prefix}{key}"
        if full in RENAMED:
            raise ConfigError(f"{full} was renamed to {RENAMED[full]} (same meaning)")
        if key not in names:
            raise ConfigError(f"unknown config key '{full}' (known in this section: {', '.join(sorted(names))})")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise ConfigError(f"{full}: expected a mapping of keys, got {value!r}")
            kwargs[key] = _build(hint, value, f"{full}.")
        else:
            kwargs[key] = _coerce(full, value, hint)
            if full in CHOICES and kwargs[key] not in CHOICES[full]:
                raise ConfigError(f"{full}: must be one of {', '.join(CHOICES[full])}, got {value!r}")
    return cls(**kwargs)


def parse_overrides(overrides: list[str]) -> dict:
    """Turn ``["train.lr=0.1", "run_dir=runs/x"]`` into a nested dict (values parsed as YAML)."""
    nested: dict = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not of the form key=value")
        key, raw = item.split("=", 1)
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError as e:
            raise ConfigError(f"{key}: cannot parse value {raw!r} ({e.__class__.__name__})") from None
        node = nested
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override '{item}': '{part}' is not a section")
        node[parts[-1]] = value
    return nested


def _merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Read a YAML preset (or the defaults when ``path`` is None), apply overrides, validate."""
    values: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            values = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:  # one line: where and what, not PyYAML's multi-line excerpt
            mark = getattr(e, "problem_mark", None)
            where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            raise ConfigError(f"{path}: not valid YAML{where} ({getattr(e, 'problem', None) or e})") from None
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: cannot read the config ({e.__class__.__name__}: {e})") from None
        if not isinstance(values, dict):
            raise ConfigError(f"{path}: expected a mapping at the top level")
    values = _merge(values, parse_overrides(overrides or []))
    cfg = _build(Config, values)
    validate(cfg)
    return cfg


def config_from_dict(values: dict) -> Config:
    """Rebuild a validated Config from ``to_dict`` output (e.g. the copy stored in a checkpoint).

    A stored config written before a key was renamed (:data:`RENAMED`) is read under the new name:
    it is the kit's own record, not a user's mistake.
    """
    values = {section: dict(v) if isinstance(v, dict) else v for section, v in values.items()}
    for old, new in RENAMED.items():
        (section, key), (_, new_key) = old.split("."), new.split(".")
        if isinstance(values.get(section), dict) and key in values[section]:
            values[section].setdefault(new_key, values[section].pop(key))
    cfg = _build(Config, values)
    validate(cfg)
    return cfg


def to_dict(cfg) -> dict:
    """Plain nested dict (tuples as lists) suitable for YAML, JSON and ``weights_only`` checkpoints."""
    def plain(v):
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v
    return plain(dataclasses.asdict(cfg))


def replace(cfg: Config, **sections) -> Config:
    """``replace(cfg, train={"lr": 0.1})``: a copy with some fields of some sections changed."""
    values = _merge(to_dict(cfg), sections)
    return config_from_dict(values)


def validate(cfg: Config) -> None:
    """Check values and combinations that types alone cannot; raises ConfigError naming the key."""
    d, m, me, t = cfg.data, cfg.model, cfg.method, cfg.train
    checks = [
        (t.batch_size >= 1, "train.batch_size", "must be >= 1"),
        (0 < t.lr < float("inf"), "train.lr", "must be > 0 and finite"),
        (0 <= t.min_lr < float("inf"), "train.min_lr", "must be a finite number >= 0"),
        (0 <= t.weight_decay < float("inf"), "train.weight_decay", "must be a finite number >= 0"),
        (0.0 <= t.momentum < 1.0, "train.momentum", "must be in [0, 1)"),
        (t.warmup_steps >= 0, "train.warmup_steps", "must be >= 0"),
        (t.log_every >= 1, "train.log_every", "must be >= 1"),
        (t.checkpoint_every >= 0, "train.checkpoint_every", "must be >= 0 (0: once per epoch)"),
        (t.keep_checkpoints >= 0, "train.keep_checkpoints", "must be >= 0 (0: only last.pt)"),
        (t.threads >= 0, "train.threads", "must be >= 0 (0: torch default)"),
        (m.embed_dim >= 1, "model.embed_dim", "must be >= 1"),
        (m.width >= 1, "model.width", "must be >= 1 (64 = torchvision's ResNet)"),
        (cfg.eval.batch_size >= 1, "eval.batch_size", "must be >= 1"),
        (cfg.eval.knn_temperature > 0, "eval.knn_temperature", "must be > 0"),
        (t.epochs >= 1 or t.max_steps >= 1, "train.epochs", "must be >= 1 (or set train.max_steps)"),
        (t.max_steps >= 0, "train.max_steps", "must be >= 0"),
        (t.knn_every >= 0 and t.knn_queries >= 0, "train.knn_every", "train.knn_every and train.knn_queries must be >= 0"),
        (0.0 <= m.momentum < 1.0, "model.momentum", "must be in [0, 1)"),
        (me.temperature > 0, "method.temperature", "must be > 0"),
        (me.nn_temperature is None or me.nn_temperature > 0, "method.nn_temperature", "must be > 0"),
        (me.cycle_weight >= 0, "method.cycle_weight", "must be >= 0"),
        (me.cycle_spread_weight >= 0, "method.cycle_spread_weight", "must be >= 0"),
        (len(me.cycle_steps) == 2 and 0 <= me.cycle_steps[0] and (me.cycle_steps[1] == 0 or me.cycle_steps[1] > me.cycle_steps[0]),
         "method.cycle_steps", f"must be [start, stop] with 0 <= start < stop (stop 0: to the end), got {list(me.cycle_steps)}"),
        (m.queue_size >= 1 and m.cycle_queue_size >= 1, "model.queue_size", "queues must hold >= 1 key"),
        (t.batch_size >= 1 and m.queue_size % t.batch_size == 0, "model.queue_size",
         f"must be a multiple of train.batch_size ({t.batch_size}), got {m.queue_size}"),
        (t.batch_size >= 1 and m.cycle_queue_size % t.batch_size == 0, "model.cycle_queue_size",
         f"must be a multiple of train.batch_size ({t.batch_size}), got {m.cycle_queue_size}"),
        (1 <= me.support_size < m.cycle_queue_size, "method.support_size",
         f"must be in [1, model.cycle_queue_size) = [1, {m.cycle_queue_size}), got {me.support_size}"),
        (m.bn_splits >= 1 and t.batch_size % m.bn_splits == 0, "model.bn_splits",
         f"must divide train.batch_size ({t.batch_size}), got {m.bn_splits}"),
        (d.size % 2 == 0 and d.size >= 8, "data.size", "must be even and >= 8 (H.264 needs even sides)"),
        (d.crop_size >= 8, "data.crop_size", "must be >= 8"),
        (0 <= d.hue <= 0.5, "data.hue", "must be in [0, 0.5]"),
        (d.augment != "device", "data.augment", "'device' is now 'batch' (batched on the training device)"),
        (d.augment in ("batch", "loader"), "data.augment", "must be 'batch' or 'loader'"),
        (d.color_ops in ("torchvision", "matrix"), "data.color_ops", "must be 'torchvision' or 'matrix'"),
        (d.color_ops == "torchvision" or d.augment == "batch", "data.color_ops",
         "'matrix' is an op of the batched augmentation (data.augment=batch)"),
        (0 < d.crop_scale[0] <= d.crop_scale[1] <= 1, "data.crop_scale", "must satisfy 0 < lo <= hi <= 1"),
        (1 <= d.frames_per_video[0] <= d.frames_per_video[1], "data.frames_per_video", "must satisfy 1 <= lo <= hi"),
        (d.num_train >= 1 and d.num_test >= 1, "data.num_train", "need at least one train and one test video"),
        (d.workers >= 0, "data.workers", "must be >= 0"),
        (d.max_frame_distance >= 0, "data.max_frame_distance", "must be >= 0 (0: anywhere in the video)"),
        (d.cache_limit_gb >= 0, "data.cache_limit_gb", "must be >= 0"),
        (d.source in ("videos", "frames") or not (d.train_list or d.test_list), "data.train_list",
         "split files apply to data.source=videos or frames"),
        (cfg.eval.frames_per_video >= 1, "eval.frames_per_video", "must be >= 1"),
        (all(k >= 1 for k in cfg.eval.knn_k), "eval.knn_k", "every k must be >= 1"),
        (len(cfg.eval.linear_weight_decay) >= 1 and all(w >= 0 for w in cfg.eval.linear_weight_decay),
         "eval.linear_weight_decay", "needs at least one value, each >= 0"),
        (cfg.eval.track_search_size > cfg.eval.track_exemplar_size >= 8, "eval.track_search_size",
         "must exceed eval.track_exemplar_size, which must be >= 8"),
    ]
    for ok, key, why in checks:
        if not ok:
            raise ConfigError(f"{key}: {why}")
