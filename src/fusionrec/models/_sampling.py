"""Uniform negative sampling for implicit-feedback training (BPR, BCE with sampled negatives)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp


class NegativeSampler:
    """Draws, for each given user, one item uniformly among the items the user has NOT interacted with.

    Exact and vectorised, with no rejection loop: the user's ``r``-th free item is ``r + j``, where
    ``j`` counts the user's positives ``p_k`` (sorted, rank ``k``) with ``p_k - k <= r``. One
    `np.searchsorted` over all positives does this for every draw at once. A user who has
    interacted with every item gets a uniformly drawn (positive) item.
    """

    def __init__(self, matrix: sp.csr_matrix) -> None:
        matrix = sp.csr_matrix(matrix)
        matrix.sort_indices()
        self.n_items = matrix.shape[1]
        self.indptr = matrix.indptr.astype(np.int64)
        rows = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(self.indptr))
        rank = np.arange(len(rows), dtype=np.int64) - self.indptr[rows]
        # user * n_items + (item - rank): non-decreasing, so one global searchsorted serves every user
        self._shifted = rows * self.n_items + matrix.indices.astype(np.int64) - rank

    def sample(self, rng: np.random.Generator, users: np.ndarray) -> np.ndarray:
        users = np.asarray(users, dtype=np.int64)
        start, end = self.indptr[users], self.indptr[users + 1]
        free = self.n_items - (end - start)
        draw = np.floor(rng.random(len(users)) * np.maximum(free, 1)).astype(np.int64)
        below = np.searchsorted(self._shifted, users * self.n_items + draw, side="right") - start
        items = draw + below
        full = free <= 0
        items[full] = rng.integers(0, self.n_items, size=int(full.sum()))
        return items
