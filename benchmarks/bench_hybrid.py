"""The hybrid model on the synthetic shop with planted image vectors, beside its peers; JSON to results/.

The shop and the protocol of `bench_item_vectors` (``image_vectors=32``, noise 1.0, seed 1;
temporal split, the last 14 days are the test; truth = items a known user uses in the test days
that they had not used in training; *new items* = the part of it on items without a training
interaction; full ranking, training items masked). In one run: most popular, ``content_tfidf``,
``content_vectors`` (with TF-IDF), GRU4Rec, SASRec, and ``hybrid`` without and with the image
vectors. The deep models train for a fixed number of epochs (``--epochs``) on the training part,
no early stopping and no tuning (machine time), with their default hyperparameters.

Usage: ``python benchmarks/bench_hybrid.py --events 100000 --epochs 8`` -> ``hybrid_synthetic.json``.
The amazon-beauty numbers come from ``bench_content.py --part beauty-hybrid``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

from bench_item_vectors import Split, machine, shop
from fusionrec.models.registry import create_model

RESULTS = Path(__file__).resolve().parent / "results"
log = logging.getLogger("bench_hybrid")


def models(epochs: int) -> dict[str, tuple[str, dict[str, Any]]]:
    deep = {"epochs": epochs, "threads": 1}
    return {
        "most_popular": ("most_popular", {}),
        "content_tfidf": ("content_tfidf", {}),
        "content_vectors+tfidf": ("content_vectors", {"tfidf_weight": 1.0}),
        "gru4rec": ("gru4rec", {**deep, "dropout": 0.3}),
        "sasrec": ("sasrec", {**deep, "dropout": 0.3, "attention_dropout": 0.3}),
        "hybrid (no vectors)": ("hybrid", {**deep, "item_vectors": []}),
        "hybrid": ("hybrid", deep),
    }


def run(n_events: int, epochs: int, only: list[str] | None) -> dict[str, Any]:
    """Fit and score the models (``only``: these labels; the others keep their earlier results in
    the JSON when it was written for the same shop and epochs)."""
    data = shop(n_events, 1.0)
    split = Split(data)
    path = RESULTS / "hybrid_synthetic.json"
    earlier = json.loads(path.read_text()) if only and path.is_file() else {}
    out: dict[str, Any] = {
        "dataset": "synthetic",
        "generator": {"n_events": n_events, "seed": 1, "image_vectors": 32, "image_noise": 1.0},
        "protocol": "bench_item_vectors: temporal split, last 14 days test, full ranking, training "
        f"items masked; deep models {epochs} epochs on the training part, no early stopping, not tuned",
        "data": data.describe() | split.describe(),
        "machine": machine() | {"threads": 1},
        "models": {},
    }
    if earlier.get("generator") == out["generator"] and earlier.get("protocol") == out["protocol"]:
        out["models"] = earlier.get("models", {})
    for label, (name, params) in models(epochs).items():
        if only and label not in only:
            continue
        started, cpu = time.perf_counter(), time.process_time()
        model = create_model(name, **params).fit(split.train)
        fit_s, fit_cpu = time.perf_counter() - started, time.process_time() - cpu
        out["models"][label] = {
            "model": name,
            "params": params,
            **split.score(model),
            "fit_seconds": round(fit_s, 1),
            "fit_cpu_seconds": round(fit_cpu, 1),
        }
        log.info("%s: %s", label, out["models"][label])
        write(out)  # after every model, so a long run leaves results
    return out


def write(out: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "hybrid_synthetic.json").write_text(json.dumps(out, indent=2, default=str) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--models", nargs="*", help="labels to run (default: all)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    run(args.events, args.epochs, args.models)


if __name__ == "__main__":
    main()
