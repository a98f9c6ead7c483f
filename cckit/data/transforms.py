"""MoCo v2 augmentation scaled to the crop size, and the plain evaluation transform.

Both take uint8 tensors (3, H, W) and return normalised float tensors (3, S, S).
"""
from __future__ import annotations

import torch
from torchvision.transforms import v2

from ..config import DataConfig

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def blur_kernel_size(crop_size: int) -> int:
    """Odd kernel of about 10% of the crop (MoCo v2 uses 23 px at 224)."""
    k = max(3, int(round(crop_size * 0.1)))
    return k if k % 2 == 1 else k + 1


def train_transform(cfg: DataConfig) -> v2.Compose:
    """RandomResizedCrop(scale), ColorJitter p, grayscale p, Gaussian blur p (σ scaled by
    crop/224), horizontal flip — the MoCo v2 recipe at the configured crop size."""
    s = cfg.crop_size
    j = cfg.color_jitter
    sigma_scale = s / 224.0
    ops = [
        v2.RandomResizedCrop(s, scale=cfg.crop_scale, antialias=True),
        v2.RandomApply([v2.ColorJitter(j, j, j, cfg.hue)], p=cfg.color_jitter_prob),
        v2.RandomGrayscale(p=cfg.grayscale_prob),
        v2.RandomApply([v2.GaussianBlur(blur_kernel_size(s), sigma=(0.1 * sigma_scale, 2.0 * sigma_scale))],
                       p=cfg.blur_prob),
    ]
    if cfg.flip:
        ops.append(v2.RandomHorizontalFlip())
    ops += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)]
    return v2.Compose(ops)


def seeded_views(transform, frame: torch.Tensor, other: torch.Tensor, seed: int) -> tuple[torch.Tensor, ...]:
    """``(x_q, x_k, x_p)``: two views of ``frame`` and one of ``other``, their random parameters
    drawn from the CPU generator seeded with ``seed``; the generator's state is restored after.

    Only the CPU generator is (re)seeded: torch.manual_seed would also queue a lazy CUDA seeding
    that records a stack trace, which costs more than the augmentations of a small frame.
    """
    generator = torch.default_generator
    state = generator.get_state()
    try:
        generator.manual_seed(seed)
        return transform(frame), transform(frame), transform(other)
    finally:
        generator.set_state(state)


def eval_transform(size: int) -> v2.Compose:
    """Resize the whole frame to ``size`` and normalise (no crop: frames are already framed)."""
    return v2.Compose([v2.Resize((size, size), antialias=True), v2.ToDtype(torch.float32, scale=True),
                       v2.Normalize(MEAN, STD)])


def denormalize(x: torch.Tensor) -> torch.Tensor:
    """Undo ``Normalize`` for display: (..., 3, H, W) float -> values in [0, 1]."""
    mean = torch.tensor(MEAN, device=x.device).view(3, 1, 1)
    std = torch.tensor(STD, device=x.device).view(3, 1, 1)
    return (x * std + mean).clamp(0, 1)
