"""Fusion benchmark: `fusion`, `blend` and `rrf` against their own sources, in one run.

Same protocol as `fusionrec evaluate` (the benchmark's split, fit on ``train_full``, full ranking,
training items masked). The pipeline comes from ``benchmarks/pipelines/<dataset>.toml``; every
source of it is also evaluated alone with the same parameters. Also measured: candidate recall on
the test items, each source's share of the final top-20, the ranker's feature importance, and the
latency of scoring one user's candidates (features + ranker) over 200 users.

    .venv/bin/python benchmarks/bench_fusion.py --dataset amazon-beauty

``--singles tifu_knn --params singles_tifu.toml --fusions ""`` runs one source alone with other
parameters than the pipeline gives it (a setting chosen alone on validation).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import time
import tomllib
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from bench_ranker_latency import time_user
from fusionrec.evaluation.benchmarks import load_benchmark, resolve_benchmark
from fusionrec.evaluation.metrics import evaluate_rankings
from fusionrec.evaluation.protocol import evaluate_model, rank_held_out
from fusionrec.fusion.candidates import candidate_recall
from fusionrec.fusion.config import load_pipeline
from fusionrec.models.registry import create_model

HERE = Path(__file__).parent
KS = (10, 20)


def fused_run(name: str, params: dict, split, mask_seen: bool) -> tuple[dict, object]:  # type: ignore[no-untyped-def]
    """evaluate_model's protocol, keeping the fitted model for the fusion-specific numbers."""
    if split.protocol.get("split") == "session_next_item":
        # Sessions are anonymous: the model is fed each test session's prefix (`evaluate_model`'s
        # session protocol); per-user candidate numbers do not apply.
        result = evaluate_model(name, split, params=params, ks=KS, mask_seen=mask_seen)
        row = {k: v for k, v in result.to_dict().items() if k in ("model", "metrics")}
        return {**row, "fit_seconds": round(result.fit_seconds, 1)}, None
    model = create_model(name, **params)
    started = time.perf_counter()
    model.fit(split.train_full)
    fit_seconds = time.perf_counter() - started
    history = split.train_full
    started = time.perf_counter()
    users, recs, truth = rank_held_out(model, history, split.test, max(KS), mask_seen=mask_seen)
    predict_seconds = time.perf_counter() - started
    metrics = evaluate_rankings(recs, truth, ks=KS, train_popularity=history.item_popularity())
    row = {
        "model": name,
        "metrics": metrics,
        "fit_seconds": round(fit_seconds, 1),
        "predict_seconds": round(predict_seconds, 1),
        "timings": {k: round(v, 1) for k, v in model.timings_.items()},
    }
    step = max(1, len(users) // 3000)
    sample = users[::step]
    candidates = model._candidates(sample)
    row["candidate_recall"] = candidate_recall(candidates, truth[::step])
    row["candidates_per_user"] = len(candidates) / len(sample)
    row["source_contribution@20"] = model.source_contribution(sample[:1000], k=20)
    if hasattr(model, "feature_importance"):
        row["feature_importance"] = dict(list(model.feature_importance().items())[:15])
        row["ranker_latency_ms"] = ranker_latency(model, users[:200])
    if hasattr(model, "weights_"):
        row["weights"] = model.weights()
    return row, model


def ranker_latency(model, users: np.ndarray) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Per user: features + ranker over that user's candidates (candidates generated beforehand,
    as `bench_ranker_latency.time_user` does), and a whole `recommend`."""
    ranker_ms, end_to_end_ms = [], []
    for user in users:
        features_ms, scoring_ms, _ = time_user(model, int(user))
        ranker_ms.append(features_ms + scoring_ms)
        started = time.perf_counter()
        model.recommend(np.array([user]), 20)
        end_to_end_ms.append((time.perf_counter() - started) * 1000)
    return {
        "features_plus_ranker_median_ms": float(np.median(ranker_ms)),
        "features_plus_ranker_p95_ms": float(np.percentile(ranker_ms, 95)),
        "recommend_end_to_end_median_ms": float(np.median(end_to_end_ms)),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default="amazon-beauty")
    parser.add_argument("--pipeline", default=None)
    parser.add_argument("--fusions", default="fusion,blend,rrf", help="comma-separated; empty: singles only")
    parser.add_argument("--skip-singles", action="store_true")
    parser.add_argument(
        "--singles", default=None, help="comma-separated source labels to run alone (default: every source)"
    )
    parser.add_argument(
        "--params",
        type=Path,
        default=None,
        help="TOML of parameters for the singles, over the pipeline's: [source label] key = value",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tag", default="", help="suffix of the result file (partial reruns)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    pipeline = load_pipeline(args.pipeline or HERE / "pipelines" / f"{args.dataset}.toml")
    benchmark = resolve_benchmark(args.dataset)
    split, description = load_benchmark(benchmark)
    single_params = tomllib.loads(args.params.read_text()) if args.params else {}
    results: dict = {
        "dataset": args.dataset,
        "description": description,
        "pipeline": pipeline.model_dump(mode="json"),
        "single_params": single_params,
        "machine": f"{platform.machine()}, 2 shared cores, {args.threads} BLAS threads",
        "rows": [],
    }
    out = HERE / "results" / f"fusion-{args.dataset}{'-' + args.tag if args.tag else ''}.json"
    out.parent.mkdir(exist_ok=True)
    # Alone, a source that stops early gets its validation run back (the fused pipeline fixes its
    # epochs, chosen the same way in bench_sequential.py), then is refit on train + validation.
    single_overrides = {"sasrec": {"epochs": 80, "eval_every": 2, "patience": 4}}
    with threadpool_limits(args.threads):
        if not args.skip_singles:
            wanted = set(args.singles.split(",")) if args.singles else None
            for source in [s for s in pipeline.sources if wanted is None or s.label in wanted]:
                params = {
                    **source.params,
                    **single_overrides.get(source.model, {}),
                    **single_params.get(source.label, {}),
                }
                result = evaluate_model(
                    source.model, split, params=params, ks=KS, mask_seen=benchmark.mask_seen, refit=True
                )
                results["rows"].append(result.to_dict())
                logging.info("%s %s", source.label, result.metrics)
                out.write_text(json.dumps(results, indent=2, default=float))
        for name in [n for n in args.fusions.split(",") if n]:
            params = {k: v for k, v in pipeline.model_params().items() if name == "fusion" or k != "ranker"}
            row, _ = fused_run(name, params, split, benchmark.mask_seen)
            results["rows"].append(row)
            logging.info("%s %s", name, row["metrics"])
            out.write_text(json.dumps(results, indent=2, default=float))
    print(
        json.dumps(
            [
                {r["model"]: {k: r["metrics"].get(k) for k in ("HR@20", "Recall@20", "NDCG@20", "NDCG@10")}}
                for r in results["rows"]
            ],
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
