"""Model pieces: split-BN, EMA, FIFO queues, momentum shuffle, checkpoint import."""
import copy

import torch
import torch.nn as nn
import torch.nn.functional as F

from cckit.checkpoint import load_backbone, save_checkpoint
from cckit.config import ModelConfig
from cckit.model import CycleContrastModel, SplitBatchNorm2d, build_backbone, enqueue, update_momentum


def test_split_batchnorm_normalises_each_group_on_its_own():
    torch.manual_seed(0)
    bn = SplitBatchNorm2d(3, num_splits=2)
    nn.init.uniform_(bn.weight)
    nn.init.uniform_(bn.bias)
    x = torch.randn(8, 3, 4, 4) * 3 + 1
    out = bn(x)
    # sample a*S + b belongs to group b
    for b in range(2):
        group = x[b::2]
        ref = F.batch_norm(group, None, None, bn.weight, bn.bias, training=True, eps=bn.eps)
        torch.testing.assert_close(out[b::2], ref, rtol=1e-5, atol=1e-5)
    # running stats: the mean over groups of the per-group momentum updates
    means = torch.stack([x[b::2].mean((0, 2, 3)) for b in range(2)]).mean(0)
    torch.testing.assert_close(bn.running_mean, 0.1 * means, rtol=1e-5, atol=1e-6)
    bn.eval()
    plain = nn.BatchNorm2d(3)
    plain.load_state_dict(bn.state_dict())
    plain.eval()
    torch.testing.assert_close(bn(x), plain(x))


def test_update_momentum_is_the_ema_formula():
    torch.manual_seed(0)
    online, mom = nn.Linear(4, 3), nn.Linear(4, 3)
    before = [p.clone() for p in mom.parameters()]
    update_momentum(online, mom, 0.9)
    for b, p, o in zip(before, mom.parameters(), online.parameters()):
        torch.testing.assert_close(p, 0.9 * b + 0.1 * o)


def test_enqueue_is_fifo_and_wraps():
    queue, ids, ptr = torch.zeros(6, 2), torch.full((6,), -1), torch.zeros(2, dtype=torch.long)
    for step in range(4):
        keys = torch.full((2, 2), float(step))
        enqueue(queue, ids, ptr, 1, keys, torch.tensor([10 * step, 10 * step + 1]))
    # writes at 0, 2, 4, then 0 again: the oldest rows are replaced
    assert queue[:, 0].tolist() == [3, 3, 1, 1, 2, 2]
    assert ids.tolist() == [30, 31, 10, 11, 20, 21]
    assert ptr.tolist() == [0, 2]


def test_momentum_shuffle_is_undone():
    cfg = ModelConfig(arch="resnet10", queue_size=16, cycle_queue_size=16, bn_splits=2)
    model = CycleContrastModel(cfg).eval()
    x = torch.randn(4, 3, 32, 32)
    z, c = model.encode_momentum(x, generator=torch.Generator().manual_seed(3))
    z_ref, c_ref = model.encoder_m(x)
    torch.testing.assert_close(z, z_ref)
    torch.testing.assert_close(c, c_ref)
    assert torch.allclose(z.norm(dim=1), torch.ones(4))


def test_shared_heads_give_identical_embeddings():
    model = CycleContrastModel(ModelConfig(arch="resnet10", shared_heads=True, queue_size=8, cycle_queue_size=8)).eval()
    z, c = model(torch.randn(2, 3, 32, 32))
    assert torch.equal(z, c) and model.encoder.head_cycle is None


def test_load_backbone_from_official_moco_layout(tmp_path):
    torch.manual_seed(0)
    net, _ = build_backbone("resnet10")
    state = {f"module.encoder_q.{k}": v for k, v in net.state_dict().items()}
    state["module.encoder_q.fc.0.weight"] = torch.randn(512, 512)  # MoCo v2 MLP, dropped
    state["module.encoder_k.conv1.weight"] = torch.randn(64, 3, 7, 7)
    save_checkpoint(tmp_path / "moco.pth.tar", {"state_dict": state, "epoch": 200, "arch": "resnet10"})
    loaded = load_backbone(tmp_path / "moco.pth.tar", "resnet10")
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(loaded(x), net.eval()(x))


def test_load_backbone_reports_missing_and_unexpected_keys(tmp_path):
    import pytest
    from cckit.errors import DataError
    net, _ = build_backbone("resnet10")
    state = {k: v for k, v in net.state_dict().items() if not k.startswith("layer4")}
    state["extra.weight"] = torch.zeros(1)
    save_checkpoint(tmp_path / "x.pt", state)
    with pytest.raises(DataError, match=r"x.pt: backbone weights do not fit resnet10 \(missing: layer4.*unexpected: extra.weight"):
        load_backbone(tmp_path / "x.pt", "resnet10")


def test_width_64_is_torchvision_and_other_widths_keep_the_names():
    import torchvision
    ref = torchvision.models.resnet18(weights=None)
    ref.fc = torch.nn.Identity()
    ref_shapes = {k: v.shape for k, v in ref.state_dict().items()}
    net, dim = build_backbone("resnet18", width=64)
    assert dim == 512 and {k: v.shape for k, v in net.state_dict().items()} == ref_shapes
    narrow, dim16 = build_backbone("resnet18", width=16)
    assert dim16 == 128 and set(narrow.state_dict()) == set(ref_shapes)
    assert narrow.conv1.weight.shape == (16, 3, 7, 7) and narrow.layer4[1].conv2.weight.shape == (128, 128, 3, 3)
    assert narrow(torch.randn(2, 3, 32, 32)).shape == (2, 128)
    small, _ = build_backbone("resnet10", width=32, small_stem=True)
    assert small.conv1.weight.shape == (32, 3, 3, 3)


def test_load_backbone_reads_the_width_of_a_checkpoint(tmp_path):
    from cckit.checkpoint import load_backbone
    from cckit.config import ModelConfig
    cfg = ModelConfig(arch="resnet10", width=16, queue_size=8, cycle_queue_size=8)
    model = CycleContrastModel(cfg).eval()
    path = tmp_path / "w16.pt"
    torch.save({"config": {"model": {"arch": "resnet10", "width": 16}}, "model": model.state_dict()}, path)
    x = torch.randn(2, 3, 32, 32)
    torch.testing.assert_close(load_backbone(path)(x), model.encoder.backbone(x), rtol=0, atol=0)
    # an official-style checkpoint records no width: it is read off the stem
    bare = tmp_path / "bare.pt"
    torch.save({"state_dict": {f"module.encoder_q.{k}": v for k, v in model.encoder.backbone.state_dict().items()}}, bare)
    torch.testing.assert_close(load_backbone(bare, "resnet10")(x), model.encoder.backbone(x), rtol=0, atol=0)
