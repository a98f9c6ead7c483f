"""Weighted kNN against a brute-force loop."""
import numpy as np
import torch
import torch.nn.functional as F

from cckit.eval import knn_predict
from cckit.eval.knn import knn_accuracy, knn_scores


def brute_force_knn(memory, labels, queries, k, t, c):
    memory = memory / np.linalg.norm(memory, axis=1, keepdims=True)
    queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    preds = []
    for q in queries:
        sims = memory @ q
        idx = np.argsort(-sims, kind="stable")[:k]
        scores = np.zeros(c)
        for j in idx:
            scores[labels[j]] += np.exp(sims[j] / t)
        preds.append(int(np.argmax(scores)))
    return np.array(preds)


def test_knn_predict_matches_brute_force():
    rng = np.random.default_rng(0)
    memory, labels = rng.normal(size=(300, 16)), rng.integers(0, 7, 300)
    queries = rng.normal(size=(50, 16))
    for k in (1, 5, 20):
        got = knn_predict(torch.tensor(memory), torch.tensor(labels), torch.tensor(queries), k=k, temperature=0.1,
                          num_classes=7, chunk_size=16)
        np.testing.assert_array_equal(got.numpy(), brute_force_knn(memory, labels, queries, k, 0.1, 7))


def test_knn_scores_are_the_summed_exponentiated_similarities():
    memory = F.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), dim=1)
    labels = torch.tensor([0, 1, 1])
    q = torch.tensor([[1.0, 0.0]])
    scores = knn_scores(memory, labels, q, k=2, temperature=0.5, num_classes=2)
    # neighbours: [1,0] (sim 1, class 0) and [1,1]/sqrt2 (sim 0.7071, class 1)
    torch.testing.assert_close(scores, torch.tensor([[np.exp(2.0), np.exp(0.70710678 / 0.5)]], dtype=torch.float32))


def test_knn_accuracy_on_clustered_features_is_perfect_and_chunking_does_not_matter():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(4, 32)) * 5
    labels = np.repeat(np.arange(4), 25)
    memory = centres[labels] + rng.normal(size=(100, 32)) * 0.1
    queries = centres[labels] + rng.normal(size=(100, 32)) * 0.1
    acc = knn_accuracy(torch.tensor(memory), torch.tensor(labels), torch.tensor(queries), torch.tensor(labels), k=10)
    assert acc == {"top1": 1.0, "top5": 1.0}
    a = knn_predict(torch.tensor(memory), torch.tensor(labels), torch.tensor(queries), k=7, chunk_size=3)
    b = knn_predict(torch.tensor(memory), torch.tensor(labels), torch.tensor(queries), k=7, chunk_size=1000)
    assert torch.equal(a, b)
