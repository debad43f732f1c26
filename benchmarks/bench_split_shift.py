"""Is Gowalla's fixed test split drawn like a random share of its training data?

Compares how close the held-out items sit to each user's other items, for the fixed test split
and for a seeded random 20 % of each user's training items (the fusion ranker's first random
label window; `select_pipeline.py --validation-fraction` draws its validation part the same way).
Closeness: an item's largest cosine similarity (items' user sets, top 100 neighbours per item,
fit on the data the user keeps) to any of the user's kept items; 0 when it is in no kept item's
top 100.

Usage::

    python benchmarks/bench_split_shift.py [--dataset gowalla]

Writes ``benchmarks/results/split-shift-<dataset>.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from fusionrec.evaluation.benchmarks import load_benchmark, resolve_benchmark
from fusionrec.fusion.config import HoldoutConfig
from fusionrec.fusion.pipeline import label_windows
from fusionrec.models.knn import similarity_matrix

HERE = Path(__file__).resolve().parent
NEIGHBOURS = 100


def closeness(kept: sp.csr_matrix, held_out: sp.csr_matrix) -> dict[str, float]:
    """Largest similarity of each held-out (user, item) pair to the user's kept items."""
    similarity = similarity_matrix(kept.T.tocsr(), similarity="cosine", neighbours=NEIGHBOURS)
    held_out = held_out.tocsr()
    best = np.zeros(held_out.nnz, dtype=np.float32)
    for user in range(kept.shape[0]):
        items = kept.indices[kept.indptr[user] : kept.indptr[user + 1]]
        start, stop = held_out.indptr[user], held_out.indptr[user + 1]
        if len(items) and stop > start:
            rows = similarity[items][:, held_out.indices[start:stop]]
            best[start:stop] = rows.max(axis=0).toarray().ravel()
    return {
        "pairs": len(best),
        "mean_max_similarity": float(best.mean()),
        "share_in_no_neighbour_list": float((best == 0).mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="gowalla")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    split, _ = load_benchmark(resolve_benchmark(args.dataset))
    train = split.train_full
    # the first of the ranker's random label windows, drawn by the fusion layer's own code
    kept, held_out = label_windows(train, HoldoutConfig(mode="random", fraction=0.2), seed=args.seed)[0]
    result = {
        "dataset": args.dataset,
        "protocol": __doc__.split("\n\n")[1].replace("\n", " "),
        "machine": platform.platform(),
        "fixed_test_vs_train": closeness(train.matrix(binary=True), split.test.matrix(binary=True)),
        "random_20pc_of_train_vs_rest": closeness(kept.matrix(binary=True), held_out.matrix(binary=True)),
    }
    out = HERE / "results" / f"split-shift-{args.dataset}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
