"""data.color_ops=matrix: colour jitter and grayscale as one affine map per view, blur folded into
the crop. Checked against the ops applied one by one, torchvision where no clamp intervenes, and
the torchvision-op path of BatchAugment."""
import cmath

import numpy as np
import pytest
import torch
from torchvision.transforms.v2 import functional as TF

from cckit.config import load_config
from cckit.data import batch_augment
from cckit.data.batch_augment import BatchAugment
from cckit.data.color_matrix import GRAY, YIQ, blur_matrices, colour_maps, hue_matrices
from cckit.data.transforms import MEAN, STD

CPU = torch.device("cpu")


def _aug(*overrides):
    return BatchAugment(load_config(None, ["data.crop_size=32", *overrides]).data)


def _gray(x):
    """(C=3, ...) -> grey level (...), torchvision's weights."""
    return np.tensordot(GRAY, x, axes=1)


def _hue(x, turns):
    """Rotate the chroma (I + iQ) of every pixel by -turns * 360° (the HSV hue direction), luma kept."""
    yiq = np.tensordot(YIQ, x, axes=1)
    chroma = (yiq[1] + 1j * yiq[2]) * cmath.exp(-2j * cmath.pi * turns)
    return np.tensordot(np.linalg.inv(YIQ), np.stack([yiq[0], chroma.real, chroma.imag]), axes=1)


def _reference(x, factors, order, jitter, gray):
    """One view (3, H, W) float64 through ColorJitter's ops in ``order``, then grayscale, no clamps."""
    b, c, s, h = factors
    for op in (order if jitter else []):
        if op == 0:
            x = b * x
        elif op == 1:
            x = c * x + (1 - c) * _gray(x).mean()
        elif op == 2:
            x = s * x + (1 - s) * _gray(x)
        else:
            x = _hue(x, h)
    return np.broadcast_to(_gray(x), x.shape) if gray else x


def _mapped(x, pixels, flat):
    """M x + (K - M) m for views (V, 3, H, W) with channel means m."""
    m = x.mean(axis=(2, 3))
    return np.einsum("vcd,vdhw->vchw", pixels, x) + np.einsum("vcd,vd->vc", flat - pixels, m)[:, :, None, None]


def test_colour_maps_equal_the_ops_applied_one_by_one_in_the_drawn_order():
    p = _aug("data.grayscale_prob=0.3", "data.hue=0.5").draw(range(40), 64, 64, views=1)
    assert p.jitter.sum() > 20 and p.gray.sum() > 5 and (p.jitter & ~p.gray).any()
    x = np.random.default_rng(0).random((40, 3, 6, 5))
    pixels, flat = colour_maps(p.factors, p.order, p.jitter, p.gray)
    expected = np.stack([_reference(x[v], p.factors[v], p.order[v], p.jitter[v], p.gray[v]) for v in range(40)])
    np.testing.assert_allclose(_mapped(x, pixels, flat), expected, atol=1e-12, rtol=0)
    flat_image = np.ones((40, 3, 4, 4)) * x.mean(axis=(2, 3))[:, :, None, None]
    np.testing.assert_allclose(_mapped(flat_image, pixels, flat)[..., 0, 0], np.einsum("vcd,vd->vc", flat, flat_image[..., 0, 0]))


@pytest.mark.parametrize("op, reference, factor", [
    (0, TF.adjust_brightness, 1.3), (0, TF.adjust_brightness, 0.7), (1, TF.adjust_contrast, 0.7),
    (1, TF.adjust_contrast, 1.3), (2, TF.adjust_saturation, 1.35), (2, TF.adjust_saturation, 0.6)])
def test_where_nothing_clips_each_op_is_torchvisions(op, reference, factor):
    x = torch.rand(4, 3, 8, 8, generator=torch.Generator().manual_seed(op)) * 0.3 + 0.35  # stays in [0, 1]
    factors = np.ones((4, 4))
    factors[:, 3] = 0
    factors[:, op] = factor
    pixels, flat = colour_maps(factors, np.tile(np.arange(4), (4, 1)), np.ones(4, bool), np.zeros(4, bool))
    theirs = torch.stack([reference(img, factor) for img in x])
    torch.testing.assert_close(torch.from_numpy(_mapped(x.double().numpy(), pixels, flat)).float(), theirs,
                               atol=1e-6, rtol=0)
    pixels, flat = colour_maps(np.ones((4, 4)), np.tile(np.arange(4), (4, 1)), np.zeros(4, bool), np.ones(4, bool))
    torch.testing.assert_close(torch.from_numpy(_mapped(x.double().numpy(), pixels, flat)).float(),
                               TF.rgb_to_grayscale(x, num_output_channels=3), atol=1e-6, rtol=0)


def test_hue_rotation_keeps_luma_and_grey_and_turns_the_way_torchvisions_hue_does():
    h = hue_matrices(np.array([0.05, -0.05, 0.0, 0.5]))
    np.testing.assert_allclose(YIQ[0] @ h, np.tile(YIQ[0], (4, 1)), atol=1e-12)  # luma kept
    np.testing.assert_allclose(h @ np.ones(3), np.ones((4, 3)), atol=1e-12)  # grey stays grey
    np.testing.assert_allclose(h[0] @ h[1], np.eye(3), atol=1e-12)
    np.testing.assert_allclose(h[2], np.eye(3), atol=1e-12)
    colours = torch.rand(3, 4000, 1, generator=torch.Generator().manual_seed(0)) * 0.6 + 0.2
    x = colours.double().numpy()[:, :, 0].T
    for turns, turned in ((0.05, h[0]), (-0.05, h[1])):
        theirs = TF.adjust_hue(colours, turns)[:, :, 0].T.double().numpy()
        ours, opposite = x @ turned.T, x @ np.linalg.inv(turned).T
        # HSV keeps the largest channel, YIQ the luma, so they differ; the turn's direction is the same
        # (measured: 0.032 against 0.069 for the opposite turn)
        assert np.abs(ours - theirs).mean() < 0.6 * np.abs(opposite - theirs).mean()
    red = np.array([0.8, 0.2, 0.2])
    assert (h[0] @ red)[1] > red[1] > (h[1] @ red)[1]  # red turns towards yellow (green up) for a positive hue


def test_blur_matrices_equal_gaussian_blur_with_a_reflect_border():
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    for kernel in (3, 5, 7):
        sigma = torch.tensor([0.25, 0.8, 2.0])
        b = blur_matrices(sigma, kernel, 16)
        ours = b[:, None] @ x @ b.transpose(1, 2)[:, None]
        torch.testing.assert_close(ours, batch_augment.gaussian_blur(x, kernel, sigma), atol=1e-6, rtol=0)
        torch.testing.assert_close(TF.gaussian_blur(x[1], [kernel, kernel], [0.8, 0.8]), ours[1], atol=1e-6, rtol=0)


def test_matrix_path_draws_the_same_views_and_equals_a_per_view_reference():
    """Crops, flips and blur of data.color_ops=matrix are those of the torchvision-op path; its colour
    is the one-by-one reference on the blurred crop, clamped once."""
    frames = torch.randint(0, 256, (6, 2, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    seeds = torch.arange(100, 106)
    # 64-px crops: sigma up to 0.57 px, a blur that moves pixels (at 16 px it would round to nothing)
    probs = ["data.blur_prob=0.5", "data.crop_size=64", "data.hue=0.3"]
    no_colour = ["data.color_jitter_prob=0", "data.grayscale_prob=0"]
    spatial = _aug(*probs, *no_colour)(frames, seeds, CPU)  # torchvision ops: crop, flip, blur
    spatial_matrix = _aug(*probs, *no_colour, "data.color_ops=matrix")(frames, seeds, CPU)
    for a, b in zip(spatial, spatial_matrix):
        torch.testing.assert_close(b, a, atol=2e-5, rtol=0)
    aug = _aug(*probs, "data.grayscale_prob=0.4", "data.color_ops=matrix")
    views = aug(frames, seeds, CPU)
    p = aug.draw(seeds.tolist(), 64, 64)
    assert p.jitter.sum() > 8 and p.gray.any() and p.blur.any() and p.flip.any()
    mean, std = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
    crops = (torch.cat(spatial) * std + mean).double().numpy()  # view-major, as p
    expected = np.stack([_reference(crops[v], p.factors[v], p.order[v], p.jitter[v], p.gray[v]) for v in range(18)])
    expected = (torch.from_numpy(expected).float().clamp(0, 1) - mean) / std
    torch.testing.assert_close(torch.cat(views), expected, atol=5e-5, rtol=0)
    q, k, x_p = aug(frames, seeds, CPU, need_key=False)
    assert k is None and torch.equal(q, views[0]) and torch.equal(x_p, views[2])


def test_matrix_colour_ops_need_the_batched_augmentation():
    from cckit.config import ConfigError
    with pytest.raises(ConfigError, match="data.color_ops"):
        load_config(None, ["data.color_ops=hsv"])
    with pytest.raises(ConfigError, match="data.color_ops"):
        load_config(None, ["data.color_ops=matrix", "data.augment=loader"])
