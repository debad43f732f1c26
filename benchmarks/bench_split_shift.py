"""Is Gowalla's fixed test split drawn like a random share of its data?

Compares how close the held-out items sit to each user's other items, for three cuts: the fixed
test split; a seeded random 20 % of each user's training items (the fusion ranker's first random
label window; `select_pipeline.py --validation-fraction` draws its validation part the same way);
and a seeded random share of the training and test pairs together, as large as the test (21 %),
drawn by the same code. The last keeps as much data as the fixed split: it is what the split
would look like if it were a random share, like for like.
Closeness: an item's largest cosine similarity (items' user sets, top 100 neighbours per item,
fit on the data the user keeps) to any of the user's kept items; 0 when it is in no kept item's
top 100. Also each held-out item's popularity (its users in the kept data), and where its id falls
among the ids of all the user's items (0 = lowest, 1 = highest): the dense ids and, for Gowalla,
the original place ids of ``item_list.txt`` (Gowalla's own, likely numbered as places were
created); near 0.5 for a cut that ignores ids. The test items are used here only to describe the
split, never to choose anything.

Usage::

    python benchmarks/bench_split_shift.py [--dataset gowalla]

Writes ``benchmarks/results/split-shift-<dataset>.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from fusionrec.data.dataset import Vocabulary
from fusionrec.data.split import _union  # how Split.train_full joins its parts
from fusionrec.evaluation.benchmarks import benchmark_path, load_benchmark, resolve_benchmark
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
    popularity = np.diff(kept.tocsc().indptr)
    return {
        "pairs": len(best),
        "mean_max_similarity": float(best.mean()),
        "share_in_no_neighbour_list": float((best == 0).mean()),
        "mean_item_popularity": float(popularity[held_out.indices].mean()),
    }


def id_percentile(kept: sp.csr_matrix, held_out: sp.csr_matrix, item_order: np.ndarray) -> float:
    """Mean position of each held-out item's ``item_order`` among its user's items (0 to 1)."""
    kept, held_out = kept.tocsr(), held_out.tocsr()
    positions = []
    for user in range(kept.shape[0]):
        held = item_order[held_out.indices[held_out.indptr[user] : held_out.indptr[user + 1]]]
        if len(held) == 0:
            continue
        kept_items = item_order[kept.indices[kept.indptr[user] : kept.indptr[user + 1]]]
        every = np.sort(np.concatenate([kept_items, held]))
        if len(every) > 1:
            positions.append(np.searchsorted(every, held) / (len(every) - 1))
    return float(np.concatenate(positions).mean())


def original_place_ids(items: Vocabulary, path: Path) -> np.ndarray | None:
    """Gowalla's original place id of each item index, or None when the data has no item list."""
    listing = path / "item_list.txt"
    if not listing.exists():
        return None
    table = np.loadtxt(listing, skiprows=1, dtype=np.int64)  # org_id remap_id
    original = dict(zip(table[:, 1].tolist(), table[:, 0].tolist(), strict=True))
    return np.array([original[int(item)] for item in items.ids], dtype=np.int64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", default="gowalla")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    benchmark = resolve_benchmark(args.dataset)
    split, _ = load_benchmark(benchmark)
    train = split.train_full
    # the first of the ranker's random label windows, drawn by the fusion layer's own code
    kept, held_out = label_windows(train, HoldoutConfig(mode="random", fraction=0.2), seed=args.seed)[0]
    # train and test in one Dataset, cut at random by the same code, as large as the test (21 %)
    everything = _union(train, split.test)
    like_for_like = HoldoutConfig(mode="random", fraction=split.test.n_events / everything.n_events)
    all_kept, all_held_out = label_windows(everything, like_for_like, seed=args.seed)[0]
    cuts = {
        "fixed_test_vs_train": (train, split.test),
        "random_20pc_of_train_vs_rest": (kept, held_out),
        "random_share_of_train_and_test_vs_rest": (all_kept, all_held_out),
    }
    dense_ids = np.arange(train.n_items)
    place_ids = original_place_ids(train.items, benchmark_path(benchmark))
    result: dict[str, Any] = {
        "dataset": args.dataset,
        "protocol": __doc__.split("\n\n")[1].replace("\n", " "),
        "machine": platform.platform(),
    }
    for name, (kept_data, held_out_data) in cuts.items():
        kept_part, held_part = kept_data.matrix(binary=True), held_out_data.matrix(binary=True)
        result[name] = closeness(kept_part, held_part)
        result[name]["mean_dense_id_percentile"] = id_percentile(kept_part, held_part, dense_ids)
        if place_ids is not None:
            result[name]["mean_place_id_percentile"] = id_percentile(kept_part, held_part, place_ids)
    out = HERE / "results" / f"split-shift-{args.dataset}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
