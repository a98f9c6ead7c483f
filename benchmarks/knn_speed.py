"""Weighted kNN of cckit (``cckit.eval.knn``) against scikit-learn's brute-force KNeighborsClassifier,
side by side in one run, on the same features, with the same cosine similarities and the same
``exp(sim / T)`` vote weights:

    python benchmarks/knn_speed.py                         # 50k x 128 memory, 5k queries, k 20
    python benchmarks/knn_speed.py --memory 2000 --queries 200 --json

Prints each one's seconds (best of ``--repeats``), their ratio and how many predictions differ
(0 expected: the same neighbours and votes). The features are random unit vectors with labels
drawn from 100 classes and class means added, so the votes are not all ties.
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import torch.nn.functional as F

from cckit.eval.knn import knn_predict


def features(n_memory: int, n_queries: int, dim: int, classes: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(classes, dim, generator=g)
    labels = torch.randint(0, classes, (n_memory + n_queries,), generator=g)
    x = F.normalize(means[labels] * 0.3 + torch.randn(n_memory + n_queries, dim, generator=g), dim=1)
    return x[:n_memory].contiguous(), labels[:n_memory].contiguous(), x[n_memory:].contiguous()


def sklearn_predict(memory, labels, queries, k: int, temperature: float) -> np.ndarray:
    from sklearn.neighbors import KNeighborsClassifier

    def weights(distances):  # cosine distance 1 - sim -> exp(sim / T)
        return np.exp((1.0 - distances) / temperature)

    clf = KNeighborsClassifier(n_neighbors=k, algorithm="brute", metric="cosine", weights=weights)
    clf.fit(memory.numpy(), labels.numpy())
    return clf.predict(queries.numpy())


def best_of(repeats: int, fn):
    times, out = [], None
    for _ in range(repeats):
        tic = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - tic)
    return min(times), out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--memory", type=int, default=50_000)
    p.add_argument("--queries", type=int, default=5_000)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--classes", type=int, default=100)
    p.add_argument("-k", type=int, default=20)
    p.add_argument("--temperature", type=float, default=0.07)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    memory, labels, queries = features(args.memory, args.queries, args.dim, args.classes)
    ours_s, ours = best_of(args.repeats, lambda: knn_predict(memory, labels, queries, k=args.k,
                                                             temperature=args.temperature, num_classes=args.classes))
    theirs_s, theirs = best_of(args.repeats, lambda: sklearn_predict(memory, labels, queries, args.k, args.temperature))
    result = {"memory": args.memory, "queries": args.queries, "dim": args.dim, "k": args.k,
              "torch_threads": torch.get_num_threads(), "cckit_s": ours_s, "sklearn_s": theirs_s,
              "speedup": theirs_s / ours_s, "predictions_differ": int((ours.numpy() != theirs).sum())}
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(f"memory {args.memory} x {args.dim}, {args.queries} queries, k {args.k}, T {args.temperature}, "
          f"{result['torch_threads']} torch threads (best of {args.repeats})")
    print(f"cckit.eval.knn   {ours_s:8.3f} s")
    print(f"scikit-learn     {theirs_s:8.3f} s")
    print(f"speed-up         {result['speedup']:8.2f}x   predictions that differ: {result['predictions_differ']}")


if __name__ == "__main__":
    main()
