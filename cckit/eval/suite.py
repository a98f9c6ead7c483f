"""The evaluation suite: one entry point per protocol, on a checkpoint (or any backbone) and a config.

Protocols (``cckit eval <protocol>``):

- ``knn``: frame-level weighted kNN of test frames against train frames, every k in ``eval.knn_k``;
- ``sweep``: the same over the grid ``eval.knn_sweep_k`` × ``eval.knn_sweep_temperature``;
- ``linear``: logistic-regression probe on frozen frame features (:mod:`cckit.eval.linear`);
- ``video``: video-level kNN and probe on pooled frame features (:mod:`cckit.eval.video_level`);
- ``track``: SiamFC on frozen features with OTB metrics (:mod:`cckit.eval.tracking`), on the
  manifest's per-frame boxes of the test videos or on OTB-format sequences.

Frame features are extracted once per (weights, data, transform) and cached on disk.
:func:`evaluate` is the one entry point; with ``floors=True`` it adds the floors every result is
read against (random init, random init with BN statistics of the data, raw pixels, a static box).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ..checkpoint import load_backbone
from ..config import Config
from ..data.dataset import EvalFrames
from ..data.frame_store import FrameStore
from ..data.index import load_splits
from ..model import random_backbone
from ..utils import get_device
from .cache import file_fingerprint
from .features import extract_features_cached, pixel_features
from .knn import knn_accuracy
from .linear import linear_probe
from .monitor import stack_frames, with_estimated_bn
from .otb import find_otb_sequences, load_otb_sequence, otb_metrics, scaled_precision_threshold
from .tracking import SiamFCConfig, SiamFCTracker, manifest_sequences, track, track_many
from .video_level import video_level_eval

PROTOCOLS = ("knn", "sweep", "linear", "video", "track")


def knn_sweep(memory: dict, queries: dict, ks, temperatures, num_classes: int | None = None) -> dict:
    """Weighted-kNN top-1/top-5 for every (k, T); returns ``{"grid": [{k, temperature, top1, top5}], "best": {...}}``
    (best by top-1, ties to the earlier grid point)."""
    c = num_classes or int(max(memory["labels"].max(), queries["labels"].max())) + 1
    grid = []
    for k in ks:
        for t in temperatures:
            acc = knn_accuracy(memory["features"], memory["labels"], queries["features"], queries["labels"],
                               k=k, temperature=t, num_classes=c)
            grid.append({"k": int(k), "temperature": float(t), **acc})
    return {"grid": grid, "best": max(grid, key=lambda g: g["top1"])}


def frame_knn_metrics(memory: dict, queries: dict, cfg: Config) -> dict:
    """``knn{k}_top1`` / ``knn{k}_top5`` for every k of ``cfg.eval.knn_k`` at ``cfg.eval.knn_temperature``."""
    sweep = knn_sweep(memory, queries, cfg.eval.knn_k, (cfg.eval.knn_temperature,))
    return {f"knn{g['k']}_{m}": g[m] for g in sweep["grid"] for m in ("top1", "top5")}


def cache_dir(cfg: Config) -> Path | None:
    """The feature cache folder of a config (None when ``eval.cache_dir=none``)."""
    if cfg.eval.cache_dir == "none":
        return None
    return Path(cfg.eval.cache_dir or Path(cfg.run_dir) / "features")


def eval_frame_sets(splits: dict, cfg: Config) -> tuple[EvalFrames, EvalFrames]:
    """Evaluation frames of the train videos (kNN memory) and test videos (queries), decoded once."""
    sets = []
    for name in ("train", "test"):
        records = splits.get(name) or []
        if not records:
            raise ValueError(f"no '{name}' videos to evaluate on")
        sets.append(EvalFrames(records, cfg.eval.frames_per_video, cfg.data.crop_size,
                               frames=FrameStore(records, in_memory=True)))
    return sets[0], sets[1]


def frame_features(backbone: torch.nn.Module, sets: tuple[EvalFrames, EvalFrames], cfg: Config, *,
                   weights_id: str | None = None) -> tuple[dict, dict]:
    """Cached features of the train and test evaluation frames (``weights_id``: see ``extract_features_cached``)."""
    device = get_device(cfg.train.device)
    return tuple(extract_features_cached(backbone, s, device=device, cache_dir=cache_dir(cfg), weights_id=weights_id,
                                         batch_size=cfg.eval.batch_size)[0] for s in sets)


def linear_metrics(memory: dict, queries: dict, cfg: Config) -> dict:
    """Frame-level linear probe (weight decay chosen on held-out train videos)."""
    out = linear_probe(memory["features"], memory["labels"], queries["features"], queries["labels"],
                       weight_decays=cfg.eval.linear_weight_decay, groups=memory["video_ids"],
                       max_iter=cfg.eval.linear_max_iter, seed=cfg.train.seed)
    return {f"linear_{k}": v for k, v in out.items()}


def video_metrics(memory: dict, queries: dict, cfg: Config) -> dict:
    """Video-level kNN and linear probe on mean-pooled frame features."""
    out = video_level_eval(memory, queries, knn_k=cfg.eval.knn_k, knn_temperature=cfg.eval.knn_temperature,
                           weight_decays=cfg.eval.linear_weight_decay, max_iter=cfg.eval.linear_max_iter)
    return {f"video_{k}": v for k, v in out.items()}


def tracker_config(cfg: Config) -> SiamFCConfig:
    e = cfg.eval
    return SiamFCConfig(layer=e.track_layer, exemplar_size=e.track_exemplar_size, search_size=e.track_search_size)


def tracking_sequences(splits: dict, cfg: Config) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(frames, gt xywh)`` of the test videos of a manifest with per-frame boxes."""
    return manifest_sequences(splits["test"], max_videos=cfg.eval.track_max_videos)


def track_metrics(backbone: torch.nn.Module, sequences: list, cfg: Config, *, otb: bool = False) -> dict:
    """SiamFC precision / success AUC over ``(frames, gt)`` sequences.

    Manifest data (``otb=False``): frame 0 is not scored and the precision threshold is
    :func:`scaled_precision_threshold` of the frame size. OTB sequences: the toolkit's convention
    (every frame scored, 20 px).
    """
    device = get_device(cfg.train.device)
    if otb:  # OTB frames are read lazily, one sequence at a time
        tracker = SiamFCTracker(backbone.eval(), tracker_config(cfg), device=device)
        preds = [track(tracker, _frames(frames), gt[0]) for frames, gt in sequences]
    else:
        # lockstep batches pay off on a GPU; on a CPU, batches of 3 crops stay in cache and were
        # 2x faster than chunks of 64 videos (40 default test videos: 83 s vs 174 s, 1 thread)
        preds = track_many(backbone, sequences, tracker_config(cfg), device=device,
                           chunk=64 if device.type == "cuda" else 1)
    return _score([(p, gt) for p, (_, gt) in zip(preds, sequences)], sequences, otb)


def static_box_metrics(sequences: list, *, otb: bool = False) -> dict:
    """The no-motion floor: a 'tracker' that keeps the first box in every frame."""
    return _score([(np.repeat(gt[:1], len(gt), axis=0), gt) for _, gt in sequences], sequences, otb)


def _score(results: list, sequences: list, otb: bool) -> dict:
    if otb:
        return otb_metrics(results, threshold=20.0, skip_first=False)
    h, w = _first_frame(sequences[0][0]).shape[:2]
    return otb_metrics(results, threshold=scaled_precision_threshold(h, w), skip_first=True)


def _first_frame(frames):
    return next(iter(_frames(frames)))


def _frames(frames):
    """Frames as arrays: an array passes through, a list of image paths is read lazily (OTB)."""
    if isinstance(frames, np.ndarray):
        return frames
    from PIL import Image
    return (np.asarray(Image.open(p).convert("RGB")) for p in frames)


def otb_sequences(root: str | Path) -> list[tuple[list[Path], np.ndarray]]:
    """``(frame paths, gt xywh)`` of every OTB-format sequence under ``root``."""
    return [load_otb_sequence(d) for d in find_otb_sequences(root)]


def feature_metrics(memory: dict, queries: dict, cfg: Config, protocols=("knn",)) -> dict:
    """The frame protocols (``knn``, ``sweep``, ``linear``, ``video``) on already extracted
    train (memory) and test (query) features: what :func:`evaluate` runs for any backbone, and
    the raw-pixel floor runs on pixels."""
    out = {}
    if "knn" in protocols:
        out.update(frame_knn_metrics(memory, queries, cfg))
    if "sweep" in protocols:
        out["knn_sweep"] = knn_sweep(memory, queries, cfg.eval.knn_sweep_k, cfg.eval.knn_sweep_temperature)
    if "linear" in protocols:
        out.update(linear_metrics(memory, queries, cfg))
    if "video" in protocols:
        out.update(video_metrics(memory, queries, cfg))
    return out


FLOOR_NAMES = ("random_init", "random_init_bn", "pixels")  # the frame protocols' floors, as key suffixes


def evaluate(model, cfg: Config, protocols=PROTOCOLS, *, floors: bool = False, weights_id: str | None = None,
             splits: dict | None = None, sets=None, sequences: list | None = None,
             otb_root: str | Path | None = None, progress: bool = False) -> dict:
    """The one evaluation entry point: ``protocols`` on a checkpoint or a backbone, one flat dict.

    The main job, ``cckit eval``, ``cckit compare`` and the notebooks all call this.

    Args:
        model: a checkpoint path (cckit or official MoCo/CycleContrast; its backbone is loaded for
            ``cfg.model.arch`` and its file fingerprint names the feature cache) or a backbone module.
        protocols: any of :data:`PROTOCOLS`.
        floors: also the floors, with their name as key suffix: for the frame protocols the
            random-init backbone as built (BN at mean 0 / var 1, ``_random_init``), the same with
            BN statistics estimated on the train frames (``_random_init_bn``) and raw pixels
            (``_pixels``); for ``track`` the no-motion box (``track_static_box``). With ``knn``,
            ``highest_floor`` is the best floor's top-1 at the first ``eval.knn_k``.
        weights_id: cache identity of a backbone's weights (default: a hash of its state dict).
        splits, sets, sequences: reuse already loaded splits / evaluation frames / tracking
            sequences (the comparison evaluates many backbones on the same data).
        otb_root: track OTB-format sequences under this folder instead of the manifest's videos.
        progress: a progress bar over the stages (decoding the frames, each backbone's features
            and protocols, tracking), shown from the start.

    Returns:
        The model's metrics unsuffixed (``knn20_top1``, ``linear_top1``, ``video_knn20_top1``,
        ``track``, ...), the floors' with suffixes, ``eval_frames_train`` / ``eval_frames_test``
        and, with ``knn``, ``chance`` (the majority class's share of the test videos).
    """
    unknown = set(protocols) - set(PROTOCOLS)
    if unknown:
        raise ValueError(f"unknown protocol(s) {sorted(unknown)}; known: {', '.join(PROTOCOLS)}")
    if isinstance(model, (str, Path)):
        weights_id = weights_id or file_fingerprint(model)
        model = load_backbone(model, cfg.model.arch, small_stem=cfg.model.small_stem)
    out: dict = {}
    frame_protocols = [p for p in protocols if p != "track"]
    stages = (["decode the evaluation frames"] if frame_protocols and sets is None else []) \
        + (["model"] + (["random init", "random init, BN on data", "raw pixels"] if floors else [])
           if frame_protocols else []) + (["tracking"] if "track" in protocols else [])
    bar = tqdm(total=len(stages), disable=not progress, desc="evaluate", unit="stage")
    stage, started = iter(stages), []

    def next_stage() -> None:  # the previous stage is done; name the next one
        if started:
            bar.update(1)
        started.append(True)
        bar.set_description(next(stage, "done"))

    next_stage()
    if splits is None and (frame_protocols or (otb_root is None and sequences is None)):
        splits = load_splits(cfg.data)
    if frame_protocols:
        if sets is None:
            sets = eval_frame_sets(splits, cfg)
            next_stage()
        memory, queries = frame_features(model, sets, cfg, weights_id=weights_id)
        out.update(eval_frames_train=len(memory["labels"]), eval_frames_test=len(queries["labels"]))
        out.update(feature_metrics(memory, queries, cfg, frame_protocols))
        if floors:
            random_init = random_backbone(cfg, seed=cfg.train.seed)
            nets = {"random_init": random_init,
                    "random_init_bn": with_estimated_bn(random_init, stack_frames(sets[0])[0])}
            for name, net in nets.items():
                next_stage()
                features = frame_features(net, sets, cfg)
                out.update({f"{k}_{name}": v for k, v in feature_metrics(*features, cfg, frame_protocols).items()})
            next_stage()
            pixels = (pixel_features(sets[0]), pixel_features(sets[1]))
            out.update({f"{k}_pixels": v for k, v in feature_metrics(*pixels, cfg, frame_protocols).items()})
        if "knn" in protocols:
            k = cfg.eval.knn_k[0]
            if floors:
                out["highest_floor"] = max(out[f"knn{k}_top1_{name}"] for name in FLOOR_NAMES)
            labels = torch.tensor([r.label for r in splits["test"]])
            out["chance"] = float(torch.bincount(labels).max()) / len(labels)
        if "track" in protocols:
            next_stage()
    if "track" in protocols:
        if sequences is None:
            sequences = otb_sequences(otb_root) if otb_root else tracking_sequences(splits, cfg)
        out["track"] = track_metrics(model, sequences, cfg, otb=otb_root is not None)
        if floors:
            out["track_static_box"] = static_box_metrics(sequences, otb=otb_root is not None)
    bar.update(bar.total - bar.n)
    bar.close()
    return out
