"""The supervised ceiling: one step equals a plain cross-entropy step written out here, and its
checkpoint loads as a backbone for every evaluation protocol."""
import dataclasses

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from cckit.checkpoint import load_backbone
from cckit.config import load_config
from cckit.data.batch_augment import BatchAugment
from cckit.data.dataset import RunBatches, TrainClips
from cckit.data.index import load_splits
from cckit.errors import TrainingError
from cckit.model import build_backbone
from cckit.supervised import train_supervised
from cckit.utils import seed_everything


def test_one_step_is_cross_entropy_on_the_record_labels(tiny_overrides):
    cfg = load_config(None, tiny_overrides + ["train.max_steps=1", "train.optimizer=sgd", "train.lr=0.1",
                                              "train.weight_decay=0", "train.knn_every=0"])
    result = train_supervised(cfg)
    trained = load_backbone(result["checkpoint"])

    seed_everything(cfg.train.seed)  # the reference: same seed, same first batch, same crop x_q
    records = load_splits(cfg.data)["train"]
    net, dim = build_backbone(cfg.model.arch, bn_splits=1, width=cfg.model.width)
    head = nn.Linear(dim, 10)
    clips = TrainClips(records, cfg.data, seed=cfg.train.seed)
    items = next(iter(RunBatches(len(clips), cfg.train.batch_size, cfg.train.seed, 0, 1)))
    frames, seeds, ids, _ = clips.batch(items)
    x_q, _, _ = BatchAugment(cfg.data)(frames, seeds, torch.device("cpu"), need_key=False)
    labels = torch.tensor([{r.video_id: r.label for r in records}[int(i)] for i in ids])
    opt = torch.optim.SGD([*net.parameters(), *head.parameters()], lr=0.1, momentum=cfg.train.momentum)
    loss = F.cross_entropy(head(net.train()(x_q)), labels)
    opt.zero_grad(), loss.backward(), opt.step()
    assert result["final"]["loss"] == pytest.approx(float(loss.detach()), rel=1e-5)
    for (name, a), b in zip(trained.state_dict().items(), net.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


def test_unlabelled_videos_are_refused_by_name(tiny_overrides, monkeypatch):
    import cckit.supervised as sup

    cfg = load_config(None, tiny_overrides + ["train.max_steps=1"])
    real = sup.load_splits

    def unlabelled(data_cfg):
        splits = real(data_cfg)
        splits["train"][3] = dataclasses.replace(splits["train"][3], label=-1)
        return splits

    monkeypatch.setattr(sup, "load_splits", unlabelled)
    with pytest.raises(TrainingError, match="needs class labels; video 3"):
        train_supervised(cfg)
