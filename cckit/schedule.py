"""Per-step schedules, precomputed as arrays (as in DINO)."""
from __future__ import annotations

import numpy as np


def cosine_schedule(base: float, final: float, total_steps: int, warmup_steps: int = 0) -> np.ndarray:
    """Linear warm-up from 0 to ``base`` over ``warmup_steps``, then cosine from ``base`` to ``final``.

    Returns a (total_steps,) float array; entry ``s`` is the value used at step ``s``.
    """
    warmup_steps = min(warmup_steps, total_steps)
    warm = np.linspace(0.0, base, warmup_steps, endpoint=False) if warmup_steps else np.zeros(0)
    rest = total_steps - warmup_steps
    t = np.arange(rest) / max(rest, 1)
    cosine = final + 0.5 * (base - final) * (1 + np.cos(np.pi * t))
    return np.concatenate([warm, cosine])
