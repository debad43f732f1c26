"""How a model is scored: fit, rank over the full catalogue with masking, compute metrics.

Every result carries its protocol (dataset, split, masking, cut-offs, seed, package versions), so a
number is never separated from how it was obtained. Full ranking over all items is the default;
sampled-negative evaluation runs only when asked for and is labelled in the protocol and in each
metric's name (``"HR@10 (sampled-100)"``).
"""

from __future__ import annotations

import importlib.metadata
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from fusionrec.data.dataset import Dataset
from fusionrec.data.split import Split
from fusionrec.evaluation.metrics import evaluate_rankings, rating_errors
from fusionrec.models.base import Recommender, top_k
from fusionrec.models.registry import create_model

DEFAULT_KS = (10, 20)
_VERSIONED_PACKAGES = ("fusionrec", "numpy", "scipy", "implicit", "lightgbm", "torch", "scikit-learn")


@dataclass
class EvaluationResult:
    """One model's numbers under one protocol."""

    model: str
    metrics: dict[str, float]
    fit_seconds: float
    predict_seconds: float
    params: dict[str, Any] = field(default_factory=dict)
    fitted: dict[str, Any] = field(default_factory=dict)  # the model's `fit_report`

    def to_dict(self) -> dict[str, Any]:
        out = {
            "model": self.model,
            "metrics": {k: float(v) for k, v in self.metrics.items()},
            "fit_seconds": round(self.fit_seconds, 3),
            "predict_seconds": round(self.predict_seconds, 3),
            "params": self.params,
        }
        if self.fitted:
            out["fitted"] = self.fitted
        return out


def package_versions() -> dict[str, str]:
    versions = {}
    for name in _VERSIONED_PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def full_protocol(
    description: dict[str, Any], ks: Sequence[int], seed: int, sampled: int | None
) -> dict[str, Any]:
    return {
        **description,
        "ranking": f"sampled-{sampled} negatives" if sampled else "full ranking over all items",
        "cutoffs": list(ks),
        "seed": seed,
        "tie_rule": "higher score first, then lower item id",
        "users_scored": "users with at least one test item",
        "packages": package_versions(),
    }


def fit_model(model: Recommender, train: Dataset, validation: Dataset | None) -> Recommender:
    """Fit, passing the validation part to the models that stop early on it (``stops_early``)."""
    if validation is not None and model.stops_early:
        return model.fit(train, validation=validation)  # type: ignore[call-arg]
    return model.fit(train)


def refit_on_full(model: Recommender, split: Split) -> Recommender:
    """A fresh model like ``model``, fit on training + validation for the epochs early stopping chose.

    Leave-one-out test items come right after each user's validation item; a model that never
    trained on the validation items has to predict two steps ahead. Refitting for the best epoch
    count on ``split.train_full`` uses no test data: the count was chosen on validation.
    """
    best_epoch = getattr(model, "best_epoch_", None)
    if best_epoch is None or "epochs" not in type(model.config).model_fields:
        raise ValueError(f"{model.name} has no early-stopped epoch count to refit with")
    params = {**model.config.model_dump(), "epochs": int(best_epoch)}
    return create_model(model.name, **params).fit(split.train_full)


def _histories(dataset: Dataset, users: np.ndarray) -> list[np.ndarray]:
    indptr, items = dataset.sequences()
    return [items[indptr[u] : indptr[u + 1]] for u in users]


def rank(
    model: Recommender,
    users: np.ndarray,
    k: int,
    *,
    exclude: sp.csr_matrix | None,
    histories: list[np.ndarray] | None = None,
    batch_size: int = 1024,
) -> np.ndarray:
    """Top-``k`` item indices per user; from ``histories`` when given and the model supports them."""
    if histories is None or not model.supports_history:
        items, _ = model.recommend(users, k, exclude=exclude, batch_size=batch_size)
        return items
    out = np.empty((len(users), min(k, model.n_items_)), dtype=np.int32)
    for start in range(0, len(users), batch_size):
        chunk = histories[start : start + batch_size]
        scores = model.fallback_scores(len(chunk))
        filled = np.array([len(h) > 0 for h in chunk], dtype=bool)
        if filled.any():
            scores[filled] = model.score_histories([h for h in chunk if len(h)])
        if exclude is not None:
            mask = exclude[start : start + len(chunk)]
            scores[mask.nonzero()] = -np.inf
        out[start : start + len(chunk)], _ = top_k(scores, k)
    return out


def held_out_users(
    history: Dataset, held_out: Dataset, *, mask_seen: bool = True
) -> tuple[np.ndarray, sp.csr_matrix, sp.csr_matrix | None]:
    """Every user who has a held-out item: ``(users, their held-out rows, their history rows)``;
    the history rows (what ranking masks) are None without ``mask_seen``."""
    truth = held_out.matrix(binary=True)
    users = np.flatnonzero(np.diff(truth.indptr) > 0).astype(np.int64)
    seen = history.matrix(binary=True)[users] if mask_seen else None
    return users, truth[users], seen


def rank_held_out(
    model: Recommender, history: Dataset, held_out: Dataset, k: int, *, mask_seen: bool = True
) -> tuple[np.ndarray, np.ndarray, sp.csr_matrix]:
    """Rank every user who has a held-out item: ``(users, their top-k items, their held-out rows)``.

    ``mask_seen``: the user's ``history`` items are never recommended (the benchmark's rule).
    """
    users, truth, seen = held_out_users(history, held_out, mask_seen=mask_seen)
    return users, rank(model, users, k, exclude=seen), truth


def evaluate_model(
    name: str,
    split: Split,
    *,
    params: dict[str, Any] | None = None,
    ks: Sequence[int] = DEFAULT_KS,
    mask_seen: bool = True,
    sampled: int | None = None,
    seed: int = 0,
    session_mode: bool = False,
    fit_data: Dataset | None = None,
    refit: bool = False,
) -> EvaluationResult:
    """Fit model ``name`` on the split's training part and score it on its test part.

    ``fit_data`` replaces ``split.train_full`` as what a model without early stopping learns
    from: the same events' matrix built elsewhere (a batch engine's ``interactions`` job, with the
    split's vocabularies). Scoring and masking still use the split. ``refit``: a model that stopped
    early is refit on train + validation for its best epoch count before scoring (`refit_on_full`).
    """
    params = dict(params or {})
    model = create_model(name, **params)
    session_mode = session_mode or split.protocol.get("split") == "session_next_item"
    if session_mode:
        return _evaluate_sessions(name, model, split, params, ks)

    # Models that stop early on validation data learn from `train` and are scored with the
    # full history (train + validation) as their input; every other model learns from both.
    early_stopping = split.validation is not None and model.stops_early
    started = time.perf_counter()
    if early_stopping:
        fit_model(model, split.train, split.validation)
        if refit and getattr(model, "best_epoch_", None) is not None:
            model = refit_on_full(model, split)
    else:
        fit_model(model, split.train_full if fit_data is None else fit_data, None)
    fit_seconds = time.perf_counter() - started

    history_data = split.train_full
    users, truth, seen = held_out_users(history_data, split.test, mask_seen=mask_seen)
    started = time.perf_counter()
    if sampled:
        metrics = _sampled_metrics(model, users, truth, seen, ks, sampled, seed)
    else:
        histories = _histories(history_data, users) if early_stopping and model.supports_history else None
        recs = rank(model, users, max(ks), exclude=seen, histories=histories)
        metrics = evaluate_rankings(
            recs,
            truth,
            ks=ks,
            train_popularity=history_data.item_popularity(),
            item_categories=_categories(history_data),
        )
    if model.predicts_ratings:
        metrics.update(_rating_metrics(model, split.test))
    predict_seconds = time.perf_counter() - started
    return EvaluationResult(name, metrics, fit_seconds, predict_seconds, params, model.fit_report())


def _evaluate_sessions(
    name: str, model: Recommender, split: Split, params: dict[str, Any], ks: Sequence[int]
) -> EvaluationResult:
    """Next-item protocol: each test session's last item, predicted from the items before it."""
    started = time.perf_counter()
    fit_model(model, split.train, split.validation)
    fit_seconds = time.perf_counter() - started
    started = time.perf_counter()
    metrics = score_next_items(model, split.test, ks, train_popularity=split.train.item_popularity())
    seconds = time.perf_counter() - started
    return EvaluationResult(name, metrics, fit_seconds, seconds, params, model.fit_report())


def score_next_items(
    model: Recommender, sessions: Dataset, ks: Sequence[int], *, train_popularity: np.ndarray | None = None
) -> dict[str, float]:
    """Each session's (user's) last item in ``sessions``, ranked from the items before it."""
    indptr, items = sessions.sequences()
    lengths = np.diff(indptr)
    rows = np.flatnonzero(lengths >= 2)
    histories = [items[indptr[s] : indptr[s + 1] - 1] for s in rows]
    targets = items[indptr[rows + 1] - 1]
    truth = sp.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (np.arange(len(rows)), targets)),
        shape=(len(rows), sessions.n_items),
    )
    answering = model.answering
    if answering.scores_candidates:  # a fused pipeline ranks its sources' candidates for the session
        recs, _ = answering.recommend_live(np.full(len(rows), -1), max(ks), histories)  # type: ignore[attr-defined]
    elif model.supports_history:
        recs = rank(model, np.full(len(rows), -1), max(ks), exclude=None, histories=histories)
    else:  # the model cannot use the live session: it answers with its fallback
        recs, _ = model.recommend(np.full(len(rows), -1), max(ks), exclude=None)
    return evaluate_rankings(recs, truth, ks=ks, train_popularity=train_popularity)


def _categories(dataset: Dataset) -> np.ndarray | None:
    category = dataset.item_features.get("category") if len(dataset.item_features.columns) else None
    if category is None or category.isna().all():
        return None
    _, codes = np.unique(category.fillna("").astype(str).to_numpy(), return_inverse=True)
    return codes


def _rating_metrics(model: Recommender, test: Dataset) -> dict[str, float]:
    rated = ~np.isnan(test.quantity)
    if not rated.any():
        return {}
    predicted = model.predict_ratings(test.user_idx[rated], test.item_idx[rated])  # type: ignore[attr-defined]
    return rating_errors(predicted, test.quantity[rated])


def _sampled_metrics(
    model: Recommender,
    users: np.ndarray,
    truth: sp.csr_matrix,
    seen: sp.csr_matrix | None,
    ks: Sequence[int],
    negatives: int,
    seed: int,
) -> dict[str, float]:
    """Each test item ranked against ``negatives`` random unseen items (labelled as sampled)."""
    rng = np.random.default_rng(seed)
    n_items = truth.shape[1]
    scores = model.score(users)
    hits = {k: [] for k in ks}
    ndcg = {k: [] for k in ks}
    for row in range(len(users)):
        positives = truth.indices[truth.indptr[row] : truth.indptr[row + 1]]
        banned = set(positives.tolist())
        if seen is not None:
            banned.update(seen.indices[seen.indptr[row] : seen.indptr[row + 1]].tolist())
        pool = rng.choice(n_items, size=min(n_items, negatives * 3 + len(banned)), replace=False)
        pool = np.array([i for i in pool if i not in banned][:negatives])
        for item in positives:
            rank_position = int((scores[row, pool] > scores[row, item]).sum())
            for k in ks:
                hits[k].append(rank_position < k)
                ndcg[k].append(1.0 / np.log2(rank_position + 2) if rank_position < k else 0.0)
    label = f"sampled-{negatives}"
    metrics = {}
    for k in ks:
        metrics[f"HR@{k} ({label})"] = float(np.mean(hits[k])) if hits[k] else 0.0
        metrics[f"NDCG@{k} ({label})"] = float(np.mean(ndcg[k])) if ndcg[k] else 0.0
    return metrics
