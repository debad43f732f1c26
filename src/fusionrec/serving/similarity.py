"""Item-to-item neighbours for serving: similar items, bought together, and live-session candidates.

When the model lists item-to-item neighbours itself (`Recommender.item_to_item`: item-kNN, RP3beta,
co-visitation ...) its `similar_items` answers; otherwise neighbours are the cosine of item
co-occurrence in the model's training interactions.
Bought-together uses purchase baskets (session, else user) read from the store. Rows are computed
on demand for the items actually asked about, and memoised (bounded).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import scipy.sparse as sp

from fusionrec.models.base import top_k

# A model's item-to-item list, such as `similar_items`: (items, k) -> (items int32[n, k], scores).
NeighbourLookup = Callable[[np.ndarray, int], tuple[np.ndarray, np.ndarray]]

MAX_USERS_PER_ITEM = 5_000  # co-occurrence of very popular items: a deterministic sample of their users
# A row computed within this much thread CPU on average (over at least CHEAP_AFTER rows) is cheap
# enough to compute on the event loop: less than the worker-thread hop it would otherwise take.
CHEAP_ROW_S = 0.0003
CHEAP_AFTER = 20


class Cooccurrence:
    """Cosine similarity of item columns of a binary (rows x items) matrix, one item at a time."""

    def __init__(self, matrix: sp.csr_matrix) -> None:
        self.rows = sp.csr_matrix(matrix, dtype=np.float32)
        self.rows.data[:] = 1.0
        self.columns = self.rows.tocsc()
        self.count = np.diff(self.columns.indptr).astype(np.float64)
        self.n_items = self.rows.shape[1]

    def row(self, item: int) -> np.ndarray:
        """float32[n_items]: cosine(item, j) for every j (0 for itself and items never co-occurring)."""
        if not 0 <= item < self.n_items or self.count[item] == 0:
            return np.zeros(self.n_items, dtype=np.float32)
        users = self.columns.indices[self.columns.indptr[item] : self.columns.indptr[item + 1]][
            :MAX_USERS_PER_ITEM
        ]
        together = np.bincount(self.rows[users].indices, minlength=self.n_items).astype(np.float64)
        together[item] = 0.0
        scores = together / np.sqrt(np.maximum(self.count, 1.0) * self.count[item])
        return scores.astype(np.float32)


class ItemNeighbours:
    """Memoised top neighbours per item from a model's list (``lookup``) or from co-occurrence."""

    def __init__(
        self,
        lookup: NeighbourLookup | None,
        cooccurrence: Cooccurrence | None,
        *,
        k: int = 50,
        cache: int = 50_000,
    ) -> None:
        self.lookup = lookup
        self.cooccurrence = cooccurrence
        self.k = k
        self.cache_size = cache
        self._cache: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()
        self._computed = 0  # rows computed, and the thread CPU they took (`cheap`)
        self._seconds = 0.0

    @property
    def available(self) -> bool:
        return self.lookup is not None or self.cooccurrence is not None

    def cheap(self, item: int) -> bool:
        """Whether `neighbours` of ``item`` is cheap: memoised, or rows have been computed in under
        `CHEAP_ROW_S` of CPU on average (a model's stored item x item list, not a dense pass or a
        co-occurrence count over thousands of users). Measured, not assumed per model."""
        with self._lock:
            if item in self._cache:
                return True
            return self._computed >= CHEAP_AFTER and self._seconds < CHEAP_ROW_S * self._computed

    def neighbours(self, item: int) -> tuple[np.ndarray, np.ndarray]:
        """``(items int32[<=k], scores float32)`` best first; empty when the item has none."""
        with self._lock:
            hit = self._cache.get(item)
            if hit is not None:
                self._cache.move_to_end(item)
                return hit
        started = time.thread_time()
        if self.lookup is not None:
            items, scores = self.lookup(np.array([item]), self.k)
            items, scores = items[0], scores[0]
        elif self.cooccurrence is not None:
            row = self.cooccurrence.row(item)
            items, scores = top_k(np.where(row > 0, row, -np.inf)[None, :], self.k)
            items, scores = items[0], scores[0]
        else:
            items, scores = np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float32)
        valid = (items >= 0) & np.isfinite(scores) & (items != item)
        result = (items[valid].astype(np.int32), scores[valid].astype(np.float32))
        with self._lock:
            self._computed += 1
            self._seconds += time.thread_time() - started
            self._cache[item] = result
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return result

    def from_history(self, items: list[int], decay: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
        """Candidates from recent items (newest last), each item's neighbours weighted by recency."""
        found: dict[int, float] = {}
        weight = 1.0
        for item in reversed(items):
            neighbour_items, neighbour_scores = self.neighbours(item)
            top = float(neighbour_scores.max()) if len(neighbour_scores) else 1.0
            for j, s in zip(
                neighbour_items.tolist(), (neighbour_scores / (top or 1.0)).tolist(), strict=True
            ):
                found[j] = found.get(j, 0.0) + weight * s
            weight *= decay
        if not found:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        return np.fromiter(found, dtype=np.int64, count=len(found)), np.fromiter(
            found.values(), dtype=np.float32, count=len(found)
        )
