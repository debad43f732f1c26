"""Compare candidate pipeline files on a benchmark's validation part, never its test part.

Each pipeline is fit on the split's training part and scored on its validation part with the
benchmark's protocol (full ranking; training items masked where the benchmark masks them).
Single models, given with ``--models``, are scored the same way as the bar to beat. A benchmark
without a validation part (Gowalla's fixed files) gets one with ``--validation-fraction``: a seeded
random share of each user's training items, cut the way the fused pipeline cuts its label window.

    .venv/bin/python benchmarks/select_pipeline.py --dataset dunnhumby \\
        a.toml b.toml --models repeat_purchase

The variants compared for the shipped pipelines are in ``benchmarks/pipelines/selection/<dataset>/``.
Writes ``benchmarks/results/select-<dataset>.json``, keeping the rows of earlier runs on the same
validation part (a candidate run again replaces its row).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from fusionrec.evaluation.benchmarks import load_benchmark, resolve_benchmark
from fusionrec.evaluation.metrics import evaluate_rankings
from fusionrec.evaluation.protocol import rank
from fusionrec.fusion.config import HoldoutConfig, load_pipeline
from fusionrec.fusion.pipeline import holdout_split
from fusionrec.models.registry import create_model

HERE = Path(__file__).parent
KS = (10, 20)
SEED = 7  # not the pipelines' seed (42), so the validation cut differs from their label windows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--models", nargs="*", default=[], help="single models scored as the bar")
    parser.add_argument("pipelines", nargs="+", type=Path, help="pipeline TOML files to compare")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--validation-fraction", type=float, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    benchmark = resolve_benchmark(args.dataset)
    split, description = load_benchmark(benchmark)
    train, validation = split.train, split.validation
    if args.validation_fraction is not None:
        holdout = HoldoutConfig(mode="random", fraction=args.validation_fraction)
        train, validation = holdout_split(split.train_full, holdout, seed=SEED)
        description["validation"] = (
            f"seeded random {args.validation_fraction:.0%} of each user's training items"
        )
    if validation is None:
        parser.error(f"{args.dataset} has no validation part: give --validation-fraction")
    truth = validation.matrix(binary=True)
    users = np.flatnonzero(np.diff(truth.indptr) > 0).astype(np.int64)
    seen = train.matrix(binary=True)[users] if benchmark.mask_seen else None
    candidates = [(name, name, {}) for name in args.models]
    for path in args.pipelines:
        pipeline = load_pipeline(path)
        candidates.append((path.name, pipeline.model, pipeline.model_params()))
    rows = []
    with threadpool_limits(args.threads):
        for label, model_name, params in candidates:
            model = create_model(model_name, **params)
            started = time.perf_counter()
            model.fit(train)
            fit_seconds = time.perf_counter() - started
            metrics = evaluate_rankings(rank(model, users, max(KS), exclude=seen), truth[users], ks=KS)
            rows.append({"candidate": label, "metrics": metrics, "fit_seconds": round(fit_seconds, 1)})
            logging.info("%s: NDCG@10 %.4f NDCG@20 %.4f", label, metrics["NDCG@10"], metrics["NDCG@20"])
    out = HERE / "results" / f"select-{args.dataset}.json"
    payload = {"dataset": args.dataset, "part": "validation", "split": description, "rows": rows}
    payload = json.loads(json.dumps(payload, default=float))
    if out.is_file():  # earlier runs on the same validation part keep their rows
        previous = json.loads(out.read_text())
        if previous.get("split") == payload["split"]:
            names = {row["candidate"] for row in rows}
            payload["rows"] = [r for r in previous["rows"] if r["candidate"] not in names] + rows
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(out)


if __name__ == "__main__":
    main()
