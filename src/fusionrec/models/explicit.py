"""Rating-prediction models: biased matrix factorisation ("Funk SVD") and SVD++ (Koren 2008).

Both learn ``r_hat(u, i) = mu + b_u + b_i + q_i . p_u`` by stochastic gradient descent (numba);
SVD++ adds the implicit feedback of everything the user rated:
``p_u + |N(u)|^-1/2 sum_{j in N(u)} y_j``. Ratings are ``Dataset.quantity`` of the "rating"
events (the last rating of a (user, item) pair counts); events without a rating count as 1.

They are rankers too (``score = predicted rating``), and expose `predict_ratings` for RMSE/MAE.
SGD visits the users in a seeded random order and, for SVD++, each user's ratings together, so
the implicit sum is computed once per user and the ``y_j`` updates are applied lazily (they
are the same affine map for every ``j`` of the user): the result equals per-rating SGD in that
order, at ``O(k)`` instead of ``O(k |N(u)|)`` per rating.
"""

from __future__ import annotations

import logging

import numba
import numpy as np
import scipy.sparse as sp
from pydantic import Field

from fusionrec.data.dataset import Dataset
from fusionrec.models.base import ModelConfig, ModelError, Recommender
from fusionrec.progress import step

log = logging.getLogger(__name__)


class SVDConfig(ModelConfig):
    factors: int = Field(default=100, ge=1)
    epochs: int = Field(default=20, ge=1)
    learning_rate: float = Field(default=0.005, gt=0)
    regularization: float = Field(default=0.02, ge=0)
    init_std: float = Field(default=0.1, ge=0)
    clip: bool = True  # clip predictions to the training rating range


class SVDppConfig(SVDConfig):
    factors: int = Field(default=20, ge=1)
    learning_rate: float = Field(default=0.007, gt=0)


def rating_triples(dataset: Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(users int32, items int32, ratings float32): the last rating of each (user, item) pair.

    Uses the "rating" events when there are any, else every positive event with rating 1
    (a missing quantity also counts as 1).
    """
    mask = (
        dataset.event_mask("rating") if "rating" in dataset.event_types else np.zeros(dataset.n_events, bool)
    )
    if not mask.any():
        mask = dataset.weight > 0
    users, items = dataset.user_idx[mask], dataset.item_idx[mask]
    ratings = np.nan_to_num(dataset.quantity[mask], nan=1.0).astype(np.float32)
    pair = users.astype(np.int64) * max(dataset.n_items, 1) + items
    order = np.lexsort((np.arange(len(pair)), pair))  # time order kept inside a pair
    last = np.ones(len(order), dtype=bool)
    last[:-1] = pair[order][1:] != pair[order][:-1]
    chosen = np.sort(order[last])
    return users[chosen], items[chosen], ratings[chosen]


@numba.njit(cache=True)
def _sgd_epoch(users, items, ratings, order, mu, bu, bi, p, q, lr, reg):  # pragma: no cover - numba
    total = 0.0
    k = p.shape[1]
    for idx in order:
        u, i, r = users[idx], items[idx], ratings[idx]
        dot = 0.0
        for f in range(k):
            dot += p[u, f] * q[i, f]
        err = r - (mu + bu[u] + bi[i] + dot)
        total += err * err
        bu[u] += lr * (err - reg * bu[u])
        bi[i] += lr * (err - reg * bi[i])
        for f in range(k):
            puf = p[u, f]
            qif = q[i, f]
            p[u, f] += lr * (err * qif - reg * puf)
            q[i, f] += lr * (err * puf - reg * qif)
    return total


@numba.njit(cache=True)
def _svdpp_epoch(
    indptr, items, ratings, user_order, rating_order, mu, bu, bi, p, q, y, lr, reg
):  # pragma: no cover - numba
    """One SVD++ epoch; ``items[indptr[u]:indptr[u+1]]`` are user u's ratings (also N(u))."""
    total = 0.0
    k = p.shape[1]
    implicit = np.zeros(k)
    shift = np.zeros(k)
    for u in user_order:
        start, stop = indptr[u], indptr[u + 1]
        n = stop - start
        if n == 0:
            continue
        norm = 1.0 / np.sqrt(n)
        implicit[:] = 0.0
        for pos in range(start, stop):
            j = items[pos]
            for f in range(k):
                implicit[f] += y[j, f]
        # y_j (current) = scale * y_j (at user start) + shift, the same for every j in N(u)
        scale = 1.0
        shift[:] = 0.0
        for pos in rating_order[start:stop]:
            i, r = items[pos], ratings[pos]
            dot = 0.0
            for f in range(k):
                dot += q[i, f] * (p[u, f] + norm * implicit[f])
            err = r - (mu + bu[u] + bi[i] + dot)
            total += err * err
            bu[u] += lr * (err - reg * bu[u])
            bi[i] += lr * (err - reg * bi[i])
            decay = 1.0 - lr * reg
            for f in range(k):
                puf = p[u, f]
                qif = q[i, f]
                p[u, f] += lr * (err * qif - reg * puf)
                q[i, f] += lr * (err * (puf + norm * implicit[f]) - reg * qif)
                step = lr * err * norm * qif
                shift[f] = decay * shift[f] + step
                implicit[f] = decay * implicit[f] + n * step
            scale *= decay
        for pos in range(start, stop):
            j = items[pos]
            for f in range(k):
                y[j, f] = scale * y[j, f] + shift[f]
    return total


class SVD(Recommender):
    """Biased matrix factorisation trained by SGD on explicit ratings."""

    name = "svd"
    Config = SVDConfig
    config: SVDConfig
    predicts_ratings = True
    needs_event_log = True  # the rating events and their values

    def _fit(self, dataset: Dataset) -> None:
        cfg = self.config
        users, items, ratings = rating_triples(dataset)
        rng = np.random.default_rng(cfg.seed)
        self._init_state(dataset, ratings, rng)
        for epoch in range(cfg.epochs):
            order = rng.permutation(len(ratings))
            sse = _sgd_epoch(
                users, items, ratings, order, float(self.global_mean_), self.user_bias_, self.item_bias_,
                self.user_factors_, self.item_factors_, cfg.learning_rate, cfg.regularization,
            )  # fmt: skip
            log.info("%s epoch %d/%d: train RMSE %.4f", self.name, epoch + 1, cfg.epochs, _rmse(sse, ratings))
            step(f"{self.name} epochs", epoch + 1, cfg.epochs, f"train RMSE {_rmse(sse, ratings):.4f}")
        self._finish()

    def _init_state(self, dataset: Dataset, ratings: np.ndarray, rng: np.random.Generator) -> None:
        cfg = self.config
        self.global_mean_ = float(ratings.mean()) if len(ratings) else 0.0
        self.rating_range_ = np.array(
            [ratings.min(), ratings.max()] if len(ratings) else [0.0, 0.0], dtype=np.float32
        )
        self.user_bias_ = np.zeros(dataset.n_users)
        self.item_bias_ = np.zeros(dataset.n_items)
        self.user_factors_ = rng.normal(0.0, cfg.init_std, (dataset.n_users, cfg.factors))
        self.item_factors_ = rng.normal(0.0, cfg.init_std, (dataset.n_items, cfg.factors))

    def _finish(self) -> None:
        """Store the state as float32 (what scoring uses; save/load round-trips it exactly)."""
        for key in ("user_bias_", "item_bias_", "user_factors_", "item_factors_"):
            setattr(self, key, getattr(self, key).astype(np.float32))

    def _user_vectors(self, users: np.ndarray) -> np.ndarray:
        return self.user_factors_[users]

    def _score_users(self, users: np.ndarray) -> np.ndarray:
        scores = self._user_vectors(users) @ self.item_factors_.T
        scores += (self.global_mean_ + self.user_bias_[users])[:, None] + self.item_bias_[None, :]
        return self._clip(scores).astype(np.float32)

    def _clip(self, values: np.ndarray) -> np.ndarray:
        if self.config.clip:
            return np.clip(values, self.rating_range_[0], self.rating_range_[1])
        return values

    def predict_ratings(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """Predicted ratings (float32) for pairs; unknown users/items (-1, out of range) get biases only."""
        self._check_fitted()
        users = np.asarray(user_idx, dtype=np.int64)
        items = np.asarray(item_idx, dtype=np.int64)
        if users.shape != items.shape:
            raise ModelError(f"user_idx has shape {users.shape} but item_idx {items.shape}")
        known_u = (users >= 0) & (users < self.n_users_)
        known_i = (items >= 0) & (items < self.n_items_)
        u, i = np.where(known_u, users, 0), np.where(known_i, items, 0)
        prediction = np.full(users.shape, self.global_mean_, dtype=np.float64)
        prediction += np.where(known_u, self.user_bias_[u], 0.0) + np.where(known_i, self.item_bias_[i], 0.0)
        both = known_u & known_i
        if both.any():
            vectors = self._user_vectors(u[both].astype(np.int32))
            prediction[both] += np.einsum("nk,nk->n", vectors, self.item_factors_[i[both]])
        return self._clip(prediction).astype(np.float32)


class SVDpp(SVD):
    """SVD++: biased MF plus the implicit feedback of the items each user rated."""

    name = "svdpp"
    Config = SVDppConfig
    config: SVDppConfig

    def _fit(self, dataset: Dataset) -> None:
        cfg = self.config
        users, items, ratings = rating_triples(dataset)
        rng = np.random.default_rng(cfg.seed)
        self._init_state(dataset, ratings, rng)
        self.implicit_factors_ = rng.normal(0.0, cfg.init_std, (dataset.n_items, cfg.factors))
        by_user = np.argsort(users, kind="stable")
        user_items, user_ratings = items[by_user], ratings[by_user]
        indptr = np.zeros(dataset.n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(users, minlength=dataset.n_users), out=indptr[1:])
        for epoch in range(cfg.epochs):
            user_order = rng.permutation(dataset.n_users)
            # a random order of each user's ratings: sort positions by (user, random key)
            rating_order = np.lexsort((rng.random(len(user_items)), users[by_user]))
            sse = _svdpp_epoch(
                indptr, user_items, user_ratings, user_order, rating_order, float(self.global_mean_),
                self.user_bias_, self.item_bias_, self.user_factors_, self.item_factors_,
                self.implicit_factors_, cfg.learning_rate, cfg.regularization,
            )  # fmt: skip
            log.info("svdpp epoch %d/%d: train RMSE %.4f", epoch + 1, cfg.epochs, _rmse(sse, ratings))
            step("svdpp epochs", epoch + 1, cfg.epochs, f"train RMSE {_rmse(sse, ratings):.4f}")
        counts = np.diff(indptr)
        norm = np.repeat(1.0 / np.sqrt(np.maximum(counts, 1)), counts)
        rated = sp.csr_matrix((norm, user_items, indptr), shape=(dataset.n_users, dataset.n_items))
        sums = rated @ self.implicit_factors_
        self._finish()
        self.implicit_factors_ = self.implicit_factors_.astype(np.float32)
        # p_u + |N(u)|^-1/2 sum y_j, the user vector that scoring uses
        self.user_vectors_ = (self.user_factors_ + sums).astype(np.float32)

    def _user_vectors(self, users: np.ndarray) -> np.ndarray:
        return self.user_vectors_[users]


def _rmse(sse: float, ratings: np.ndarray) -> float:
    return float(np.sqrt(sse / max(len(ratings), 1)))
