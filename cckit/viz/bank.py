"""A frame bank: the evaluation frames of some videos with their images and embeddings under one model.

Every view of what a model learned (cycle matches, embedding maps, retrieval grids) reads a bank,
so a model is run over the frames once and the views are cheap to redraw.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from ..data.dataset import EvalFrames
from ..model import CycleContrastModel


@dataclass
class FrameBank:
    """N frames: images, labels, video ids and their embeddings under one model."""
    name: str  # which model embedded the frames, e.g. "cycle_contrast" or "random init"
    images: np.ndarray  # (N, H, W, 3) uint8 frames as decoded (for display)
    labels: torch.Tensor  # (N,) class of the frame's video (-1: unlabelled)
    video_ids: torch.Tensor  # (N,)
    frame_indices: torch.Tensor  # (N,) frame index inside its video
    features: torch.Tensor  # (N, d) pooled backbone features, L2-normalised
    intra: torch.Tensor | None = None  # (N, D) intra head z, L2-normalised (None for a bare backbone)
    cycle: torch.Tensor | None = None  # (N, D) cycle head c, L2-normalised (None for a bare backbone)
    class_names: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    def space(self, name: str) -> torch.Tensor:
        """Embeddings by name: ``"cycle"`` (c), ``"intra"`` (z) or ``"features"`` (backbone);
        a head a bare backbone lacks falls back to the backbone features."""
        value = {"cycle": self.cycle, "intra": self.intra, "features": self.features}[name]
        return self.features if value is None else value

    def class_name(self, label: int) -> str:
        return self.class_names[label] if 0 <= label < len(self.class_names) else str(label)

    def subset(self, index) -> "FrameBank":
        """The frames at ``index`` (indices or a boolean mask), same model."""
        index = torch.as_tensor(index)
        if index.dtype == torch.bool:
            index = index.nonzero().flatten()
        pick = lambda t: None if t is None else t[index]  # noqa: E731
        return FrameBank(self.name, self.images[index.numpy()], self.labels[index], self.video_ids[index],
                         self.frame_indices[index], self.features[index], pick(self.intra), pick(self.cycle),
                         self.class_names)


@torch.no_grad()
def frame_bank(model: torch.nn.Module, dataset: EvalFrames, *, name: str = "", device: torch.device | str = "cpu",
               batch_size: int = 256, class_names: list[str] | None = None) -> FrameBank:
    """Embed every frame of an :class:`EvalFrames` dataset.

    ``model`` is a :class:`CycleContrastModel` (backbone features, z and c of its online encoder) or
    a bare backbone (features only, e.g. from :func:`cckit.checkpoint.load_backbone`). The model is
    run in eval mode and left in the mode it came in.
    """
    device = torch.device(device)
    encoder = model.encoder if isinstance(model, CycleContrastModel) else None
    net = encoder if encoder is not None else model
    was_training = net.training
    net.eval().to(device)
    feats, intra, cycle, labels, vids, frames = [], [], [], [], [], []
    for images, lab, vid, f in DataLoader(dataset, batch_size=batch_size):
        x = images.to(device)
        h = encoder.backbone(x) if encoder is not None else net(x)  # N x d
        feats.append(F.normalize(h.float(), dim=1).cpu())
        if encoder is not None:
            z = F.normalize(encoder.head_intra(h).float(), dim=1)  # N x D
            c = z if encoder.head_cycle is None else F.normalize(encoder.head_cycle(h).float(), dim=1)
            intra.append(z.cpu())
            cycle.append(c.cpu())
        labels.append(lab)
        vids.append(vid)
        frames.append(f)
    net.train(was_training)
    images = np.stack([dataset.frames.get(i, [f])[0] for i, f in dataset.items])
    return FrameBank(name=name or type(model).__name__, images=images, labels=torch.cat(labels),
                     video_ids=torch.cat(vids), frame_indices=torch.cat(frames), features=torch.cat(feats),
                     intra=torch.cat(intra) if intra else None, cycle=torch.cat(cycle) if cycle else None,
                     class_names=list(class_names or []))
