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
# 02 · Train: parameters (papermill can override any of these names)
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
# True: train RUN_DIR from scratch even if it holds a finished run
FRESH = False
# the paper's momentum-key recipe (make demo-paper) shown beside the quickstart's online variant;
# fast mode trains a tiny one here, full mode reads the run of make demo-paper if it is there
PAPER_CONFIG = "../configs/paper_cpu.yaml"
PAPER_RUN_DIR = "../runs/notebooks_fast_paper" if FAST else "../runs/paper_cpu"

# %% [markdown]
# # 02 · Train: one step piece by piece, then the whole run
#
# `cckit.train.train_step` is explicit: **EMA → encode → losses → backward → optimizer → enqueue**.
# The cells below run those pieces one by one on the trainer's first batch, print what each produces,
# and check that together they give exactly what `train_step` gives. Then the whole run trains with a
# live progress bar (on the GPU when there is one).
#
# **Cost** (2-core CPU): the step-by-step cells take seconds; after `make demo` the run is reused and
# nothing is trained (without it, 1000 steps: 3–4 minutes). The two-key-encoder figure reads
# `runs/paper_cpu` (`make demo-paper`) and trains nothing. `CCKIT_FAST=1`: under a minute.

# %%
from cckit.session import notebook_config

cfg = notebook_config(CONFIG, fast=FAST, run_dir=RUN_DIR, data_root=DATA_ROOT, overrides=OVERRIDES)
print(f"{cfg.method.name} · {cfg.model.arch} · data {cfg.data.root} · run {cfg.run_dir} · fast={FAST}")

# %%
import torch

from cckit.model import CycleContrastModel
from cckit.train import build_optimizer
from cckit.utils import get_device
from cckit.session import first_batch

device = get_device(cfg.train.device)
torch.manual_seed(cfg.train.seed)
model = CycleContrastModel(cfg.model).to(device).train()
optimizer = build_optimizer(model, cfg)
x_q, x_k, x_p, video_ids = (t.to(device) for t in first_batch(cfg))
print("device", device, "· batch", tuple(x_q.shape), "· video ids", video_ids[:8].tolist(), "...")

# %% [markdown]
# **1. EMA.** The momentum encoder moves a fraction `1 - m` towards the online encoder, before it encodes the keys (as in the official MoCo and CycleContrast code). On the first step both encoders are still equal, so it does not move.

# %%
from cckit.model import update_momentum

before = model.encoder_m.backbone.conv1.weight.clone()
update_momentum(model.encoder, model.encoder_m, cfg.model.momentum)
print("m =", cfg.model.momentum, "· momentum conv1 moved by", f"{float((model.encoder_m.backbone.conv1.weight - before).norm()):.2e}")

# %% [markdown]
# **2. Encode.** The paper (`method.key_encoder=momentum`): online encoder on `x_q` (both heads), momentum encoder on `x_k` and `x_p` in one pass (shuffled for split-BN). The quickstart's small-scale variant (`online`): `x_q` and its second view (`x_p`; `x_k` for moco_v2) in one online pass, both with gradient; the queues take the second view's detached embeddings.

# %%
from cckit.methods import get_method
from cckit.utils import step_generator

n = x_q.shape[0]
if cfg.method.key_encoder == "online":
    second = x_p if get_method(cfg.method.name).needs_other_frame else x_k  # moco_v2: the other crop
    z, c = model(torch.cat([x_q, second]))  # 2N x D each, with grad
    q_z, q_c, p_z, p_c = z[:n], c[:n], z[n:], c[n:]
    k_z, k_c = p_z.detach(), p_c.detach()  # what the queues take
    p_c = k_c  # the cycle's positive carries no gradient (the model learns it only through w)
else:
    q_z, q_c = model(x_q)  # z(x_q), c(x_q): N x D, with grad
    m_z, m_c = model.encode_momentum(torch.cat([x_k, x_p]), generator=step_generator(cfg.train.seed, 0, salt=1))
    k_z, k_c, p_z, p_c = m_z[:n], m_c[:n], m_z[n:], m_c[n:]  # momentum keys (x_k) and positives (x_p)
print(cfg.method.key_encoder, "keys · q_z", tuple(q_z.shape), "q_c", tuple(q_c.shape), "k_z", tuple(k_z.shape), "p_c", tuple(p_c.shape))
print("unit norm:", torch.allclose(q_c.norm(dim=1), torch.ones(n)), "· q_z·p_z mean", round(float((q_z * p_z).sum(1).mean().detach()), 3))

# %% [markdown]
# **3. Losses.** Intra-video InfoNCE (paper: against the queue `Q_z`; online variant: symmetric, against the other samples of the batch), plus λ × the cycle loss through a support set `U` drawn from `Q_c`.

# %%
from cckit.objective import Embeddings, Queues, compute_objective

emb = Embeddings(query_intra=q_z, query_cycle=q_c, key_intra=k_z, positive_intra=p_z, positive_cycle=p_c,
                 video_ids=video_ids, key_cycle=k_c)
loss, stats = compute_objective(emb, Queues.of(model), cfg.method, step_generator(cfg.train.seed, 0))
{name: round(float(value), 4) for name, value in stats.items()}

# %% [markdown]
# **4. Backward and optimizer.** The cycle loss reaches the cycle head only through the soft-NN weights `w`.

# %%
optimizer.zero_grad(set_to_none=True)
loss.backward()
head = model.encoder.head_cycle if model.encoder.head_cycle is not None else model.encoder.head_intra
print("grad norm: backbone conv1", round(float(model.encoder.backbone.conv1.weight.grad.norm()), 4),
      "· cycle head", round(float(head[-1].weight.grad.norm()), 4))
optimizer.step()

# %% [markdown]
# **5. Enqueue.** The keys (both heads) overwrite the oldest queue rows, with their video ids.

# %%
from cckit.model import enqueue

print("queue pointers before", model.queue_ptr.tolist())
enqueue(model.queue_intra, model.queue_intra_ids, model.queue_ptr, 0, k_z, video_ids)
enqueue(model.queue_cycle, model.queue_cycle_ids, model.queue_ptr, 1, k_c, video_ids)
print("after", model.queue_ptr.tolist(), "· first rows hold video ids", model.queue_cycle_ids[:8].tolist())

# %% [markdown]
# **Check.** The same batch through `train_step` on an identically initialised model gives the same loss, weights and queues.

# %%
from cckit.train import train_step

torch.manual_seed(cfg.train.seed)
twin = CycleContrastModel(cfg.model).to(device).train()
twin_stats = train_step(twin, build_optimizer(twin, cfg), (x_q, x_k, x_p, video_ids), cfg, step=0, lr=cfg.train.lr)
same = {"loss": abs(twin_stats["loss"] - loss.item()) < 1e-5,
        "weights": all(torch.allclose(a, b, atol=1e-6) for a, b in zip(model.parameters(), twin.parameters())),
        "queues": torch.allclose(model.queue_cycle, twin.queue_cycle, atol=1e-6)}
assert all(same.values()), same
same

# %% [markdown]
# ## The whole run
# Live progress bar; resumes a partial run in `RUN_DIR` and does nothing when it is finished (set `FRESH = True` to start over).

# %%
from cckit.config import replace
from cckit.train import train

result = train(replace(cfg, resume="none" if FRESH else "auto"))
print(f"{result['steps']} steps on {result['device']}: "
      + (f"{result['train_steps_this_run']} trained by this call in {result['train_seconds']:.0f} s"
         if result["train_steps_this_run"] else "a finished run in RUN_DIR was reused, nothing trained now"))

# %% [markdown]
# The last panel is the kNN monitor (`train.knn_every`): weighted-kNN top-1 of test frames against train frames during training; its step-0 point is the random initialisation, so the curve shows where training leaves it.

# %%
from cckit.viz import training_curves_figure

training_curves_figure(cfg.run_dir)

# %% [markdown]
# ## Two key encoders side by side
#
# The paper takes its positives and queue keys from a **momentum encoder** (an EMA of the online one,
# no gradient) and reads them against a queue of older keys: the keys then change slowly enough that
# the old ones in the queue remain comparable to the new ones. The quickstart's **online variant**
# puts both views through the online encoder with gradient and uses the batch as negatives (no queue,
# nothing stale). Below, the two runs against training views: the kNN monitor, the intra loss
# against its chance value (`log(K+1)` for a queue of K keys, `log(2N-1)` in-batch: below 0 the
# positive is picked out), and the spread of the queries (0 = every query points the same way).
# Full mode reads `runs/paper_cpu` (`make demo-paper`, about 10 minutes on a 2-core CPU) and trains
# nothing here; fast mode trains a tiny momentum run in a few seconds.

# %%
from pathlib import Path

from cckit.viz import key_encoders_figure

paper_cfg = notebook_config(PAPER_CONFIG, fast=FAST, run_dir=PAPER_RUN_DIR, data_root=DATA_ROOT, overrides=OVERRIDES)
if FAST:
    train(paper_cfg)
runs = {f"online ({cfg.method.name})": cfg.run_dir}
if (Path(paper_cfg.run_dir) / "metrics.jsonl").is_file():
    runs[f"momentum ({paper_cfg.method.name}, paper_cpu)"] = paper_cfg.run_dir
else:
    print(f"{paper_cfg.run_dir} has no run yet, so only the online run is drawn: `make demo-paper` trains the "
          "momentum-key run (about 10 minutes on a 2-core CPU), then run this cell again")
key_encoders_figure(runs)

# %% [markdown]
# What to look for, once both runs are drawn: with momentum keys the loss leaves its chance value slowly and the kNN curve
# dips below its random-init start before it climbs; the online variant leaves both at once. Without
# BN in the heads, or with a queue that spans several epochs of a small dataset, the momentum path
# never climbs (benchmarks/README.md, "The paper's recipe at CPU scale").

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
