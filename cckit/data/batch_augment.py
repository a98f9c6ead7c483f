"""The MoCo v2 augmentation applied to a whole batch at once, on the training device.

The loader only gathers uint8 frames ``f`` and ``f'`` of each video with a per-sample seed;
:class:`BatchAugment` turns them into ``(x_q, x_k, x_p)`` with a handful of batched tensor calls
(one ``roi_align`` for every crop, masked colour ops, one grouped blur), so the CPU cores go to the
model instead of to three views × five ops per sample.

Each sample's random parameters are drawn from ``numpy.random.default_rng(seed)`` of that sample
alone: the views stay a pure function of ``(seed, epoch, index)`` whatever the batch, the device or
the number of workers, and a resumed run replays them exactly. The parameters follow
torchvision's ``RandomResizedCrop`` (ten area/aspect attempts, centre-crop fallback),
``ColorJitter`` (factors and a random order of the four ops), ``RandomGrayscale``,
``GaussianBlur`` and ``RandomHorizontalFlip``; :func:`~cckit.data.transforms.train_transform`
is the per-sample reference (``data.augment=loader``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from kornia.color import hsv_to_rgb, rgb_to_hsv
from kornia.filters import gaussian_blur2d
from torchvision.ops import roi_align

from ..config import DataConfig
from .transforms import MEAN, STD, blur_kernel_size

RATIO = (3 / 4, 4 / 3)  # RandomResizedCrop's aspect-ratio range
ATTEMPTS = 10  # RandomResizedCrop's tries before the centre-crop fallback
GRAY = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights
_UNIFORMS = 2 * ATTEMPTS + 2 + 9  # uniforms drawn per view (crop 22, colour 9)


@dataclass
class ViewParams:
    """Random parameters of V views, one row per view (float64/bool/int64 numpy arrays)."""
    boxes: np.ndarray  # (V, 4) crop x1, y1, x2, y2 in pixels of the source frame
    flip: np.ndarray  # (V,) horizontal flip
    jitter: np.ndarray  # (V,) colour jitter applied
    factors: np.ndarray  # (V, 4) brightness, contrast, saturation, hue factors
    order: np.ndarray  # (V, 4) permutation of the four colour ops (0 b, 1 c, 2 s, 3 h)
    gray: np.ndarray  # (V,) grayscale
    blur: np.ndarray  # (V,) Gaussian blur applied
    sigma: np.ndarray  # (V,) blur sigma in pixels


def crop_boxes(u: np.ndarray, height: int, width: int, scale: tuple[float, float]) -> np.ndarray:
    """torchvision's ``RandomResizedCrop.get_params`` from uniforms ``u`` (V, 2 * ATTEMPTS + 2).

    Attempt ``a`` uses ``u[:, 2a]`` for the area and ``u[:, 2a + 1]`` for the log aspect ratio; the
    first attempt that fits is placed at ``u[:, -2:]``; none fits -> the centre crop of the
    clamped aspect ratio. Returns (V, 4) boxes ``x1, y1, x2, y2``.
    """
    area = height * width
    target = area * (scale[0] + (scale[1] - scale[0]) * u[:, 0:2 * ATTEMPTS:2])  # V x A
    log_lo, log_hi = math.log(RATIO[0]), math.log(RATIO[1])
    aspect = np.exp(log_lo + (log_hi - log_lo) * u[:, 1:2 * ATTEMPTS:2])  # V x A
    w = np.round(np.sqrt(target * aspect)).astype(np.int64)
    h = np.round(np.sqrt(target / aspect)).astype(np.int64)
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.argmax(1)
    rows = np.arange(len(u))
    w, h, ok = w[rows, first], h[rows, first], fits[rows, first]
    # torch.randint(0, n + 1): the offset is floor(u * (n + 1))
    y = np.minimum(np.floor(u[:, -2] * (height - h + 1)), height - h).astype(np.int64)
    x = np.minimum(np.floor(u[:, -1] * (width - w + 1)), width - w).astype(np.int64)
    in_ratio = width / height
    if in_ratio < RATIO[0]:
        fw, fh = width, int(round(width / RATIO[0]))
    elif in_ratio > RATIO[1]:
        fw, fh = int(round(height * RATIO[1])), height
    else:
        fw, fh = width, height
    w, h = np.where(ok, w, fw), np.where(ok, h, fh)
    x = np.where(ok, x, (width - fw) // 2)
    y = np.where(ok, y, (height - fh) // 2)
    return np.stack([x, y, x + w, y + h], axis=1).astype(np.float64)


class BatchAugment:
    """MoCo v2 views of a batch of frame pairs: ``(frames (N, 2, 3, H, W) uint8, seeds (N,))`` ->
    ``x_q, x_k, x_p`` (N, 3, S, S) float, normalised, on ``device``.

    ``x_q`` and ``x_k`` are two views of frame ``f`` (``frames[:, 0]``), ``x_p`` one view of ``f'``.
    """

    def __init__(self, cfg: DataConfig):
        self.cfg = cfg
        self.kernel = blur_kernel_size(cfg.crop_size)
        self.sigma_range = (0.1 * cfg.crop_size / 224.0, 2.0 * cfg.crop_size / 224.0)

    def draw(self, seeds, height: int, width: int, views: int = 3) -> ViewParams:
        """Parameters of ``views`` views per seed, rows ordered view-major (all x_q, then x_k, x_p)."""
        c = self.cfg
        u = np.stack([np.random.default_rng(int(s)).random((views, _UNIFORMS)) for s in seeds], axis=1)
        u = u.reshape(views * len(seeds), _UNIFORMS)  # (V*N) x U, view-major
        crop, col = u[:, :2 * ATTEMPTS + 2], u[:, 2 * ATTEMPTS + 2:]
        j = c.color_jitter
        lo = max(0.0, 1.0 - j)
        factors = np.stack([lo + (1 + j - lo) * col[:, i] for i in range(3)]
                           + [-c.hue + 2 * c.hue * col[:, 3]], axis=1)
        order = np.argsort(col[:, 4:8], axis=1)  # a uniform random permutation of the four ops
        flip = (col[:, 8] < 0.5) if c.flip else np.zeros(len(u), dtype=bool)
        # probabilities and sigma come from a second stream of the same seed, so changing one
        # probability never moves the crops
        v = np.stack([np.random.default_rng([int(s), 1]).random((views, 4)) for s in seeds], axis=1)
        v = v.reshape(views * len(seeds), 4)
        sigma = self.sigma_range[0] + (self.sigma_range[1] - self.sigma_range[0]) * v[:, 3]
        return ViewParams(boxes=crop_boxes(crop, height, width, c.crop_scale), flip=flip,
                          jitter=v[:, 0] < c.color_jitter_prob, factors=factors, order=order,
                          gray=v[:, 1] < c.grayscale_prob, blur=v[:, 2] < c.blur_prob, sigma=sigma)

    def __call__(self, frames: torch.Tensor, seeds: torch.Tensor, device: torch.device,
                 need_key: bool = True) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """``need_key=False`` skips the pixels of ``x_k`` (returned as None) for objectives that never
        read it; the other views are unchanged, since every view's parameters are drawn either way."""
        n, _, _, height, width = frames.shape
        params = self.draw(seeds.tolist(), height, width)
        if not need_key:
            keep = np.r_[0:n, 2 * n:3 * n]
            params = ViewParams(**{k: v[keep] for k, v in vars(params).items()})
        x = self.apply(frames.to(device, non_blocking=True), params, views=(0, 1, 2) if need_key else (0, 2))
        if not need_key:
            return x[:n], None, x[n:]
        return x[:n], x[n:2 * n], x[2 * n:]

    def apply(self, frames: torch.Tensor, p: ViewParams, views=(0, 1, 2)) -> torch.Tensor:
        """The views of ``p`` (view-major: x_q, x_k, x_p rows of each pair; ``views`` says which are
        present) of ``frames`` (N, 2, 3, H, W) -> (len(views) * N, 3, S, S)."""
        n = frames.shape[0]
        device = frames.device
        src = frames.reshape(n * 2, *frames.shape[2:]).float().div_(255)  # 2N x 3 x H x W
        pair = torch.arange(n, device=device).repeat(len(views))
        # x_q, x_k come from f, x_p from f'
        frame = torch.tensor([int(v == 2) for v in views for _ in range(n)], device=device)
        boxes = torch.as_tensor(p.boxes, dtype=torch.float32, device=device)
        rois = torch.cat([(pair * 2 + frame).float()[:, None], boxes], dim=1)  # V x 5
        s = self.cfg.crop_size
        # aligned=True: a box x1..x2 covers pixel centres x1+0.5 .. x2-0.5; the adaptive sampling
        # ratio averages ceil(box / S) points per output pixel, an area filter when downscaling
        x = roi_align(src, rois, output_size=(s, s), spatial_scale=1.0, sampling_ratio=-1, aligned=True)
        flip = torch.as_tensor(p.flip, device=device)
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        x = self._colour_jitter(x, p)
        gray = torch.as_tensor(p.gray, device=device)
        x = torch.where(gray[:, None, None, None], _grayscale(x).expand_as(x), x)
        blur = torch.as_tensor(p.blur, device=device).nonzero().squeeze(1)
        if len(blur):
            sigma = torch.as_tensor(p.sigma, dtype=torch.float32, device=device)[blur]
            x[blur] = gaussian_blur2d(x[blur], (self.kernel, self.kernel), torch.stack([sigma, sigma], 1),
                                      border_type="reflect")
        mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
        std = torch.tensor(STD, device=device).view(1, 3, 1, 1)
        return (x - mean) / std

    def _colour_jitter(self, x: torch.Tensor, p: ViewParams) -> torch.Tensor:
        """ColorJitter on the rows with ``p.jitter``: four rounds, each row applying its op of that round."""
        device = x.device
        factors = torch.as_tensor(p.factors, dtype=torch.float32, device=device)
        jitter = torch.as_tensor(p.jitter, device=device)
        order = torch.as_tensor(p.order, device=device)
        for r in range(4):
            for op in range(4):
                rows = (jitter & (order[:, r] == op)).nonzero().squeeze(1)
                if len(rows):
                    x[rows] = _COLOUR_OPS[op](x[rows], factors[rows, op].view(-1, 1, 1, 1))
        return x


def _grayscale(x: torch.Tensor) -> torch.Tensor:
    """(V, 3, H, W) -> (V, 1, H, W) luma with torchvision's weights."""
    w = torch.tensor(GRAY, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def _brightness(x, f):
    return (x * f).clamp_(0, 1)


def _contrast(x, f):
    mean = _grayscale(x).mean(dim=(1, 2, 3), keepdim=True)
    return (f * x + (1 - f) * mean).clamp_(0, 1)


def _saturation(x, f):
    return (f * x + (1 - f) * _grayscale(x)).clamp_(0, 1)


def _hue(x, f):
    hsv = rgb_to_hsv(x)  # hue in radians [0, 2π)
    h = torch.remainder(hsv[:, :1] + f * (2 * math.pi), 2 * math.pi)
    return hsv_to_rgb(torch.cat([h, hsv[:, 1:]], dim=1)).clamp_(0, 1)


_COLOUR_OPS = (_brightness, _contrast, _saturation, _hue)
