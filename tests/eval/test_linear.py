"""Linear probe: separable features reach 100 %, random labels stay at chance, and the L-BFGS fit
equals scikit-learn's logistic regression; the paper's SGD protocol on a tiny image folder."""
import numpy as np
import pytest
import torch
from PIL import Image

from cckit.eval.linear import (_holdout, classification_metrics, fit_logistic_regression, linear_probe,
                               train_linear_sgd)
from cckit.model import build_backbone


def _separable(n_per_class=50, classes=4, dim=16, seed=0):
    """Classes separated by a margin along their own direction, plus isotropic noise."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), n_per_class)
    x = rng.normal(size=(len(labels), dim))
    x[np.arange(len(labels)), labels] += 6.0
    return torch.tensor(x, dtype=torch.float32), torch.tensor(labels)


def test_probe_on_linearly_separable_features_reaches_100_percent():
    x, y = _separable(seed=0)
    xt, yt = _separable(seed=1)
    out = linear_probe(x, y, xt, yt, weight_decays=(1e-4,))
    assert out["top1"] == 1.0 and out["train_top1"] == 1.0 and out["top5"] == 1.0
    assert out["per_class"] == [1.0, 1.0, 1.0, 1.0] and out["mean_per_class"] == 1.0


def test_probe_on_random_labels_is_at_chance():
    rng = np.random.default_rng(0)
    x, xt = torch.tensor(rng.normal(size=(800, 32)), dtype=torch.float32), torch.tensor(rng.normal(size=(2000, 32)), dtype=torch.float32)
    y, yt = torch.tensor(rng.integers(0, 4, 800)), torch.tensor(rng.integers(0, 4, 2000))
    out = linear_probe(x, y, xt, yt, weight_decays=(1e-2,))
    # chance is 0.25; 2000 test points give a standard error of ~0.01
    assert abs(out["top1"] - 0.25) < 0.04
    assert out["train_top1"] > out["top1"]  # it did fit the training noise


def test_lbfgs_fit_equals_scikit_learn_logistic_regression():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 6)) + rng.integers(0, 3, 120)[:, None] * 0.8
    y = rng.integers(0, 3, 120)
    x[np.arange(120), y] += 1.0
    wd = 0.05
    probe = fit_logistic_regression(torch.tensor(x), torch.tensor(y), weight_decay=wd, standardize=False,
                                    dtype=torch.float64, max_iter=500)
    # sklearn minimises 0.5||W||^2 + C * sum CE  ==  N*C * (mean CE + ||W||^2 / (2 N C))
    ref = LogisticRegression(C=1.0 / (wd * len(y)), tol=1e-10, max_iter=10000).fit(x, y)
    ours = torch.softmax(probe.scores(torch.tensor(x)), 1).numpy()
    np.testing.assert_allclose(ours, ref.predict_proba(x), atol=1e-4)


def test_classification_metrics_by_hand():
    scores = torch.tensor([[0.9, 0.1, 0.0],   # label 0: top-1 right
                           [0.5, 0.4, 0.1],   # label 1: second
                           [0.5, 0.3, 0.2],   # label 2: third
                           [0.1, 0.8, 0.1]])  # label 1: right
    m = classification_metrics(scores, torch.tensor([0, 1, 2, 1]), num_classes=4)
    assert m["top1"] == 0.5 and m["top5"] == 1.0  # only 3 classes scored: top-5 is top-3
    assert m["per_class"][:3] == [1.0, 0.5, 0.0] and np.isnan(m["per_class"][3])
    assert m["mean_per_class"] == pytest.approx(0.5)


def test_weight_decay_is_chosen_on_whole_held_out_videos():
    groups = torch.arange(100).repeat_interleave(4)  # 100 videos x 4 frames
    val = _holdout(groups, 0.2, seed=0)
    held = torch.unique(groups[val])
    assert len(held) == 20 and torch.equal(val, torch.isin(groups, held))  # no video straddles the split
    x, y = _separable(n_per_class=100, seed=2)
    out = linear_probe(x, y, x[:20], y[:20], weight_decays=(1e-3, 1e-1, 1e3), groups=groups)
    assert set(out["val_top1"]) == {"0.001", "0.1", "1000.0"}
    assert out["val_top1"]["1000.0"] < 1.0 and out["weight_decay"] in (1e-3, 1e-1)  # a huge decay underfits


def _image_folder(root, n_per_class=6):
    colours = {"blue": (20, 30, 220), "red": (220, 30, 20)}
    for split in ("train", "val"):
        for name, rgb in colours.items():
            (root / split / name).mkdir(parents=True)
            for i in range(n_per_class):
                img = np.clip(np.array(rgb) + np.random.default_rng(i).integers(-20, 20, (20, 24, 3)), 0, 255)
                Image.fromarray(img.astype(np.uint8)).save(root / split / name / f"{i}.png")


def test_paper_sgd_protocol_on_a_tiny_image_folder(tmp_path):
    _image_folder(tmp_path)
    torch.manual_seed(0)
    net, _ = build_backbone("resnet10")
    before = {k: v.clone() for k, v in net.state_dict().items()}
    out = train_linear_sgd(net.eval(), tmp_path / "train", tmp_path / "val", device=torch.device("cpu"),
                           image_size=16, epochs=4, lr=30.0, milestones=(2, 3), batch_size=4, workers=0)
    assert out["num_classes"] == 2 and out["top1"] == 1.0
    assert [h["lr"] for h in out["history"]] == pytest.approx([30.0, 30.0, 3.0, 0.3])  # step schedule
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())  # frozen, BN stats included
