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
# 04 · Embeddings: parameters (papermill can override any of these names)
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
# more methods mapped side by side, each trained once into RUN_DIR + "_" + method
COMPARE = ["moco_v2"]
# "umap", "tsne" or "pca"
MAP = "umap"

# %% [markdown]
# # 04 · Embedding maps
#
# UMAP of the backbone features of test-video frames under each model, coloured by class and by video,
# with image thumbnails for a sample. Good features group frames of a class across videos; features
# that only know the video group frames by background colour. Maps are fitted per model: compare the
# grouping within each panel, not positions across panels.
#
# **Cost** (2-core CPU): about a minute after `make demo` and notebook 03 (it reuses their runs;
# a method of `COMPARE` without a finished run is trained first, 2–4 minutes). `CCKIT_FAST=1`: under a minute.

# %%
from cckit.session import notebook_config

cfg = notebook_config(CONFIG, fast=FAST, run_dir=RUN_DIR, data_root=DATA_ROOT, overrides=OVERRIDES)
print(f"{cfg.method.name} · {cfg.model.arch} · data {cfg.data.root} · run {cfg.run_dir} · fast={FAST}")

# %%
from cckit.session import eval_frames, model_banks

print("decoding the evaluation frames, then loading (or training) each model ...", flush=True)
frames = eval_frames(cfg, "test")
banks = model_banks(cfg, frames, COMPARE)
{name: len(bank) for name, bank in banks.items()}

# %% [markdown]
# ## Coloured by class, per method

# %%
from cckit.viz import compare_embeddings_figure

by_class = compare_embeddings_figure(banks, color_by="class", method=MAP)
by_class

# %% [markdown]
# ## Do the features encode the video?
# The same maps with six videos highlighted (of different classes) over all the others in grey: a
# video whose frames sit together is one the features recognise as a video (its hue, its digit
# instance), not only as a class. Each title gives the **video spread** of the features themselves:
# the mean cosine distance between two frames of one video over that between frames of different
# videos (1: videos not told apart; near 0: each video's frames coincide).

# %%
compare_embeddings_figure(banks, color_by="video", method=MAP, thumbnails=0, coords=by_class.cckit_coords)

# %% [markdown]
# ## The cycle head's space
# The embedding the cycle loss shapes directly (`c`), for the trained run:

# %%
compare_embeddings_figure({cfg.method.name: banks[cfg.method.name]}, space="cycle", method=MAP)

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
