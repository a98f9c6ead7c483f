# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% tags=["parameters"]
# 05 · Evaluate: parameters (papermill can override any of these names)
import os

# CCKIT_FAST=1: tiny data, model and run, so that the notebook runs in well under 2 minutes on a CPU
FAST = os.environ.get("CCKIT_FAST") == "1"
# preset of the full mode (the main job of make demo); fast mode shrinks it
CONFIG = "../configs/quickstart.yaml"
# the default videos are generated here on first use
DATA_ROOT = "../data/digits_fast" if FAST else "../data/digits_clutter"
# trained here unless it already holds a finished run (full mode: the run of make demo)
RUN_DIR = "../runs/notebooks_fast" if FAST else "../runs/quickstart"
# more key=value overrides, e.g. ["train.max_steps=200"] or ["data.source=videos"]
OVERRIDES = []
# stored method comparisons (cckit compare), each at plateau; their tables are shown at the end, nothing is trained
COMPARISONS = {"configs/paper_cpu.yaml": "../benchmarks/results/compare_paper_cpu/compare_methods.json",
               "configs/quickstart_long.yaml": "../benchmarks/results/compare_quickstart_long/compare_methods.json"}

# %% [markdown]
# # 05 · Evaluate: kNN, linear probe, per-class accuracy
#
# Frozen backbone features of evenly spaced frames: training videos are the memory (and the probe's
# training set), test videos (disjoint digit instances) the queries.
#
# **Cost** (2-core CPU): about a minute after `make demo` (nothing is trained; the comparison at the
# end is read from disk). `CCKIT_FAST=1`: under a minute.

# %%
from cckit.session import notebook_config

cfg = notebook_config(CONFIG, fast=FAST, run_dir=RUN_DIR, data_root=DATA_ROOT, overrides=OVERRIDES)
print(f"{cfg.method.name} · {cfg.model.arch} · data {cfg.data.root} · run {cfg.run_dir} · fast={FAST}")

# %%
from cckit.session import checkpoint_bank, ensure_checkpoint, eval_frames

checkpoint = ensure_checkpoint(cfg)
train_bank = checkpoint_bank(checkpoint, cfg, eval_frames(cfg, "train"))
test_bank = checkpoint_bank(checkpoint, cfg, eval_frames(cfg, "test"))
print(len(train_bank), "memory frames ·", len(test_bank), "query frames")

# %% [markdown]
# ## Weighted kNN with k and T sliders
# Per-class accuracy and confusion matrix update with the sliders.

# %%
from cckit.viz import KnnExplorer

KnnExplorer(train_bank, test_bank, k=cfg.eval.knn_k[0], temperature=cfg.eval.knn_temperature)

# %% [markdown]
# ## Linear probe
# Logistic regression on the frozen features; the weight decay is picked on held-out training videos.

# %%
from cckit.eval.linear import linear_probe

probe = linear_probe(train_bank.features, train_bank.labels, test_bank.features, test_bank.labels,
                     weight_decays=cfg.eval.linear_weight_decay, groups=train_bank.video_ids,
                     max_iter=cfg.eval.linear_max_iter)
{**{key: round(probe[key], 3) for key in ("top1", "top5", "train_top1")}, "weight_decay": probe["weight_decay"]}

# %% [markdown]
# ## Per-class accuracy: kNN against the linear probe

# %%
from cckit.eval import knn_predict
from cckit.viz import linear_probe_predictions, per_class_accuracy_figure

knn = knn_predict(train_bank.features, train_bank.labels, test_bank.features, k=cfg.eval.knn_k[0],
                  temperature=cfg.eval.knn_temperature)
linear = linear_probe_predictions(train_bank, test_bank, weight_decay=probe["weight_decay"],
                                  max_iter=cfg.eval.linear_max_iter)
names = [test_bank.class_name(c) for c in range(int(test_bank.labels.max()) + 1)]
per_class_accuracy_figure(test_bank.labels, {"kNN": knn, "linear probe": linear}, names)

# %%
from cckit.viz import confusion_matrix_figure

confusion_matrix_figure(test_bank.labels, linear, names, title="Linear probe: confusion matrix (row-normalised)")

# %% [markdown]
# ## Nearest training frames of some test frames
# Green: same class as the query.

# %%
from cckit.viz import retrieval_grid_figure

retrieval_grid_figure(test_bank, train_bank, range(0, len(test_bank), max(1, len(test_bank) // 5))[:5], k=8)

# %% [markdown]
# ## Against the random-init and raw-pixel floors

# %%
from cckit.eval import evaluate

metrics = evaluate(checkpoint, cfg, ("knn",), floors=True, progress=True)  # trained (no suffix) and the floors (_random_init, _random_init_bn, _pixels)
{name: round(value, 3) for name, value in metrics.items() if "top1" in name or name in ("chance", "highest_floor")}

# %% [markdown]
# ## The method comparison, with paired confidence intervals
#
# Stored `cckit compare` runs (`COMPARISONS`; nothing is trained here): the paper's recipe at CPU
# scale, and the quickstart trained to plateau (their kNN curves gain about a point or less over the
# last fifth of the steps). Each has every method over the same seeds, each seed with the same data order and initialisation for
# every method, from the floors (random init, raw pixels) to the ceiling (`supervised`: the same
# backbone and budget trained with the labels). The first table is mean ± std over seeds; then the
# training diagnostics; then where each kNN curve flattens; the last one is cycle_contrast −
# intra_video seed by seed, with a 95 % Student-t interval: a difference whose interval spans 0 is
# not resolved by these seeds. Under each comparison, the `cckit compare` calls that train it again
# (7–11 minutes per paper_cpu run, 4–6 per quickstart_long run, on a 2-core CPU); add seeds to
# `--seeds` to extend it: the runs it has are not trained again.

# %%
from pathlib import Path

from IPython.display import Markdown

from cckit.compare_report import comparison_report

# each stored comparison's tables, then the calls that train it again (run from the repository root, "..")
Markdown("\n\n".join(f"### `{config}`\n\n" + comparison_report(path, config, root="..")
                      for config, path in COMPARISONS.items() if Path(path).is_file()))

# %% [markdown]
# ## Your own videos or an official checkpoint
#
# * **Your videos**: set `DATA_ROOT` to a folder of video files and `OVERRIDES = ["data.source=videos"]`
#   (class = first sub-folder, as in UCF101; add `"data.labels=none"` for unlabelled videos, or use
#   `data.source=frames` for folders of frames). Everything above runs unchanged on them.
# * **An official MoCo / CycleContrast checkpoint** (`module.encoder_q.*`):
#   `backbone = cckit.checkpoint.load_backbone(path, "resnet50")`, then
#   `cckit.viz.frame_bank(backbone, frames, name="official")` gives a bank of backbone features for the
#   embedding maps, retrieval grids and kNN views (the cycle views then use backbone features too).
# * Run it headless with other settings: `papermill NOTEBOOK.ipynb out.ipynb -p RUN_DIR ../runs/mine`.
