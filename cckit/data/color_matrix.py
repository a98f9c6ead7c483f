"""Colour jitter, grayscale and Gaussian blur as linear maps: ``data.color_ops=matrix``.

Brightness, saturation, grayscale and a hue rotation in YIQ space (the linear hue of NVIDIA
DALI's ``Hsv`` and ``ColorTwist`` ops) are 3x3 colour matrices; contrast blends each pixel with
the view's mean grey level, a linear function of its channel means ``m``. Without torchvision's
clamp after every op, a view's whole ``ColorJitter`` (in its drawn order) followed by
``RandomGrayscale`` is one affine map of its pixels,

    x -> M x + (K - M) m,

composed per view from the drawn parameters alone (``K`` is what the map does to a flat image),
then one clamp to [0, 1]. A Gaussian blur with a reflect border is a linear map of each image
axis, so it folds into the crop matrices (``A_y · f · A_xᵀ`` becomes ``(B A_y) f (B A_x)ᵀ``); it
commutes with the colour map, which is then applied last. On a CPU this replaces about twenty
elementwise passes over the batch with one small batched product.

Differences from torchvision's ops: one clamp at the end instead of one after each op (a
brightened pixel can come back into range under a later contrast), and hue rotated in YIQ
rather than HSV: the same direction of turn, but YIQ keeps the luma where HSV keeps the largest
channel, so at a 0.05 turn the two results differ by 0.03 per channel on average, about as much
as the turn changes the pixels (``tests/data/test_color_matrix.py``).
"""
from __future__ import annotations

import numpy as np
import torch

GRAY = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights
YIQ = np.array([[0.299, 0.587, 0.114],  # RGB -> YIQ (NTSC)
                [0.596, -0.274, -0.322],
                [0.211, -0.523, 0.312]])
RGB = np.linalg.inv(YIQ)
LUMA = np.outer(np.ones(3), GRAY)  # 1 gᵀ: every channel set to the pixel's grey level


def hue_matrices(turns: np.ndarray) -> np.ndarray:
    """(V,) hue shifts in turns (torchvision's hue factor) -> (V, 3, 3) RGB matrices: a rotation
    of the chroma plane (I, Q) of YIQ by ``turns`` * 360°, luma kept."""
    angle = 2 * np.pi * np.asarray(turns, dtype=np.float64)
    cos, sin = np.cos(angle), np.sin(angle)
    rot = np.zeros((len(angle), 3, 3))
    rot[:, 0, 0] = 1
    rot[:, 1, 1], rot[:, 1, 2], rot[:, 2, 1], rot[:, 2, 2] = cos, sin, -sin, cos
    return RGB @ rot @ YIQ


def colour_maps(factors: np.ndarray, order: np.ndarray, jitter: np.ndarray, gray: np.ndarray):
    """Per-view affine colour maps ``(M, K)``, each (V, 3, 3) float64, of ColorJitter (factors
    (V, 4) brightness, contrast, saturation, hue; ``order`` (V, 4) permutation of the ops; applied
    where ``jitter``) followed by grayscale (where ``gray``): a pixel ``x`` of a view with channel
    means ``m`` maps to ``M x + (K - M) m``.

    Each op ``A`` maps ``M <- A M`` and ``K <- A K``; contrast ``c`` scales the pixels (``M <- c M``)
    and blends the means with their grey level (``K <- (c I + (1 - c) 1 gᵀ) K``).
    """
    views = len(factors)
    eye = np.eye(3)
    b, c, s = (factors[:, i, None, None] for i in range(3))
    identity = np.broadcast_to(eye, (views, 3, 3))
    # the five candidates of every round, V x 5 x 3 x 3: brightness, contrast, saturation, hue, none
    on_pixels = np.stack([b * eye, c * eye, s * eye + (1 - s) * LUMA, hue_matrices(factors[:, 3]), identity], 1)
    on_flat = on_pixels.copy()
    on_flat[:, 1] = c * eye + (1 - c) * LUMA
    rows = np.arange(views)
    pixels, flat = identity, identity
    for r in range(4):
        op = np.where(jitter, order[:, r], 4)
        pixels, flat = on_pixels[rows, op] @ pixels, on_flat[rows, op] @ flat
    g = np.where(np.asarray(gray)[:, None, None], LUMA, eye)
    return g @ pixels, g @ flat


_SHIFTS: dict[tuple[int, int, str], torch.Tensor] = {}


def _reflect_shifts(size: int, kernel: int, device: torch.device) -> torch.Tensor:
    """(kernel, size, size) 0/1 matrices: tap ``t`` reads pixel ``i + t - kernel // 2``,
    reflected at the border as ``F.pad(mode="reflect")`` does (-1 -> 1, size -> size - 2)."""
    key = (size, kernel, str(device))
    if key not in _SHIFTS:
        half = kernel // 2
        src = np.arange(size)[None, :] + np.arange(kernel)[:, None] - half  # kernel x size
        src = np.abs(src)
        src = np.where(src > size - 1, 2 * (size - 1) - src, src)
        shifts = np.zeros((kernel, size, size), dtype=np.float32)
        shifts[np.arange(kernel)[:, None], np.arange(size)[None, :], src] = 1
        _SHIFTS[key] = torch.from_numpy(shifts).to(device)
    return _SHIFTS[key]


def blur_weights(sigma: torch.Tensor, kernel: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(V,) sigmas -> (V, kernel) normalised Gaussian taps at ``-kernel // 2 ... kernel // 2``, as
    torchvision's ``gaussian_blur`` weighs them."""
    half = kernel // 2
    taps = torch.linspace(-half, half, kernel, device=sigma.device, dtype=dtype)
    weight = torch.exp(-0.5 * (taps[None, :] / sigma[:, None].to(dtype)) ** 2)
    return weight / weight.sum(1, keepdim=True)


def blur_matrices(sigma: torch.Tensor, kernel: int, size: int) -> torch.Tensor:
    """(V,) sigmas -> (V, size, size) matrices ``B`` of torchvision's ``gaussian_blur`` along one
    axis (``kernel`` taps, reflect border): blurring an image ``X`` is ``B X Bᵀ``."""
    shifts = _reflect_shifts(size, kernel, sigma.device)
    return (blur_weights(sigma, kernel) @ shifts.flatten(1)).view(-1, size, size)
