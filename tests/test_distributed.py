"""Distributed training on CPU with the gloo backend: identical queues, and a two-process step equals
the single-process step on the same global batch (BN in eval mode, so batch statistics cannot differ)."""
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from cckit.config import load_config
from cckit.model import CycleContrastModel
from cckit.train import build_optimizer, train_step

from conftest import TINY

pytestmark = pytest.mark.slow
CFG = TINY + ["model.momentum=0.9", "method.name=cycle_contrast"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def global_batch(n=8):
    g = torch.Generator().manual_seed(1)
    return [torch.randn(n, 3, 32, 32, generator=g) for _ in range(3)] + [torch.arange(100, 100 + n)]


def fresh_model(cfg):
    torch.manual_seed(0)
    model = CycleContrastModel(cfg.model)
    # fill the queues with real-looking keys so the losses are not trivial
    g = torch.Generator().manual_seed(2)
    model.queue_intra.copy_(torch.nn.functional.normalize(torch.randn(model.queue_intra.shape, generator=g), dim=1))
    model.queue_intra_ids.copy_(torch.arange(model.queue_intra.shape[0]) % 12 + 100)
    model.queue_cycle.copy_(torch.nn.functional.normalize(torch.randn(model.queue_cycle.shape, generator=g), dim=1))
    model.queue_cycle_ids.copy_(torch.arange(model.queue_cycle.shape[0]) % 12 + 100)
    return model.eval()  # BN uses running statistics: per-sample, identical however the batch is split


def _worker(rank, world, port, out_dir):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    cfg = load_config(None, CFG)
    model = fresh_model(cfg)
    ddp = torch.nn.parallel.DistributedDataParallel(model.encoder)
    opt = build_optimizer(model, cfg)
    batch = global_batch()
    per = batch[0].shape[0] // world
    local = [t[rank * per:(rank + 1) * per] for t in batch]
    stats = []
    for step in range(2):
        stats.append(train_step(model, opt, local, cfg, step=step, lr=0.1, encoder=ddp))
    torch.save({"stats": stats, "model": model.state_dict()}, Path(out_dir) / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_two_process_step_equals_single_process_step(tmp_path):
    mp.spawn(_worker, args=(2, free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2))
    # every rank holds identical queues and weights
    for key in r0["model"]:
        assert torch.equal(r0["model"][key], r1["model"][key]), key
    cfg = load_config(None, CFG)
    model = fresh_model(cfg)
    opt = build_optimizer(model, cfg)
    single = [train_step(model, opt, global_batch(), cfg, step=step, lr=0.1) for step in range(2)]
    for step in range(2):
        for key in ("loss", "loss_intra", "loss_cycle"):
            mean = (r0["stats"][step][key] + r1["stats"][step][key]) / 2
            assert mean == pytest.approx(single[step][key], abs=1e-5), (step, key)
    state = model.state_dict()
    for key in ("queue_intra", "queue_cycle", "queue_intra_ids", "queue_ptr"):
        torch.testing.assert_close(r0["model"][key], state[key], atol=1e-5, rtol=0)
    for key in state:
        if key.startswith("encoder"):
            torch.testing.assert_close(r0["model"][key], state[key], atol=1e-5, rtol=1e-5, msg=key)


@pytest.mark.skipif(shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists(),
                    reason="torchrun not installed")
def test_torchrun_two_processes_through_the_cli(tiny_overrides, tmp_path):
    torchrun = str(Path(sys.executable).parent / "torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [torchrun, "--nproc_per_node", "2", "--master_port", str(free_port()), "-m", "cckit", "train",
           "configs/quickstart.yaml", *tiny_overrides, "train.max_steps=3", "--quiet"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    run_dir = Path([o for o in tiny_overrides if o.startswith("run_dir=")][0].split("=", 1)[1])
    rows = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [0, 1, 2, 3]  # rank 0 alone writes (step 0: the kNN monitor)
    assert [row["step"] for row in rows if "knn_top1" in row] == [0, 3]  # rank 0 monitors, the others wait
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert state["step"] == 3 and int(state["model"]["queue_ptr"][0]) == 24  # 3 steps of the global batch 8
