"""Write the numbered notebooks from the cell lists below (outputs stripped, first cell tagged ``parameters``).

Run ``.venv/bin/python notebooks/_build.py`` after editing a cell here; tests/test_notebooks.py
checks that the committed notebooks match this file and carry no outputs.
"""
from __future__ import annotations

from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent


def params(title: str, extra: str = "") -> str:
    """The parameters cell every notebook starts with (papermill overrides any of these names)."""
    return f"""# {title}: parameters (papermill can override any of these names)
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
{extra}""".rstrip() + "\n"


SETUP = """from cckit.viz.notebook import notebook_config

cfg = notebook_config(CONFIG, fast=FAST, run_dir=RUN_DIR, data_root=DATA_ROOT, overrides=OVERRIDES)
print(f"{cfg.method.name} · {cfg.model.arch} · data {cfg.data.root} · run {cfg.run_dir} · fast={FAST}")"""

OWN_DATA = """## Your own videos or an official checkpoint

* **Your videos**: set `DATA_ROOT` to a folder of video files and `OVERRIDES = ["data.source=videos"]`
  (class = first sub-folder, as in UCF101; add `"data.labels=none"` for unlabelled videos, or use
  `data.source=frames` for folders of frames). Everything above runs unchanged on them.
* **An official MoCo / CycleContrast checkpoint** (`module.encoder_q.*`):
  `backbone = cckit.checkpoint.load_backbone(path, "resnet50")`, then
  `cckit.viz.frame_bank(backbone, frames, name="official")` gives a bank of backbone features for the
  embedding maps, retrieval grids and kNN views (the cycle views then use backbone features too).
* Run it headless with other settings: `papermill NOTEBOOK.ipynb out.ipynb -p RUN_DIR ../runs/mine`."""


def md(text: str):
    return nbformat.v4.new_markdown_cell(text.strip())


def code(text: str):
    return nbformat.v4.new_code_cell(text.strip())


NOTEBOOKS = {
    "00_quickstart": [
        code(params("00 · Quickstart")),
        md("""
# 00 · Quickstart: CycleContrast end to end

Generate the default moving-digit videos, train CycleContrast (or reuse the finished run in `RUN_DIR`),
compare frame kNN of the trained backbone with the random-init and raw-pixel floors, and follow one
query around its cross-video cycle. The other notebooks take each step apart:
`01` data and positive pairs, `02` one training step piece by piece, `03` the cycle-match browser,
`04` embedding maps, `05` evaluation."""),
        code(SETUP),
        md("## Data\nOne training sample is one video. `load_splits` generates the default videos on first use."),
        code("""from cckit.data.index import load_splits

splits = load_splits(cfg.data)
{split: len(records) for split, records in splits.items()}"""),
        md("## Train\nWith a live progress bar; the GPU is used when there is one. A finished run in `RUN_DIR` is reused."),
        code("""from cckit.viz.notebook import ensure_checkpoint

checkpoint = ensure_checkpoint(cfg)
checkpoint"""),
        code("""from cckit.viz import training_curves_figure

training_curves_figure(cfg.run_dir)"""),
        md("## Evaluate\nWeighted kNN of test-video frames against train-video frames, for the trained backbone and two floors."),
        code("""from cckit.job import evaluate_checkpoint

metrics = evaluate_checkpoint(checkpoint, cfg)
{name: round(value, 3) for name, value in metrics.items() if "top1" in name or name == "chance"}"""),
        md("""
## One cross-video cycle
The soft nearest neighbour of a query among frames of *other* videos (top row, with weights `w`), then
the ranking back (middle row): the cycle closes when the best candidate is a frame of the query's video."""),
        code("""from cckit.viz import cycle_match, cycle_match_figure
from cckit.viz.notebook import checkpoint_bank, eval_frames

bank = checkpoint_bank(checkpoint, cfg, eval_frames(cfg, "train"))
match = cycle_match(bank, 0, support_size=cfg.method.support_size, nn_temperature=cfg.method.temperature)
cycle_match_figure(bank, match)"""),
        md(OWN_DATA),
    ],
    "01_data_and_positive_pairs": [
        code(params("01 · Data and positive pairs")),
        md("""
# 01 · Data and positive pairs

Each default video shows one real handwritten digit (scikit-learn's scans) moving over its own
background. The class is shared across videos, the background and colours are not: the setting in
which cross-video cycle-consistency should help. A training sample is one video: two augmented crops
`x_q`, `x_k` of a random frame *f* and one crop `x_p` of another frame *f'*."""),
        code(SETUP),
        code("""from cckit.data.index import load_splits

splits = load_splits(cfg.data)
{split: len(records) for split, records in splits.items()}"""),
        md("## Videos\nEvenly spaced frames of a few training videos, with class and motion type from the manifest."),
        code("""from cckit.viz import video_strips_figure

video_strips_figure(splits["train"][:6], frames=8, root=cfg.data.root)"""),
        md("## One training item\n`TrainClips(records, cfg.data, seed)[i]` is `(x_q, x_k, x_p, video_id)`; every random choice is a pure function of `(seed, epoch, i)`."),
        code("""from cckit.data.dataset import TrainClips

clips = TrainClips(splits["train"], cfg.data, seed=cfg.train.seed)
frames, seed, video_id, replaced = clips[0]  # data.augment=batch: the loader hands over uint8 frames f, f'
print("frames f, f'", tuple(frames.shape), frames.dtype, "· seed", seed, "· video", video_id, "· stand-in", replaced)
x_q, x_k, x_p, video_ids = clips.views([0])  # the batched augmentation, as the trainer runs it
print("x_q", tuple(x_q.shape), "x_k", tuple(x_k.shape), "x_p", tuple(x_p.shape), "frames (f, f')", clips.sample_frames(0))"""),
        md("""
## Positive pairs of a batch
Rows: frame *f*, the query crop `x_q`, the key crop `x_k` of the same frame (MoCo v2's positive),
frame *f'* and the positive crop `x_p` (the intra-video and CycleContrast positive)."""),
        code("""from cckit.viz import positive_pairs_figure
from cckit.viz.notebook import class_names

positive_pairs_figure(clips, range(8), class_names=class_names(cfg))"""),
        md("The next epoch draws new frames and new augmentations for the same videos:"),
        code("""clips.set_epoch(1)
positive_pairs_figure(clips, range(8), class_names=class_names(cfg))"""),
        md(OWN_DATA),
    ],
    "02_train": [
        code(params("02 · Train", '# True: train RUN_DIR from scratch even if it holds a finished run\nFRESH = False')),
        md("""
# 02 · Train: one step piece by piece, then the whole run

`cckit.train.train_step` is explicit: **encode → losses → backward → optimizer → EMA → enqueue**.
The cells below run those pieces one by one on the trainer's first batch, print what each produces,
and check that together they give exactly what `train_step` gives. Then the whole run trains with a
live progress bar (on the GPU when there is one)."""),
        code(SETUP),
        code("""import torch

from cckit.model import CycleContrastModel
from cckit.train import build_optimizer
from cckit.utils import get_device
from cckit.viz.notebook import first_batch

device = get_device(cfg.train.device)
torch.manual_seed(cfg.train.seed)
model = CycleContrastModel(cfg.model).to(device).train()
optimizer = build_optimizer(model, cfg)
x_q, x_k, x_p, video_ids = (t.to(device) for t in first_batch(cfg))
print("device", device, "· batch", tuple(x_q.shape), "· video ids", video_ids[:8].tolist(), "...")"""),
        md("**1. Encode.** The paper (`method.key_encoder=momentum`): online encoder on `x_q` (both heads), momentum encoder on `x_k` and `x_p` in one pass (shuffled for split-BN). The quickstart's small-scale variant (`online`): `x_q` and its second view (`x_p`; `x_k` for moco_v2) in one online pass, both with gradient; the queues take the second view's detached embeddings."),
        code("""from cckit.utils import step_generator

n = x_q.shape[0]
if cfg.method.key_encoder == "online":
    z, c = model(torch.cat([x_q, x_k if cfg.method.name == "moco_v2" else x_p]))  # 2N x D each, with grad
    q_z, q_c, p_z, p_c = z[:n], c[:n], z[n:], c[n:]
    k_z, k_c = p_z.detach(), p_c.detach()  # what the queues take
    p_c = k_c  # the cycle's positive carries no gradient (the model learns it only through w)
else:
    q_z, q_c = model(x_q)  # z(x_q), c(x_q): N x D, with grad
    m_z, m_c = model.encode_momentum(torch.cat([x_k, x_p]), generator=step_generator(cfg.train.seed, 0, salt=1))
    k_z, k_c, p_z, p_c = m_z[:n], m_c[:n], m_z[n:], m_c[n:]  # momentum keys (x_k) and positives (x_p)
print(cfg.method.key_encoder, "keys · q_z", tuple(q_z.shape), "q_c", tuple(q_c.shape), "k_z", tuple(k_z.shape), "p_c", tuple(p_c.shape))
print("unit norm:", torch.allclose(q_c.norm(dim=1), torch.ones(n)), "· q_z·p_z mean", round(float((q_z * p_z).sum(1).mean().detach()), 3))"""),
        md("**2. Losses.** Intra-video InfoNCE (paper: against the queue `Q_z`; online variant: symmetric, against the other samples of the batch), plus λ × the cycle loss through a support set `U` drawn from `Q_c`."),
        code("""from cckit.objective import Embeddings, compute_objective

emb = Embeddings(query_intra=q_z, query_cycle=q_c, key_intra=k_z, positive_intra=p_z, positive_cycle=p_c,
                 video_ids=video_ids, key_cycle=k_c)
loss, stats = compute_objective(emb, model.queue_intra, model.queue_intra_ids, model.queue_cycle,
                                model.queue_cycle_ids, cfg.method, step_generator(cfg.train.seed, 0))
{name: round(float(value), 4) for name, value in stats.items()}"""),
        md("**3. Backward and optimizer.** The cycle loss reaches the cycle head only through the soft-NN weights `w`."),
        code("""optimizer.zero_grad(set_to_none=True)
loss.backward()
head = model.encoder.head_cycle if model.encoder.head_cycle is not None else model.encoder.head_intra
print("grad norm: backbone conv1", round(float(model.encoder.backbone.conv1.weight.grad.norm()), 4),
      "· cycle head", round(float(head[-1].weight.grad.norm()), 4))
optimizer.step()"""),
        md("**4. EMA.** The momentum encoder moves a fraction `1 - m` towards the online encoder."),
        code("""from cckit.model import update_momentum

before = model.encoder_m.backbone.conv1.weight.clone()
update_momentum(model.encoder, model.encoder_m, cfg.model.momentum)
print("m =", cfg.model.momentum, "· momentum conv1 moved by", f"{float((model.encoder_m.backbone.conv1.weight - before).norm()):.2e}")"""),
        md("**5. Enqueue.** The keys (both heads) overwrite the oldest queue rows, with their video ids."),
        code("""from cckit.model import enqueue

print("queue pointers before", model.queue_ptr.tolist())
enqueue(model.queue_intra, model.queue_intra_ids, model.queue_ptr, 0, k_z, video_ids)
enqueue(model.queue_cycle, model.queue_cycle_ids, model.queue_ptr, 1, k_c, video_ids)
print("after", model.queue_ptr.tolist(), "· first rows hold video ids", model.queue_cycle_ids[:8].tolist())"""),
        md("**Check.** The same batch through `train_step` on an identically initialised model gives the same loss, weights and queues."),
        code("""from cckit.train import train_step

torch.manual_seed(cfg.train.seed)
twin = CycleContrastModel(cfg.model).to(device).train()
twin_stats = train_step(twin, build_optimizer(twin, cfg), (x_q, x_k, x_p, video_ids), cfg, step=0, lr=cfg.train.lr)
same = {"loss": abs(twin_stats["loss"] - loss.item()) < 1e-5,
        "weights": all(torch.allclose(a, b, atol=1e-6) for a, b in zip(model.parameters(), twin.parameters())),
        "queues": torch.allclose(model.queue_cycle, twin.queue_cycle, atol=1e-6)}
assert all(same.values()), same
same"""),
        md("## The whole run\nLive progress bar; resumes a partial run in `RUN_DIR` and does nothing when it is finished (set `FRESH = True` to start over)."),
        code("""from cckit.config import replace
from cckit.train import train

result = train(replace(cfg, resume="none" if FRESH else "auto"))
{key: result[key] for key in ("steps", "train_steps_this_run", "train_seconds", "device")}"""),
        md("The last panel is the kNN monitor (`train.knn_every`): weighted-kNN top-1 of test frames against train frames during training; its step-0 point is the random initialisation, so the curve shows where training leaves it."),
        code("""from cckit.viz import training_curves_figure

training_curves_figure(cfg.run_dir)"""),
        md(OWN_DATA),
    ],
    "03_cycle_matches": [
        code(params("03 · Cycle matches", '# bank row shown first\nQUERY = 0\n# more methods for the dropdown, each trained once into RUN_DIR + "_" + method\nCOMPARE = ["moco_v2"]')),
        md("""
# 03 · Cycle matches: where the soft neighbour goes and whether it comes back

For a query frame, the cycle head `c` picks soft nearest neighbours among frames of **other** videos
(a random support set `U`, the query's own video removed): `w = softmax(c(x)·Uᵀ / T_nn)`,
`n = normalize(w·U)`. Back: `n` ranks the candidates (frames outside `U` and the other frames of the
query's video). The cycle *returns* when the best candidate is from the query's own video, which is
what the cycle loss trains for. Frames: evenly spaced frames of the training videos."""),
        code(SETUP),
        code("""from cckit.viz.notebook import eval_frames, model_banks

frames = eval_frames(cfg, "train")
banks = model_banks(cfg, frames, COMPARE)  # trained run, compared methods, random init
{name: len(bank) for name, bank in banks.items()}"""),
        code("""from cckit.viz import cycle_match, cycle_match_figure

bank = banks[cfg.method.name]
match = cycle_match(bank, QUERY, support_size=cfg.method.support_size, nn_temperature=cfg.method.temperature)
print("weights sum to", round(float(match.weights.sum()), 4), "· returns:", match.returns, "· own video first at rank", match.own_video_rank)
cycle_match_figure(bank, match)"""),
        md("How often the cycle closes over all frames, per model (same support draw and `T_nn`):"),
        code("""from cckit.viz import cycle_consistency

{name: round(float(cycle_consistency(b, support_size=cfg.method.support_size,
                                     nn_temperature=cfg.method.temperature).float().mean()), 3)
 for name, b in banks.items()}"""),
        md("""
## The browser
Move the slider over query frames, switch checkpoint/method, and change `T_nn` and the support size:
the match, the weights and the cycle-consistency rate of the whole bank are recomputed live."""),
        code("""from cckit.viz import CycleBrowser

browser = CycleBrowser(banks, support_size=cfg.method.support_size, nn_temperature=cfg.method.temperature)
browser"""),
        md(OWN_DATA),
    ],
    "04_embeddings": [
        code(params("04 · Embeddings", '# more methods mapped side by side, each trained once into RUN_DIR + "_" + method\nCOMPARE = ["moco_v2"]\n# "umap", "tsne" or "pca"\nMAP = "umap"')),
        md("""
# 04 · Embedding maps

UMAP of the backbone features of test-video frames under each model, coloured by class and by video,
with image thumbnails for a sample. Good features group frames of a class across videos; features
that only know the video group frames by background colour. Maps are fitted per model: compare the
grouping within each panel, not positions across panels."""),
        code(SETUP),
        code("""from cckit.viz.notebook import eval_frames, model_banks

frames = eval_frames(cfg, "test")
banks = model_banks(cfg, frames, COMPARE)
{name: len(bank) for name, bank in banks.items()}"""),
        md("## Coloured by class, per method"),
        code("""from cckit.viz import compare_embeddings_figure

by_class = compare_embeddings_figure(banks, color_by="class", method=MAP)
by_class"""),
        md("## The same maps coloured by video\nA tight cluster per video colour means the features mostly encode the video (background, colours)."),
        code("""compare_embeddings_figure(banks, color_by="video", method=MAP, thumbnails=0, coords=by_class.cckit_coords)"""),
        md("## The cycle head's space\nThe embedding the cycle loss shapes directly (`c`), for the trained run:"),
        code("""compare_embeddings_figure({cfg.method.name: banks[cfg.method.name]}, space="cycle", method=MAP)"""),
        md(OWN_DATA),
    ],
    "05_evaluate": [
        code(params("05 · Evaluate")),
        md("""
# 05 · Evaluate: kNN, linear probe, per-class accuracy

Frozen backbone features of evenly spaced frames: training videos are the memory (and the probe's
training set), test videos (disjoint digit instances) the queries."""),
        code(SETUP),
        code("""from cckit.viz.notebook import checkpoint_bank, ensure_checkpoint, eval_frames

checkpoint = ensure_checkpoint(cfg)
train_bank = checkpoint_bank(checkpoint, cfg, eval_frames(cfg, "train"))
test_bank = checkpoint_bank(checkpoint, cfg, eval_frames(cfg, "test"))
print(len(train_bank), "memory frames ·", len(test_bank), "query frames")"""),
        md("## Weighted kNN with k and T sliders\nPer-class accuracy and confusion matrix update with the sliders."),
        code("""from cckit.viz import KnnExplorer

KnnExplorer(train_bank, test_bank, k=cfg.eval.knn_k[0], temperature=cfg.eval.knn_temperature)"""),
        md("## Linear probe\nLogistic regression on the frozen features; the weight decay is picked on held-out training videos."),
        code("""from cckit.eval.linear import linear_probe

probe = linear_probe(train_bank.features, train_bank.labels, test_bank.features, test_bank.labels,
                     weight_decays=cfg.eval.linear_weight_decay, groups=train_bank.video_ids,
                     max_iter=cfg.eval.linear_max_iter)
{key: probe[key] for key in ("top1", "top5", "train_top1", "weight_decay")}"""),
        md("## Per-class accuracy: kNN against the linear probe"),
        code("""from cckit.eval import knn_predict
from cckit.viz import linear_probe_predictions, per_class_accuracy_figure

knn = knn_predict(train_bank.features, train_bank.labels, test_bank.features, k=cfg.eval.knn_k[0],
                  temperature=cfg.eval.knn_temperature)
linear = linear_probe_predictions(train_bank, test_bank, weight_decay=probe["weight_decay"],
                                  max_iter=cfg.eval.linear_max_iter)
names = [test_bank.class_name(c) for c in range(int(test_bank.labels.max()) + 1)]
per_class_accuracy_figure(test_bank.labels, {"kNN": knn, "linear probe": linear}, names)"""),
        code("""from cckit.viz import confusion_matrix_figure

confusion_matrix_figure(test_bank.labels, linear, names, title="Linear probe: confusion matrix (row-normalised)")"""),
        md("## Nearest training frames of some test frames\nGreen: same class as the query."),
        code("""from cckit.viz import retrieval_grid_figure

retrieval_grid_figure(test_bank, train_bank, range(0, len(test_bank), max(1, len(test_bank) // 5))[:5], k=8)"""),
        md("## Against the random-init and raw-pixel floors"),
        code("""from cckit.job import evaluate_checkpoint

metrics = evaluate_checkpoint(checkpoint, cfg)
{name: round(value, 3) for name, value in metrics.items() if "top1" in name or name == "chance"}"""),
        md(OWN_DATA),
    ],
}


def build(name: str, cells: list) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
                   "language_info": {"name": "python"}}
    cells[0].metadata["tags"] = ["parameters"]
    for i, cell in enumerate(cells):
        cell.id = f"{name[:2]}-{i:02d}"
    nb.cells = cells
    return nb


def main() -> None:
    for name, cells in NOTEBOOKS.items():
        nbformat.write(build(name, cells), HERE / f"{name}.ipynb")


if __name__ == "__main__":
    main()
