"""Interactive evaluation views: kNN with k and T controls, linear-probe predictions, per-class accuracy, confusion."""
from __future__ import annotations

import html

import ipywidgets as widgets
import matplotlib
import numpy as np
import torch

from ..eval import knn_predict
from .bank import FrameBank
from .images import figure_png, new_figure


def confusion_matrix(true, pred, num_classes: int) -> torch.Tensor:
    """(C, C) counts; row = true class, column = predicted class."""
    true, pred = torch.as_tensor(true).long(), torch.as_tensor(pred).long()
    return torch.bincount(true * num_classes + pred, minlength=num_classes * num_classes).view(num_classes, num_classes)


def per_class_accuracy(true, pred, num_classes: int) -> torch.Tensor:
    """(C,) accuracy per true class (NaN for a class with no samples)."""
    cm = confusion_matrix(true, pred, num_classes).double()
    return cm.diagonal() / cm.sum(1)  # 0/0 -> nan


def linear_probe_predictions(memory: FrameBank, queries: FrameBank, *, space: str = "features",
                             weight_decay: float = 1e-4, max_iter: int = 300) -> torch.Tensor:
    """(N,) test-frame classes predicted by a logistic-regression probe fitted on the memory frames
    (:func:`cckit.eval.linear.fit_logistic_regression`)."""
    from ..eval.linear import fit_logistic_regression

    c = int(max(memory.labels.max(), queries.labels.max())) + 1
    probe = fit_logistic_regression(memory.space(space), memory.labels, num_classes=c, weight_decay=weight_decay,
                                    max_iter=max_iter)
    return probe.scores(queries.space(space)).argmax(1).cpu()


def _class_names(bank: FrameBank, c: int) -> list[str]:
    return [bank.class_name(i) for i in range(c)]


def confusion_matrix_figure(true, pred, class_names: list[str], *, title: str = "", ax=None):
    """Row-normalised confusion matrix with the counts written in the cells."""
    c = len(class_names)
    cm = confusion_matrix(true, pred, c).numpy()
    share = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    if ax is None:
        fig = new_figure(5.0, 4.4, layout="constrained")
        ax = fig.add_subplot()
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(c):
        for j in range(c):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                        color="white" if share[i, j] > 0.6 else "black")
    ax.set_xticks(range(c), class_names, fontsize=8)
    ax.set_yticks(range(c), class_names, fontsize=8)
    ax.set(xlabel="predicted class", ylabel="true class", title=title or "Confusion matrix (row-normalised)")
    ax.figure.colorbar(image, ax=ax, label="fraction of the true class", shrink=0.8)
    return ax.figure


def per_class_accuracy_figure(true, predictions: dict[str, torch.Tensor], class_names: list[str], *, ax=None):
    """Grouped bars: accuracy of each class under each named set of predictions (e.g. kNN, linear)."""
    c = len(class_names)
    if ax is None:
        fig = new_figure(7.0, 3.6, layout="constrained")
        ax = fig.add_subplot()
    width = 0.8 / max(1, len(predictions))
    colours = matplotlib.colormaps["tab10"]
    for i, (name, pred) in enumerate(predictions.items()):
        acc = per_class_accuracy(true, pred, c).nan_to_num(0.0).numpy()
        overall = float((torch.as_tensor(pred) == torch.as_tensor(true)).float().mean())
        ax.bar(np.arange(c) + (i - (len(predictions) - 1) / 2) * width, acc, width, color=colours(i),
               label=f"{name} (overall {overall:.1%})")
    ax.set_xticks(range(c), class_names)
    ax.set(xlabel="class", ylabel="accuracy", ylim=(0, 1.05), title="Per-class accuracy on test frames")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)  # outside: bars stay visible
    return ax.figure


class KnnExplorer(widgets.VBox):
    """Weighted kNN of test frames against training frames with sliders for k and T.

    Shows the top-1 accuracy, the per-class accuracy and the confusion matrix; ``accuracy`` and
    ``predictions`` hold the current values.
    """

    def __init__(self, memory: FrameBank, queries: FrameBank, *, space: str = "features", k: int = 20,
                 temperature: float = 0.07):
        self.memory, self.queries, self.space = memory, queries, space
        self.num_classes = int(max(memory.labels.max(), queries.labels.max())) + 1
        self.k = widgets.IntSlider(value=min(k, len(memory)), min=1, max=min(200, len(memory)), description="k",
                                   continuous_update=False)
        self.temperature = widgets.FloatLogSlider(value=temperature, base=10, min=-2.5, max=0.5, step=0.1,
                                                  description="T", readout_format=".3f", continuous_update=False)
        self.summary = widgets.HTML()
        self.image = widgets.Image(format="png")
        self.accuracy: float | None = None
        self.predictions: torch.Tensor | None = None
        super().__init__([widgets.HBox([self.k, self.temperature]), self.summary, self.image])
        self.k.observe(self.update, names="value")
        self.temperature.observe(self.update, names="value")
        self.update()

    def update(self, change=None) -> None:
        self.predictions = knn_predict(self.memory.space(self.space), self.memory.labels, self.queries.space(self.space),
                                       k=self.k.value, temperature=self.temperature.value, num_classes=self.num_classes)
        true = self.queries.labels
        self.accuracy = float((self.predictions == true).float().mean())
        names = _class_names(self.queries, self.num_classes)
        fig = new_figure(12.0, 4.0, layout="constrained")
        left, right = fig.subplots(1, 2, width_ratios=[1.4, 1])
        per_class_accuracy_figure(true, {f"kNN k={self.k.value}": self.predictions}, names, ax=left)
        confusion_matrix_figure(true, self.predictions, names, ax=right)
        self.image.value = figure_png(fig, dpi=80)
        self.summary.value = (f"<b>{html.escape(self.memory.name)}</b>: weighted kNN (k = {self.k.value}, "
                              f"T = {self.temperature.value:.3f}) top-1 = <b>{self.accuracy:.1%}</b> on "
                              f"{len(self.queries)} test frames against {len(self.memory)} training frames")
