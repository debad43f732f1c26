"""Fused recommenders: candidates from several sources, combined by a ranker or a simple fusion.

`MultiSourceRecommender` is the shared machinery of all four, itself a `Recommender` (so
`fusionrec evaluate` can compare it with single models in one run):

1. ``_fit`` cuts a label window off the end of the training data (`holdout_split`), fits every
   source on the data before it, builds candidates and features for the users with labels and
   trains the combiner on them (no leakage: the window's events never reach the sources or the
   features), then refits the sources and the feature context on all the training data;
2. ``_score_users`` generates candidates, scores them with the combiner and returns dense scores:
   candidates keep their combined score, every other item ranks below them by popularity.

`FusionRecommender` (``fusion``) combines with a learning-to-rank model, `StackRecommender`
(``stack``) with a linear meta-model; `blend` and `rrf` live in `fusion.blend`.
"""

from __future__ import annotations

import logging
import time
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from fusionrec.data.dataset import SECONDS_PER_DAY, Dataset
from fusionrec.data.user_attributes import AttributeEncoder, informative_encoder
from fusionrec.evaluation.metrics import grouped_ndcg
from fusionrec.fusion.candidates import (
    Candidates,
    candidate_recall,
    fill_scores,
    source_lists,
    top_rows,
    union,
)
from fusionrec.fusion.config import POPULAR_IN_CATEGORY, REPEAT, FusionConfig, HoldoutConfig, RankerConfig
from fusionrec.fusion.features import FeatureContext
from fusionrec.fusion.ranker import Ranker, make_ranker
from fusionrec.fusion.request_context import fit_encoder as context_encoder
from fusionrec.fusion.request_context import latest_codes, request_codes
from fusionrec.fusion.source_cache import fit_source
from fusionrec.models.base import ModelError, Recommender, add_to_manifest, top_k
from fusionrec.models.itemtools import request_history_matrix
from fusionrec.progress import step

log = logging.getLogger(__name__)

# Label-window users whose context (device, channel) the ranker is not told, so that it also ranks
# well for a request that names none (the pre-scored lists).
CONTEXT_UNKNOWN_SHARE = 0.3

SOURCES_DIR = "sources"
FEATURES_FILE = "features.npz"
# Most bytes of dense source scores one candidate batch may hold with score_all_candidates.
DENSE_SCORE_BYTES = 512 * 2**20


# --- the label window --------------------------------------------------------------------------


def holdout_split(dataset: Dataset, holdout: HoldoutConfig, seed: int) -> tuple[Dataset, Dataset]:
    """``(before, window)``: the events the sources learn from and the label window after them."""
    n = dataset.n_events
    if holdout.mode == "days":
        cut = dataset.timestamp.max() - holdout.days * SECONDS_PER_DAY if n else 0
        in_window = dataset.timestamp > cut
    else:
        order = np.lexsort((np.arange(n), dataset.timestamp, dataset.user_idx))
        users = dataset.user_idx[order]
        counts = np.bincount(users, minlength=dataset.n_users)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        from_end = counts[users] - (np.arange(n) - starts[users])  # 1 = the user's last event
        eligible = counts[users] >= holdout.min_history + (holdout.items if holdout.mode == "last" else 1)
        in_window = np.zeros(n, dtype=bool)
        if holdout.mode == "last":
            in_window[order] = eligible & (from_end <= holdout.items)
        else:  # random: a seeded share of each user's distinct items, all of their events
            pair = dataset.user_idx.astype(np.int64) * dataset.n_items + dataset.item_idx
            unique_pairs, inverse = np.unique(pair, return_inverse=True)
            chosen = np.random.default_rng(seed).random(len(unique_pairs)) < holdout.fraction
            in_window = chosen[inverse]
            in_window &= counts[dataset.user_idx] >= holdout.min_history + 1
    return dataset.select(~in_window), dataset.select(in_window)


def label_windows(dataset: Dataset, holdout: HoldoutConfig, seed: int) -> list[tuple[Dataset, Dataset]]:
    """``holdout.windows`` label windows as ``(before, window)`` pairs, the latest first.

    ``days`` and ``last`` step back in time: each window ends where the previous one begins, so
    every window is labelled by what came after its own sources' data. ``random`` draws each
    window's share with its own seed from all the data.
    """
    windows = []
    rest = dataset
    for k in range(holdout.windows):
        if holdout.mode == "random":
            windows.append(holdout_split(dataset, holdout, seed + k))
        else:
            rest, window = holdout_split(rest, holdout, seed)
            if window.n_events == 0 or rest.n_events == 0:
                break
            windows.append((rest, window))
    return windows


@dataclass
class _TrainingGroups:
    """The combiner's training rows from one label window."""

    candidates: Candidates
    X: np.ndarray | None
    labels: np.ndarray
    weights: np.ndarray
    recall: float  # candidate recall of the window's labels
    n_labels: float


def _concat_candidates(parts: Sequence[Candidates]) -> Candidates:
    """One candidate table from several, each part's rows numbered after the previous part's."""
    offsets = np.cumsum([0] + [c.n_rows for c in parts])
    return Candidates(
        int(offsets[-1]),
        np.concatenate([c.row + offset for c, offset in zip(parts, offsets, strict=False)]),
        np.concatenate([c.item for c in parts]),
        np.concatenate([c.scores for c in parts]),
        np.concatenate([c.ranks for c in parts]),
        parts[0].sources,
    )


def label_matrix(window: Dataset, gains: dict[str, int]) -> sp.csr_matrix:
    """users x items graded labels: the highest gain among each pair's window events."""
    gain_of_code = np.array([gains.get(name, 0) for name in window.event_types.names], dtype=np.float32)
    grade = gain_of_code[window.event_code] if window.n_events else np.zeros(0, dtype=np.float32)
    positive = grade > 0
    key = window.user_idx[positive].astype(np.int64) * window.n_items + window.item_idx[positive]
    order = np.lexsort((-grade[positive], key))
    key, value = key[order], grade[positive][order]
    first = np.ones(len(key), dtype=bool)
    first[1:] = key[1:] != key[:-1]
    labels = sp.csr_matrix(
        (value[first], (key[first] // window.n_items, key[first] % window.n_items)),
        shape=(window.n_users, window.n_items),
        dtype=np.float32,
    )
    labels.sort_indices()
    return labels


def user_revenue(window: Dataset) -> np.ndarray:
    """Revenue per user in the window: price x quantity (1 when unknown) of purchases."""
    buys = window.event_mask("purchase") & ~np.isnan(window.price)
    quantity = np.where(np.isnan(window.quantity[buys]), 1.0, window.quantity[buys])
    return np.bincount(
        window.user_idx[buys], weights=window.price[buys] * quantity, minlength=window.n_users
    ).astype(np.float32)


# --- shared machinery --------------------------------------------------------------------------


class MultiSourceRecommender(Recommender):
    """Candidates from configured sources, combined by a subclass-specific `_combine`.

    The base of every fused model: `FusionRecommender` and `StackRecommender` (a learned ranker)
    here, `BlendRecommender` and `RRFRecommender` (weighted score / rank fusion) in `fusion.blend`.
    """

    name: ClassVar[str] = "fused"
    config: Any
    # Label windows cut by time and features from the event log (recency, sessions, prices).
    needs_event_log: ClassVar[bool] = True
    scores_candidates: ClassVar[bool] = True
    combines_sources: ClassVar[bool] = True

    # --- combiner hooks ------------------------------------------------------------------------

    @abstractmethod
    def _fit_combiner(
        self, X: np.ndarray, candidates: Candidates, labels: np.ndarray, weights: np.ndarray
    ) -> None:
        """Learn how to combine, from training candidates with graded ``labels`` (0 = irrelevant)."""

    @abstractmethod
    def _combine(self, X: np.ndarray | None, candidates: Candidates) -> np.ndarray:
        """One score per candidate (higher is better)."""

    needs_features: ClassVar[bool] = True

    # --- fitting -------------------------------------------------------------------------------

    @property
    def source_models(self) -> dict[str, Recommender]:
        """The fitted candidate sources by label (read-only view; refit on all data after training)."""
        return dict(self._sources)

    @property
    def feature_context(self) -> FeatureContext:
        """The fitted feature context (popularity windows, user x item counts, co-visitation)."""
        return self._context

    def _fit_sources(self, dataset: Dataset) -> dict[str, Recommender]:
        sources = {}
        for done, source in enumerate(self.config.sources):
            step("fusion sources", done, len(self.config.sources), f"fitting {source.label}")
            started = time.perf_counter()
            params = {"seed": self.config.seed, **source.params}
            sources[source.label] = fit_source(source.model, params, dataset)
            self.timings_[f"fit:{source.label}"] = self.timings_.get(f"fit:{source.label}", 0.0) + (
                time.perf_counter() - started
            )
            log.info("fusion: fitted source %s in %.1fs", source.label, time.perf_counter() - started)
        step("fusion sources", len(sources), len(self.config.sources), "fitted")
        return sources

    def _build_context(self, dataset: Dataset) -> FeatureContext:
        cfg = self.config
        return FeatureContext.build(
            dataset,
            recent_items=cfg.recent_items,
            covisit_window=cfg.covisit_window,
            covisit_neighbours=cfg.covisit_neighbours,
            attributes=self._attributes,
            contexts=self._contexts,
        )

    def _fit(self, dataset: Dataset) -> None:
        cfg = self.config
        self.timings_: dict[str, float] = {}
        started = time.perf_counter()
        # One attribute vocabulary for every label window and the final context (a value code
        # means the same to the ranker in training and in serving), of the attributes that
        # separate tastes in the training data; none where the users have no such attributes.
        self._attributes = (
            informative_encoder(dataset.user_features, dataset.matrix(binary=True))
            if cfg.user_attributes
            else AttributeEncoder.empty()
        )
        # Likewise one vocabulary of the devices and channels whose items differ (none: no feature).
        self._contexts = context_encoder(dataset)
        windows = label_windows(dataset, cfg.holdout, cfg.seed)
        groups = [
            self._window_groups(before, window, cfg.seed + k) for k, (before, window) in enumerate(windows)
        ]
        groups = [g for g in groups if g is not None]
        if not groups:
            raise ModelError(
                f"fusion: too little data to train the ranker ({dataset.n_events:,} events): no user in "
                "the label window has earlier history; add events or adjust `holdout`"
            )
        merged = _concat_candidates([g.candidates for g in groups])
        X = np.concatenate([g.X for g in groups]) if self.needs_features else None
        hits = sum(g.recall * g.n_labels for g in groups)
        self.train_recall_ = float(hits / max(sum(g.n_labels for g in groups), 1))
        self.train_groups_ = len(np.unique(merged.row))
        log.info(
            "fusion: %d training groups from %d label window(s), %d rows, candidate recall %.3f",
            self.train_groups_,
            len(groups),
            len(merged),
            self.train_recall_,
        )
        combiner_start = time.perf_counter()
        self._fit_combiner(
            X, merged, np.concatenate([g.labels for g in groups]), np.concatenate([g.weights for g in groups])
        )
        self.timings_["fit:combiner"] = time.perf_counter() - combiner_start
        # Serve from everything: refit the sources and the features on all the training data.
        self._sources = self._fit_sources(dataset)
        self._context = self._build_context(dataset)
        self._seen = dataset.matrix(binary=True)
        self.timings_["fit:total"] = time.perf_counter() - started

    def _window_groups(self, before: Dataset, window: Dataset, seed: int) -> _TrainingGroups | None:
        """The combiner's training rows for one label window: sources fit on ``before`` only.

        Only users with earlier history and at least one labelled candidate make a group (at most
        ``train_users`` of them, sampled with ``seed``); None when the window has none.
        """
        cfg = self.config
        self._sources = self._fit_sources(before)
        self._context = self._build_context(before)
        self._seen = before.matrix(binary=True)
        labels = label_matrix(window, cfg.gains)
        contexts = self._window_contexts(window, seed)
        has_items = np.diff(self._seen.indptr) > 0
        users = np.flatnonzero((np.diff(labels.indptr) > 0) & has_items)
        if len(users) > cfg.train_users:
            users = np.sort(np.random.default_rng(seed).choice(users, cfg.train_users, replace=False))
        if len(users) == 0:
            return None
        revenue = user_revenue(window) if cfg.revenue_weighting else None
        X_parts, label_parts, weight_parts, cand_parts = [], [], [], []
        recall_hits = recall_total = 0.0
        for start in range(0, len(users), 4096):
            batch = users[start : start + 4096]
            candidates = self._candidates(batch)
            truth = labels[batch]
            recall = candidate_recall(candidates, truth)
            recall_hits += recall["total"] * truth.nnz
            recall_total += truth.nnz
            grade = np.asarray(truth[candidates.row, candidates.item], dtype=np.float32).ravel()
            has_positive = np.bincount(candidates.row, weights=grade > 0, minlength=len(batch)) > 0
            keep = has_positive[candidates.row]
            candidates = candidates.take(keep)
            X_parts.append(
                self._features(batch, candidates, contexts=contexts[batch]) if self.needs_features else None
            )
            label_parts.append(grade[keep])
            row_weight = (1.0 + np.log1p(revenue[batch])) if revenue is not None else np.ones(len(batch))
            weight_parts.append(row_weight[candidates.row].astype(np.float32))
            cand_parts.append(candidates)
        merged = _concat_candidates(cand_parts)
        if len(merged) == 0:
            return None
        return _TrainingGroups(
            candidates=merged,
            X=np.concatenate(X_parts) if self.needs_features else None,
            labels=np.concatenate(label_parts),
            weights=np.concatenate(weight_parts),
            recall=recall_hits / max(recall_total, 1.0),
            n_labels=recall_total,
        )

    def _window_contexts(self, window: Dataset, seed: int) -> np.ndarray:
        """Per user where they took their latest label-window item (`request_context.latest_codes`),
        unknown for a seeded share of them: most answers are pre-scored with no request at hand,
        and the ranker must rank well without a context too."""
        codes = latest_codes(window, self._contexts)
        blank = np.random.default_rng(seed).random(len(codes)) < CONTEXT_UNKNOWN_SHARE
        codes[blank] = -1
        return codes

    # --- candidates, features, scores ------------------------------------------------------------

    def _quotas(self) -> dict[str, int]:
        return {s.label: s.n for s in self.config.sources}

    def _candidates(self, users: np.ndarray, histories: Sequence[np.ndarray] | None = None) -> Candidates:
        if self.config.score_all_candidates:
            # Every source's dense scores are held until the union is known: chunk the users so
            # that they stay within DENSE_SCORE_BYTES, whatever the caller's batch.
            n_items = self._context.covisit.shape[0]
            chunk = max(1, DENSE_SCORE_BYTES // (4 * n_items * max(len(self._sources), 1)))
            if len(users) > chunk:
                return _concat_candidates(
                    [
                        self._candidates_of(
                            users[start : start + chunk],
                            None if histories is None else histories[start : start + chunk],
                        )
                        for start in range(0, len(users), chunk)
                    ]
                )
        return self._candidates_of(users, histories)

    def _candidates_of(self, users: np.ndarray, histories: Sequence[np.ndarray] | None) -> Candidates:
        cfg = self.config
        exclude: Any = None
        rows = None  # the histories' distinct items: the exclusion and the sources' input alike
        if histories is not None:
            rows = request_history_matrix(list(histories), self._context.covisit.shape[0], binary=True)
        if cfg.exclude_seen:
            exclude = "seen" if histories is None else rows
        dense: dict[str, np.ndarray] | None = {} if cfg.score_all_candidates else None
        lists = source_lists(
            self._sources,
            self._quotas(),
            users,
            exclude=exclude,
            histories=histories,
            min_scores={s.label: s.min_score for s in cfg.sources},
            dense=dense,
            history_rows=rows,
        )
        known = (users >= 0) & (users < self._seen.shape[0])
        safe = np.where(known, users, 0)
        if cfg.extra.repeat:
            counts = self._context.viewed + self._context.carted + self._context.bought
            if counts.nnz == 0:  # event types outside view/cart/purchase (e.g. ratings)
                counts = self._seen
            repeated = sp.diags(known.astype(np.float32)) @ counts[safe]
            lists[REPEAT] = top_rows(repeated.tocsr(), cfg.extra.repeat)
        if cfg.extra.popular_in_category:
            seen_rows = self._seen[safe] if exclude is not None else None
            lists[POPULAR_IN_CATEGORY] = self._popular_in_category(safe, known, seen_rows)
        candidates = union(lists, len(users), self._context.covisit.shape[0])
        if dense:
            fill_scores(candidates, dense)
        return candidates

    def _popular_in_category(
        self, users: np.ndarray, known: np.ndarray, seen_rows: sp.csr_matrix | None
    ) -> tuple[np.ndarray, np.ndarray]:
        ctx = self._context
        k = self.config.extra.popular_in_category
        favourite = np.asarray(ctx.user_category[users].argmax(axis=1)).ravel()
        has = known & (np.asarray(ctx.user_category[users].max(axis=1).todense()).ravel() > 0)
        scores = np.where(
            ctx.item_category[None, :] == favourite[:, None], ctx.item_pop[:, 0][None, :] + 1.0, -np.inf
        ).astype(np.float32)
        scores[~has] = -np.inf
        if seen_rows is not None:
            scores[seen_rows.nonzero()] = -np.inf
        return top_k(scores, k)

    def _features(
        self,
        users: np.ndarray,
        candidates: Candidates,
        histories: Sequence[np.ndarray] | None = None,
        *,
        contexts: np.ndarray | None = None,
    ) -> np.ndarray:
        X = self._context.features(
            users, candidates, histories, relative=self.config.relative_features, contexts=contexts
        )
        keep = self._kept_columns()
        return X if keep is None else X[:, keep]

    def _all_feature_names(self) -> list[str]:
        context = getattr(self, "_context", None)
        vectors = context is not None and context.has_vectors
        return [
            *FeatureContext.feature_names(self.config.source_labels(), vectors=vectors),
            *(context.attribute_features if context is not None else []),
            *(context.context_features if context is not None else []),
        ]

    def _kept_columns(self) -> np.ndarray | None:
        """Column indices left after ``drop_features`` (None: all of them)."""
        if not self.config.drop_features:
            return None
        dropped = set(self.config.drop_features)
        return np.array([i for i, name in enumerate(self._all_feature_names()) if name not in dropped])

    def feature_names(self) -> list[str]:
        names = self._all_feature_names()
        keep = self._kept_columns()
        return names if keep is None else [names[i] for i in keep]

    def score_candidates(
        self,
        users: np.ndarray,
        histories: Sequence[np.ndarray] | None = None,
        context: Mapping[str, str | None] | None = None,
    ) -> tuple[Candidates, np.ndarray]:
        """The candidates of ``users`` and their combined scores (the serving path's core).
        ``context``: where the list is shown (``device``, ``channel``), for every user."""
        candidates, _, values = self.trace(users, histories, context)
        return candidates, values

    @property
    def context_columns(self) -> tuple[str, ...]:
        """The request-context columns the ranker reads (`request_context`; empty: none)."""
        context = getattr(self, "_context", None)
        if context is None or not self.needs_features:  # a blend reads no features
            return ()
        return tuple(str(c) for c in context.context_names)

    def trace(
        self,
        users: np.ndarray,
        histories: Sequence[np.ndarray] | None = None,
        context: Mapping[str, str | None] | None = None,
    ) -> tuple[Candidates, np.ndarray | None, np.ndarray]:
        """`score_candidates` with the feature matrix the combiner read (None without features)."""
        users = np.asarray(users, dtype=np.int64)
        candidates = self._candidates(users, histories)
        X = None
        if self.needs_features:
            codes = None
            if context and self.context_columns:
                codes = np.tile(request_codes(context, self._context.context_encoder), (len(users), 1))
            X = self._features(users, candidates, histories, contexts=codes)
        return candidates, X, self._combine(X, candidates)

    def score_parts(
        self, X: np.ndarray | None, candidates: Candidates, rows: np.ndarray
    ) -> tuple[list[str], np.ndarray] | None:
        """What each part adds to the combined score of the candidates at ``rows`` (of a `trace`):
        ``(names, float[len(rows), len(names)])``, the names being features (a ranker's
        per-feature contributions) or source labels (a weighted fusion); None when the combiner
        cannot split its score."""
        return None

    def _score_users(self, users: np.ndarray) -> np.ndarray:
        candidates, values = self.score_candidates(users)
        return self._dense(candidates, values)

    def _dense(self, candidates: Candidates, values: np.ndarray) -> np.ndarray:
        """Candidates keep their score; other items rank below every candidate, by popularity."""
        values = values.astype(np.float32)
        row_min = np.full(candidates.n_rows, np.inf, dtype=np.float32)
        np.minimum.at(row_min, candidates.row, values)
        row_min[~np.isfinite(row_min)] = 0.0
        popularity = self.popularity_ / (self.popularity_.max() + 1.0)
        dense = (row_min - 2.0)[:, None] + popularity[None, :]
        dense[candidates.row, candidates.item] = values
        return dense.astype(np.float32)

    def recommend_live(
        self, users: np.ndarray, k: int, histories: Sequence[np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` with live histories (serving): history sources use them, others the user index."""
        self._check_fitted()
        candidates, values = self.score_candidates(np.asarray(users, dtype=np.int64), histories)
        return top_k(self._dense(candidates, values), k)

    # --- explainability --------------------------------------------------------------------------

    def source_contribution(self, users: np.ndarray, k: int = 20) -> dict[str, dict[str, float]]:
        """Per source: share of the final top-``k`` items it proposed, and share only it proposed."""
        candidates, values = self.score_candidates(np.asarray(users, dtype=np.int64))
        order = np.lexsort((-values, candidates.row))
        row = candidates.row[order]
        position = np.arange(len(row)) - np.searchsorted(row, row)
        top = order[position < k]
        proposed = candidates.proposed()[top]
        only = proposed & (proposed.sum(axis=1, keepdims=True) == 1)
        total = max(len(top), 1)
        return {
            label: {"share": float(proposed[:, s].sum() / total), "only": float(only[:, s].sum() / total)}
            for s, label in enumerate(candidates.sources)
        }

    def explain(self, user: int, item: int, top: int = 8) -> dict[str, Any]:
        """Why ``item`` is (or is not) recommended to ``user``: proposing sources, main features and
        the reason (`fusion.explanations`, its sentence naming items by id)."""
        from fusionrec.fusion.explanations import explain_items, sentence  # it builds on this module

        self._check_fitted()
        (explained,) = explain_items(self, user, [item])
        reason = {
            **explained.to_dict()["reason"],
            "text": sentence(explained.reason, item, lambda i: str(self.item_ids_[i]), lambda i: None),
        }
        candidates, values = self.score_candidates(np.array([user], dtype=np.int64))
        where = np.flatnonzero(candidates.item == item)
        if len(where) == 0:
            return {"user": int(user), "item": int(item), "candidate": False, "sources": {}, "reason": reason}
        i = int(where[0])
        rank = int((values > values[i]).sum()) + 1
        sources = {
            label: {"rank": int(candidates.ranks[i, s]), "score": float(candidates.scores[i, s])}
            for s, label in enumerate(candidates.sources)
            if not np.isnan(candidates.ranks[i, s])
        }
        result: dict[str, Any] = {
            "user": int(user),
            "item": int(item),
            "candidate": True,
            "score": float(values[i]),
            "rank": rank,
            "sources": sources,
            "reason": reason,
        }
        if self.needs_features:
            names = self.feature_names()
            # All of the user's candidates: relative features compare each with the others.
            X = self._features(np.array([user], dtype=np.int64), candidates)[where[:1]]
            contributions = self._contributions(X)
            if contributions is not None:
                order = np.argsort(-np.abs(contributions[0, : len(names)]))[:top]
                result["features"] = {
                    names[j]: {"value": float(X[0, j]), "contribution": float(contributions[0, j])}
                    for j in order
                }
            else:
                result["features"] = {name: float(X[0, j]) for j, name in enumerate(names[:top])}
        return result

    def _contributions(self, X: np.ndarray) -> np.ndarray | None:
        return None

    # --- persistence ------------------------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        """The fused model's own state, each source through its own `save`, features and combiner."""
        directory = super().save(directory)
        for label, model in self._sources.items():
            model.save(directory / SOURCES_DIR / label)
        np.savez(directory / FEATURES_FILE, **self._context.to_arrays())
        extra = self._save_combiner(directory)
        written = [FEATURES_FILE, *extra]
        for label in self._sources:
            for path in sorted((directory / SOURCES_DIR / label).iterdir()):
                written.append(f"{SOURCES_DIR}/{label}/{path.name}")
        add_to_manifest(directory, written, sources=list(self._sources), combiner=self.name)
        return directory

    def _load_files(self, directory: Path) -> None:
        self._sources = {
            s.label: Recommender.load(directory / SOURCES_DIR / s.label) for s in self.config.sources
        }
        with np.load(directory / FEATURES_FILE, allow_pickle=False) as arrays:
            self._context = FeatureContext.from_arrays({k: arrays[k] for k in arrays.files})
        self._seen = self.seen_
        self._load_combiner(directory)

    def _save_combiner(self, directory: Path) -> list[str]:
        return []

    def _load_combiner(self, directory: Path) -> None:
        return None


# --- learning to rank -----------------------------------------------------------------------------


class FusionRecommender(MultiSourceRecommender):
    """``fusion``: a learning-to-rank model (LightGBM LambdaRank by default) over candidate features."""

    name = "fusion"
    Config = FusionConfig
    config: FusionConfig

    def _fit_combiner(
        self, X: np.ndarray, candidates: Candidates, labels: np.ndarray, weights: np.ndarray
    ) -> None:
        sizes = np.bincount(candidates.row, minlength=candidates.n_rows)
        sizes = sizes[sizes > 0]
        use_weights = weights if self.config.revenue_weighting else None
        self._ranker = make_ranker(self.config.ranker, self.config.seed)
        self._ranker.fit(X, labels.astype(np.float32), sizes, self.feature_names(), use_weights)
        if self.config.ranker.kind in ("lightgbm", "xgboost", "catboost"):
            # The ranker's own training NDCG, a sanity figure (validation numbers come from tuning).
            self.train_ndcg_ = grouped_ndcg(self._ranker.predict(X), labels, candidates.row, 20)

    def _combine(self, X: np.ndarray | None, candidates: Candidates) -> np.ndarray:
        if X is None or len(X) == 0:
            return np.zeros(0, dtype=np.float32)
        return self._ranker.predict(X).astype(np.float32)

    def _contributions(self, X: np.ndarray) -> np.ndarray | None:
        return self._ranker.contributions(X)

    def score_parts(
        self, X: np.ndarray | None, candidates: Candidates, rows: np.ndarray
    ) -> tuple[list[str], np.ndarray] | None:
        """The ranker's per-feature contributions (SHAP values for the tree rankers)."""
        if X is None or len(rows) == 0:
            return None
        contributions = self._contributions(X[rows])
        if contributions is None:
            return None
        names = self.feature_names()
        return names, np.asarray(contributions)[:, : len(names)]

    def feature_importance(self) -> dict[str, float]:
        """The ranker's feature importance (gain for the tree rankers), highest first."""
        self._check_fitted()
        return self._ranker.importance()

    @property
    def ranker(self) -> Ranker:
        return self._ranker

    def _save_combiner(self, directory: Path) -> list[str]:
        return self._ranker.save(directory)

    def _load_combiner(self, directory: Path) -> None:
        self._ranker = make_ranker(self.config.ranker, self.config.seed)
        self._ranker.load(directory)


class StackConfig(FusionConfig):
    ranker: RankerConfig = Field(default_factory=lambda: RankerConfig(kind="linear"))


class StackRecommender(FusionRecommender):
    """``stack``: linear stacking, a logistic-regression meta-model over the same features."""

    name = "stack"
    Config = StackConfig
