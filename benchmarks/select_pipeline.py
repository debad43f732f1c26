"""Compare candidate pipeline files on a benchmark's validation part, never its test part.

Each pipeline is fit on the split's training part and scored on its validation part with the
benchmark's protocol (full ranking; training items masked where the benchmark masks them).
Single models, given with ``--models``, are scored the same way as the bar to beat. A benchmark
without a validation part (Gowalla's fixed files) gets one with ``--validation-fraction``: a seeded
random share of each user's training items, cut the way the fused pipeline cuts its label window.

    .venv/bin/python benchmarks/select_pipeline.py --dataset dunnhumby \\
        a.toml b.toml --models repeat_purchase

``--params singles.toml`` gives the single models their tuned parameters (``[rp3beta] alpha = 0.75``).
``--folds N`` averages over N validation parts (temporal cross-validation on dated data: each
further fold is the window before the previous one, trained on what came before it), which tells
a real gain from one lucky window.

The variants compared for the shipped pipelines are in ``benchmarks/pipelines/selection/<dataset>/``.
Writes ``benchmarks/results/select-<dataset>.json`` (``select-<dataset>-folds<N>.json``), keeping
the rows of earlier runs on the same validation part (a candidate run again replaces its row).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import tomllib
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from fusionrec.data.dataset import Dataset
from fusionrec.evaluation.benchmarks import load_benchmark, resolve_benchmark
from fusionrec.evaluation.metrics import evaluate_rankings
from fusionrec.evaluation.protocol import rank_held_out
from fusionrec.fusion.config import HoldoutConfig, load_pipeline
from fusionrec.fusion.pipeline import label_windows
from fusionrec.models.registry import create_model

HERE = Path(__file__).parent
KS = (10, 20)
SEED = 7  # not the pipelines' seed (42), so the validation cut differs from their label windows


def _single_label(name: str, params: dict[str, object]) -> str:
    """A single model's row name: its parameters in it, so runs with other parameters keep their row."""
    return f"{name} ({', '.join(f'{k}={v}' for k, v in params.items())})" if params else name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--models", nargs="*", default=[], help="single models scored as the bar")
    parser.add_argument(
        "--params",
        type=Path,
        default=None,
        help="TOML file of the single models' parameters: [model] key = value",
    )
    parser.add_argument("pipelines", nargs="*", type=Path, help="pipeline TOML files to compare")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--validation-fraction", type=float, default=None)
    parser.add_argument(
        "--folds",
        type=int,
        default=1,
        help="validation folds, metrics averaged: temporal data steps back one validation window per "
        "fold, --validation-fraction redraws with the next seed",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    benchmark = resolve_benchmark(args.dataset)
    split, description = load_benchmark(benchmark)
    if args.validation_fraction is not None:
        holdout = HoldoutConfig(mode="random", fraction=args.validation_fraction, windows=args.folds)
        folds = label_windows(split.train_full, holdout, seed=SEED)
        description["validation"] = (
            f"seeded random {args.validation_fraction:.0%} of each user's training items"
        )
    elif split.validation is None:
        parser.error(f"{args.dataset} has no validation part: give --validation-fraction")
    else:
        folds = [(split.train, split.validation)]
        if args.folds > 1:  # earlier windows as long as the validation part, each after its training data
            earlier = HoldoutConfig(
                mode="days", days=description["split"]["valid_days"], windows=args.folds - 1
            )
            folds += label_windows(split.train, earlier, seed=SEED)
    if args.folds > 1:
        description["folds"] = len(folds)
    params = tomllib.loads(args.params.read_text()) if args.params else {}
    candidates = [
        (_single_label(name, params.get(name, {})), name, params.get(name, {})) for name in args.models
    ]
    for path in args.pipelines:
        pipeline = load_pipeline(path)
        candidates.append((path.name, pipeline.model, pipeline.model_params()))
    rows = []
    with threadpool_limits(args.threads):
        for label, model_name, params in candidates:
            row = _score(model_name, params, folds, benchmark.mask_seen)
            rows.append({"candidate": label, **row})
            logging.info(
                "%s: NDCG@10 %.4f NDCG@20 %.4f", label, row["metrics"]["NDCG@10"], row["metrics"]["NDCG@20"]
            )
    suffix = f"-folds{args.folds}" if args.folds > 1 else ""
    out = HERE / "results" / f"select-{args.dataset}{suffix}.json"
    payload = {"dataset": args.dataset, "part": "validation", "split": description, "rows": rows}
    payload = json.loads(json.dumps(payload, default=float))
    if out.is_file():  # earlier runs on the same validation part keep their rows
        previous = json.loads(out.read_text())
        if previous.get("split") == payload["split"]:
            names = {row["candidate"] for row in rows}
            payload["rows"] = [r for r in previous["rows"] if r["candidate"] not in names] + rows
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(out)


def _score(
    model_name: str, params: dict[str, object], folds: list[tuple[Dataset, Dataset]], mask_seen: bool
) -> dict[str, object]:
    """Fit on each fold's training part, rank its validation users; metrics averaged over folds."""
    per_fold, seconds = [], []
    for train, validation in folds:
        model = create_model(model_name, **params)
        started = time.perf_counter()
        model.fit(train)
        seconds.append(time.perf_counter() - started)
        _, recs, truth = rank_held_out(model, train, validation, max(KS), mask_seen=mask_seen)
        per_fold.append(evaluate_rankings(recs, truth, ks=KS))
    row: dict[str, object] = {
        "metrics": {name: float(np.mean([m[name] for m in per_fold])) for name in per_fold[0]},
        "fit_seconds": round(float(np.mean(seconds)), 1),
    }
    if len(folds) > 1:
        row["fold_ndcg"] = {k: [m[k] for m in per_fold] for k in ("NDCG@10", "NDCG@20")}
    return row


if __name__ == "__main__":
    main()
