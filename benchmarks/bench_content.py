"""Content models, co-visitation and association rules; JSON to benchmarks/results/.

Parts (``--part``):

* ``beauty``: amazon-beauty (S3-Rec files; item attributes as tags ``attr:<id>``), leave-one-out.
  *Warm*: every model tuned on validation (fit on train, HR@20 on the second-to-last items), then
  fit on train + validation and scored on the last items. *New items*: 10% of the items (seeded)
  lose every interaction from training; the models are scored only on the users whose held-out
  item is one of them (validation users for tuning, test users for the numbers). Full ranking over
  all 12,101 items with the user's training items masked. -> ``content_amazon-beauty.json``
* ``live``: the serving path's new items (`fusionrec.serving.new_items`) on the *new items*
  protocol of ``beauty`` (same split, seed and held-out items, same users). The served model
  (``--live-model``, item-kNN with its tuned parameters) is fit on train + validation without the
  held-out items' interactions, as a model trained before those items were put into the
  catalogue; those removed interactions are the items' live events since (what the service's
  counters count: each user's own and others', never a test interaction). Each user's list is
  the model's top-20 with the new items of `NewItemIndex.picks` inserted at their ranks (default
  settings, no tuning). HR/NDCG@20 on the new-item users, and on every test user (what the
  insertions cost the warm lists). -> ``content_amazon-beauty_live.json``
* ``beauty-hybrid``: the same split and the same new items for the ``hybrid`` deep model (LSTM
  over content-aware item vectors). Its epochs are a fixed budget given on the command line
  (``--hybrid-epochs``), not tuned: one fit on train + validation per part (warm, new items), no
  grid, because one epoch costs about a minute of CPU on this data. Warm users are scored both as
  known users (their training sequence and user embedding) and from their history alone (the
  unknown-user path of ``fusionrec evaluate``). -> ``hybrid_amazon-beauty.json``
* ``rules``: the synthetic shop of `fusionrec.data.synthetic`: rules mined from purchase
  baskets are compared with the complementary pairs the generator planted (``planted.json``);
  timings of mining and co-visitation. -> ``association_synthetic.json``

* ``synthetic-models``: the synthetic shop, temporal split (last 14 days): every model of this
  module and the baselines on what users use next, and on the new items among it.
  -> ``content_synthetic.json``

Usage: ``python benchmarks/bench_content.py --part beauty`` (or ``live``, ``beauty-hybrid``, ``rules``, ``synthetic-models``, ``all``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import platform
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from threadpoolctl import threadpool_limits

from fusionrec.data.dataset import Dataset
from fusionrec.data.formats import read_format
from fusionrec.data.paths import data_root
from fusionrec.data.split import leave_last_out
from fusionrec.evaluation.metrics import evaluate_rankings
from fusionrec.mining.covisitation import covisitation_matrix
from fusionrec.mining.rules import baskets_from_dataset, mine_rules
from fusionrec.models.registry import create_model

RESULTS = Path(__file__).resolve().parent / "results"
KS = (10, 20)
TUNE_KEY = "HR@20"
COLD_SHARE = 0.10
SEED = 2024
log = logging.getLogger("bench_content")

PUBLISHED = {
    "source": "S3-Rec repository full-ranking table (HR@20 / NDCG@20), warm leave-one-out",
    "PopRec": {"HR@20": 0.0217, "NDCG@20": 0.0084},
    "GRU4Rec": {"HR@20": 0.0479, "NDCG@20": 0.0187},
    "SASRec": {"HR@20": 0.0902, "NDCG@20": 0.0394},
}

# Small grids, searched on validation only; keys not listed keep the model defaults.
GRIDS: dict[str, dict[str, list[Any]]] = {
    "most_popular": {},
    "item_knn": {"neighbours": [50, 200], "shrink": [0.0, 10.0]},
    "covisitation": {
        "group": ["user"],
        "window_seconds": [1e9],  # S3-Rec data has no clock: order only (pairs bounded by span)
        "max_span_events": [3, 10],
        "normalise": ["none", "cosine"],
        "recency_half_life": [1.0, 3.0],
    },
    "content_tfidf": {
        "popularity_weight": [0.0, 0.05, 0.3],
        "recency_half_life": [None, 1.0, 3.0],
    },
}


def machine() -> dict[str, Any]:
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "threads": 2,
        "python": platform.python_version(),
        "load_average": os.getloadavg(),
        "note": "2-core VM shared with other jobs; times are wall-clock",
    }


def grid(params: dict[str, list[Any]]) -> Iterable[dict[str, Any]]:
    keys = list(params)
    for values in itertools.product(*(params[k] for k in keys)):
        yield dict(zip(keys, values, strict=True))


# --- amazon-beauty ---------------------------------------------------------------------------------


def evaluate(
    model: Any, train: Dataset, target: Dataset, users_filter: np.ndarray | None
) -> dict[str, float]:
    """HR/NDCG@10,20 over the users with a target item (optionally only those in ``users_filter``)."""
    truth_all = target.matrix(binary=True)
    users = np.flatnonzero(np.diff(truth_all.indptr) > 0)
    if users_filter is not None:
        users = users[users_filter[users]]
    seen = train.matrix(binary=True)[users]
    recs, _ = model.recommend(users.astype(np.int64), max(KS), exclude=seen)
    metrics = evaluate_rankings(recs, truth_all[users], ks=KS, metrics=["HR", "NDCG"])
    metrics["users"] = len(users)
    return {k: float(v) for k, v in metrics.items()} | {"_recs": recs}  # type: ignore[dict-item]


def run_model(name: str, tune: tuple[Dataset, Dataset], final: tuple[Dataset, Dataset], filters: Any) -> dict:
    """Grid-search ``name`` on (train, validation), refit the best on (train_full, test)."""
    trials = []
    for params in grid(GRIDS[name]):
        started = time.perf_counter()
        model = create_model(name, **params).fit(tune[0])
        fit_s = time.perf_counter() - started
        metrics = evaluate(model, tune[0], tune[1], filters[0])
        metrics.pop("_recs")
        trials.append({"params": params, "validation": metrics, "fit_seconds": round(fit_s, 2)})
        log.info("%s %s validation %s=%.4f (fit %.1fs)", name, params, TUNE_KEY, metrics[TUNE_KEY], fit_s)
    best = max(trials, key=lambda t: t["validation"][TUNE_KEY])
    started = time.perf_counter()
    model = create_model(name, **best["params"]).fit(final[0])
    fit_s = time.perf_counter() - started
    started = time.perf_counter()
    metrics = evaluate(model, final[0], final[1], filters[1])
    predict_s = time.perf_counter() - started
    recs = metrics.pop("_recs")
    log.info("%s test %s", name, {k: round(v, 4) for k, v in metrics.items()})
    return {
        "params": best["params"],
        "test": metrics,
        "fit_seconds": round(fit_s, 2),
        "predict_seconds": round(predict_s, 2),
        "trials": trials,
        "_recs": recs,
    }


def beauty_new_item_split() -> tuple[Dataset, Any, np.ndarray]:
    """amazon-beauty, its leave-one-out split, and the items that lose their interactions in the
    new-item protocol (COLD_SHARE of them, seeded)."""
    root = data_root() / "amazon-beauty"
    source = read_format("s3rec", root)
    data = Dataset.from_frame(source.events, source.items)
    split = leave_last_out(data)
    rng = np.random.default_rng(SEED)
    cold = np.zeros(data.n_items, dtype=bool)
    cold[rng.choice(data.n_items, size=round(COLD_SHARE * data.n_items), replace=False)] = True
    return data, split, cold


def bench_beauty(models: list[str]) -> dict[str, Any]:
    data, split, cold = beauty_new_item_split()

    out: dict[str, Any] = {
        "dataset": "amazon-beauty",
        "data": data.describe(),
        "features": "tags = attribute ids (category and brand ids, not told apart); no text",
        "protocol": {
            "split": "leave-one-out: last item test, second-to-last validation",
            "ranking": "full ranking over all items, the user's training items masked",
            "tuning": f"grid search on validation {TUNE_KEY}; refit on train + validation for test",
            "new_items": (
                f"{COLD_SHARE:.0%} of items (seed {SEED}) lose all their interactions from training; "
                "scored on the users whose held-out item is one of them"
            ),
            "cutoffs": list(KS),
        },
        "machine": machine(),
        "published": PUBLISHED,
        "warm": {},
        "new_items": {},
    }
    # Warm: the standard protocol.
    for name in models:
        result = run_model(
            name, (split.train, split.validation), (split.train_full, split.test), (None, None)
        )
        result.pop("_recs")
        out["warm"][name] = result
    # New items: their interactions are removed from every training part.
    cold_train = split.train.select(~cold[split.train.item_idx])
    cold_full = split.train_full.select(~cold[split.train_full.item_idx])
    valid_users = _users_with_target(split.validation, cold)
    test_users = _users_with_target(split.test, cold)
    out["new_items"]["held_out_items"] = int(cold.sum())
    for name in models:
        result = run_model(
            name, (cold_train, split.validation), (cold_full, split.test), (valid_users, test_users)
        )
        recs = result.pop("_recs")
        result["test"]["new_item_share@20"] = (
            float(cold[recs[recs >= 0]].mean()) if (recs >= 0).any() else 0.0
        )
        out["new_items"][name] = result
    return out


LIVE_PARAMS = {"item_knn": {"neighbours": 50, "shrink": 0.0}}  # tuned by the ``beauty`` part


def bench_live_new_items(model_name: str) -> dict[str, Any]:
    """The serving path's new-item insertion on the ``beauty`` new-items protocol (see the docstring)."""
    import pandas as pd

    from fusionrec.serving.new_items import Filters, NewItemIndex, Tuning, Visitor

    data, split, cold = beauty_new_item_split()
    full = split.train_full
    cold_full = full.select(~cold[full.item_idx])
    started = time.perf_counter()
    model = create_model(model_name, **LIVE_PARAMS.get(model_name, {})).fit(cold_full)
    fit_s = time.perf_counter() - started
    ids = np.asarray(data.items.ids, dtype=object).astype(str)
    catalogue = data.item_features.copy()
    catalogue.index = pd.Index(ids, name="item_id")
    known = {item: i for i, item in enumerate(ids.tolist()) if not cold[i]}
    category = (
        catalogue["category"].to_numpy(dtype=object)
        if "category" in catalogue
        else np.full(len(ids), None, dtype=object)
    )
    started = time.perf_counter()
    index = NewItemIndex.build("offline", catalogue, ids, known, category, model.popularity_, Tuning())
    build_s = time.perf_counter() - started
    at = np.array([index.position.get(item, -1) for item in ids.tolist()])
    removed = full.select(cold[full.item_idx])  # the new items' events since they were put
    evidence = np.zeros(len(index))
    np.add.at(evidence, at[removed.item_idx], np.maximum(removed.weight, 0.0))
    # Each user's history (newest last) as the model saw it, and everything they used (masked).
    order = np.lexsort((cold_full.timestamp, cold_full.user_idx))
    users_sorted, items_sorted = cold_full.user_idx[order], cold_full.item_idx[order].astype(np.int64)
    bounds = np.searchsorted(users_sorted, np.arange(data.n_users + 1))
    used = full.matrix(binary=True)
    truth = split.test.matrix(binary=True)
    test_users = np.flatnonzero(np.diff(truth.indptr) > 0)
    recs, _ = model.recommend(test_users.astype(np.int64), max(KS), exclude=used[test_users])
    live = recs.copy()
    names: list[str] = []
    position = {item: i for i, item in enumerate(ids.tolist())}
    picking = 0.0  # seconds in `picks` alone (what a request adds)
    for row, user in enumerate(test_users.tolist()):
        history = items_sorted[bounds[user] : bounds[user + 1]]
        mine = used.indices[used.indptr[user] : used.indptr[user + 1]]
        visitor = Visitor(
            f"u:{user}", history, np.full(len(history), -1), names, blocked=frozenset(ids[mine])
        )
        started = time.perf_counter()
        picks = index.picks(visitor, evidence, Filters(), max(KS))
        picking += time.perf_counter() - started
        listed = recs[row].tolist()
        for pick in sorted(picks, key=lambda p: p.position):
            listed.insert(min(pick.position, len(listed)), position[pick.item_id])
        live[row] = np.asarray(listed[: max(KS)])
    picks_ms = picking / max(len(test_users), 1) * 1000
    new_users = _users_with_target(split.test, cold)[test_users]
    out: dict[str, Any] = {
        "dataset": "amazon-beauty",
        "protocol": {
            "split": "leave-one-out, as the beauty part; the same held-out (new) items",
            "served_model": {"name": model_name, "params": LIVE_PARAMS.get(model_name, {})},
            "live_events": "the new items' interactions removed from train + validation",
            "insertion": "NewItemIndex.picks with the default serving settings (no tuning)",
            "features": "tags = attribute ids; no text, no category (affinity is content cosine)",
        },
        "machine": machine(),
        "new_items": int(cold.sum()),
        "new_item_events": len(removed),
        "fit_seconds": round(fit_s, 2),
        "index_build_seconds": round(build_s, 2),
        "picks_ms_per_user": round(picks_ms, 3),
    }
    for label, lists in ((model_name, recs), (f"{model_name}+new_items", live)):
        on_new = evaluate_rankings(
            lists[new_users], truth[test_users[new_users]], ks=KS, metrics=["HR", "NDCG"]
        )
        on_all = evaluate_rankings(lists, truth[test_users], ks=KS, metrics=["HR", "NDCG"])
        out[label] = {
            "new_item_users": {k: float(v) for k, v in on_new.items()} | {"users": int(new_users.sum())},
            "all_test_users": {k: float(v) for k, v in on_all.items()} | {"users": len(test_users)},
            "new_item_share@20": float(cold[lists[lists >= 0]].mean()),
        }
        log.info("live %s: %s", label, out[label])
    return out


def bench_beauty_hybrid(epochs: int, params: dict[str, Any], parts: list[str]) -> dict[str, Any]:
    """The ``hybrid`` model on the warm and new-item protocols of `bench_beauty`, fixed epochs.

    Each fitted model is scored with its ``new_item_scoring`` (default "rank", ``test_*``), with
    the other rule for ties (``with_ties_low`` / ``with_ties_mid``, see ``new_item_ties``) and with
    "content" (``with_content_logits``: new items keep their raw content-only logits); these are
    scoring-time options. On the new-item part ``test_history_only_all_users`` scores every test
    user (what placing new items costs the lists of users whose test item is warm). Parts not run
    keep their earlier results in the JSON."""
    _, split, cold = beauty_new_item_split()
    params = {"epochs": epochs, **params}
    path = RESULTS / "hybrid_amazon-beauty.json"
    out: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    out |= {
        "dataset": "amazon-beauty",
        "model": "hybrid",
        "params": params,
        "protocol": "as content_amazon-beauty.json (same split, same new items, seed 2024); "
        f"hybrid fit once on train + validation for a fixed {epochs} epochs (not tuned)",
        "machine": machine()
        | {"threads": 1, "load_average_at_start": [round(x, 2) for x in os.getloadavg()]},
    }
    runs = {
        "warm": (split.train_full, None),
        "new_items": (
            split.train_full.select(~cold[split.train_full.item_idx]),
            _users_with_target(split.test, cold),
        ),
    }
    for part, (train, users_filter) in runs.items():
        if part not in parts:
            continue
        started, cpu = time.perf_counter(), time.process_time()
        model = create_model("hybrid", **params).fit(train)
        fit_s, fit_cpu = time.perf_counter() - started, time.process_time() - cpu
        result = _score_hybrid(model, train, split, users_filter, cold)
        if model.config.new_item_scoring == "rank":
            ties = "low" if model.config.new_item_ties == "mid" else "mid"
            model.config = model.config.model_copy(update={"new_item_ties": ties})
            result[f"with_ties_{ties}"] = _score_hybrid(model, train, split, users_filter, cold)
        model.config = model.config.model_copy(update={"new_item_scoring": "content"})
        result["with_content_logits"] = _score_hybrid(model, train, split, users_filter, cold)
        result |= {
            "fit_seconds": round(fit_s, 1),
            "fit_cpu_seconds": round(fit_cpu, 1),
            "fit_report": model.fit_report(),
        }
        out[part] = result
        log.info("hybrid %s: %s", part, result)
        write("hybrid_amazon-beauty.json", out)  # after each part, so a long run leaves results
    return out


def _score_hybrid(
    model: Any, train: Dataset, split: Any, users_filter: np.ndarray | None, cold: np.ndarray
) -> dict[str, Any]:
    """Test metrics of a fitted hybrid: as known users, and from each user's history alone."""
    from fusionrec.evaluation.protocol import rank

    metrics = evaluate(model, train, split.test, users_filter)
    recs = metrics.pop("_recs")
    result: dict[str, Any] = {"test_known_user": metrics}
    if users_filter is not None:
        result["test_known_user"]["new_item_share@20"] = float(cold[recs[recs >= 0]].mean())
    # The unknown-user path: each user's whole history given at request time.
    truth_all = split.test.matrix(binary=True)
    every = np.flatnonzero(np.diff(truth_all.indptr) > 0)
    users = every[users_filter[every]] if users_filter is not None else every
    indptr, items = train.sequences()
    seen = train.matrix(binary=True)
    groups = [("test_history_only", users)]
    if users_filter is not None:  # the warm part's users are every test user already
        groups.append(("test_history_only_all_users", every))
    for key, chosen in groups:
        histories = [items[indptr[u] : indptr[u + 1]] for u in chosen]
        recs = rank(model, chosen, max(KS), exclude=seen[chosen], histories=histories)
        history_metrics = evaluate_rankings(recs, truth_all[chosen], ks=KS, metrics=["HR", "NDCG"])
        result[key] = {k: float(v) for k, v in history_metrics.items()}
        if users_filter is not None:
            result[key]["new_item_share@20"] = float(cold[recs[recs >= 0]].mean())
            result[key]["users"] = len(chosen)
    return result


def _users_with_target(part: Dataset, cold: np.ndarray) -> np.ndarray:
    """Boolean per user: their held-out item in ``part`` is a new (cold) item."""
    mask = np.zeros(part.n_users, dtype=bool)
    mask[part.user_idx[cold[part.item_idx]]] = True
    return mask


# --- synthetic shop --------------------------------------------------------------------------------


def bench_synthetic(n_events: int) -> dict[str, Any]:
    from fusionrec.data.synthetic import generate_frames

    started = time.perf_counter()
    shop = generate_frames(n_events=n_events, seed=0)
    summary = shop.summary
    data = Dataset.from_frame(shop.events, shop.items, shop.users)
    log.info("synthetic shop: %d events in %.1fs", n_events, time.perf_counter() - started)
    partners: dict[str, set[str]] = {}
    for anchor, complement, _ in summary.complements:
        partners.setdefault(anchor, set()).add(complement)
    planted = {(a, c) for a, c, _ in summary.complements} | {(c, a) for a, c, _ in summary.complements}
    siblings = {(x, y) for cs in partners.values() for x in cs for y in cs if x != y}

    out: dict[str, Any] = {
        "dataset": "synthetic",
        "generator": {"n_events": n_events, "seed": 0, "config": "ShopConfig defaults"},
        "data": data.describe() | {"planted_pairs": len(summary.complements)},
        "machine": machine(),
        "rules": {},
    }
    for label, types in (("purchase", ["purchase"]), ("add_to_cart+purchase", ["add_to_cart", "purchase"])):
        baskets = baskets_from_dataset(data, types)
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            rules = mine_rules(baskets, min_support=0.0, min_count=2, item_ids=data.items.ids)
            timings.append(time.perf_counter() - started)
        pairs = list(zip(rules.antecedent, rules.consequent, strict=True))
        is_planted = np.array([p in planted for p in pairs], dtype=bool)
        is_sibling = np.array([p in siblings for p in pairs], dtype=bool)
        model = create_model("association_rules", event_types=types).fit(data)
        bought = np.bincount(data.item_idx[data.event_mask(*types)], minlength=data.n_items)
        anchors = [a for a in partners if bought[data.items.index([a])[0]] >= 3]
        recs, _ = model.bought_together(data.items.index(anchors), k=3)  # type: ignore[attr-defined]
        found = [
            bool(set(data.items.id(r[r >= 0])) & partners[a]) for a, r in zip(anchors, recs, strict=True)
        ]
        out["rules"][label] = {
            "baskets": int(baskets[0].max() + 1) if len(baskets[0]) else 0,
            "rules_min_count_2": len(rules),
            "planted_share": float(is_planted.mean()) if len(pairs) else 0.0,
            "planted_share_top20_by_lift": float(is_planted[:20].mean()) if len(pairs) else 0.0,
            "planted_or_co_complement_share": float((is_planted | is_sibling).mean()) if len(pairs) else 0.0,
            "anchors_bought_3_times": len(anchors),
            "anchor_recall@3": float(np.mean(found)) if found else 0.0,
            "mine_seconds_median": round(float(np.median(timings)), 4),
        }
        log.info("rules from %s: %s", label, out["rules"][label])
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        covis = covisitation_matrix(data, 3600.0)
        timings.append(time.perf_counter() - started)
    out["covisitation"] = {
        "window_seconds": 3600,
        "events": data.n_events,
        "pairs_nnz": int(covis.nnz),
        "seconds_median": round(float(np.median(timings)), 3),
    }
    return out


SYNTHETIC_MODELS: dict[str, dict[str, Any]] = {
    "most_popular": {},
    "item_knn": {},
    "covisitation": {"window_seconds": 3600.0},
    "association_rules": {"event_types": ["add_to_cart", "purchase"]},
    "content_tfidf": {"recency_half_life": 3.0},
    "content_embedding": {"recency_half_life": 3.0, "max_seq_length": 64},
}


def bench_synthetic_models(n_events: int, test_days: float = 14.0) -> dict[str, Any]:
    """Temporal split of the synthetic shop: what each user uses next, and what they use of new items.

    Defaults (not tuned). Truth = items a known user interacts with (any positive event) in the last
    ``test_days`` that they had not used in training; *new items* = the part of that truth on items
    without a single training interaction. Full ranking, training items masked.
    """
    from fusionrec.data.split import temporal_split
    from fusionrec.data.synthetic import generate_frames

    shop = generate_frames(n_events=n_events, seed=1)
    data = Dataset.from_frame(shop.events, shop.items, shop.users)
    split = temporal_split(data, test_days=test_days)
    train, test = split.train, split.test
    seen_all = train.matrix(binary=True)
    truth_all = test.matrix(binary=True)
    truth_all = truth_all - truth_all.multiply(seen_all)
    truth_all.eliminate_zeros()
    known = np.diff(seen_all.indptr) > 0
    users_idx = np.flatnonzero((np.diff(truth_all.indptr) > 0) & known)
    new_item = np.asarray(seen_all.sum(axis=0)).ravel() == 0
    # Same width as the catalogue, only new items relevant: hits are counted in the full ranking.
    truth_new = (truth_all[users_idx] @ sp.diags(new_item.astype(np.float32))).tocsr()
    truth_new.eliminate_zeros()
    new_users = np.diff(truth_new.indptr) > 0
    out: dict[str, Any] = {
        "dataset": "synthetic",
        "generator": {"n_events": n_events, "seed": 1, "config": "ShopConfig defaults"},
        "protocol": {
            "split": f"temporal: last {test_days:g} days test",
            "truth": "items a user with training history uses (any positive event) in the test days, "
            "not used in training",
            "new_items": "the same users, truth restricted to items with no training interaction",
            "ranking": "full ranking over all items, training items masked",
            "tuning": "none: model defaults (plus the params listed)",
        },
        "data": data.describe() | {"test_users": len(users_idx), "new_item_test_users": int(new_users.sum())},
        "machine": machine(),
        "models": {},
    }
    for name, params in SYNTHETIC_MODELS.items():
        started = time.perf_counter()
        model = create_model(name, **params).fit(train)
        fit_s = time.perf_counter() - started
        started = time.perf_counter()
        recs, _ = model.recommend(users_idx.astype(np.int64), max(KS), exclude=seen_all[users_idx])
        predict_s = time.perf_counter() - started
        metrics = evaluate_rankings(recs, truth_all[users_idx], ks=KS, metrics=["Recall", "HR", "NDCG"])
        new_metrics = evaluate_rankings(
            recs[new_users], truth_new[new_users], ks=KS, metrics=["Recall", "HR"]
        )
        out["models"][name] = {
            "params": params,
            "all": {k: float(v) for k, v in metrics.items()},
            "new_items": {k: float(v) for k, v in new_metrics.items()},
            "fit_seconds": round(fit_s, 2),
            "predict_seconds": round(predict_s, 2),
        }
        log.info("synthetic %s: %s", name, out["models"][name])
    return out


def write(name: str, payload: dict[str, Any]) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    log.info("wrote %s", path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--part",
        choices=["beauty", "live", "beauty-hybrid", "rules", "synthetic-models", "all"],
        default="all",
    )
    parser.add_argument("--live-model", default="item_knn")
    parser.add_argument("--models", nargs="+", default=list(GRIDS))
    parser.add_argument("--synthetic-events", type=int, default=2_000_000)
    parser.add_argument("--hybrid-epochs", type=int, default=12)
    parser.add_argument("--hybrid-parts", nargs="+", default=["warm", "new_items"])
    parser.add_argument(
        "--hybrid-set", default="{}", help='JSON of hybrid hyperparameters, e.g. {"learning_rate": 3e-3}'
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with threadpool_limits(2):
        if args.part in ("beauty", "all"):
            write("content_amazon-beauty.json", bench_beauty(args.models))
        if args.part in ("live", "all"):
            write("content_amazon-beauty_live.json", bench_live_new_items(args.live_model))
        if args.part == "beauty-hybrid":
            bench_beauty_hybrid(args.hybrid_epochs, json.loads(args.hybrid_set), args.hybrid_parts)
        if args.part in ("rules", "all"):
            write("association_synthetic.json", bench_synthetic(args.synthetic_events))
        if args.part in ("synthetic-models", "all"):
            write("content_synthetic.json", bench_synthetic_models(args.synthetic_events // 4))


if __name__ == "__main__":
    main()
