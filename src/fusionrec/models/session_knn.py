"""Session-based kNN (SKNN / V-SKNN, Jannach & Ludewig 2017) for anonymous visitors.

Past sessions are rows of a sparse session x item matrix. A current history (the items seen so
far, no user id needed) becomes a vector whose weights decay with distance from the most recent
item (V-SKNN); its cosine similarity to every past session is one sparse product, the ``k`` most
similar sessions are kept, and an item's score is the summed similarity of the neighbours that
contain it. No torch needed.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from fusionrec.data.dataset import Dataset
from fusionrec.mining.neighbours import prune_rows
from fusionrec.models._sequences import histories_to_csr, last_windows, positive_sequences
from fusionrec.models.base import ModelConfig, Recommender

# Added to every score, scaled by popularity: items no neighbour holds are ranked by popularity
# instead of by index, without changing the order of items that neighbours do hold.
_POPULARITY_TIE_BREAK = 1e-6


class SessionKNNConfig(ModelConfig):
    k: int = Field(100, ge=1)  # neighbour sessions per history
    history_len: int = Field(20, ge=1)  # most recent items of a history that count
    # Weight of the item p steps before the most recent one (p = 0 for the latest):
    # "linear": max(1 - 0.1 p, 0.1) (V-SKNN), "harmonic": 1 / (p + 1), "none": 1.
    position_decay: Literal["linear", "harmonic", "none"] = "linear"
    max_sessions: int | None = Field(None, ge=1)  # only the most recent sessions are neighbours
    use_sessions: bool = True  # group by session id when the data has one, else by user


class SessionKNN(Recommender):
    """Nearest past sessions to the current one vote for their items."""

    name = "session_knn"
    supports_history = True
    needs_event_log = True  # sessions and the order inside them
    Config = SessionKNNConfig
    config: SessionKNNConfig

    def _fit(self, dataset: Dataset) -> None:
        self.seq_indptr_, self.seq_items_ = positive_sequences(dataset)
        positive = dataset.weight > 0
        users = dataset.user_idx[positive]
        if (
            self.config.use_sessions
            and len(dataset.session_idx)
            and (dataset.session_idx[positive] >= 0).any()
        ):
            raw = dataset.session_idx[positive]
            # Events without a session fall back to one pseudo-session per user.
            key = np.where(raw >= 0, raw, raw.max() + 1 + users.astype(np.int64))
        else:
            key = users.astype(np.int64)
        keys, session = np.unique(key, return_inverse=True)
        n_sessions = len(keys)
        last_time = np.full(n_sessions, np.iinfo(np.int64).min)
        np.maximum.at(last_time, session, dataset.timestamp[positive])
        owner = np.zeros(n_sessions, dtype=np.int32)
        owner[session] = users  # the log is time-ordered, so this is the session's last user
        matrix = sp.csr_matrix(
            (np.ones(len(session), dtype=np.float32), (session, dataset.item_idx[positive])),
            shape=(n_sessions, dataset.n_items),
        )
        matrix.data[:] = 1.0  # binary: an item counts once per session
        if self.config.max_sessions is not None and n_sessions > self.config.max_sessions:
            recent = np.sort(np.argsort(-last_time, kind="stable")[: self.config.max_sessions])
            matrix, owner = matrix[recent], owner[recent]
        self.sessions_ = matrix.tocsr()
        self.session_user_ = owner
        item_popularity = np.asarray(self.sessions_.sum(axis=0)).ravel()
        self.tie_break_ = (_POPULARITY_TIE_BREAK * item_popularity / max(item_popularity.max(), 1.0)).astype(
            np.float32
        )

    # --- scoring -----------------------------------------------------------------------------

    def _history_vectors(self, indptr: np.ndarray, items: np.ndarray, rows: np.ndarray) -> sp.csr_matrix:
        """Recency-weighted, L2-normalised history vectors (one row per entry of ``rows``)."""
        windows, lengths = last_windows(indptr, items, rows, self.config.history_len)
        steps_back = lengths[:, None] - 1 - np.arange(windows.shape[1])[None, :]
        valid = steps_back >= 0
        steps_back = np.maximum(steps_back, 0)  # padding slots; dropped by `valid` below
        decay = self.config.position_decay
        if decay == "linear":
            weights = np.maximum(1.0 - 0.1 * steps_back, 0.1)
        elif decay == "harmonic":
            weights = 1.0 / (steps_back + 1.0)
        else:
            weights = np.ones_like(steps_back, dtype=np.float64)
        row_of = np.broadcast_to(np.arange(len(rows))[:, None], windows.shape)
        vectors = sp.csr_matrix(
            (weights[valid].astype(np.float32), (row_of[valid], windows[valid])),
            shape=(len(rows), self.n_items_),
        )  # a repeated item sums its weights
        norms = np.sqrt(np.asarray(vectors.multiply(vectors).sum(axis=1)).ravel())
        return sp.diags(1.0 / np.maximum(norms, 1e-12)).astype(np.float32) @ vectors

    def _scores(self, vectors: sp.csr_matrix, owners: np.ndarray | None) -> np.ndarray:
        """Sum of the top-``k`` neighbours' cosine similarities per item."""
        lengths = np.diff(self.sessions_.indptr).astype(np.float32)
        normalised = sp.diags(1.0 / np.sqrt(np.maximum(lengths, 1.0))) @ self.sessions_
        similarity = (vectors @ normalised.T).tocoo()
        rows, cols, values = similarity.row, similarity.col, similarity.data
        if owners is not None:  # a known user's own sessions would only echo their history
            keep = self.session_user_[cols] != owners[rows]
            rows, cols, values = rows[keep], cols[keep], values[keep]
        similar = sp.csr_matrix((values, (rows, cols)), shape=(vectors.shape[0], self.sessions_.shape[0]))
        neighbours = prune_rows(similar, self.config.k)  # the k most similar, ties to the lower index
        scores = (neighbours @ self.sessions_).toarray().astype(np.float32)
        return scores + self.tie_break_[None, :]

    def _score_users(self, users: np.ndarray) -> np.ndarray:
        users = np.asarray(users, dtype=np.int64)
        scores = self.fallback_scores(len(users))
        has = np.diff(self.seq_indptr_)[users] > 0
        if has.any():
            vectors = self._history_vectors(self.seq_indptr_, self.seq_items_, users[has])
            scores[has] = self._scores(vectors, users[has].astype(np.int32))
        return scores

    def _score_histories(self, histories: list[np.ndarray]) -> np.ndarray:
        indptr, items = histories_to_csr(histories, self.n_items_)
        scores = self.fallback_scores(len(histories))
        has = np.flatnonzero(np.diff(indptr) > 0)
        if len(has):
            scores[has] = self._scores(self._history_vectors(indptr, items, has), None)
        return scores
