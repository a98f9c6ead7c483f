"""The momentum path against our own float64 reading of the official CycleContrast forward.

The reading follows happywu/CycleContrast ``cycle_contrast/builder.py`` (``CycleContrast.forward``
with ``--moco-random-video-frame-as-pos --soft-nn --soft-nn-support M --cycle-back-cls
--cycle-back-cls-video-as-pos --sep-head --mlp``) and ``train_cycle.py`` (loss_moco + λ · loss_cycle,
SGD), written out plainly here:

1. EMA ``θ_k <- m θ_k + (1 - m) θ_q`` *before* the key pass;
2. ``q = z(x_q)``, ``q_c = c(x_q)``; keys ``z_k, c_k`` of ``x_k`` and of the other frame ``x_p``;
3. intra logits ``[q·z_k(x_p), q·Q_zᵀ] / T``;
4. soft NN over the support rows ``U`` of ``Q_c``: ``w = softmax(q_c·Uᵀ / T_nn)``, ``n = normalize(w U)``;
   back logits ``[n·c_k(x_p), n·(Q_c \\ U)ᵀ] / T``;
5. ``L = CE(intra) + λ CE(back)``, backward, SGD step;
6. enqueue the keys of ``x_k`` (both heads) in both queues.

The official code masks nothing, so the kit runs with ``method.exclude_own_video=false`` here; the
support draw is an input (the same permutation is given to both).
"""
import copy

import pytest
import torch
import torch.nn.functional as F

from cckit.config import load_config
from cckit.model import CycleContrastModel
from cckit.train import build_optimizer, train_step
from cckit.utils import step_generator

OVERRIDES = ["model.arch=resnet10", "model.width=4", "model.bn_splits=1", "model.head_bn=false",
             "model.queue_size=32", "model.cycle_queue_size=48", "model.momentum=0.9",
             "method.name=cycle_contrast", "method.key_encoder=momentum", "method.exclude_own_video=false",
             "method.temperature=0.1", "method.nn_temperature=0.2", "method.support_size=16",
             "method.cycle_weight=0.5", "train.batch_size=8", "train.optimizer=sgd", "train.weight_decay=0",
             "train.momentum=0.9"]


def official_step(model, x_q, x_k, x_p, support_index, cfg, lr):
    """One step of the official forward + loss + SGD on a float64 copy; returns (loss, grads, model)."""
    m, t, t_nn = cfg.model.momentum, cfg.method.temperature, cfg.method.nn_temperature
    q_net, k_net = model.encoder, model.encoder_m
    with torch.no_grad():  # 1. EMA first
        for w_k, w_q in zip(k_net.parameters(), q_net.parameters()):
            w_k.copy_(w_k * m + w_q * (1 - m))
    h = q_net.backbone(x_q)
    q = F.normalize(q_net.head_intra(h), dim=1)  # N x D
    q_c = F.normalize(q_net.head_cycle(h), dim=1)  # N x D
    with torch.no_grad():  # 2. keys (BN over the joint batch of x_k and x_p, as one shuffled pass)
        h_k = k_net.backbone(torch.cat([x_k, x_p]))
        z_k, c_k = F.normalize(k_net.head_intra(h_k), dim=1), F.normalize(k_net.head_cycle(h_k), dim=1)
    n = len(x_q)
    queue, queue_c = model.queue_intra.clone(), model.queue_cycle.clone()  # K x D, K_c x D
    logits = torch.cat([(q * z_k[n:]).sum(1, keepdim=True), q @ queue.t()], 1) / t  # 3. N x (1+K)
    support, rest = queue_c[support_index], queue_c[~support_index]
    w = torch.softmax(q_c @ support.t() / t_nn, dim=1)  # 4. N x M
    nn = F.normalize(w @ support, dim=1)  # N x D
    back = torch.cat([(nn * c_k[n:]).sum(1, keepdim=True), nn @ rest.t()], 1) / t  # N x (1+K_c-M)
    zero = torch.zeros(n, dtype=torch.long)
    loss = F.cross_entropy(logits, zero) + cfg.method.cycle_weight * F.cross_entropy(back, zero)  # 5.
    # train_cycle.py: plain SGD over every parameter (the kit spares biases and norms the weight
    # decay, a listed departure; weight decay is 0 here so that both read the same)
    opt = torch.optim.SGD(model.encoder.parameters(), lr, momentum=cfg.train.momentum, weight_decay=0)
    opt.zero_grad()
    loss.backward()
    grads = [p.grad.clone() for p in model.encoder.parameters()]
    opt.step()
    with torch.no_grad():  # 6. keys of x_k into both queues
        model.queue_intra[:n] = z_k[:n]
        model.queue_cycle[:n] = c_k[:n]
    return float(loss.detach()), grads, model


@pytest.mark.parametrize("step", [0, 3])
def test_train_step_matches_the_official_forward_in_float64(step):
    cfg = load_config(None, OVERRIDES)
    torch.manual_seed(0)
    model = CycleContrastModel(cfg.model).double().train()
    with torch.no_grad():  # a momentum encoder that differs from the online one, so the EMA's order counts
        for w in model.encoder_m.parameters():
            w.add_(0.05 * torch.randn_like(w))
        model.queue_intra.copy_(F.normalize(torch.randn_like(model.queue_intra), dim=1))
        model.queue_cycle.copy_(F.normalize(torch.randn_like(model.queue_cycle), dim=1))
    reference = copy.deepcopy(model)
    x_q, x_k, x_p = (torch.randn(8, 3, 32, 32, dtype=torch.float64) for _ in range(3))
    ids = torch.arange(8)
    lr = 0.05
    k_c = cfg.model.cycle_queue_size
    in_support = torch.zeros(k_c, dtype=torch.bool)
    in_support[torch.randperm(k_c, generator=step_generator(cfg.train.seed, step))[:cfg.method.support_size]] = True

    stats = train_step(model, build_optimizer(model, cfg), (x_q, x_k, x_p, ids), cfg, step=step, lr=lr)
    loss, grads, reference = official_step(reference, x_q, x_k, x_p, in_support, cfg, lr)

    assert stats["loss"] == pytest.approx(loss, rel=1e-12)
    for g, p in zip(grads, model.encoder.parameters()):
        torch.testing.assert_close(p.grad, g, rtol=1e-10, atol=1e-12)
    for name, a, b in [("online", model.encoder, reference.encoder), ("momentum", model.encoder_m, reference.encoder_m)]:
        for (key, w), w_ref in zip(a.state_dict().items(), b.state_dict().values()):
            torch.testing.assert_close(w, w_ref, rtol=1e-10, atol=1e-12, msg=f"{name} {key}")
    torch.testing.assert_close(model.queue_intra, reference.queue_intra, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(model.queue_cycle, reference.queue_cycle, rtol=1e-10, atol=1e-12)
    assert model.queue_intra_ids[:8].tolist() == ids.tolist() and model.queue_ptr.tolist() == [8, 8]
