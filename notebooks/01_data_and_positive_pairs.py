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
# 01 · Data and positive pairs: parameters (papermill can override any of these names)
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
# # 01 · Data and positive pairs
#
# Each default video shows one real handwritten digit (scikit-learn's scans) moving over its own
# background. The class is shared across videos, the background and colours are not: the setting in
# which cross-video cycle-consistency should help. A training sample is one video: two augmented crops
# `x_q`, `x_k` of a random frame *f* and one crop `x_p` of another frame *f'*.
#
# **Cost** (2-core CPU): nothing is trained; the data is generated on first use (about a minute),
# then the notebook runs in under a minute.

# %%
from cckit.session import notebook_config

cfg = notebook_config(CONFIG, fast=FAST, run_dir=RUN_DIR, data_root=DATA_ROOT, overrides=OVERRIDES)
print(f"{cfg.method.name} · {cfg.model.arch} · data {cfg.data.root} · run {cfg.run_dir} · fast={FAST}")

# %%
from cckit.data.index import load_splits

splits = load_splits(cfg.data)
{split: len(records) for split, records in splits.items()}

# %% [markdown]
# ## Videos
# Evenly spaced frames of a few training videos, with class and motion type from the manifest.

# %%
from cckit.viz import video_strips_figure

video_strips_figure(splits["train"][:6], frames=8)

# %% [markdown]
# ## One training item
# With the batched augmentation (`data.augment=batch`, the default) `TrainClips(records, cfg.data, seed)[i]`
# is `(frames, seed, video_id, replaced)`: the uint8 frames *f* and *f'* of video `i`, the item's
# augmentation seed, the video id, and whether a stand-in video replaced one that failed to decode.
# `clips.views(indices)` makes `(x_q, x_k, x_p, video_ids)` from them as the trainer does. (With
# `data.augment=loader` the item is `(x_q, x_k, x_p, video_id, replaced)` directly.) Every random choice
# is a pure function of `(seed, epoch, i)`.

# %%
from cckit.data.dataset import TrainClips

clips = TrainClips(splits["train"], cfg.data, seed=cfg.train.seed)
frames, seed, video_id, replaced = clips[0]  # data.augment=batch: the loader hands over uint8 frames f, f'
print("frames f, f'", tuple(frames.shape), frames.dtype, "· seed", seed, "· video", video_id, "· stand-in", replaced)
x_q, x_k, x_p, video_ids = clips.views([0])  # the batched augmentation, as the trainer runs it
print("x_q", tuple(x_q.shape), "x_k", tuple(x_k.shape), "x_p", tuple(x_p.shape), "frames (f, f')", clips.sample_frames(0))

# %% [markdown]
# ## Positive pairs of a batch
# Rows: frame *f*, the query crop `x_q`, the key crop `x_k` of the same frame (MoCo v2's positive),
# frame *f'* and the positive crop `x_p` (the intra-video and CycleContrast positive).
#
# Two things in these crops matter for what the model can learn. **Mirrored digits**: each view is
# flipped left-right with probability ½ (MoCo v2's augmentation), so the model must call a mirrored
# 2 a 2 — the class survives the flip, the exact shape does not. **Crops that miss the digit**: a crop
# covers 40–100 % of the frame (`data.crop_scale`) and the digit moves, so some crops hold little or
# none of it; such a pair can only be matched by colour and clutter, which is noise for the class.
# The colour jitter follows `cfg.data.color_ops`: `matrix` (the quickstart: each view's jitter and
# grayscale as one colour matrix, clamped once) or `torchvision` (torchvision's ops exactly); add
# `"data.color_ops=torchvision"` to `OVERRIDES` to compare.

# %%
from cckit.viz import positive_pairs_figure
from cckit.session import class_names

positive_pairs_figure(clips, range(8), class_names=class_names(cfg))

# %% [markdown]
# The next epoch draws new frames and new augmentations for the same videos:

# %%
clips.set_epoch(1)
positive_pairs_figure(clips, range(8), class_names=class_names(cfg))

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
