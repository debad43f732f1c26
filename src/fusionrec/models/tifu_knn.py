"""TIFU-kNN: next-basket recommendation from personal item frequencies (Hu et al., SIGIR 2020).

Each user becomes one vector over items, the time-decayed frequency of their baskets: basket
``i`` of ``n`` (oldest first) is its items' indicator times ``within_decay ** (n - 1 - i)``; the
baskets are split, in order, into ``groups`` groups of (nearly) equal size (the first ones one basket
larger where it does not divide evenly, as ``numpy.array_split``); each group is the
mean of its baskets and the user vector is ``sum_g group_decay ** (G - 1 - g) * group_g / G``.
A user's scores are ``alpha * own vector + (1 - alpha) * mean of the nearest neighbours'
vectors`` (Euclidean distance between user vectors, as in the paper's code). In a grocery this
is "buy again", weighted by rhythm and recency, plus what similar households buy regularly.

A basket is a session of the data (a dunnhumby basket id) where the events have one, else the
user's events at one timestamp.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from fusionrec.data.dataset import Dataset
from fusionrec.models.base import ModelConfig, Recommender
from fusionrec.models.knn import top_k_rows

log = logging.getLogger(__name__)


class TIFUKNNConfig(ModelConfig):
    # Defaults: the published TaFeng setting. On dunnhumby the three validation folds chose
    # within_decay 0.99, group_decay 0.95, groups 20, alpha 0.6 (docs/benchmarks.md).
    groups: int = Field(default=7, ge=1)  # the baskets of a user are split into this many groups
    within_decay: float = Field(default=0.9, gt=0, le=1)  # per basket, counted back from the newest
    group_decay: float = Field(default=0.7, gt=0, le=1)  # per group, counted back from the newest
    neighbours: int = Field(default=300, ge=1)
    alpha: float = Field(default=0.7, ge=0, le=1)  # weight of the user's own vector


class TIFUKNN(Recommender):
    """Personal decayed item frequencies blended with the nearest users' (see the module doc)."""

    name = "tifu_knn"
    Config = TIFUKNNConfig
    config: TIFUKNNConfig
    supports_history = True
    needs_event_log = True  # baskets in time order

    def _fit(self, dataset: Dataset) -> None:
        user, basket, n_baskets = _baskets(dataset)
        self.vectors_ = self._vectors(user, basket, dataset.item_idx, dataset.n_users)
        self.neighbours_ = self._nearest(self.vectors_, self.vectors_, exclude_self=True)
        log.info("tifu_knn: %d users, %d baskets", dataset.n_users, n_baskets)

    def _vectors(self, user: np.ndarray, basket: np.ndarray, item: np.ndarray, n_users: int) -> sp.csr_matrix:
        """users x items decayed frequencies from events labelled with their user and basket rank
        (``basket``: 0-based position of the event's basket among its user's, oldest first)."""
        cfg = self.config
        n_baskets = np.zeros(n_users, dtype=np.int64)
        np.maximum.at(n_baskets, user, basket + 1)
        n = n_baskets[user]
        n_groups = np.minimum(cfg.groups, n)
        # consecutive baskets: the first n % G groups hold n // G + 1 of them, the others n // G
        small, extra = n // n_groups, n % n_groups
        # (small >= 1: a user with events has n >= 1 baskets and G <= n)
        group = np.where(basket < extra * (small + 1), basket // (small + 1), (basket - extra) // small)
        group_size = np.where(group < extra, small + 1, small)
        weight = (
            cfg.within_decay ** (n - 1 - basket).astype(np.float64)
            / group_size
            * cfg.group_decay ** (n_groups - 1 - group).astype(np.float64)
            / n_groups
        )
        # An item twice in one basket counts once: keep one event per (user, basket, item).
        key = np.unique(np.column_stack([user, basket, item]), axis=0, return_index=True)[1]
        vectors = sp.csr_matrix(
            (weight[key].astype(np.float32), (user[key], item[key])), shape=(n_users, self.n_items_)
        )
        vectors.sum_duplicates()
        return vectors

    def _nearest(self, queries: sp.csr_matrix, users: sp.csr_matrix, *, exclude_self: bool) -> sp.csr_matrix:
        """queries x users, ``1 / n`` for each query's ``n`` nearest users by Euclidean distance."""
        norms = np.asarray(users.multiply(users).sum(axis=1)).ravel()
        query_norms = np.asarray(queries.multiply(queries).sum(axis=1)).ravel()
        transposed = users.T.tocsr()

        def closeness(start: int, stop: int) -> np.ndarray:
            dots = (queries[start:stop] @ transposed).toarray()
            squared = np.maximum(query_norms[start:stop, None] + norms[None, :] - 2.0 * dots, 0.0)
            close = 1.0 / (1.0 + np.sqrt(squared))  # positive, larger when nearer
            if exclude_self:
                close[np.arange(stop - start), np.arange(start, stop)] = 0.0
            return close

        nearest = top_k_rows(closeness, queries.shape[0], users.shape[0], self.config.neighbours)
        nearest.data = np.ones_like(nearest.data)
        counts = np.maximum(np.diff(nearest.indptr), 1).astype(np.float32)
        return sp.csr_matrix(sp.diags(1.0 / counts) @ nearest)

    def _blend(self, own: sp.csr_matrix, neighbours: sp.csr_matrix) -> np.ndarray:
        alpha = self.config.alpha
        return np.asarray(
            (alpha * own + (1.0 - alpha) * (neighbours @ self.vectors_)).toarray(), dtype=np.float32
        )

    def _score_users(self, users: np.ndarray) -> np.ndarray:
        return self._blend(self.vectors_[users], self.neighbours_[users])

    def _score_histories(self, histories: list[np.ndarray]) -> np.ndarray:
        """A live history has no basket ids: each of its items is a basket, oldest first."""
        lengths = np.array([len(h) for h in histories], dtype=np.int64)
        user = np.repeat(np.arange(len(histories)), lengths)
        basket = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        item = np.concatenate(histories).astype(np.int64) if len(user) else np.zeros(0, dtype=np.int64)
        inside = (item >= 0) & (item < self.n_items_)
        own = self._vectors(user[inside], basket[inside], item[inside], len(histories))
        return self._blend(own, self._nearest(own, self.vectors_, exclude_self=False))


def _baskets(dataset: Dataset) -> tuple[np.ndarray, np.ndarray, int]:
    """Each event's user and the 0-based rank of its basket among the user's, oldest first; and
    the number of baskets."""
    user = dataset.user_idx.astype(np.int64)
    has_sessions = len(dataset.session_idx) == dataset.n_events
    session = dataset.session_idx if has_sessions else np.full(dataset.n_events, -1, dtype=np.int64)
    # basket key: the session where there is one, else the timestamp (negative, so never a session)
    key = np.where(session >= 0, session, -1 - dataset.timestamp)
    # a basket's time is its first event's
    order = np.lexsort((dataset.timestamp, key, user))
    first = np.ones(len(order), dtype=bool)
    first[1:] = (user[order][1:] != user[order][:-1]) | (key[order][1:] != key[order][:-1])
    basket_of_event = np.cumsum(first) - 1  # basket id per event, in `order`
    starts = np.flatnonzero(first)
    basket_user, basket_time = user[order][starts], dataset.timestamp[order][starts]
    by_time = np.lexsort((np.arange(len(starts)), basket_time, basket_user))
    rank = np.empty(len(starts), dtype=np.int64)
    user_start = np.searchsorted(basket_user[by_time], basket_user[by_time], side="left")
    rank[by_time] = np.arange(len(starts)) - user_start
    basket = np.empty(dataset.n_events, dtype=np.int64)
    basket[order] = rank[basket_of_event]
    return user, basket, len(starts)
