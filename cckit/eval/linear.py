"""Linear evaluation of frozen features.

Two protocols:

- :func:`linear_probe` — multinomial logistic regression on precomputed (cached) features:
  features standardised with the training mean and std, full-batch L-BFGS in torch on the
  L2-regularised mean cross-entropy ``CE + wd/2 · ||W||²``; the weight decay is chosen among
  candidates on a held-out split of the training *videos* (frames of one video never straddle
  the split). Fast and deterministic: the protocol used on the default data.
- :func:`train_linear_sgd` — the paper's protocol (MoCo ``main_lincls.py``, used by
  CycleContrast for ImageNet): frozen backbone in eval mode, a linear layer on the pooled
  feature, SGD lr 30, momentum 0.9, no weight decay, 100 epochs with lr × 0.1 at 60 and 80,
  RandomResizedCrop + flip for training and Resize + CenterCrop for validation, on
  ImageNet-style folders (``<split>/<class>/<image>``). Meant for a GPU.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..utils import autocast


@dataclass
class LinearProbe:
    """A fitted probe: ``scores = ((x - mean) / std) @ weight.T + bias``."""
    mean: torch.Tensor  # (D,)
    std: torch.Tensor  # (D,)
    weight: torch.Tensor  # (C, D)
    bias: torch.Tensor  # (C,)

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """(N, D) features -> (N, C) logits."""
        x = x.to(self.mean.device, self.mean.dtype)
        return ((x - self.mean) / self.std) @ self.weight.t() + self.bias


def fit_logistic_regression(features: torch.Tensor, labels: torch.Tensor, *, num_classes: int | None = None,
                            weight_decay: float = 1e-4, max_iter: int = 300, standardize: bool = True,
                            dtype: torch.dtype = torch.float32) -> LinearProbe:
    """Multinomial logistic regression by full-batch L-BFGS (strong-Wolfe line search).

    Minimises ``mean_i CE(W x_i + b, y_i) + weight_decay / 2 · ||W||²`` (bias not decayed); this is
    scikit-learn's ``LogisticRegression(C=1 / (weight_decay · N))``.

    Args:
        features: (N, D) on any device (the fit runs there).
        labels: (N,) int in [0, C).
        num_classes: C (default: max label + 1).
        weight_decay: L2 strength on W.
        max_iter: L-BFGS iterations.
        standardize: centre and scale each feature by the training mean and std first.
    """
    x = features.to(dtype)
    y = labels.to(x.device).long()
    c = int(num_classes if num_classes is not None else int(y.max()) + 1)
    d = x.shape[1]
    mean = x.mean(0) if standardize else torch.zeros(d, dtype=dtype, device=x.device)
    std = x.std(0, unbiased=False).clamp_min(1e-6) if standardize else torch.ones(d, dtype=dtype, device=x.device)
    xs = (x - mean) / std  # N x D
    weight = torch.zeros(c, d, dtype=dtype, device=x.device, requires_grad=True)
    bias = torch.zeros(c, dtype=dtype, device=x.device, requires_grad=True)
    opt = torch.optim.LBFGS([weight, bias], lr=1.0, max_iter=max_iter, history_size=20,
                            tolerance_grad=1e-7, tolerance_change=1e-9, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(xs @ weight.t() + bias, y) + 0.5 * weight_decay * weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return LinearProbe(mean, std, weight.detach(), bias.detach())


def classification_metrics(scores: torch.Tensor, labels: torch.Tensor, num_classes: int | None = None) -> dict:
    """Top-1, top-5, per-class accuracy (recall of each class; NaN for a class absent from ``labels``)
    and their mean, from (N, C) scores."""
    labels = labels.to(scores.device).long()
    c = int(num_classes or scores.shape[1])
    top = scores.topk(min(5, scores.shape[1]), dim=1).indices  # N x 5
    correct = top[:, 0] == labels
    per_class = [float(correct[labels == k].float().mean()) if bool((labels == k).any()) else float("nan")
                 for k in range(c)]
    present = [a for a in per_class if a == a]
    return {"top1": float(correct.float().mean()), "top5": float((top == labels[:, None]).any(1).float().mean()),
            "per_class": per_class, "mean_per_class": float(np.mean(present)) if present else float("nan")}


def _holdout(groups: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """Boolean (N,) mask of rows whose group (video) falls in a random ``fraction`` of the groups."""
    unique = torch.unique(groups)
    g = torch.Generator().manual_seed(seed)
    held = unique[torch.randperm(len(unique), generator=g)[:max(1, int(round(fraction * len(unique))))]]
    return torch.isin(groups, held)


def linear_probe(train_features: torch.Tensor, train_labels: torch.Tensor, test_features: torch.Tensor,
                 test_labels: torch.Tensor, *, weight_decays: tuple[float, ...] = (1e-4,), groups: torch.Tensor | None = None,
                 num_classes: int | None = None, max_iter: int = 300, val_fraction: float = 0.2, seed: int = 0) -> dict:
    """Fit a logistic-regression probe on train features and score the test features.

    With several ``weight_decays``, each is fitted on the training rows outside a held-out
    ``val_fraction`` of the ``groups`` (video ids; rows are their own group when None) and the
    best validation top-1 wins (ties: the larger decay); the final probe is refitted on all
    training rows.

    Returns:
        ``top1``, ``top5``, ``per_class``, ``mean_per_class`` on the test set, ``train_top1``,
        ``weight_decay`` (chosen) and ``val_top1`` (per candidate, when there were several).
    """
    c = int(num_classes or int(max(train_labels.max(), test_labels.max())) + 1)
    out = {}
    wd = weight_decays[0]
    if len(weight_decays) > 1:
        groups = torch.arange(len(train_labels)) if groups is None else groups.cpu()
        val = _holdout(groups, val_fraction, seed)
        val_top1 = {}
        for cand in weight_decays:
            probe = fit_logistic_regression(train_features[~val], train_labels[~val], num_classes=c,
                                            weight_decay=cand, max_iter=max_iter)
            val_top1[cand] = classification_metrics(probe.scores(train_features[val]), train_labels[val], c)["top1"]
        wd = max(weight_decays, key=lambda w: (val_top1[w], w))
        out["val_top1"] = {str(k): v for k, v in val_top1.items()}
    probe = fit_logistic_regression(train_features, train_labels, num_classes=c, weight_decay=wd, max_iter=max_iter)
    out.update(classification_metrics(probe.scores(test_features), test_labels, c))
    out["train_top1"] = classification_metrics(probe.scores(train_features), train_labels, c)["top1"]
    out["weight_decay"] = wd
    return out


def _image_folders(train_dir, val_dir, image_size: int, batch_size: int, workers: int):
    from torchvision import datasets
    from torchvision.transforms import v2

    from ..data.transforms import MEAN, STD

    tail = [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)]
    train_tf = v2.Compose([v2.RandomResizedCrop(image_size, antialias=True), v2.RandomHorizontalFlip(), *tail])
    resize = int(round(image_size * 256 / 224))  # ImageNet: Resize(256) + CenterCrop(224)
    val_tf = v2.Compose([v2.Resize(resize, antialias=True), v2.CenterCrop(image_size), *tail])
    train_set = datasets.ImageFolder(str(train_dir), train_tf)
    val_set = datasets.ImageFolder(str(val_dir), val_tf)
    if val_set.classes != train_set.classes:
        raise ValueError(f"{val_dir}: class folders differ from {train_dir}")
    loader = torch.utils.data.DataLoader
    return (loader(train_set, batch_size=batch_size, shuffle=True, num_workers=workers, drop_last=False),
            loader(val_set, batch_size=batch_size, shuffle=False, num_workers=workers), len(train_set.classes))


def train_linear_sgd(backbone: torch.nn.Module, train_dir: str | Path, val_dir: str | Path, *, device: torch.device,
                     image_size: int = 224, epochs: int = 100, lr: float = 30.0, milestones: tuple[int, ...] = (60, 80),
                     momentum: float = 0.9, weight_decay: float = 0.0, batch_size: int = 256, workers: int = 8,
                     dtype: torch.dtype | None = None, seed: int = 0) -> dict:
    """The paper's linear classification protocol on ImageNet-style folders (MoCo ``main_lincls``).

    The backbone stays frozen in eval mode (BatchNorm statistics fixed); only a linear layer
    ``fc: d -> C`` (init N(0, 0.01), bias 0) is trained on augmented crops.

    Returns:
        ``top1``, ``top5`` (validation, after the last epoch), ``per_class``, ``mean_per_class``,
        and ``history``: per epoch ``{"epoch", "lr", "train_loss", "val_top1"}``.
    """
    torch.manual_seed(seed)
    train_loader, val_loader, num_classes = _image_folders(train_dir, val_dir, image_size, batch_size, workers)
    backbone = backbone.to(device).eval()
    for p in backbone.parameters():
        p.requires_grad_(False)
    with torch.no_grad():
        dim = backbone(torch.zeros(2, 3, image_size, image_size, device=device)).shape[1]
    fc = torch.nn.Linear(dim, num_classes).to(device)
    torch.nn.init.normal_(fc.weight, std=0.01)
    torch.nn.init.zeros_(fc.bias)
    opt = torch.optim.SGD(fc.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(milestones), gamma=0.1)

    def evaluate() -> dict:
        scores, labels = [], []
        with torch.no_grad():
            for images, target in val_loader:
                with autocast(device, dtype):
                    feats = backbone(images.to(device, non_blocking=True))
                scores.append(fc(feats.float()).cpu())
                labels.append(target)
        return classification_metrics(torch.cat(scores), torch.cat(labels), num_classes)

    history, metrics = [], {}
    for epoch in range(epochs):
        total, count = 0.0, 0
        for images, target in train_loader:
            with torch.no_grad(), autocast(device, dtype):
                feats = backbone(images.to(device, non_blocking=True))  # frozen: no graph through it
            loss = F.cross_entropy(fc(feats.float()), target.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, count = total + float(loss.detach()) * len(target), count + len(target)
        history.append({"epoch": epoch + 1, "lr": opt.param_groups[0]["lr"], "train_loss": total / max(count, 1)})
        sched.step()
        if epoch == epochs - 1 or (epoch + 1) % 10 == 0:
            metrics = evaluate()
            history[-1]["val_top1"] = metrics["top1"]
    return {**(metrics or evaluate()), "history": history, "num_classes": num_classes}
