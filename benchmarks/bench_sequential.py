"""Sequential and session models on real and synthetic data; JSON to benchmarks/results/.

Datasets and protocols:

* ``amazon-beauty``: leave-one-out (last item = test, second-to-last = validation). Models fit on
  the training part with early stopping on validation NDCG@10; at test time the input is the
  whole sequence before the test item (training + validation items) and every item is ranked,
  the user's earlier items masked (full ranking). HR/NDCG at 10 and 20.
* ``diginetica``: SR-GNN's DIGINETICA sample; sessions of the last ``--test-days`` days are the
  test (the ``--valid-days`` before them validation); each test session's last item is predicted
  from the items before it, nothing masked; items unseen in training cannot be hit.
* ``synthetic``: the synthetic shop of `fusionrec.data.synthetic` (when present), same protocol.

Usage: ``python benchmarks/bench_sequential.py --dataset amazon-beauty --models sasrec gru4rec``.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from fusionrec.data.dataset import Dataset
from fusionrec.data.paths import data_root
from fusionrec.data.split import Split, leave_last_out, temporal_split
from fusionrec.evaluation.metrics import evaluate_rankings
from fusionrec.evaluation.protocol import fit_model, rank, refit_on_full
from fusionrec.models.registry import create_model

RESULTS = Path(__file__).resolve().parent / "results"
IMAGES = Path(__file__).resolve().parents[1] / "docs" / "img"
KS = (10, 20)
SYNTHETIC_EVENTS = 300_000

# Hyperparameters per dataset, chosen on the validation part (see docs/benchmarks.md).
PARAMS: dict[str, dict[str, dict[str, Any]]] = {
    "amazon-beauty": {
        "most_popular": {},
        "sasrec": {
            "dropout": 0.5,
            "attention_dropout": 0.5,
            "n_blocks": 2,
            "n_heads": 1,
            "batch_size": 128,
            "learning_rate": 2e-3,
            "epochs": 80,
            "eval_every": 2,
            "patience": 4,
        },
        "gru4rec": {
            "dropout": 0.3,
            "hidden_dim": 128,
            "batch_size": 128,
            "learning_rate": 1e-3,
            "epochs": 200,
            "eval_every": 2,
            "patience": 5,
        },
        "session_knn": {},
        # The hybrid reads the item attributes of Beauty_item2attributes.json (as tags).
        "hybrid": {"learning_rate": 3e-3, "epochs": 40, "eval_every": 2, "patience": 3},
    },
    "diginetica": {
        "most_popular": {},
        "session_knn": {},
        # 87 validation sessions make the validation curve noisy: a long patience, then the refit.
        "sasrec": {"dropout": 0.5, "attention_dropout": 0.5, "epochs": 200, "eval_every": 2, "patience": 15},
        "gru4rec": {"dropout": 0.3, "epochs": 200, "eval_every": 2, "patience": 15},
    },
    "synthetic": {
        "most_popular": {},
        "session_knn": {},
        "sasrec": {"dropout": 0.3, "attention_dropout": 0.3, "epochs": 60, "eval_every": 2, "patience": 5},
        "gru4rec": {"dropout": 0.3, "epochs": 60, "eval_every": 2, "patience": 5},
        "hybrid": {"epochs": 60, "eval_every": 2, "patience": 3},
    },
}


def load_beauty(root: Path) -> Dataset:
    """Beauty.txt: one user a line, ``user item item ...`` in time order (positions as seconds);
    the items' attribute ids (Beauty_item2attributes.json) as tags, which only the hybrid reads."""
    from fusionrec.data.formats import read_format

    users, items, positions = [], [], []
    for line in (root / "amazon-beauty" / "Beauty.txt").read_text().split("\n"):
        parts = line.split()
        if len(parts) < 2:
            continue
        users.extend([parts[0]] * (len(parts) - 1))
        items.extend(parts[1:])
        positions.extend(range(len(parts) - 1))
    frame = pd.DataFrame({"user_id": users, "item_id": items, "event_type": "purchase"})
    frame["timestamp"] = pd.to_datetime(1_400_000_000 + np.asarray(positions), unit="s", utc=True)
    return Dataset.from_frame(frame, read_format("s3rec", root / "amazon-beauty").items)


def load_sessions(name: str, root: Path) -> Dataset:
    if name == "diginetica":
        from fusionrec.data.formats.diginetica import read_diginetica

        source = read_diginetica(root / "sessions" / "diginetica-sample")
        return Dataset.from_frame(source.events)
    from fusionrec.data.synthetic import generate_frames

    events, items, users = generate_frames(n_events=SYNTHETIC_EVENTS, seed=0)
    return Dataset.from_frame(events, items, users)


def session_sequences(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Per session (per user where an event has no session): positive items in time order,
    consecutive repeats collapsed, as ``(indptr, items)``."""
    keep = dataset.weight > 0
    session = dataset.session_idx[keep] if len(dataset.session_idx) else np.full(keep.sum(), -1)
    key = np.where(session >= 0, session, -1 - dataset.user_idx[keep].astype(np.int64))
    items = dataset.item_idx[keep]
    order = np.argsort(key, kind="stable")  # the log is time-ordered
    key, items = key[order], items[order]
    repeat = np.zeros(len(items), dtype=bool)
    repeat[1:] = (key[1:] == key[:-1]) & (items[1:] == items[:-1])
    key, items = key[~repeat], items[~repeat]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]]) if len(key) else np.zeros(0, dtype=np.int64)
    return np.r_[starts, len(key)].astype(np.int64), items


def evaluate_leave_one_out(model: Any, split: Split) -> dict[str, float]:
    """Full ranking of the test item from the sequence before it, earlier items masked."""
    history = split.train_full
    truth_all = split.test.matrix(binary=True)
    users = np.flatnonzero(np.diff(truth_all.indptr) > 0)
    seen = history.matrix(binary=True)[users]
    histories = None
    if model.supports_history:
        indptr, items = history.sequences()
        histories = [items[indptr[u] : indptr[u + 1]] for u in users]
    recs = rank(model, users, max(KS), exclude=seen, histories=histories)
    return evaluate_rankings(recs, truth_all[users], ks=KS, metrics=["HR", "NDCG"])


def evaluate_next_item(model: Any, split: Split, trained_on: Dataset) -> dict[str, float]:
    """Each test session's last item from the session's items before it (nothing masked).

    ``trained_on`` is the data the model saw, for the share of targets it never saw."""
    indptr, items = session_sequences(split.test)
    sessions = np.flatnonzero(np.diff(indptr) >= 2)
    histories = [items[indptr[s] : indptr[s + 1] - 1] for s in sessions]
    targets = items[indptr[sessions + 1] - 1]
    truth = sp.csr_matrix(
        (np.ones(len(sessions), dtype=np.float32), (np.arange(len(sessions)), targets)),
        shape=(len(sessions), split.test.n_items),
    )
    recs = rank(model, np.full(len(sessions), -1), max(KS), exclude=None, histories=histories)
    result = evaluate_rankings(recs, truth, ks=KS, metrics=["HR", "NDCG"])
    result["test_sessions"] = len(sessions)
    result["targets_unseen_in_training"] = float(np.mean(trained_on.item_popularity()[targets] == 0))
    return result


def run(
    dataset: str, models: list[str], threads: int, overrides: dict[str, Any], refit: bool = False
) -> dict[str, Any]:
    root = data_root()
    if dataset == "amazon-beauty":
        data = load_beauty(root)
        split = leave_last_out(data)
        protocol = "leave-one-out, full ranking over all items, the user's earlier items masked"
    else:
        data = load_sessions(dataset, root)
        days = 7 if dataset == "diginetica" else 5
        split = temporal_split(data, test_days=days, valid_days=days)
        protocol = "temporal split; last item of each test session from the items before it; nothing masked"
    out: dict[str, Any] = {
        "dataset": dataset,
        "protocol": protocol,
        "split": split.protocol,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch threads={threads}",
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "describe": data.describe(),
        "models": {},
    }
    for name in models:
        params = {**PARAMS[dataset].get(name, {}), **overrides.get(name, {})}
        if name in ("sasrec", "gru4rec", "hybrid"):
            params["threads"] = threads
        model = create_model(name, **params)
        started = time.perf_counter()
        if refit and not model.stops_early:
            # With --refit every model sees train + validation before the test: those without
            # early stopping fit on it directly, the others are refit on it below.
            model.fit(split.train_full)
        else:
            fit_model(model, split.train, split.validation)
        fit_seconds = time.perf_counter() - started
        if dataset == "amazon-beauty":
            evaluate = evaluate_leave_one_out
        else:
            trained_on = split.train_full if refit else split.train
            evaluate = functools.partial(evaluate_next_item, trained_on=trained_on)
        entry: dict[str, Any] = {"params": params, "fit_seconds": round(fit_seconds, 1)}
        for attribute in ("best_epoch_", "epochs_trained_", "training_cpu_seconds_", "training_curve_"):
            if hasattr(model, attribute):
                entry[attribute.rstrip("_")] = getattr(model, attribute)
        if refit and getattr(model, "best_epoch_", None) is not None:
            # Leave-one-out: refit on train + validation for the chosen epochs (no test data used).
            entry["metrics_without_refit"] = evaluate(model, split)
            started = time.perf_counter()
            model = refit_on_full(model, split)
            entry["refit_seconds"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        metrics = evaluate(model, split)
        entry["evaluate_seconds"] = round(time.perf_counter() - started, 1)
        entry["metrics"] = metrics
        out["models"][name] = entry
        logging.info(
            "%s %s: %s (fit %.0fs)", dataset, name, {k: round(v, 4) for k, v in metrics.items()}, fit_seconds
        )
        save(dataset, out)  # after every model, so a long run leaves partial results
    return out


def save(dataset: str, out: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"sequential_{dataset}.json"
    previous = json.loads(path.read_text()) if path.is_file() else {}
    merged = {**previous, **out, "models": {**previous.get("models", {}), **out["models"]}}
    path.write_text(json.dumps(merged, indent=2))
    return path


def plot(dataset: str) -> Path:
    """Validation HR@20 against training time (and epoch) for every model with a curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = json.loads((RESULTS / f"sequential_{dataset}.json").read_text())
    figure, (by_time, by_epoch) = plt.subplots(1, 2, figsize=(10, 4))
    for name, entry in results["models"].items():
        curve = entry.get("training_curve")
        if not curve or not curve["epoch"]:
            continue
        by_time.plot(np.asarray(curve["seconds"]) / 60, curve["hr@20"], marker=".", label=name)
        by_epoch.plot(curve["epoch"], curve["hr@20"], marker=".", label=name)
    by_time.set(xlabel="training time (minutes, 2-core CPU)", ylabel="validation HR@20", title=dataset)
    by_epoch.set(xlabel="epoch", ylabel="validation HR@20", title=dataset)
    for axis in (by_time, by_epoch):
        axis.grid(alpha=0.3)
        axis.legend()
    IMAGES.mkdir(parents=True, exist_ok=True)
    path = IMAGES / f"sequential_{dataset}_curve.png"
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=sorted(PARAMS), required=True)
    parser.add_argument("--models", nargs="+", default=["most_popular", "session_knn", "gru4rec", "sasrec"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="MODEL.KEY=JSON",
        help="override a hyperparameter, e.g. sasrec.epochs=2",
    )
    parser.add_argument("--plot-only", action="store_true")
    parser.add_argument(
        "--refit",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="fit every model on train+validation before testing (early-stopped ones refit for "
        "their best epoch count; default: on for amazon-beauty and diginetica)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if not args.plot_only:
        overrides: dict[str, dict[str, Any]] = {}
        for item in args.set:
            key, value = item.split("=", 1)
            model, param = key.split(".", 1)
            overrides.setdefault(model, {})[param] = json.loads(value)
        refit = args.refit if args.refit is not None else args.dataset in ("amazon-beauty", "diginetica")
        run(args.dataset, args.models, args.threads, overrides, refit)
    print(plot(args.dataset))


if __name__ == "__main__":
    main()
