"""User attributes: segment popularity for cold-start users, and attribute features in the ranker.

Two measurements on data whose users have attributes (``users.parquet``'s JSON ``attributes``):

(a) **cold start**: the users with attributes and a test item are cut into ``--folds`` folds;
    for each fold their training history is removed, `most_popular` and `popular_segment` (all
    usable attributes, and each attribute alone) are fit on what is left, and the fold's users
    are ranked from their attributes alone (`SegmentPopular.score_attributes`). Nothing is
    masked (they have no history). NDCG@20 / HR@20 over the users of every fold, and the paired
    per-user difference segment - global with a 95% interval (normal, over users).
(b) **fused ranker**: the dataset's pipeline fit on ``train_full`` with and without the
    attribute features (``user_attributes = false``), ranked on the benchmark's test under its
    masking rule; metrics over the test users that have attributes, and over all test users,
    and the paired difference by how many training items the user has.

Datasets: ``dunnhumby`` (the registered temporal split; demographics for 801 of 2,469
households) and ``shop`` (the generated shop, 300k events, its last 7 days as test;
``--attribute-tastes`` plants the relation between age band and taste, 0 leaves the attributes
independent of behaviour, a negative control).

    nice -n 10 .venv/bin/python benchmarks/bench_user_attributes.py --dataset shop --attribute-tastes 0.7
    nice -n 10 .venv/bin/python benchmarks/bench_user_attributes.py --dataset dunnhumby
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from fusionrec.data.dataset import Dataset
from fusionrec.data.split import Split, temporal_split
from fusionrec.data.synthetic import ShopConfig, generate_frames
from fusionrec.data.user_attributes import dataset_codes, dataset_encoder, user_attribute_column
from fusionrec.evaluation.benchmarks import load_benchmark, resolve_benchmark
from fusionrec.evaluation.metrics import evaluate_rankings
from fusionrec.evaluation.protocol import rank_held_out
from fusionrec.fusion.config import default_pipeline, load_pipeline
from fusionrec.models.base import top_k
from fusionrec.models.registry import create_model

HERE = Path(__file__).parent
KS = (10, 20)
METRICS = ("NDCG@20", "HR@20", "NDCG@10", "Recall@20")
HISTORY_BUCKETS = (3, 10)  # training items: 1-2, 3-9, 10+
HISTORY_LABELS = ("1-2 items", "3-9 items", "10+ items")


def load(args: argparse.Namespace) -> tuple[Split, dict[str, Any], bool, dict[str, Any]]:
    """The split, its description, the masking rule and the fused pipeline (model params)."""
    if args.dataset == "shop":
        events, items, users = generate_frames(
            n_events=args.events, seed=args.seed, config=ShopConfig(attribute_tastes=args.attribute_tastes)
        )
        split = temporal_split(Dataset.from_frame(events, items, users), test_days=7, valid_days=7)
        description = {
            "dataset": "shop",
            "events": args.events,
            "seed": args.seed,
            "attribute_tastes": args.attribute_tastes,
            "split": split.protocol,
            "users": split.train.n_users,
            "items": split.train.n_items,
        }
        return split, description, True, default_pipeline().model_params()
    benchmark = resolve_benchmark(args.dataset)
    split, description = load_benchmark(benchmark)
    return (
        split,
        description,
        benchmark.mask_seen,
        load_pipeline(HERE / "pipelines" / f"{args.dataset}.toml").model_params(),
    )


def with_attributes(dataset: Dataset) -> np.ndarray:
    """Mask of the users with at least one usable attribute value."""
    codes = dataset_codes(dataset.user_features, dataset_encoder(dataset.user_features))
    return (codes >= 0).any(axis=1) if codes.shape[1] else np.zeros(dataset.n_users, dtype=bool)


def paired(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """Mean of ``b - a`` per user with a 95% normal interval."""
    diff = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    half = 1.96 * diff.std(ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else float("nan")
    return {"mean": float(diff.mean()), "low": float(diff.mean() - half), "high": float(diff.mean() + half)}


def cold_start(split: Split, folds: int, seed: int) -> dict[str, Any]:
    train, test = split.train_full, split.test
    truth_all = test.matrix(binary=True)
    has_test = np.diff(truth_all.indptr) > 0
    has_train = np.diff(train.matrix(binary=True).indptr) > 0
    users = np.flatnonzero(with_attributes(train) & has_test & has_train)
    attributes = user_attribute_column(train.user_features)
    assert attributes is not None
    keys = list(dataset_encoder(train.user_features).names)
    variants: dict[str, dict[str, Any]] = {
        "most_popular": {},
        "popular_segment": {},
        **{f"popular_segment[{k}]": {"attributes": [k]} for k in keys},
    }
    fold_of = np.random.default_rng(seed).permutation(len(users)) % folds
    per_user: dict[str, list[np.ndarray]] = {name: [] for name in variants}
    order: list[np.ndarray] = []
    started = time.perf_counter()
    for f in range(folds):
        cold = users[fold_of == f]
        rest = train.select(~np.isin(train.user_idx, cold))
        truth = truth_all[cold]
        order.append(cold)
        for name, params in variants.items():
            model = create_model(name.split("[")[0], **params).fit(rest)
            if name == "most_popular":
                scores = model.fallback_scores(len(cold))
            else:
                scores = model.score_attributes(attributes.iloc[cold].tolist())  # type: ignore[attr-defined]
            recs, _ = top_k(scores, max(KS))
            _, values = evaluate_rankings(recs, truth, ks=KS, per_user=True)
            per_user[name].append(values)
    result: dict[str, Any] = {
        "users": len(users),
        "folds": folds,
        "attributes": keys,
        "seconds": round(time.perf_counter() - started, 1),
        "metrics": {},
        "vs_most_popular": {},
    }
    for name in variants:
        merged = {m: np.concatenate([v[m] for v in per_user[name]]) for m in per_user[name][0]}
        result["metrics"][name] = {m: float(merged[m].mean()) for m in METRICS if m in merged}
        if name != "most_popular":
            base = {m: np.concatenate([v[m] for v in per_user["most_popular"]]) for m in ("NDCG@20", "HR@20")}
            result["vs_most_popular"][name] = {m: paired(base[m], merged[m]) for m in ("NDCG@20", "HR@20")}
    return result


def fused(
    split: Split, params: dict[str, Any], mask_seen: bool, variants: list[str], save: Any = None
) -> dict[str, Any]:
    """(b) for each variant; ``save(out)`` after each one (a long run keeps what it finished)."""
    history = split.train_full
    attribute_users = with_attributes(history)
    history_items = np.diff(history.matrix(binary=True).indptr)
    out: dict[str, Any] = {"rows": {}, "vs_without": {}, "vs_without_by_history": {}}
    per_user: dict[str, dict[str, np.ndarray]] = {}
    bucket_of: np.ndarray | None = None
    for variant in variants:
        config = dict(params)
        config["user_attributes"] = variant != "without"  # the features are off by default
        if variant == "with+source":
            config["sources"] = [*config["sources"], {"model": "popular_segment", "n": 30}]
        model = create_model("fusion", **config)
        started = time.perf_counter()
        model.fit(history)
        fit_seconds = time.perf_counter() - started
        users, recs, truth = rank_held_out(model, history, split.test, max(KS), mask_seen=mask_seen)
        on = attribute_users[users]
        _, values = evaluate_rankings(recs, truth, ks=KS, per_user=True)
        per_user[variant] = {m: v[on] for m, v in values.items()}
        # Attributes should matter most where the user's own history says least.
        bucket_of = np.digitize(history_items[users][on], HISTORY_BUCKETS)
        importance = model.feature_importance()
        attribute_gain = {k: v for k, v in importance.items() if "attr" in k or k.startswith("segment_lift")}
        out["rows"][variant] = {
            "fit_seconds": round(fit_seconds, 1),
            "users_with_attributes": int(on.sum()),
            "users": len(users),
            "with_attributes": {m: float(values[m][on].mean()) for m in METRICS if m in values},
            "all_users": {m: float(values[m].mean()) for m in METRICS if m in values},
            "attribute_feature_gain_share": float(
                sum(attribute_gain.values()) / max(sum(importance.values()), 1e-12)
            ),
            "attribute_feature_gain": dict(sorted(attribute_gain.items(), key=lambda kv: -kv[1])[:8]),
        }
        logging.info("fused %s: %s", variant, out["rows"][variant]["with_attributes"])
        if variant != "without" and "without" in per_user:
            out["vs_without"][variant] = {
                m: paired(per_user["without"][m], per_user[variant][m]) for m in ("NDCG@20", "HR@20")
            }
            assert bucket_of is not None
            out["vs_without_by_history"][variant] = {
                label: {
                    "users": int((bucket_of == b).sum()),
                    "NDCG@20": paired(
                        per_user["without"]["NDCG@20"][bucket_of == b],
                        per_user[variant]["NDCG@20"][bucket_of == b],
                    ),
                }
                for b, label in enumerate(HISTORY_LABELS)
                if (bucket_of == b).sum() > 1
            }
        if save is not None:
            save(out)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["shop", "dunnhumby"], required=True)
    parser.add_argument("--events", type=int, default=300_000, help="shop only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--attribute-tastes", type=float, default=0.7, help="shop only")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument(
        "--fused", default="without,with", help="variants: without, with, with+source; empty: skip (b)"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    split, description, mask_seen, params = load(args)
    name = args.dataset if args.dataset != "shop" else f"shop-tastes{args.attribute_tastes:g}"
    out = HERE / "results" / f"user-attributes-{name}{'-' + args.tag if args.tag else ''}.json"
    results: dict[str, Any] = {
        "dataset": args.dataset,
        "description": description,
        "masking": "training items masked" if mask_seen else "nothing masked (repurchase allowed)",
        "machine": f"{platform.machine()}, 2 shared cores, {args.threads} BLAS threads",
        "load_average_at_start": list(os.getloadavg()),
    }
    with threadpool_limits(args.threads):
        results["cold_start"] = cold_start(split, args.folds, args.seed)
        logging.info("cold start: %s", results["cold_start"]["metrics"])
        out.write_text(json.dumps(results, indent=2))
        variants = [v for v in args.fused.split(",") if v]
        if variants:

            def save(part: dict[str, Any]) -> None:
                results["fused"] = part
                results["load_average_now"] = list(os.getloadavg())
                out.write_text(json.dumps(results, indent=2))

            results["fused"] = fused(split, params, mask_seen, variants, save)
    results["load_average_at_end"] = list(os.getloadavg())
    out.write_text(json.dumps(results, indent=2))
    print(
        json.dumps(
            {"cold_start": results["cold_start"]["metrics"], "fused": results.get("fused", {}).get("rows")},
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
