"""Item vectors on the synthetic shop: what a planted image embedding adds; JSON to benchmarks/results/.

The shop of `fusionrec.data.synthetic` with ``image_vectors=32`` (``fusionrec generate
--image-vectors 32``): each item's ``image_embedding`` is a noisy projection of its hidden factors
(category, department, brand, price tier, appeal, trend; `_synthetic_vectors`). Temporal split, the
last 14 days are the test (the protocol of `bench_content.bench_synthetic_models`):

* ``content``: ``content_tfidf`` (text only), ``content_vectors`` (vectors only) and both together,
  at several noise levels of the planted vectors (noise sd over signal sd per dimension). Metrics:
  HR/Recall@20 over all test truth and over the *new items* (no training interaction), and the
  *similar-items* quality of new items: for each new item used in the test days, HR/Recall@20 of
  its 20 most similar items against the items viewed in the same test sessions.
* ``fusion``: the same fused pipeline (EASE, item kNN and ``content_vectors`` with TF-IDF as
  sources, a LightGBM ranker) with and without the ``vector_similarity`` ranking feature.

Usage: ``python benchmarks/bench_item_vectors.py [--part content|fusion|all] [--events 500000]``
-> ``item_vectors_synthetic.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from bench_content import machine
from fusionrec.data.dataset import Dataset
from fusionrec.data.split import temporal_split
from fusionrec.data.synthetic import ShopConfig, generate_frames
from fusionrec.evaluation.metrics import evaluate_rankings
from fusionrec.models.registry import create_model

RESULTS = Path(__file__).resolve().parent / "results"
KS = (10, 20)
SEED = 1
DIMS = 32
TEST_DAYS = 14.0
NOISE_LEVELS = (0.5, 1.0, 3.0)  # 1.0 is the generator's default
CONTENT_MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "content_tfidf": ("content_tfidf", {}),
    "content_vectors": ("content_vectors", {}),
    "content_vectors+tfidf": ("content_vectors", {"tfidf_weight": 1.0}),
}
FUSION_SOURCES = [
    {"model": "ease", "n": 100, "params": {"l2": 500.0}},
    {"model": "item_knn", "n": 50, "params": {"neighbours": 100}},
    {"model": "content_vectors", "n": 50, "params": {"tfidf_weight": 1.0}},
]
log = logging.getLogger("bench_item_vectors")


class Split:
    """The shop's temporal split and its truths (all items, new items, new items' session peers)."""

    def __init__(self, data: Dataset) -> None:
        split = temporal_split(data, test_days=TEST_DAYS)
        self.train, test = split.train, split.test
        self.seen = self.train.matrix(binary=True)
        truth = test.matrix(binary=True)
        truth = truth - truth.multiply(self.seen)
        truth.eliminate_zeros()
        known = np.diff(self.seen.indptr) > 0
        self.users = np.flatnonzero((np.diff(truth.indptr) > 0) & known)
        self.truth = truth[self.users]
        self.new_item = np.asarray(self.seen.sum(axis=0)).ravel() == 0
        self.truth_new = (self.truth @ sp.diags(self.new_item.astype(np.float32))).tocsr()
        self.truth_new.eliminate_zeros()
        self.new_users = np.diff(self.truth_new.indptr) > 0
        # Similar items: a new item's peers are the other items of the test sessions that used it.
        keep = test.session_idx >= 0
        sessions = sp.csr_matrix(
            (np.ones(int(keep.sum()), np.float32), (test.session_idx[keep], test.item_idx[keep])),
            shape=(int(test.session_idx.max()) + 1, test.n_items),
        )
        sessions.data[:] = 1.0
        peers = (sessions.T @ sessions).tocsr()
        peers.setdiag(0)
        peers.eliminate_zeros()
        peers.data[:] = 1.0
        self.anchors = np.flatnonzero(self.new_item & (np.diff(peers.indptr) > 0))
        self.peers = peers[self.anchors]

    def describe(self) -> dict[str, int]:
        return {
            "test_users": len(self.users),
            "new_item_test_users": int(self.new_users.sum()),
            "new_items": int(self.new_item.sum()),
            "new_item_anchors": len(self.anchors),
        }

    def score(self, model: Any) -> dict[str, Any]:
        recs, _ = model.recommend(self.users.astype(np.int64), max(KS), exclude=self.seen[self.users])
        out = {
            "all": evaluate_rankings(recs, self.truth, ks=KS, metrics=["Recall", "HR", "NDCG"]),
            "new_items": evaluate_rankings(
                recs[self.new_users], self.truth_new[self.new_users], ks=KS, metrics=["Recall", "HR"]
            ),
        }
        if getattr(model, "item_to_item", False):
            neighbours, _ = model.similar_items(self.anchors, k=max(KS))
            out["similar_new_items"] = evaluate_rankings(
                neighbours, self.peers, ks=KS, metrics=["Recall", "HR"]
            )
        return {part: {k: round(float(v), 5) for k, v in metrics.items()} for part, metrics in out.items()}


def shop(n_events: int, noise: float) -> Dataset:
    frames = generate_frames(
        n_events=n_events, seed=SEED, config=ShopConfig(image_vectors=DIMS, image_noise=noise)
    )
    return Dataset.from_frame(frames.events, frames.items, frames.users)


def timed_fit(name: str, params: dict[str, Any], train: Dataset) -> tuple[Any, float]:
    started = time.perf_counter()
    model = create_model(name, **params).fit(train)
    return model, round(time.perf_counter() - started, 2)


def bench_content(n_events: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for noise in NOISE_LEVELS:
        split = Split(shop(n_events, noise))
        runs: dict[str, Any] = {"data": split.describe()}
        for label, (name, params) in CONTENT_MODELS.items():
            if label == "content_tfidf" and noise != NOISE_LEVELS[0]:
                runs[label] = "same as at the first noise level (reads no vectors)"
                continue
            model, fit_s = timed_fit(name, params, split.train)
            runs[label] = {"params": params, "fit_seconds": fit_s} | split.score(model)
            log.info("noise %.1f %s: %s", noise, label, runs[label])
        out[f"noise={noise:g}"] = runs
    return out


def bench_fusion(n_events: int) -> dict[str, Any]:
    split = Split(shop(n_events, 1.0))
    base = {
        "sources": FUSION_SOURCES,
        "train_users": 20_000,
        "holdout": {"mode": "last", "items": 1},
        "ranker": {
            "kind": "lightgbm",
            "params": {"n_estimators": 200, "learning_rate": 0.05, "num_leaves": 31},
        },
    }
    out: dict[str, Any] = {"params": base}
    for label, dropped in (
        ("without vector_similarity", ["vector_similarity"]),
        ("with vector_similarity", []),
    ):
        model, fit_s = timed_fit("fusion", base | {"drop_features": dropped}, split.train)
        result = {"fit_seconds": fit_s} | split.score(model)
        importance = dict(model.feature_importance()) if hasattr(model, "feature_importance") else {}
        if "vector_similarity" in importance:
            ranked = sorted(importance, key=lambda k: -importance[k])
            result["vector_similarity_gain_rank"] = (
                f"{ranked.index('vector_similarity') + 1} of {len(ranked)}"
            )
        out[label] = result
        log.info("fusion %s: %s", label, result)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=["content", "fusion", "all"], default="all")
    parser.add_argument("--events", type=int, default=500_000)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    path = RESULTS / "item_vectors_synthetic.json"
    payload: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    payload |= {
        "dataset": "synthetic",
        "generator": {
            "n_events": args.events,
            "seed": SEED,
            "image_vectors": DIMS,
            "noise_levels": NOISE_LEVELS,
        },
        "protocol": {
            "split": f"temporal: last {TEST_DAYS:g} days test",
            "truth": "items a user with training history uses in the test days, not used in training",
            "new_items": "the same users, truth restricted to items with no training interaction",
            "similar_new_items": "each new item used in the test: its 20 most similar items against "
            "the other items of the test sessions that used it",
            "ranking": "full ranking over all items, training items masked; model defaults, no tuning",
        },
        "machine": machine(),
    }
    with threadpool_limits(2):
        if args.part in ("content", "all"):
            payload["content"] = bench_content(args.events)
        if args.part in ("fusion", "all"):
            payload["fusion"] = bench_fusion(args.events)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    log.info("wrote %s", path)


if __name__ == "__main__":
    main()
