"""CycleContrast model: ResNet backbone, intra head z, cycle head c, momentum copy, two key queues.

``forward`` only encodes. The momentum (EMA) update and the enqueue are free functions that
``train_step`` calls as explicit lines, so each piece can be run and inspected on its own.
"""
from __future__ import annotations

import copy
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from .config import ModelConfig
from .distributed import encode_keys_shuffled
from .losses import _full


class SplitBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm whose training statistics are computed over ``num_splits`` groups of the batch.

    On one device this stands in for MoCo's shuffle-BN: statistics of a small group cannot leak
    which key belongs to which query across the whole batch. Running stats are the group mean,
    and in eval mode it is an ordinary BatchNorm2d (same parameter names, so weights load into
    either).
    """

    def __init__(self, num_features: int, num_splits: int = 1, **kwargs):
        super().__init__(num_features, **kwargs)
        self.num_splits = num_splits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        s = self.num_splits
        if not self.training or s == 1 or n % s != 0:
            return super().forward(x)
        mean = self.running_mean.repeat(s)
        var = self.running_var.repeat(s)
        # (N, C, H, W) -> (N/S, S*C, H, W): sample a*S+b becomes channels of group b.
        out = F.batch_norm(x.reshape(n // s, s * c, h, w), mean, var, self.weight.repeat(s),
                           self.bias.repeat(s), True, self.momentum or 0.1, self.eps)
        with torch.no_grad():
            self.running_mean.copy_(mean.view(s, c).mean(0))
            self.running_var.copy_(var.view(s, c).mean(0))
            self.num_batches_tracked.add_(1)
        return out.reshape(n, c, h, w)


def _resnet(block, layers: list[int], width: int, norm) -> ResNet:
    """torchvision's ResNet with ``width`` base channels (stages width, 2w, 4w, 8w).

    ``width=64`` is torchvision's constructor exactly; other widths keep every module name
    (``conv1 .. layer4``), so tracking's feature maps and checkpoint loading see the same layout.
    """
    if width == 64:
        return ResNet(block, layers, norm_layer=norm)
    net = ResNet(block, layers, norm_layer=norm)  # the attributes _make_layer reads
    net.inplanes = width
    net.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
    net.bn1 = norm(width)
    for i, name in enumerate(("layer1", "layer2", "layer3", "layer4")):
        setattr(net, name, net._make_layer(block, width * 2 ** i, layers[i], stride=1 if i == 0 else 2))
    net.fc = nn.Linear(width * 8 * block.expansion, 1000)
    for m in net.modules():  # torchvision's initialisation of the rebuilt modules
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)
    return net


def build_backbone(arch: str = "resnet18", *, small_stem: bool = False, bn_splits: int = 1,
                   width: int = 64) -> tuple[nn.Module, int]:
    """torchvision ResNet with ``fc`` removed; returns ``(backbone, feature_dim)``.

    ``backbone(x)`` maps (N, 3, H, W) images to (N, d) pooled features (d = 8 * width for
    resnet10/18/34, 32 * width for resnet50; 512 / 2048 at torchvision's width 64). ``small_stem``
    swaps the 7x7/2 conv and max-pool for a 3x3/1 conv, the usual choice for 32-64 px frames;
    ``width`` is the base channel count (64 = torchvision, 16 or 32 for CPU presets).
    """
    if width < 1:
        raise ValueError(f"model.width: must be >= 1, got {width}")
    norm = partial(SplitBatchNorm2d, num_splits=bn_splits) if bn_splits > 1 else nn.BatchNorm2d
    blocks = {"resnet10": (BasicBlock, [1, 1, 1, 1]), "resnet18": (BasicBlock, [2, 2, 2, 2]),
              "resnet34": (BasicBlock, [3, 4, 6, 3]), "resnet50": (Bottleneck, [3, 4, 6, 3])}
    if arch not in blocks:
        raise ValueError(f"model.arch: unknown architecture {arch!r}")
    if width == 64 and arch != "resnet10":
        net = getattr(torchvision.models, arch)(weights=None, norm_layer=norm)
    else:
        net = _resnet(*blocks[arch], width, norm)
    if small_stem:
        net.conv1 = nn.Conv2d(3, width, kernel_size=3, stride=1, padding=1, bias=False)
        nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
        net.maxpool = nn.Identity()
    dim = net.fc.in_features
    net.fc = nn.Identity()
    return net, dim


class MLPHead(nn.Sequential):
    """Projection head ``d -> d -> out`` with ReLU (MoCo v2; names ``0``/``2`` match ``fc.0``/``fc.2``).

    With ``bn=True`` a BatchNorm1d follows the hidden layer (as in SimCLR and MoCo v3). It centres
    the hidden features of the batch, which removes the direction all ReLU features share at
    random init; without it, short runs can sit in a collapsed state where every embedding points
    the same way (mean cosine > 0.99) and the InfoNCE gradient vanishes.
    """

    def __init__(self, in_dim: int, out_dim: int = 128, bn: bool = False):
        if bn:
            super().__init__(nn.Linear(in_dim, in_dim, bias=False), nn.BatchNorm1d(in_dim), nn.ReLU(inplace=True),
                             nn.Linear(in_dim, out_dim))
        else:
            super().__init__(nn.Linear(in_dim, in_dim), nn.ReLU(inplace=True), nn.Linear(in_dim, out_dim))


class Encoder(nn.Module):
    """Backbone plus the intra head z and the cycle head c (c is z when heads are shared)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.backbone, self.feature_dim = build_backbone(cfg.arch, small_stem=cfg.small_stem, bn_splits=cfg.bn_splits,
                                                          width=cfg.width)
        self.head_intra = MLPHead(self.feature_dim, cfg.embed_dim, bn=cfg.head_bn)
        self.head_cycle = None if cfg.shared_heads else MLPHead(self.feature_dim, cfg.embed_dim, bn=cfg.head_bn)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, 3, H, W) -> (z (N, D), c (N, D)), both L2-normalised, in float32 under autocast."""
        return self.embed(self.backbone(x))

    def embed(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled features (N, d) -> (z, c) through the heads (half precision promoted to float32)."""
        z = F.normalize(_full(self.head_intra(h)), dim=1)
        c = z if self.head_cycle is None else F.normalize(_full(self.head_cycle(h)), dim=1)
        return z, c


class CycleContrastModel(nn.Module):
    """Online encoder, its momentum copy and the queues ``Q_z`` (K) and ``Q_c`` (K_c) with video ids.

    Buffers: ``queue_intra`` (K, D), ``queue_intra_ids`` (K,), ``queue_cycle`` (K_c, D),
    ``queue_cycle_ids`` (K_c,), ``queue_ptr`` (2,) — all saved in checkpoints. Empty slots start as
    random unit vectors with video id -1 (no video), as in MoCo.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.encoder_m = copy.deepcopy(self.encoder)
        for p in self.encoder_m.parameters():
            p.requires_grad_(False)
        d = cfg.embed_dim
        self.register_buffer("queue_intra", F.normalize(torch.randn(cfg.queue_size, d), dim=1))
        self.register_buffer("queue_intra_ids", torch.full((cfg.queue_size,), -1, dtype=torch.long))
        self.register_buffer("queue_cycle", F.normalize(torch.randn(cfg.cycle_queue_size, d), dim=1))
        self.register_buffer("queue_cycle_ids", torch.full((cfg.cycle_queue_size,), -1, dtype=torch.long))
        self.register_buffer("queue_ptr", torch.zeros(2, dtype=torch.long))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Online embeddings ``(z(x), c(x))``, each (N, D) L2-normalised."""
        return self.encoder(x)

    @torch.no_grad()
    def encode_momentum(self, x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Momentum embeddings ``(z_m(x), c_m(x))``. The batch is shuffled around the forward (across
        ranks under torchrun, within the batch otherwise) so that BN groups differ from the query's."""
        return encode_keys_shuffled(self.encoder_m, x, generator or torch.Generator().manual_seed(0))

    @torch.no_grad()
    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled backbone features (N, d) of the online encoder (what evaluation uses)."""
        return self.encoder.backbone(x)


@torch.no_grad()
def update_momentum(online: nn.Module, momentum: nn.Module, m: float) -> None:
    """EMA ``θ_m <- m θ_m + (1 - m) θ`` over parameters (BN running stats stay the copy's own)."""
    params_m = [p for p in momentum.parameters()]
    params = [p.detach() for p in online.parameters()]
    torch._foreach_lerp_(params_m, params, 1.0 - m)


@torch.no_grad()
def enqueue(queue: torch.Tensor, queue_ids: torch.Tensor, ptr: torch.Tensor, slot: int,
            keys: torch.Tensor, video_ids: torch.Tensor) -> None:
    """Write ``keys`` (B, D) and their ``video_ids`` (B,) over the oldest rows of a FIFO queue.

    ``ptr[slot]`` is the queue's write position; the queue length must be a multiple of B
    (checked by the config) so a write never wraps.
    """
    b = keys.shape[0]
    start = int(ptr[slot])
    queue[start:start + b] = keys.to(queue.dtype)
    queue_ids[start:start + b] = video_ids.to(queue_ids.device)
    ptr[slot] = (start + b) % queue.shape[0]


def random_backbone(cfg, seed: int = 0) -> nn.Module:
    """A randomly initialised backbone of ``cfg.model``'s architecture, in eval mode (the random-init floor)."""
    torch.manual_seed(seed)
    net, _ = build_backbone(cfg.model.arch, small_stem=cfg.model.small_stem, width=cfg.model.width)
    return net.eval()


def random_model(cfg, seed: int = 0) -> "CycleContrastModel":
    """An untrained :class:`CycleContrastModel` of ``cfg.model`` (both encoders, heads, queues), in eval mode."""
    torch.manual_seed(seed)
    return CycleContrastModel(cfg.model).eval()
