"""Feature maps for tracking and the on-disk feature cache (hits, misses, identities)."""
import os

import pytest
import torch

from cckit.eval.cache import cache_key, cached, dataset_fingerprint, file_fingerprint, module_fingerprint, save_cached
from cckit.eval.features import extract_features, extract_features_cached, feature_maps, feature_stride
from cckit.model import build_backbone


@pytest.mark.parametrize("small_stem, strides", [(False, (4, 8, 16, 32)), (True, (1, 2, 4, 8))])
def test_feature_maps_shapes_strides_and_pooling(small_stem, strides):
    torch.manual_seed(0)
    net, dim = build_backbone("resnet10", small_stem=small_stem)
    net.eval()
    x = torch.randn(2, 3, 64, 64)
    for layer, stride in zip(("layer1", "layer2", "layer3", "layer4"), strides):
        fmap = feature_maps(net, x, layer)
        assert fmap.shape[-2:] == (64 // stride, 64 // stride)
        assert feature_stride(net, layer) == stride
    # the pooled feature is the global average of the layer4 map
    torch.testing.assert_close(net(x), feature_maps(net, x, "layer4").mean(dim=(2, 3)))
    with pytest.raises(ValueError, match="layer must be one of"):
        feature_maps(net, x, "layer5")


def test_file_fingerprint_follows_content_or_stat(tmp_path):
    f = tmp_path / "ckpt.pt"
    f.write_bytes(b"abc")
    a = file_fingerprint(f)
    assert a == "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # sha256("abc")
    st = f.stat()
    assert file_fingerprint(f, mode="stat") == f"stat:{f.resolve()}:3:{st.st_mtime_ns}"
    f.write_bytes(b"abd")
    assert file_fingerprint(f) != a


def test_module_fingerprint_changes_with_any_weight_or_buffer():
    torch.manual_seed(0)
    net, _ = build_backbone("resnet10")
    a = module_fingerprint(net)
    assert module_fingerprint(net) == a
    with torch.no_grad():
        net.layer3[0].conv1.weight[0, 0, 0, 0] += 1e-3
    b = module_fingerprint(net)
    net.bn1.running_mean[0] += 1.0
    assert len({a, b, module_fingerprint(net)}) == 3


def test_cached_computes_once_and_survives_a_torn_file(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"x": torch.arange(3)}

    key = cache_key("a", "b")
    assert key != cache_key("b", "a") and len(key) == 32
    v1, hit1 = cached(tmp_path, key, compute)
    v2, hit2 = cached(tmp_path, key, compute)
    assert (hit1, hit2) == (False, True) and len(calls) == 1 and torch.equal(v1["x"], v2["x"])
    (tmp_path / f"{key}.pt").write_bytes(b"torn")
    v3, hit3 = cached(tmp_path, key, compute)
    assert not hit3 and len(calls) == 2 and torch.equal(v3["x"], v1["x"])
    assert cached(None, key, compute)[1] is False and len(calls) == 3
    assert oct(os.stat(save_cached(tmp_path / "y.pt", {"a": torch.zeros(1)})).st_mode)[-3:] == "644"


def test_extract_features_cached_keys_on_weights_data_and_transform(tiny_overrides, tmp_path):
    from cckit.config import load_config
    from cckit.data.dataset import EvalFrames
    from cckit.data.index import load_splits

    cfg = load_config(None, tiny_overrides)
    records = load_splits(cfg.data)["test"]
    data = EvalFrames(records, 2, 32)
    torch.manual_seed(0)
    net, _ = build_backbone("resnet10")
    cache = tmp_path / "features"
    cpu = torch.device("cpu")
    first, hit = extract_features_cached(net, data, device=cpu, cache_dir=cache)
    assert not hit
    direct = extract_features(net, data, device=cpu)
    for k in direct:
        torch.testing.assert_close(first[k], direct[k])
    again, hit = extract_features_cached(net, data, device=cpu, cache_dir=cache)
    assert hit and torch.equal(again["features"], first["features"])
    # another identity of the weights, other frames, another transform size: each a miss
    assert not extract_features_cached(net, data, device=cpu, cache_dir=cache, weights_id="sha256:x")[1]
    assert not extract_features_cached(net, EvalFrames(records, 3, 32), device=cpu, cache_dir=cache)[1]
    assert dataset_fingerprint(EvalFrames(records, 2, 24)) != dataset_fingerprint(data)
    with torch.no_grad():
        net.conv1.weight.mul_(2)
    assert not extract_features_cached(net, data, device=cpu, cache_dir=cache)[1]
    assert len(list(cache.glob("*.pt"))) == 4
