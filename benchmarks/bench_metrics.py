"""Time `evaluate_rankings` on a Gowalla-sized random case; writes benchmarks/results/metrics.json.

Protocol: 30,000 users x 40,000 items, K = 20 (cut-offs 10 and 20), 30 relevant items per user
drawn at random, lists drawn from the 200 items that ~7 maps onto so that hits occur; 64-d float32
embeddings, 50 categories. Median of 7 runs after one warm-up, per metric group.
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from fusionrec.evaluation.metrics import evaluate_rankings

N_USERS, N_ITEMS, K, REL_PER_USER, RUNS = 30_000, 40_000, 20, 30, 7


def main() -> None:
    rng = np.random.default_rng(0)
    recs = (np.argsort(rng.random((N_USERS, 200)), axis=1)[:, :K] * 7 % N_ITEMS).astype(np.int64)
    nnz = N_USERS * REL_PER_USER
    truth = sp.csr_array(
        (np.ones(nnz), (rng.integers(0, N_USERS, nnz), rng.integers(0, N_ITEMS, nnz))),
        shape=(N_USERS, N_ITEMS),
    )
    inputs = {
        "train_popularity": rng.integers(0, 100, N_ITEMS).astype(np.float64),
        "item_categories": rng.integers(0, 50, N_ITEMS),
        "item_embeddings": rng.normal(size=(N_ITEMS, 64)).astype(np.float32),
    }
    groups = {
        "accuracy (Recall, Precision, HR, NDCG, MAP, MRR)": (
            ["Recall", "Precision", "HR", "NDCG", "MAP", "MRR"],
            [],
        ),
        "Coverage + Gini": (["Coverage", "Gini"], []),
        "Novelty + ARP": (["Novelty", "ARP"], ["train_popularity"]),
        "ILD (categories)": (["ILD"], ["item_categories"]),
        "ILD-Emb (64-d)": (["ILD-Emb"], ["item_embeddings"]),
        "all metrics": (None, list(inputs)),
    }
    results = {}
    for name, (metrics, needs) in groups.items():
        kwargs = {key: inputs[key] for key in needs}
        evaluate_rankings(recs, truth, ks=(10, 20), metrics=metrics, **kwargs)  # warm-up
        times = []
        for _ in range(RUNS):
            start = time.perf_counter()
            evaluate_rankings(recs, truth, ks=(10, 20), metrics=metrics, **kwargs)
            times.append(time.perf_counter() - start)
        results[name] = {"median_s": statistics.median(times), "min_s": min(times)}
        print(f"{name:55s} median {statistics.median(times) * 1000:8.1f} ms")
    out = {
        "benchmark": "evaluate_rankings",
        "protocol": {
            "n_users": N_USERS,
            "n_items": N_ITEMS,
            "ks": [10, 20],
            "relevant_per_user": REL_PER_USER,
            "runs": RUNS,
            "statistic": "median after one warm-up",
        },
        "machine": {
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "numpy": np.__version__,
        },
        "results": results,
    }
    path = Path(__file__).parent / "results" / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
