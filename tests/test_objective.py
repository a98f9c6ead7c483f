"""Tests for cckit.objective: each method's loss against the losses it is made of, and the registry."""
import math

import pytest
import torch
import torch.nn.functional as F

from cckit.config import load_config
from cckit.losses import cycle_back_loss, info_nce, soft_nearest_neighbor
from cckit.methods import METHODS, get_method
from cckit.objective import Embeddings, Queues, compute_objective, draw_support
from cckit.utils import step_generator

from conftest import TINY


def unit(*shape, seed):
    return torch.nn.functional.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


def embeddings(n=4, d=8):
    q = unit(n, d, seed=1).requires_grad_(True)
    return Embeddings(query_intra=q, query_cycle=q, key_intra=unit(n, d, seed=2), positive_intra=unit(n, d, seed=3),
                      positive_cycle=unit(n, d, seed=4), video_ids=torch.arange(n))


@pytest.mark.parametrize("method", ["moco_v2", "intra_video", "cycle_contrast"])
def test_objective_is_the_sum_of_its_losses(method):
    cfg = load_config(None, TINY + [f"method.name={method}", "method.cycle_weight=0.5"]).method
    emb = embeddings()
    qz, qz_ids = unit(64, 8, seed=5), torch.arange(64) % 8
    qc, qc_ids = unit(64, 8, seed=6), torch.arange(64) % 8
    loss, stats = compute_objective(emb, Queues(qz, qz_ids, qc, qc_ids), cfg, step_generator(0, 3))
    positive = emb.key_intra if method == "moco_v2" else emb.positive_intra
    # own-video keys are neither negatives nor support rows
    expected = info_nce(emb.query_intra, positive, qz, cfg.temperature, emb.video_ids[:, None] == qz_ids[None, :])
    if method == "cycle_contrast":
        in_support = draw_support(64, cfg.support_size, step_generator(0, 3), "cpu")
        same = emb.video_ids[:, None] == qc_ids[None, :]
        expected = expected + 0.5 * cycle_back_loss(emb.query_cycle, emb.positive_cycle, qc[in_support],
                                                    qc[~in_support], cfg.temperature, support_mask=same[:, in_support],
                                                    negative_mask=same[:, ~in_support])
        nn, w = soft_nearest_neighbor(emb.query_cycle, qc[in_support], cfg.temperature, same[:, in_support])
        rank1 = [float((nn[i] @ emb.positive_cycle[i]) > (qc[~in_support][~same[i, ~in_support]] @ nn[i]).max())
                 for i in range(4)]
        assert stats["cycle_rate"].item() == pytest.approx(sum(rank1) / 4)
        entropy = -(w * w.clamp_min(1e-12).log()).sum(1).mean()
        assert stats["support_entropy"].item() == pytest.approx(entropy.item(), rel=1e-5)
    torch.testing.assert_close(loss, expected)


def test_forward_nn_positive_is_the_neighbour_and_not_also_a_negative():
    cfg = load_config(None, TINY + ["method.name=forward_nn", "method.nn=hard"]).method
    emb = embeddings()
    queue, ids = unit(64, 8, seed=5), torch.arange(64) % 8
    loss, stats = compute_objective(emb, Queues(queue, ids, unit(64, 8, seed=6), ids), cfg, step_generator(0, 3))
    total = 0.0
    q, p, Q = emb.query_intra.double(), emb.positive_intra.double(), queue.double()
    for i in range(q.shape[0]):
        allowed = ids != emb.video_ids[i]
        sims = torch.where(allowed, Q @ p[i], torch.tensor(float("-inf"), dtype=torch.float64))
        r = int(sims.argmax())
        negatives = Q[allowed & (ids != ids[r])]
        logits = torch.cat([(q[i] @ Q[r]).view(1), negatives @ q[i]]) / cfg.temperature
        total += float((torch.logsumexp(logits, 0) - logits[0]).detach())
    assert loss.item() == pytest.approx(total / q.shape[0], rel=1e-5)
    assert stats["intra_top1"] < 1  # a positive that also sat among the negatives tied with itself: always "top-1"


def test_query_negatives_add_the_other_queries_with_gradient():
    cfg = load_config(None, TINY + ["method.name=intra_video", "method.query_negatives=true"]).method
    emb = embeddings()
    emb.video_ids[1] = emb.video_ids[0]  # two queries of one video do not repel each other
    queue, ids = unit(64, 8, seed=5), torch.arange(64) % 8 + 100
    loss, _ = compute_objective(emb, Queues(queue, ids, unit(64, 8, seed=6), ids), cfg, step_generator(0, 3))
    q, p, t = emb.query_intra.double(), emb.positive_intra.double(), cfg.temperature
    total = 0.0
    for i in range(q.shape[0]):
        others = [q[j] for j in range(q.shape[0]) if emb.video_ids[j] != emb.video_ids[i]]
        logits = torch.cat([(q[i] @ p[i]).view(1), torch.stack(others) @ q[i], queue.double() @ q[i]]) / t
        total += torch.logsumexp(logits, 0) - logits[0]
    expected = total / q.shape[0]
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    grad, = torch.autograd.grad(loss, emb.query_intra)
    grad_ref, = torch.autograd.grad(expected, q)
    torch.testing.assert_close(grad.double(), grad_ref, rtol=1e-4, atol=1e-6)  # includes the repulsion terms


def test_own_video_rows_never_serve_as_neighbours():
    cfg = load_config(None, TINY + ["method.name=cycle_contrast", "method.support_size=63"]).method
    emb = embeddings()
    # the cycle queue holds exact copies of each query tagged with its own video, plus far rows
    qc = torch.cat([emb.query_cycle.detach(), -emb.query_cycle.detach().repeat(15, 1)])
    ids = torch.cat([emb.video_ids, torch.full((60,), 99)])
    in_support = draw_support(64, 63, step_generator(0, 0), "cpu")
    _, stats = compute_objective(emb, Queues(qc, ids, qc, ids), cfg, step_generator(0, 0))
    same = emb.video_ids[:, None] == ids[None, :]
    masked = cycle_back_loss(emb.query_cycle, emb.positive_cycle, qc[in_support], qc[~in_support], cfg.temperature,
                             support_mask=same[:, in_support], negative_mask=same[:, ~in_support])
    torch.testing.assert_close(stats["loss_cycle"], masked.detach())


def test_embeddings_are_built_with_keywords_only():
    q = unit(2, 4, seed=0)
    with pytest.raises(TypeError):
        Embeddings(q, q, q, q, q, torch.arange(2))
    emb = Embeddings(query_intra=q, query_cycle=q, key_intra=q, positive_intra=q, positive_cycle=q,
                     video_ids=torch.arange(2))
    assert emb.key_cycle is None


def test_the_registry_describes_each_method_once():
    assert list(METHODS) == ["moco_v2", "intra_video", "forward_nn", "cycle_contrast"]
    assert [m.name for m in METHODS.values() if m.cycle] == ["cycle_contrast"]
    assert [m.name for m in METHODS.values() if not m.needs_other_frame] == ["moco_v2"]
    assert get_method("moco_v2").needs_key_view("online") and not get_method("intra_video").needs_key_view("online")
    assert all(m.needs_key_view("momentum") for m in METHODS.values())
    with pytest.raises(ValueError, match="unknown method 'simclr' \\(one of moco_v2, intra_video, forward_nn, cycle_contrast\\)"):
        get_method("simclr")


def test_online_keys_put_gradient_on_both_views(tiny_overrides):
    torch.manual_seed(0)
    q = F.normalize(torch.randn(6, 8), dim=1).requires_grad_()
    p = F.normalize(torch.randn(6, 8), dim=1).requires_grad_()
    ids = torch.arange(6)
    queue, queue_ids = F.normalize(torch.randn(12, 8), dim=1), torch.arange(100, 112)
    for encoder in ("online", "momentum"):
        cfg = load_config(None, tiny_overrides + ["method.name=intra_video", f"method.key_encoder={encoder}",
                                                  "method.temperature=0.2"]).method
        q.grad = p.grad = None
        emb = Embeddings(query_intra=q, query_cycle=q, key_intra=p.detach() if encoder == "momentum" else p,
                         positive_intra=p, positive_cycle=p.detach(), video_ids=ids)
        loss, stats = compute_objective(emb, Queues(queue, queue_ids, queue, queue_ids), cfg, torch.Generator().manual_seed(0))
        loss.backward()
        assert q.grad is not None and float(q.grad.abs().sum()) > 0
        if encoder == "online":
            from cckit.losses import nt_xent
            assert float(loss.detach()) == pytest.approx(float(nt_xent(q, p, 0.2)[0].detach()), rel=1e-6)
            assert float(p.grad.abs().sum()) > 0
        else:
            assert p.grad is None or float(p.grad.abs().sum()) == 0.0


@pytest.mark.parametrize("steps, on", [((0, 0), [1, 1, 1, 1]), ((2, 0), [0, 0, 1, 1]), ((0, 2), [1, 1, 0, 0]),
                                       ((1, 3), [0, 1, 1, 0])])
def test_cycle_steps_add_the_cycle_term_only_inside_start_stop(steps, on):
    cfg = load_config(None, TINY + ["method.name=cycle_contrast", "method.cycle_weight=0.5",
                                    f"method.cycle_steps=[{steps[0]},{steps[1]}]"]).method
    intra_only = load_config(None, TINY + ["method.name=intra_video"]).method
    qz, qc, ids = unit(64, 8, seed=5), unit(64, 8, seed=6), torch.arange(64) % 8
    for step in range(4):
        emb = embeddings()
        loss, stats = compute_objective(emb, Queues(qz, ids, qc, ids), cfg, step_generator(0, step), step)
        intra, _ = compute_objective(emb, Queues(qz, ids, qc, ids), intra_only, step_generator(0, step), step)
        cycle = stats["loss_cycle"]
        assert cycle > 0.1  # logged on every step, added only inside [start, stop)
        torch.testing.assert_close(loss, intra + 0.5 * on[step] * cycle)


def test_cycle_steps_are_checked():
    from cckit.errors import ConfigError
    with pytest.raises(ConfigError, match="method.cycle_steps"):
        load_config(None, TINY + ["method.cycle_steps=[5,3]"])


def test_cycle_spread_adds_its_weight_times_the_uniformity_of_the_cycle_queries():
    base = load_config(None, TINY + ["method.name=cycle_contrast"]).method
    spread = load_config(None, TINY + ["method.name=cycle_contrast", "method.cycle_spread_weight=0.25"]).method
    qz, qc, ids = unit(64, 8, seed=5), unit(64, 8, seed=6), torch.arange(64) % 8
    emb = embeddings()
    without, stats0 = compute_objective(emb, Queues(qz, ids, qc, ids), base, step_generator(0, 1), 1)
    with_, stats = compute_objective(emb, Queues(qz, ids, qc, ids), spread, step_generator(0, 1), 1)
    q = emb.query_cycle.detach().double()
    # log of the mean over the 6 pairs of exp(-2 |c_i - c_j|^2), written out pair by pair
    pairs = [float(torch.exp(-2 * (q[i] - q[j]).pow(2).sum())) for i in range(4) for j in range(i + 1, 4)]
    assert stats["loss_spread"].item() == pytest.approx(math.log(sum(pairs) / 6), rel=1e-5)
    assert "loss_spread" not in stats0
    torch.testing.assert_close(with_, without + 0.25 * stats["loss_spread"])
    with pytest.raises(Exception, match="method.cycle_spread_weight"):
        load_config(None, TINY + ["method.cycle_spread_weight=-1"])


def test_support_oracle_keeps_only_rows_of_the_querys_class_from_other_videos():
    """method.support_oracle, written out query by query: the soft neighbour is taken over the support
    rows of other videos of the query's class only (empty slots, id -1, never), then cycles back."""
    cfg = load_config(None, TINY + ["method.name=cycle_contrast", "method.support_size=40",
                                    "method.support_oracle=true"]).method
    emb = embeddings()  # video ids 0..3
    labels = torch.tensor([0, 1, 0, 1, 0, 1, 2, 2])  # the class of videos 0..7
    qc, ids = unit(64, 8, seed=6), torch.arange(64) % 9 - 1  # ids -1..7: -1 is an empty slot
    _, stats = compute_objective(emb, Queues(unit(64, 8, seed=5), ids, qc, ids), cfg, step_generator(0, 2), 2,
                                 video_labels=labels)
    in_support = draw_support(64, 40, step_generator(0, 2), "cpu")
    U, U_ids, neg, neg_ids = qc[in_support], ids[in_support], qc[~in_support], ids[~in_support]
    t, total = cfg.temperature, 0.0
    for i in range(4):
        v = emb.video_ids[i]
        keep = (U_ids >= 0) & (U_ids != v) & (labels[U_ids.clamp_min(0)] == labels[v])
        w = torch.softmax(emb.query_cycle[i].detach() @ U[keep].t() / t, 0)
        n = F.normalize(w @ U[keep], dim=0)
        logits = torch.cat([(n @ emb.positive_cycle[i])[None], n @ neg[neg_ids != v].t()]) / t
        total += float(-torch.log_softmax(logits, 0)[0])
    assert stats["loss_cycle"].item() == pytest.approx(total / 4, rel=1e-5)
    with pytest.raises(ValueError, match="support_oracle"):
        compute_objective(emb, Queues(qc, ids, qc, ids), cfg, step_generator(0, 2), 2)


def test_video_label_table_indexes_classes_by_video_id_and_names_an_unlabelled_video():
    from cckit.data.records import VideoRecord
    from cckit.errors import ConfigError
    from cckit.train import video_label_table

    records = [VideoRecord(key=k, path=k, label=lab, video_id=i) for k, lab, i in (("a", 2, 3), ("b", 0, 0), ("c", 1, 5))]
    assert video_label_table(records).tolist() == [0, -1, -1, 2, -1, 1]
    with pytest.raises(ConfigError, match="support_oracle.*clip.mp4 has none"):
        video_label_table(records + [VideoRecord(key="d", path="clip.mp4", label=-1, video_id=6)])
