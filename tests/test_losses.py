"""Losses against a plain float64 re-implementation, closed forms, and gradient routing."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cckit.losses import (cycle_back_loss, cycle_rank1, hard_nearest_neighbor, info_nce, soft_nearest_neighbor,
                          uniformity_loss)


def unit(*shape, seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    x = F.normalize(torch.randn(*shape, generator=g, dtype=torch.float64), dim=-1)
    return x.requires_grad_(requires_grad)


def ref_info_nce(q, p, neg, t):
    """Loop-and-numpy InfoNCE: -log exp(q.p/t) / (exp(q.p/t) + sum_k exp(q.n_k/t))."""
    q, p, neg = (np.asarray(a.detach(), dtype=np.float64) for a in (q, p, neg))
    total = 0.0
    for i in range(len(q)):
        logits = np.concatenate([[q[i] @ p[i]], neg @ q[i]]) / t
        m = logits.max()
        total += -(logits[0] - m - np.log(np.exp(logits - m).sum()))
    return total / len(q)


def ref_cycle(q, p, support, neg, t, t_nn, mask=None):
    q, p, support, neg = (np.asarray(a.detach(), dtype=np.float64) for a in (q, p, support, neg))
    nns = []
    for i in range(len(q)):
        s = support @ q[i] / t_nn
        if mask is not None:
            s = np.where(np.asarray(mask[i]), -np.inf, s)
        w = np.exp(s - s.max())
        w /= w.sum()
        n = w @ support
        nns.append(n / np.linalg.norm(n))
    return ref_info_nce(torch.tensor(np.array(nns)), torch.tensor(p), torch.tensor(neg), t)


def test_info_nce_matches_reference():
    q, p, neg = unit(6, 16, seed=1), unit(6, 16, seed=2), unit(50, 16, seed=3)
    got = info_nce(q, p, neg, 0.07)
    assert got.item() == pytest.approx(ref_info_nce(q, p, neg, 0.07), rel=1e-9)


def test_info_nce_closed_form_identical_similarities():
    # every query sees the same vector as positive and as each of the K negatives: loss = log(K + 1)
    v = unit(1, 8)
    q, p, neg = v.repeat(4, 1), v.repeat(4, 1), v.repeat(99, 1)
    assert info_nce(q, p, neg, 0.2).item() == pytest.approx(math.log(100), rel=1e-6)


def test_info_nce_gradient_matches_autograd_of_reference_formula():
    q = unit(5, 8, seed=4, requires_grad=True)
    p, neg = unit(5, 8, seed=5), unit(20, 8, seed=6)
    info_nce(q, p, neg, 0.1).backward()
    q2 = q.detach().clone().requires_grad_(True)
    logits = torch.cat([(q2 * p).sum(1, keepdim=True), q2 @ neg.t()], 1) / 0.1
    (-(logits[:, 0] - torch.logsumexp(logits, 1)).mean()).backward()
    torch.testing.assert_close(q.grad, q2.grad, rtol=1e-6, atol=1e-9)


def test_soft_nearest_neighbor_matches_reference_and_sums_to_one():
    q, u = unit(4, 8, seed=7), unit(30, 8, seed=8)
    nn, w = soft_nearest_neighbor(q, u, 0.1)
    w_ref = torch.softmax(q @ u.t() / 0.1, dim=1)
    torch.testing.assert_close(w.double(), w_ref)
    torch.testing.assert_close(nn, F.normalize(w_ref @ u, dim=1))
    torch.testing.assert_close(w.sum(1), torch.ones(4, dtype=w.dtype))


def test_soft_nearest_neighbor_low_temperature_is_hard_nearest_neighbor():
    q, u = unit(6, 8, seed=9), unit(40, 8, seed=10)
    nn_soft, _ = soft_nearest_neighbor(q, u, 1e-4)
    nn_hard, w_hard = hard_nearest_neighbor(q, u)
    torch.testing.assert_close(nn_soft, nn_hard, atol=1e-6, rtol=0)
    assert (w_hard.sum(1) == 1).all()


def test_soft_nearest_neighbor_mask_excludes_rows():
    q, u = unit(3, 8, seed=11), unit(10, 8, seed=12)
    mask = torch.zeros(3, 10, dtype=torch.bool)
    mask[:, :5] = True
    nn, w = soft_nearest_neighbor(q, u, 0.1, mask)
    assert (w[:, :5] == 0).all()
    nn_ref, _ = soft_nearest_neighbor(q, u[5:], 0.1)
    torch.testing.assert_close(nn, nn_ref)


def test_cycle_back_loss_matches_reference():
    q, p, u, neg = unit(5, 16, seed=13), unit(5, 16, seed=14), unit(40, 16, seed=15), unit(60, 16, seed=16)
    got = cycle_back_loss(q, p, u, neg, 0.07, nn_temperature=0.1)
    assert got.item() == pytest.approx(ref_cycle(q, p, u, neg, 0.07, 0.1), rel=1e-9)
    # nn_temperature defaults to the temperature
    assert cycle_back_loss(q, p, u, neg, 0.07).item() == pytest.approx(ref_cycle(q, p, u, neg, 0.07, 0.07), rel=1e-9)


def test_cycle_back_loss_with_mask_matches_reference():
    q, p, u, neg = unit(4, 8, seed=17), unit(4, 8, seed=18), unit(12, 8, seed=19), unit(20, 8, seed=20)
    mask = torch.rand(4, 12, generator=torch.Generator().manual_seed(0)) < 0.4
    got = cycle_back_loss(q, p, u, neg, 0.1, support_mask=mask)
    assert got.item() == pytest.approx(ref_cycle(q, p, u, neg, 0.1, 0.1, mask), rel=1e-9)


def test_cycle_back_loss_gradient_reaches_only_the_query():
    q = unit(4, 8, seed=21, requires_grad=True)
    p, u, neg = unit(4, 8, seed=22, requires_grad=True), unit(16, 8, seed=23, requires_grad=True), unit(30, 8, seed=24, requires_grad=True)
    cycle_back_loss(q, p, u, neg, 0.1).backward()
    assert q.grad is not None and q.grad.abs().sum() > 0
    assert p.grad is None and u.grad is None and neg.grad is None


def test_cycle_back_loss_gradient_matches_finite_differences():
    q = unit(3, 6, seed=25, requires_grad=True)
    p, u, neg = unit(3, 6, seed=26), unit(10, 6, seed=27), unit(12, 6, seed=28)
    assert torch.autograd.gradcheck(lambda x: cycle_back_loss(x, p, u, neg, 0.2, 0.3), (q,))


def test_cycle_rank1_counts_positive_ranked_first():
    pos = torch.eye(4, dtype=torch.float64)
    neg = -torch.eye(4, dtype=torch.float64)
    assert cycle_rank1(pos, pos, neg).item() == 1.0  # each nn equals its positive
    assert cycle_rank1(pos, pos.roll(1, 0), pos).item() == 0.0  # a negative matches exactly, positive is orthogonal


def test_negative_mask_removes_negatives_exactly():
    q, p, neg = unit(4, 8, seed=30), unit(4, 8, seed=31), unit(12, 8, seed=32)
    mask = torch.zeros(4, 12, dtype=torch.bool)
    mask[:, 6:] = True
    assert info_nce(q, p, neg, 0.1, mask).item() == pytest.approx(info_nce(q, p, neg[:6], 0.1).item(), rel=1e-12)


def _nt_xent_reference(a, b, t):
    z = torch.cat([a, b]).double()
    n = a.shape[0]
    total, hits = 0.0, 0
    for i in range(2 * n):
        partner = (i + n) % (2 * n)
        sims = {j: float(z[i] @ z[j]) / t for j in range(2 * n) if j != i}
        denom = sum(math.exp(s) for s in sims.values())
        total += -(sims[partner] - math.log(denom))
        hits += max(sims, key=sims.get) == partner
    return total / (2 * n), hits / (2 * n)


def test_nt_xent_equals_a_plain_reference_and_its_closed_form():
    from cckit.losses import nt_xent
    torch.manual_seed(0)
    a, b = F.normalize(torch.randn(6, 8), dim=1), F.normalize(torch.randn(6, 8), dim=1)
    loss, top1 = nt_xent(a, b, 0.2)
    ref_loss, ref_top1 = _nt_xent_reference(a, b, 0.2)
    assert float(loss) == pytest.approx(ref_loss, rel=1e-5)
    assert float(top1) == pytest.approx(ref_top1)
    same = F.normalize(torch.ones(5, 4), dim=1)  # every similarity equal -> log(2N - 1)
    assert float(nt_xent(same, same, 0.1)[0]) == pytest.approx(math.log(9), rel=1e-6)


def test_cross_view_info_nce_equals_info_nce_with_the_other_candidates_as_negatives():
    from cckit.losses import cross_view_info_nce, info_nce
    torch.manual_seed(1)
    a, c = F.normalize(torch.randn(4, 8), dim=1), F.normalize(torch.randn(4, 8), dim=1)
    per_row = [info_nce(a[i:i + 1], c[i:i + 1], c[[j for j in range(4) if j != i]], 0.3) for i in range(4)]
    assert float(cross_view_info_nce(a, c, 0.3)) == pytest.approx(float(sum(per_row) / 4), rel=1e-6)


def test_uniformity_loss_closed_forms():
    e = torch.eye(3, dtype=torch.float64)
    assert uniformity_loss(e[:2]).item() == pytest.approx(-4.0)  # orthogonal: |x - y|^2 = 2
    # e1, e2, -e1: squared distances 2, 4, 2
    three = torch.stack([e[0], e[1], -e[0]])
    assert uniformity_loss(three).item() == pytest.approx(math.log((2 * math.exp(-4) + math.exp(-8)) / 3))
    assert uniformity_loss(torch.stack([e[0]] * 5)).item() == pytest.approx(0.0)  # collapsed
    assert uniformity_loss(three, t=1.0).item() == pytest.approx(math.log((2 * math.exp(-2) + math.exp(-4)) / 3))
    one = e[:1].clone().requires_grad_(True)  # one row per process (batch 1): no pair, a finite 0
    loss = uniformity_loss(one)
    loss.backward()
    assert loss.item() == 0.0 and one.grad is not None and float(one.grad.abs().sum()) == 0.0
