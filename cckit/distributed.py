"""Distributed training helpers on torch.distributed (launched by ``torchrun``); all work unlaunched.

Under ``torchrun`` every rank holds identical queues (keys are all-gathered before the enqueue),
the momentum encoder sees keys shuffled across ranks (MoCo's shuffle-BN), and the support set is
drawn from a generator seeded by the step, so it is identical everywhere without communication.
Without ``torchrun`` every helper is the identity.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def launched() -> bool:
    """True when started by torchrun (or any launcher that sets WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_distributed(device_type: str) -> DistInfo:
    """Join the process group torchrun describes (NCCL on CUDA, gloo otherwise); no-op unlaunched."""
    if not launched():
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank)


def info() -> DistInfo:
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))
    return DistInfo()


@torch.no_grad()
def all_gather(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` (B, ...) from every rank in rank order -> (world * B, ...); no gradient."""
    if not info().enabled:
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def all_reduce_mean(values: dict[str, float]) -> dict[str, float]:
    """Average scalar metrics over ranks (for logging on rank 0)."""
    if not info().enabled or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64,
                     device="cuda" if dist.get_backend() == "nccl" else "cpu")
    dist.all_reduce(t)
    t /= dist.get_world_size()
    return {k: float(v) for k, v in zip(keys, t.tolist())}


@torch.no_grad()
def encode_keys_shuffled(encoder: torch.nn.Module, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Momentum-encode ``x`` (B, 3, H, W) with the batch shuffled across all ranks (shuffle-BN).

    Every rank draws the same permutation of the global batch from ``generator``, encodes its
    slice of the shuffled batch, and the outputs are gathered and un-shuffled, so each rank gets
    the keys of its own inputs but BN statistics mix samples of different ranks. On one process
    the shuffle is within the batch (split-BN then gives the same protection).
    """
    d = info()
    x_all = all_gather(x)  # (world * B) x 3 x H x W
    perm = torch.randperm(x_all.shape[0], generator=generator).to(x.device)
    b = x.shape[0]
    mine = x_all[perm][d.rank * b:(d.rank + 1) * b]
    outs = encoder(mine)
    inv = torch.argsort(perm)
    return tuple(all_gather(o)[inv][d.rank * b:(d.rank + 1) * b] for o in outs)


def barrier() -> None:
    if info().enabled:
        dist.barrier()


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
