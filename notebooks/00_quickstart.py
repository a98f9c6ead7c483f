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
# 00 · Quickstart: parameters (papermill can override any of these names)
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

# %% [markdown]
# # 00 · Quickstart: CycleContrast end to end
#
# Generate the default moving-digit videos, train CycleContrast (or reuse the finished run in `RUN_DIR`),
# compare frame kNN of the trained backbone with the random-init and raw-pixel floors, and follow one
# query around its cross-video cycle. The other notebooks take each step apart:
# `01` data and positive pairs, `02` one training step piece by piece, `03` the cycle-match browser,
# `04` embedding maps, `05` evaluation.
#
# **Cost** (2-core CPU): after `make demo` nothing is trained and the whole notebook takes about
# 25 s (the evaluation reuses the features the main job cached; without them, about a minute).
# Without a finished run in `RUN_DIR` it trains the quickstart first (1000 steps, 1–4 minutes).
# `CCKIT_FAST=1`: under a minute.

# %%
from cckit.session import notebook_config

cfg = notebook_config(CONFIG, fast=FAST, run_dir=RUN_DIR, data_root=DATA_ROOT, overrides=OVERRIDES)
print(f"{cfg.method.name} · {cfg.model.arch} · data {cfg.data.root} · run {cfg.run_dir} · fast={FAST}")

# %% [markdown]
# ## Data
# One training sample is one video. `load_splits` generates the default videos on first use.

# %%
from cckit.data.index import load_splits

splits = load_splits(cfg.data)
{split: len(records) for split, records in splits.items()}

# %% [markdown]
# ## Train
# With a live progress bar; the GPU is used when there is one. A finished run in `RUN_DIR` is reused.

# %%
from cckit.session import ensure_checkpoint

checkpoint = ensure_checkpoint(cfg)
checkpoint

# %% [markdown]
# ## Evaluate
# Weighted kNN of test-video frames against train-video frames, for the trained backbone and three
# floors: the same backbone at random init, the same with BN statistics estimated on the train frames,
# and raw pixels. The bar names each stage (about a minute in all on a 2-core CPU).

# %%
from cckit.eval import evaluate

metrics = evaluate(checkpoint, cfg, ("knn",), floors=True, progress=True)  # trained (no suffix) and the floors (_random_init, _random_init_bn, _pixels)
{name: round(value, 3) for name, value in metrics.items() if "top1" in name or name in ("chance", "highest_floor")}

# %% [markdown]
# ## Training curves
# The kNN panel draws the three floors (and chance) as dashed lines: where the curve crosses them, the
# features start to beat them. The last panel says how to read the others.

# %%
from cckit.viz import floor_lines, training_curves_figure

training_curves_figure(cfg.run_dir, floors=floor_lines(metrics, cfg.eval.knn_k[0]))

# %% [markdown]
# ## One cross-video cycle
# The soft nearest neighbour of a query among frames of *other* videos (top row, with weights `w`), then
# the ranking back (middle row): the cycle closes when the best candidate is a frame of the query's video.

# %%
from cckit.viz import cycle_match, cycle_match_figure
from cckit.session import checkpoint_bank, eval_frames

bank = checkpoint_bank(checkpoint, cfg, eval_frames(cfg, "train"))
match = cycle_match(bank, 0, support_size=cfg.method.support_size, nn_temperature=cfg.method.temperature)
cycle_match_figure(bank, match)

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
