"""SiamFC-style tracking on frozen backbone features (Bertinetto et al., ECCV-W 2016).

No tracking-specific training: the exemplar's feature map is the correlation kernel. Per frame:

1. exemplar (frame 0): a square crop around the target with context ``p = context · (w + h)``,
   side ``z = sqrt((w + p)(h + p))``, resized to ``exemplar_size`` px -> feature map ``φ(z)``;
2. search (each later frame): crops of side ``x = z · search_size / exemplar_size`` times each of
   ``num_scales`` scale factors ``scale_step^{-1, 0, 1}`` around the last centre, resized to
   ``search_size`` -> ``φ(x_s)``;
3. response ``φ(x_s) ⋆ φ(z)`` (``F.conv2d``), upsampled ``upsample``× (bicubic), off-centre scales
   multiplied by ``scale_penalty``; the best scale's map is normalised, blended with a Hann cosine
   window (``window_influence``) and its peak gives the displacement; the size follows the scale
   with learning rate ``scale_lr``.

Layer choice: the default data has 64 px frames and ~20-50 px targets, so the exemplar crop
(about twice the target) is ~50-100 px and ``exemplar_size=64`` keeps it near native
resolution. On a standard-stem ResNet, ``layer2`` (stride 8) then gives an 8×8 kernel over a
16×16 search map (9×9 response); ``layer3`` (stride 16) leaves 4×4 over 8×8, and ``layer4`` is
2×2 — too coarse to localise. Measured on 30 default test videos (precision at 2.67 px / AUC):
layer1 0.79 / 0.84 random-init vs 0.91 / 0.85 trained (near-pixel features: both track well);
layer2 0.36 / 0.77 vs 0.67 / 0.81; layer3 0.07 / 0.55 vs 0.31 / 0.65; a box that never moves
scores 0.35 / 0.70. ``layer2`` is the default: accurate, and it separates representations.
For OTB-size frames use SiamFC's 127 / 255 px with ``layer3``. Hyper-parameters otherwise follow SiamFC
(scale_step 1.0375, scale_penalty 0.9745, scale_lr 0.59, window_influence 0.176, 16× upsampling).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F

from ..data.transforms import MEAN, STD
from .features import feature_maps, feature_stride


@dataclass(frozen=True)
class SiamFCConfig:
    layer: str = "layer2"  # backbone stage whose map is correlated (see the module docstring)
    exemplar_size: int = 64  # exemplar crop side fed to the backbone, px (SiamFC: 127)
    search_size: int = 128  # search crop side fed to the backbone, px (SiamFC: 255)
    context: float = 0.5  # context margin p = context · (w + h) around the target
    num_scales: int = 3  # scales searched per frame
    scale_step: float = 1.0375  # ratio between neighbouring scales
    scale_penalty: float = 0.9745  # multiplies the responses of the off-centre scales
    scale_lr: float = 0.59  # how fast the box size follows the best scale
    window_influence: float = 0.176  # weight of the Hann cosine window (motion prior)
    upsample: int = 16  # response upsampling factor before the argmax


def crop_resize(image: torch.Tensor, center: tuple[float, float], size: float, out_size: int,
                fill: torch.Tensor) -> torch.Tensor:
    """Square crop of ``size`` px centred at ``center = (cy, cx)`` (pixel-index coordinates: pixel i
    is centred at i), padded with ``fill`` outside the frame, resized (antialiased) to ``out_size``.

    Args:
        image: (3, H, W) float; fill: (3,).

    Returns:
        (3, out_size, out_size).
    """
    size = max(1, int(round(size)))
    _, h, w = image.shape
    y0, x0 = int(round(center[0] - (size - 1) / 2)), int(round(center[1] - (size - 1) / 2))
    pad = max(0, -y0, -x0, y0 + size - h, x0 + size - w)
    if pad:
        image = F.pad(image - fill[:, None, None], (pad, pad, pad, pad)) + fill[:, None, None]
    patch = image[:, y0 + pad:y0 + pad + size, x0 + pad:x0 + pad + size]
    return F.interpolate(patch[None], size=(out_size, out_size), mode="bilinear", antialias=True,
                         align_corners=False)[0]


class SiamFCTracker:
    """Single-object tracker: ``init(frame, box)`` once, then ``update(frame) -> box`` per frame.

    Frames are (H, W, 3) uint8 arrays; boxes are 0-based xywh (see :mod:`cckit.eval.otb`). Each
    step is also available in pieces (``exemplar_crop``/``set_kernel``, ``search_crops``/``locate``)
    so that :func:`track_many` can run the backbone once for many sequences.
    """

    def __init__(self, backbone: torch.nn.Module, cfg: SiamFCConfig = SiamFCConfig(), device: torch.device | None = None,
                 stride: int | None = None):
        self.cfg = cfg
        self.device = device or next(backbone.parameters()).device
        self.net = backbone.to(self.device).eval()
        self.stride = stride or feature_stride(self.net, cfg.layer, probe_size=cfg.search_size)
        self.scales = cfg.scale_step ** (np.arange(cfg.num_scales) - (cfg.num_scales - 1) / 2)
        self.mean = torch.tensor(MEAN, device=self.device)[:, None, None]
        self.std = torch.tensor(STD, device=self.device)[:, None, None]

    def _image(self, frame: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        frame = np.array(frame, dtype=np.uint8)  # a copy: arrays backed by PIL images are read-only
        x = torch.from_numpy(frame).to(self.device).permute(2, 0, 1).float() / 255
        x = (x - self.mean) / self.std  # 3 x H x W
        return x, x.mean(dim=(1, 2))  # image, average colour (the padding fill)

    def exemplar_crop(self, frame: np.ndarray, box) -> torch.Tensor:
        """Set the target state from the first box; returns the (3, E, E) exemplar crop."""
        x, y, w, h = (float(v) for v in box)
        self.center = np.array([y + h / 2 - 0.5, x + w / 2 - 0.5])  # (cy, cx), pixel-index coordinates
        self.target = np.array([h, w])
        self.base_target = self.target.copy()
        self.frame_size = np.array(frame.shape[:2], dtype=np.float64)
        p = self.cfg.context * self.target.sum()
        self.z_size = float(np.sqrt(np.prod(self.target + p)))
        self.x_size = self.z_size * self.cfg.search_size / self.cfg.exemplar_size
        image, fill = self._image(frame)
        return crop_resize(image, tuple(self.center), self.z_size, self.cfg.exemplar_size, fill)

    def set_kernel(self, kernel: torch.Tensor) -> None:
        """The exemplar's (1, C, hz, wz) feature map, the correlation kernel."""
        self.kernel = kernel

    @torch.no_grad()
    def init(self, frame: np.ndarray, box) -> None:
        z = self.exemplar_crop(frame, box)
        self.set_kernel(feature_maps(self.net, z[None], self.cfg.layer))  # 1 x C x hz x wz

    def search_crops(self, frame: np.ndarray) -> torch.Tensor:
        """(S, 3, X, X) search crops around the last centre, one per scale."""
        image, fill = self._image(frame)
        return torch.stack([crop_resize(image, tuple(self.center), self.x_size * s, self.cfg.search_size, fill)
                            for s in self.scales])

    def _window(self, n: int) -> torch.Tensor:
        """(n, n) Hann cosine window summing to 1 (cached per size)."""
        if getattr(self, "_hann", None) is None or self._hann.shape[0] != n:
            hann = np.outer(np.hanning(n), np.hanning(n))
            self._hann = torch.as_tensor(hann / hann.sum(), dtype=torch.float32, device=self.device)
        return self._hann

    @torch.no_grad()
    def locate(self, search: torch.Tensor) -> np.ndarray:
        """New box from the (S, C, hx, wx) feature maps of :meth:`search_crops`; updates the state."""
        cfg = self.cfg
        response = F.conv2d(search, self.kernel)  # S x 1 x r x r
        n = cfg.upsample * response.shape[-1]
        response = F.interpolate(response, size=(n, n), mode="bicubic", align_corners=False)[:, 0]  # S x n x n
        penalty = torch.full((len(self.scales),), cfg.scale_penalty, device=self.device)
        penalty[len(self.scales) // 2] = 1.0
        best = int((response.flatten(1).amax(1) * penalty).argmax())
        r = response[best] - response[best].min()
        r = r / (r.sum() + 1e-16)
        r = (1 - cfg.window_influence) * r + cfg.window_influence * self._window(n)
        loc = np.array(np.unravel_index(int(r.argmax()), r.shape), dtype=np.float64)
        disp_response = loc - (n - 1) / 2  # upsampled response cells
        disp_search = disp_response * self.stride / cfg.upsample  # px of the search crop input
        scale = self.scales[best]
        disp_frame = disp_search * self.x_size * scale / cfg.search_size
        self.center = np.clip(self.center + disp_frame, 0, self.frame_size - 1)
        factor = (1 - cfg.scale_lr) + cfg.scale_lr * scale
        # keep the size within 0.2x..5x of the first box, as pysot does, so a drift cannot explode
        factor = float(np.clip(factor, (0.2 * self.base_target / self.target).max(), (5 * self.base_target / self.target).min()))
        self.target, self.z_size, self.x_size = self.target * factor, self.z_size * factor, self.x_size * factor
        h, w = self.target
        return np.array([self.center[1] + 0.5 - w / 2, self.center[0] + 0.5 - h / 2, w, h])

    @torch.no_grad()
    def update(self, frame: np.ndarray) -> np.ndarray:
        return self.locate(feature_maps(self.net, self.search_crops(frame), self.cfg.layer))


def track(tracker: SiamFCTracker, frames: Iterable[np.ndarray], init_box) -> np.ndarray:
    """Run a tracker over a sequence: frame 0 initialises with ``init_box``; returns (T, 4) xywh boxes
    (row 0 is ``init_box``)."""
    boxes = []
    for i, frame in enumerate(frames):
        if i == 0:
            tracker.init(frame, init_box)
            boxes.append(np.asarray(init_box, dtype=np.float64))
        else:
            boxes.append(tracker.update(frame))
    return np.stack(boxes)


@torch.no_grad()
def track_many(backbone: torch.nn.Module, sequences: list[tuple[np.ndarray, np.ndarray]], cfg: SiamFCConfig = SiamFCConfig(),
               device: torch.device | None = None, chunk: int = 64) -> list[np.ndarray]:
    """:func:`track` over in-memory sequences ``(frames (T, H, W, 3), gt (T, 4))``, ``chunk`` at a
    time in lockstep: one backbone pass per frame index for all of them (same boxes as one by one,
    many times faster on a CPU). Returns one (T, 4) xywh array per sequence."""
    device = device or next(backbone.parameters()).device
    net = backbone.to(device).eval()
    stride = feature_stride(net, cfg.layer, probe_size=cfg.search_size)
    out = []
    for start in range(0, len(sequences), chunk):
        part = sequences[start:start + chunk]
        trackers = [SiamFCTracker(net, cfg, device, stride=stride) for _ in part]
        z = torch.stack([t.exemplar_crop(frames[0], gt[0]) for t, (frames, gt) in zip(trackers, part)])
        for t, kernel in zip(trackers, feature_maps(net, z, cfg.layer).split(1)):
            t.set_kernel(kernel)
        boxes = [[np.asarray(gt[0], dtype=np.float64)] for _, gt in part]
        for step in range(1, max(len(frames) for frames, _ in part)):
            active = [i for i, (frames, _) in enumerate(part) if step < len(frames)]
            crops = torch.cat([trackers[i].search_crops(part[i][0][step]) for i in active])  # (A*S) x 3 x X x X
            for i, search in zip(active, feature_maps(net, crops, cfg.layer).split(cfg.num_scales)):
                boxes[i].append(trackers[i].locate(search))
        out += [np.stack(b) for b in boxes]
    return out


def manifest_sequences(records, frames_store=None, max_videos: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(frames (T, H, W, 3) uint8, gt (T, 4) xywh)`` for videos whose records carry per-frame boxes
    (the generated data's manifest has them).

    Args:
        records: :class:`~cckit.data.records.VideoRecord` list (e.g. the test split).
        frames_store: an optional :class:`~cckit.data.frame_store.FrameStore` over ``records``.
        max_videos: use the first this many videos (0: all).
    """
    from ..data.frame_store import FrameStore
    from ..errors import DataError
    from .otb import xyxy_to_xywh

    records = list(records)[:max_videos or None]
    lacking = [r.path for r in records if not r.boxes]
    if lacking:
        raise DataError(f"{lacking[0]}: no per-frame boxes (needed for tracking; {len(lacking)} of "
                        f"{len(records)} videos lack them)")
    store = frames_store or FrameStore(records, in_memory=False)
    out = []
    for i, r in enumerate(records):
        frames = store.get(i, list(range(r.num_frames)))
        out.append((frames, xyxy_to_xywh(list(r.boxes))[:len(frames)]))
    return out
