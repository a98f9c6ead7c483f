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
# 03 · Cycle matches: parameters (papermill can override any of these names)
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
# bank row shown first
QUERY = 0
# more methods for the dropdown, each trained once into RUN_DIR + "_" + method
COMPARE = ["moco_v2"]

# %% [markdown]
# # 03 · Cycle matches: where the soft neighbour goes and whether it comes back
#
# For a query frame, the cycle head `c` picks soft nearest neighbours among frames of **other** videos
# (a random support set `U`, the query's own video removed): `w = softmax(c(x)·Uᵀ / T_nn)`,
# `n = normalize(w·U)`. Back: `n` ranks the candidates (frames outside `U` and the other frames of the
# query's video). The cycle *returns* when the best candidate is from the query's own video, which is
# what the cycle loss trains for. Frames: evenly spaced frames of the training videos.
#
# **Cost** (2-core CPU): it decodes the frames of the training videos (under a minute), then
# **trains each method of `COMPARE` that has no finished run** (default `moco_v2`, 1000 steps into
# `RUN_DIR_moco_v2`, once; later runs reuse it; `COMPARE = []` skips it). Measured after `make demo`,
# the whole notebook with that training took 2 min 11 s. `CCKIT_FAST=1`: under 2 minutes.

# %%
from cckit.session import notebook_config

cfg = notebook_config(CONFIG, fast=FAST, run_dir=RUN_DIR, data_root=DATA_ROOT, overrides=OVERRIDES)
print(f"{cfg.method.name} · {cfg.model.arch} · data {cfg.data.root} · run {cfg.run_dir} · fast={FAST}")

# %%
from cckit.session import eval_frames, model_banks

print("decoding the evaluation frames, then loading (or training) each model ...", flush=True)
frames = eval_frames(cfg, "train")
banks = model_banks(cfg, frames, COMPARE)  # trained run, compared methods, random init
{name: len(bank) for name, bank in banks.items()}

# %%
from cckit.viz import cycle_match, cycle_match_figure

bank = banks[cfg.method.name]
match = cycle_match(bank, QUERY, support_size=cfg.method.support_size, nn_temperature=cfg.method.temperature)
print("weights sum to", round(float(match.weights.sum()), 4), "· returns:", match.returns, "· own video first at rank", match.own_video_rank)
cycle_match_figure(bank, match)

# %% [markdown]
# How often the cycle closes over all frames, per model (same support draw and `T_nn`):

# %%
from cckit.viz import cycle_consistency

{name: round(float(cycle_consistency(b, support_size=cfg.method.support_size,
                                     nn_temperature=cfg.method.temperature).float().mean()), 3)
 for name, b in banks.items()}

# %% [markdown]
# ## Cycle diagnostics: the trained model against random init
#
# On the test videos' frames, half of the videos forming the support bank (`cckit.diagnostics`, the
# same numbers the trainer logs as `diag_*` with each kNN reading):
# **effective rank** of the backbone features, of `z` and of `c` (how many directions the frames
# spread over, of 128 for the heads); **purity**, the share of the soft neighbour's weight `w` that
# falls on frames of the query's class (chance: the class share of the bank); the **cycle rate**,
# the soft neighbour ranking another frame of the query's video first among all frames of other
# videos, beside its chance value; how often that back-ranking lands in the query's **own video**;
# and the **support entropy** beside its maximum `log M`. A cycle head squeezed into a few directions
# shows as a low rank of `c` next to a higher rank of `z`. Trained to plateau, `c` puts about 40 % of
# `w` on the query's class; neighbours always of its class (`method.support_oracle=true`, a label
# oracle) do not make the cycle add: the loss rewards what leads back to the video, not the class
# (benchmarks/README.md, "The support oracle").

# %%
from cckit.session import diagnostics_table

table = diagnostics_table(cfg, eval_frames(cfg, "test"))
{key: {name: round(values[key], 3) for name, values in table.items()} for key in table["trained"]}

# %% [markdown]
# ## The browser
# Move the slider over query frames, switch checkpoint/method, and change `T_nn` and the support size:
# the match, the weights and the cycle-consistency rate of the whole bank are recomputed live.

# %%
from cckit.viz import CycleBrowser

# opens on the figure above: the same query, support size and T_nn
browser = CycleBrowser(banks, query=QUERY, support_size=cfg.method.support_size, nn_temperature=cfg.method.temperature)
browser

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
