"""The batched MoCo v2 augmentation: drawn parameters, pixels against closed forms and torchvision."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from cckit.config import load_config
from cckit.data import batch_augment
from cckit.data.batch_augment import BatchAugment
from cckit.data.transforms import MEAN, STD

CPU = torch.device("cpu")


def _aug(*overrides):
    return BatchAugment(load_config(None, ["data.crop_size=32", *overrides]).data)


def test_crop_areas_and_aspect_ratios_stay_in_range_and_match_torchvision():
    aug = _aug("data.crop_scale=[0.2,1.0]")
    p = aug.draw(range(3000), 64, 64, views=1)
    x1, y1, x2, y2 = p.boxes.T
    w, h = x2 - x1, y2 - y1
    assert (x1 >= 0).all() and (y1 >= 0).all() and (x2 <= 64).all() and (y2 <= 64).all()
    area, log_ratio = w * h / 64 ** 2, np.log(w / h)
    # rounding w and h to whole pixels moves the area and ratio a little past the ranges
    assert area.min() >= 0.2 - 0.02 and area.max() <= 1.0
    assert np.abs(log_ratio).max() <= math.log(4 / 3) + 0.04
    torch.manual_seed(0)
    ref = np.array([v2.RandomResizedCrop.get_params(torch.zeros(3, 64, 64), [0.2, 1.0], [3 / 4, 4 / 3])
                    for _ in range(3000)], dtype=float)  # i, j, h, w
    ref_area, ref_log_ratio = ref[:, 2] * ref[:, 3] / 64 ** 2, np.log(ref[:, 3] / ref[:, 2])
    # 3000 draws: standard errors ~0.004 (area) and ~0.003 (log ratio)
    assert area.mean() == pytest.approx(ref_area.mean(), abs=0.02)
    assert area.std() == pytest.approx(ref_area.std(), abs=0.02)
    assert log_ratio.mean() == pytest.approx(ref_log_ratio.mean(), abs=0.015)
    assert np.abs(log_ratio).mean() == pytest.approx(np.abs(ref_log_ratio).mean(), abs=0.015)
    centre = (x1 + x2) / 2
    ref_centre = ref[:, 1] + ref[:, 3] / 2
    assert centre.mean() == pytest.approx(ref_centre.mean(), abs=0.6)


def test_probabilities_of_flip_grayscale_jitter_and_blur():
    p = _aug("data.grayscale_prob=0.2", "data.color_jitter_prob=0.8", "data.blur_prob=0.5").draw(range(4000), 64, 64, 1)
    # 4000 draws: standard error <= 0.008
    assert p.flip.mean() == pytest.approx(0.5, abs=0.03)
    assert p.gray.mean() == pytest.approx(0.2, abs=0.03)
    assert p.jitter.mean() == pytest.approx(0.8, abs=0.03)
    assert p.blur.mean() == pytest.approx(0.5, abs=0.03)
    lo, hi = 0.1 * 32 / 224, 2.0 * 32 / 224
    assert p.sigma.min() >= lo and p.sigma.max() <= hi
    assert (p.factors[:, :3] >= 0.6).all() and (p.factors[:, :3] <= 1.4).all()
    assert np.abs(p.factors[:, 3]).max() <= 0.1
    assert sorted(map(tuple, np.unique(np.sort(p.order, 1), axis=0))) == [(0, 1, 2, 3)]  # permutations
    assert not _aug("data.flip=false").draw(range(100), 64, 64, 1).flip.any()


def test_same_seed_same_pixels_whatever_the_batch():
    aug = _aug()
    frames = torch.randint(0, 256, (3, 2, 3, 64, 64), dtype=torch.uint8)
    seeds = torch.tensor([11, 22, 33])
    a = aug(frames[[0, 1]], seeds[[0, 1]], CPU)
    b = aug(frames[[0, 2]], seeds[[0, 2]], CPU)
    for va, vb in zip(a, b):
        assert torch.equal(va[0], vb[0])  # sample 0's views do not depend on its batch-mates
    c = aug(frames[[0, 1]], torch.tensor([12, 22]), CPU)
    assert not torch.equal(a[0][0], c[0][0])  # another seed, other views
    assert not torch.equal(a[0][0], a[1][0])  # x_q and x_k are two draws


def test_seeds_are_per_row_and_any_frame_layout_gives_the_same_views():
    from cckit.data.batch_augment import mix_seeds, uniforms
    seeds = mix_seeds(7, np.array([0, 0, 1, 1]), np.array([3, 4, 3, 4]), 2)
    assert len(set(seeds.tolist())) == 4 and (seeds >= 0).all()
    assert mix_seeds(7, 1, 4, 2)[0] == seeds[3] and mix_seeds(7, 1, 4, 1)[0] != seeds[3]  # row alone decides
    u = uniforms(seeds, 0, 5)
    np.testing.assert_array_equal(u[2:], uniforms(seeds[2:], 0, 5))
    np.testing.assert_array_equal(uniforms([-1], 0, 3), uniforms([2**64 - 1], 0, 3))  # two's complement words
    aug = _aug()
    hwc = torch.randint(0, 256, (3, 2, 64, 64, 3), dtype=torch.uint8)
    as_nchw = hwc.permute(0, 1, 4, 2, 3)  # the frame store's layout seen as NCHW (TrainClips.batch)
    a = aug(as_nchw, torch.from_numpy(seeds[:3]), CPU)
    b = aug(as_nchw.contiguous(), torch.from_numpy(seeds[:3]), CPU)
    for va, vb in zip(a, b):
        assert torch.equal(va, vb)


def test_full_frame_crop_without_colour_is_a_2x2_average():
    aug = _aug("data.crop_scale=[1.0,1.0]", "data.color_jitter_prob=0", "data.grayscale_prob=0",
               "data.blur_prob=0", "data.flip=false")
    frames = torch.randint(0, 256, (4, 2, 3, 64, 64), dtype=torch.uint8)
    x_q, _, x_p = aug(frames, torch.arange(4), CPU)
    mean, std = torch.tensor(MEAN).view(1, 3, 1, 1), torch.tensor(STD).view(1, 3, 1, 1)
    for x, f in ((x_q, 0), (x_p, 1)):
        expected = (F.avg_pool2d(frames[:, f].float() / 255, 2) - mean) / std
        torch.testing.assert_close(x, expected, atol=1e-5, rtol=0)


def test_crop_matrices_equal_roi_align_inside_and_across_the_border():
    """A_y · f · A_xᵀ is torchvision's roi_align(aligned=True, adaptive sampling), boxes that
    leave the frame included; a flip reverses A_x's rows."""
    from torchvision.ops import roi_align

    g = torch.Generator().manual_seed(0)
    views, height, width, size = 64, 40, 56, 16
    img = torch.rand(views, 3, height, width, generator=g)
    x1, y1 = torch.rand(views, generator=g) * width * 0.9 - 3, torch.rand(views, generator=g) * height * 0.9 - 3
    bw, bh = torch.rand(views, generator=g) * width * 1.2 + 0.5, torch.rand(views, generator=g) * height * 1.2 + 0.5
    boxes = torch.stack([x1, y1, x1 + bw, y1 + bh], 1)
    expected = roi_align(img, torch.cat([torch.arange(views).float()[:, None], boxes], 1), (size, size),
                         spatial_scale=1.0, sampling_ratio=-1, aligned=True)
    rows = batch_augment.resample_matrix(y1, bh, size, height)
    cols = batch_augment.resample_matrix(x1, bw, size, width)
    torch.testing.assert_close(rows[:, None] @ img @ cols.transpose(1, 2)[:, None], expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(rows[:, None] @ img @ cols.flip(1).transpose(1, 2)[:, None], expected.flip(-1),
                               atol=1e-5, rtol=0)
    inside = (y1 >= 0) & (y1 + bh <= height)
    assert inside.sum() > 10 and torch.allclose(rows.sum(2)[inside], torch.tensor(1.0))  # a weighted mean


@pytest.mark.parametrize("op, reference, factor", [
    (0, TF.adjust_brightness, 1.3), (1, TF.adjust_contrast, 0.7), (2, TF.adjust_saturation, 1.35),
    (3, TF.adjust_hue, 0.08), (3, TF.adjust_hue, -0.1), (3, TF.adjust_hue, 0.5)])
def test_colour_ops_equal_torchvision(op, reference, factor):
    torch.manual_seed(op)
    x = torch.rand(5, 3, 16, 16)
    x[3] = (x[3] * 4).round() / 4  # ties between channels: which one counts as the largest matters
    x[4, :, :8] = x[4, :1, :8]  # grey pixels (no chroma)
    ours = batch_augment._COLOUR_OPS[op](x.clone(), torch.full((5, 1, 1, 1), factor))
    theirs = torch.stack([reference(img, factor) for img in x])
    torch.testing.assert_close(ours, theirs, atol=2e-6, rtol=0)


def test_blur_and_grayscale_equal_torchvision():
    torch.manual_seed(0)
    x = torch.rand(3, 3, 32, 32)
    gray = batch_augment._grayscale(x).expand_as(x)
    torch.testing.assert_close(gray, TF.rgb_to_grayscale(x, num_output_channels=3), atol=1e-6, rtol=0)
    for kernel in (3, 5, 7):
        sigma = torch.tensor([0.25, 0.8, 2.0])  # one per row
        ours = batch_augment.gaussian_blur(x, kernel, sigma)
        theirs = torch.stack([TF.gaussian_blur(img, [kernel, kernel], [float(s)] * 2) for img, s in zip(x, sigma)])
        torch.testing.assert_close(ours, theirs, atol=1e-6, rtol=0)


def test_skipping_the_key_view_leaves_the_other_views_unchanged():
    aug = _aug()
    frames = torch.randint(0, 256, (4, 2, 3, 64, 64), dtype=torch.uint8)
    seeds = torch.tensor([5, 6, 7, 8])
    x_q, x_k, x_p = aug(frames, seeds, CPU)
    q2, k2, p2 = aug(frames, seeds, CPU, need_key=False)
    assert k2 is None and torch.equal(q2, x_q) and torch.equal(p2, x_p)
