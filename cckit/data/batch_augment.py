"""The MoCo v2 augmentation applied to a whole batch at once, on the training device.

The loader only gathers uint8 frames ``f`` and ``f'`` of each video with a per-sample seed;
:class:`BatchAugment` turns them into ``(x_q, x_k, x_p)`` with a handful of batched tensor calls
(two batched matrix products for every crop, resize and flip, then torchvision's colour ops with a
factor per row and a separable blur, or with ``data.color_ops=matrix`` one affine colour map per
view and the blur folded into the crop, :mod:`~cckit.data.color_matrix`), so the CPU cores go to
the model instead of to three views × five ops per sample.

Each sample's random parameters are a counter-based hash (SplitMix64, :func:`uniforms`) of that
sample's seed alone, computed for the whole batch in a few vectorised numpy operations: the views stay a pure function of ``(seed, epoch, index)`` whatever the batch, the device or
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
import torch.nn.functional as F

from ..config import DataConfig
from .color_matrix import GRAY, blur_matrices, blur_weights, colour_maps
from .transforms import MEAN, STD, blur_kernel_size

RATIO = (3 / 4, 4 / 3)  # RandomResizedCrop's aspect-ratio range
ATTEMPTS = 10  # RandomResizedCrop's tries before the centre-crop fallback
_UNIFORMS = 2 * ATTEMPTS + 2 + 9  # uniforms drawn per view (crop 22, colour 9)
CPU_CHUNK = 64  # views per float conversion + first product on a CPU


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


_GOLDEN, _MIX1, _MIX2 = np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _splitmix64(z: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser (Steele, Lea & Flood 2014): a bijective mix of uint64 words."""
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def _words(values) -> np.ndarray:
    """Integers (a scalar, a sequence, a numpy or torch array) as uint64 words, two's complement."""
    values = np.asarray(values.tolist() if isinstance(values, torch.Tensor) else values)
    if values.dtype.kind in "iu":  # a C cast: negative values wrap
        return values.astype(np.uint64)
    return np.asarray([int(x) & 0xFFFF_FFFF_FFFF_FFFF for x in values.ravel()], dtype=np.uint64).reshape(values.shape)


def mix_seeds(*columns) -> np.ndarray:
    """A 63-bit int64 seed per row from integer columns (scalars broadcast), e.g. ``(run seed,
    epoch, index, stream)``: a SplitMix64 chain, so each row's seed depends on its own values only."""
    words = np.broadcast_arrays(*(_words(c) for c in columns))
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps by design
        z = np.full(words[0].shape, _GOLDEN, dtype=np.uint64)
        for w in words:
            z = _splitmix64(z + w * _GOLDEN)
    return (z >> np.uint64(1)).astype(np.int64).reshape(-1)


def uniforms(seeds, stream: int, count: int) -> np.ndarray:
    """(N, count) float64 uniforms in [0, 1): column ``j`` of row ``i`` depends only on
    ``(seeds[i], stream, j)``, so a sample's draws never depend on the batch it is in."""
    seeds = _words(seeds).reshape(-1)
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps by design
        key = _splitmix64(seeds * _GOLDEN + np.uint64(stream + 1) * _MIX1)
        counter = np.arange(1, count + 1, dtype=np.uint64) * _GOLDEN
        z = _splitmix64(key[:, None] + counter[None, :])
    return (z >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


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


def resample_matrix(start: torch.Tensor, length: torch.Tensor, out: int, size: int) -> torch.Tensor:
    """(V, out, size) weights that crop ``[start, start + length)`` of an axis of ``size`` pixels
    and resize it to ``out``: ``roi_align(aligned=True, sampling_ratio=-1)`` along one axis.

    Output pixel ``i`` averages ``g = ceil(length / out)`` bilinear samples at
    ``start - 0.5 + (i + (j + 0.5) / g) * length / out``, ``j < g``, with roi_align's border rules
    (a sample beyond ``[-1, size]`` counts zero, one in ``[-1, 0]`` or past the last pixel is clamped).
    """
    views, device = len(start), start.device
    grid = torch.ceil(length / out).clamp(min=1)  # V
    bin_size = (length / out)[:, None, None]
    j = torch.arange(int(grid.max()), device=device, dtype=start.dtype)  # G
    i = torch.arange(out, device=device, dtype=start.dtype)
    pos = (start[:, None, None] - 0.5 + i[None, :, None] * bin_size
           + (j[None, None, :] + 0.5) * bin_size / grid[:, None, None])  # V x out x G
    weight = ((j[None, None, :] < grid[:, None, None]) & (pos >= -1) & (pos <= size)).to(pos.dtype)
    weight = weight / grid[:, None, None]
    pos = pos.clamp(min=0)
    low = pos.floor().clamp(max=size - 1)
    pos = torch.minimum(pos, low + (low < size - 1).to(pos.dtype))  # at the last pixel: no right neighbour
    frac = pos - low
    high = (low + 1).clamp(max=size - 1)
    matrix = torch.zeros(views, out, size, device=device, dtype=start.dtype)
    matrix.scatter_add_(2, low.long(), weight * (1 - frac))
    matrix.scatter_add_(2, high.long(), weight * frac)
    return matrix


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
        u = uniforms(seeds, 0, views * _UNIFORMS).reshape(len(seeds), views, _UNIFORMS)
        u = u.transpose(1, 0, 2).reshape(views * len(seeds), _UNIFORMS)  # (V*N) x U, view-major
        crop, col = u[:, :2 * ATTEMPTS + 2], u[:, 2 * ATTEMPTS + 2:]
        j = c.color_jitter
        lo = max(0.0, 1.0 - j)
        factors = np.stack([lo + (1 + j - lo) * col[:, i] for i in range(3)]
                           + [-c.hue + 2 * c.hue * col[:, 3]], axis=1)
        order = np.argsort(col[:, 4:8], axis=1)  # a uniform random permutation of the four ops
        flip = (col[:, 8] < 0.5) if c.flip else np.zeros(len(u), dtype=bool)
        # probabilities and sigma come from a second stream of the same seed, so changing one
        # probability never moves the crops
        v = uniforms(seeds, 1, views * 4).reshape(len(seeds), views, 4)
        v = v.transpose(1, 0, 2).reshape(views * len(seeds), 4)
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
        height, width = frames.shape[-2:]
        pair = torch.arange(n, device=device).repeat(len(views))
        # x_q, x_k come from f, x_p from f'
        frame = torch.cat([torch.full((n,), int(v == 2), device=device) for v in views])
        # row-planar source (V, H, 3 * W), each pixel row channel by channel: the frame store's
        # layout (TrainClips.batch), read in place; any other layout is gathered into it
        src = frames.permute(0, 1, 3, 2, 4).flatten(0, 1).index_select(0, pair * 2 + frame)
        src = src.view(-1, height, 3 * width)  # uint8, made float chunk by chunk below
        boxes = torch.as_tensor(p.boxes, dtype=torch.float32, device=device)
        s = self.cfg.crop_size
        # crop + resize + flip as two batched matrix products, x = A_y · f · A_xᵀ: the average of
        # ceil(box / S) bilinear samples per output pixel is separable in y and x
        if height == width:  # both axes' matrices in one call
            rows, cols = resample_matrix(torch.cat([boxes[:, 1], boxes[:, 0]]),
                                         torch.cat([boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]]),
                                         s, height).split(len(boxes))
        else:
            rows = resample_matrix(boxes[:, 1], boxes[:, 3] - boxes[:, 1], s, height)  # V x S x H
            cols = resample_matrix(boxes[:, 0], boxes[:, 2] - boxes[:, 0], s, width)  # V x S x W
        rows = rows / 255
        matrix = self.cfg.color_ops == "matrix"
        blur = _rows(p.blur, device)
        sigma = torch.as_tensor(p.sigma[p.blur], dtype=torch.float32, device=device)
        if matrix and len(blur):  # blur folded into the crop: (B A_y) f (B A_x)ᵀ
            b = blur_matrices(sigma, self.kernel, s)
            rows.index_copy_(0, blur, torch.bmm(b, rows.index_select(0, blur)))
            cols.index_copy_(0, blur, torch.bmm(b, cols.index_select(0, blur)))
        flip = _rows(p.flip, device)
        if len(flip):
            cols.index_copy_(0, flip, cols.index_select(0, flip).flip(1))
        # rows first, all channels in one product: V x S x 3W. On a CPU the float source goes
        # through in chunks of views that stay in cache (measured faster than one 12 MB conversion)
        chunk = CPU_CHUNK if device.type == "cpu" else len(src)
        x = torch.empty(len(src), s, 3 * width, device=device)
        for c in range(0, len(src), chunk):
            torch.bmm(rows[c:c + chunk], src[c:c + chunk].float(), out=x[c:c + chunk])
        x = x.view(-1, s * 3, width)  # V x 3S x W, no copy
        x = torch.bmm(x, cols.transpose(1, 2)).view(-1, s, 3, s)  # V x S x 3 x S
        mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
        std = torch.tensor(STD, device=device).view(1, 3, 1, 1)
        if matrix:  # colour jitter + grayscale as one affine map per view, then one clamp
            maps = np.stack(colour_maps(p.factors, p.order, p.jitter, p.gray), 1)  # V x 2 x 3 x 3: M, K
            maps = torch.as_tensor(maps, dtype=torch.float32, device=device)
            pixels, flat = maps.unbind(1)
            offset = torch.bmm(flat - pixels, x.mean(dim=(1, 3))[:, :, None])  # (K - M) m: V x 3 x 1
            x = torch.baddbmm(offset, pixels, x.transpose(1, 2).reshape(-1, 3, s * s)).view(-1, 3, s, s)
            return x.clamp_(0, 1).sub_(mean).div_(std)
        x = x.transpose(1, 2).contiguous()  # V x 3 x S x S
        x = self._colour_jitter(x, p)
        gray = _rows(p.gray, device)
        if len(gray):  # only the grayscale rows, as for the blur below
            x.index_copy_(0, gray, _grayscale(x.index_select(0, gray)).expand(-1, 3, -1, -1))
        if len(blur):
            x.index_copy_(0, blur, gaussian_blur(x.index_select(0, blur), self.kernel, sigma))
        return x.sub_(mean).div_(std)  # x is this call's own tensor

    def _colour_jitter(self, x: torch.Tensor, p: ViewParams) -> torch.Tensor:
        """ColorJitter on the rows with ``p.jitter``: four rounds, each row applying its op of that round."""
        device = x.device
        for r in range(4):
            for op in range(4):
                chosen = p.jitter & (p.order[:, r] == op)  # numpy: a few microseconds for the batch
                if chosen.any():
                    rows = _rows(chosen, device)
                    factor = torch.as_tensor(p.factors[chosen, op], dtype=torch.float32, device=device)
                    x.index_copy_(0, rows, _COLOUR_OPS[op](x.index_select(0, rows), factor.view(-1, 1, 1, 1)))
        return x


def _rows(mask: np.ndarray, device: torch.device) -> torch.Tensor:
    """Indices of the True entries of a (V,) numpy mask, as a tensor on ``device``."""
    return torch.from_numpy(np.flatnonzero(mask)).to(device)


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
    """torchvision's ``adjust_hue`` with a factor per row: rotate the hue by ``f`` turns, keeping
    HSV value and saturation, without building the HSV image (``f(n) = V - C·clamp(min(k, 4 - k), 0, 1)``,
    ``k = (n + 6h) mod 6`` for n = 5, 3, 1). Branch-free: masks are 0/1 factors and the mod is a
    floor, several times faster here than ``torch.where`` and ``remainder``."""
    r, g, b = x.unbind(1)
    top = torch.maximum(torch.maximum(r, g), b)
    chroma = top - torch.minimum(torch.minimum(r, g), b)
    is_r = (top == r).to(x.dtype)
    is_g = (top == g).to(x.dtype).mul_(1 - is_r)
    is_b = 1 - is_r - is_g
    # hue x 6 = (g - b) / C, (b - r) / C + 2 or (r - g) / C + 4 by the largest channel; grey pixels
    # (C = 0) divide 0 by 1 and keep their value below
    num = (g - b).mul_(is_r).add_((b - r).add_(chroma, alpha=2).mul_(is_g)).add_((r - g).add_(chroma, alpha=4).mul_(is_b))
    sixths = num.div_(chroma + (chroma == 0).to(x.dtype)).add_(6 * f.view(-1, 1, 1))
    k = sixths[:, None] + _HUE_SHIFTS.to(x.device, x.dtype)  # V x 3 x H x W
    k.sub_(torch.floor(k / 6).mul_(6))  # mod 6
    k = torch.minimum(k, 4 - k).clamp_(0, 1)
    return torch.addcmul(top[:, None], chroma[:, None], k, value=-1)


_HUE_SHIFTS = torch.tensor([5.0, 3.0, 1.0]).view(1, 3, 1, 1)  # n of R, G, B


def gaussian_blur(x: torch.Tensor, kernel: int, sigma: torch.Tensor) -> torch.Tensor:
    """torchvision's ``gaussian_blur`` (reflect border) with a sigma per row: (V, C, H, W), (V,).

    Separable, as ``kernel`` shifted, weighted copies per axis: at the few-tap kernels of small
    crops this is several times faster than a grouped convolution with one kernel per row.
    """
    half = kernel // 2
    weight = blur_weights(sigma, kernel, x.dtype)[:, :, None, None, None]  # V x k x 1 x 1 x 1
    height, width = x.shape[-2:]
    padded = F.pad(x, (half, half, 0, 0), mode="reflect")
    x = padded[..., :width] * weight[:, 0]
    for t in range(1, kernel):
        x.add_(padded[..., t:t + width] * weight[:, t])
    padded = F.pad(x, (0, 0, half, half), mode="reflect")
    x = padded[..., :height, :] * weight[:, 0]
    for t in range(1, kernel):
        x.add_(padded[..., t:t + height, :] * weight[:, t])
    return x


_COLOUR_OPS = (_brightness, _contrast, _saturation, _hue)
