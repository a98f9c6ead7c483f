"""Cycle diagnostics against hand-computed values."""
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from cckit.diagnostics import (cycle_diagnostics, cycle_rate_chance, effective_rank, neighbour_class_purity,
                               own_video_return, video_spread)


def test_effective_rank_closed_forms():
    e = torch.eye(4)
    x = torch.cat([e[:2], -e[:2]]) * torch.tensor([3.0, 1.0, 1.0, 1.0])  # centred; singular values² 18 and 2
    p = torch.tensor([0.9, 0.1], dtype=torch.float64)
    assert effective_rank(x) == pytest.approx(float(torch.exp(-(p * p.log()).sum())), rel=1e-12)
    assert effective_rank(torch.cat([e, -e])) == pytest.approx(4.0, rel=1e-12)  # four equal directions
    line = torch.linspace(-1, 1, 7)[:, None] * torch.tensor([[1.0, 2.0, -1.0]])
    assert effective_rank(line + 5.0) == pytest.approx(1.0, rel=1e-9)  # one direction, offset removed
    assert effective_rank(torch.ones(5, 3)) == 0.0


def test_neighbour_class_purity_by_hand():
    w = torch.tensor([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]])
    support = torch.tensor([0, 1, 0])
    queries = torch.tensor([0, 1])
    assert neighbour_class_purity(w, support, queries) == pytest.approx((0.75 + 0.1) / 2)


def test_video_spread_by_hand():
    # video 0: (1,0), (0,1); video 1: (1,0), (-1,0). Cosine distances: within 1 (v0) and 2 (v1) -> 1.5;
    # between: (1,0)-(1,0) 0, (1,0)-(-1,0) 2, (0,1)-(1,0) 1, (0,1)-(-1,0) 1 -> 1.0
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [-1.0, 0.0]])
    assert video_spread(feats, torch.tensor([0, 0, 1, 1])) == pytest.approx(1.5)
    clustered = torch.tensor([[1.0, 0.0], [1.0, 0.01], [0.0, 1.0], [0.01, 1.0]])
    assert video_spread(clustered, torch.tensor([0, 0, 1, 1])) < 0.01
    with pytest.raises(ValueError):
        video_spread(feats, torch.tensor([0, 1, 2, 3]))


def test_cycle_rate_chance_and_own_video_return_by_hand():
    assert cycle_rate_chance(torch.tensor([2, 4])) == pytest.approx(0.375)
    assert cycle_rate_chance(10) == pytest.approx(0.1)
    nn_ = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    cand = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.8, -0.6]])
    videos = torch.tensor([7, 8, 9])
    # best matches: 0 -> 0 (video 7), 1 -> 1 (8), 2 -> 1 (0.8 > 0.6 > 0.0): video 8, not its own 9
    assert own_video_return(nn_, cand, videos, torch.tensor([7, 8, 9])) == pytest.approx(2 / 3)
    exclude = torch.tensor([[True, False, False], [False, False, False], [False, False, False]])
    # query 0 cannot pick candidate 0: its best is now 2 (0.8), video 9
    assert own_video_return(nn_, cand, videos, torch.tensor([7, 8, 9]), exclude) == pytest.approx(1 / 3)


def test_cycle_diagnostics_on_embeddings_that_are_the_class():
    """Embeddings equal to the class one-hot: the soft neighbour is all on the query's class, the
    effective rank of 4 balanced classes is 3, and every back-ranking ties within the class."""
    classes, videos_per_class, frames_per_video = 4, 6, 3
    labels = torch.arange(classes).repeat_interleave(videos_per_class * frames_per_video)
    videos = torch.arange(classes * videos_per_class).repeat_interleave(frames_per_video)
    frames = labels.float()[:, None, None, None].expand(-1, 3, 2, 2).clone()

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.table = nn.Parameter(torch.eye(classes, 8), requires_grad=False)
            self.encoder = Enc(self.table)

    class Enc(nn.Module):
        def __init__(self, table):
            super().__init__()
            self.table = table
            self.backbone = lambda x: self.table[x[:, 0, 0, 0].long()]

        def embed(self, h):
            e = F.normalize(h, dim=1)
            return e, e

    out = cycle_diagnostics(Model(), frames, labels, videos, support_size=20, nn_temperature=0.01, seed=0)
    assert out["rank_cycle"] == pytest.approx(3.0, rel=1e-6) and out["rank_intra"] == pytest.approx(3.0, rel=1e-6)
    assert out["purity_cycle"] == pytest.approx(1.0, abs=1e-12) and out["purity_intra"] == pytest.approx(1.0, abs=1e-12)
    assert 0.15 < out["purity_chance"] < 0.35
    assert out["support_entropy_max"] == pytest.approx(math.log(20))
    # the back-ranking has one positive among every query-side frame of the other videos
    assert out["cycle_rate_chance"] == pytest.approx(1 / (1 + (classes * videos_per_class // 2 - 1) * frames_per_video))


def test_cycle_diagnostics_closes_every_cycle_through_a_paired_video():
    """Query video i and support video 10 + i share a direction e_i (and a class): the soft
    neighbour of a frame of video i is e_i, which leads back to the other frame of video i and to
    no other query video. Cycle rate and own-video return are 1; chance is 1 / (1 + 9 videos x 2)."""
    n = 10
    videos = torch.arange(2 * n).repeat_interleave(2)  # two frames per video
    direction = videos % n  # video i and 10 + i share e_i
    labels = direction % 5

    class Enc(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.eye(n, 16), requires_grad=False)
            self.backbone = lambda x: self.w[x[:, 0, 0, 0].long()]

        def embed(self, h):
            e = F.normalize(h, dim=1)
            return e, e

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = Enc()

    frames = direction.float()[:, None, None, None].expand(-1, 3, 2, 2).clone()
    out = cycle_diagnostics(Model(), frames, labels, videos, support_size=20, nn_temperature=0.05,
                            support_videos=torch.arange(n, 2 * n))
    assert out["cycle_rate"] == 1.0 and out["own_video_return"] == 1.0
    assert out["cycle_rate_chance"] == pytest.approx(1 / (1 + 2 * (n - 1)))
    assert out["purity_cycle"] == pytest.approx(1.0, abs=1e-6)
    assert out["purity_chance"] == pytest.approx(0.2)  # 5 balanced classes
    assert out["rank_cycle"] == pytest.approx(9.0, rel=1e-6)  # 10 balanced directions, centred
