"""Neighbourhood models: item-KNN and user-KNN over the interaction matrix.

Similarities (cosine, Jaccard, asymmetric cosine) are sparse matrix products computed one block
of rows at a time; each row keeps only its ``neighbours`` largest entries, so memory stays
``O(n * neighbours)`` however dense the co-occurrences are.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Literal, Self

import numpy as np
import scipy.sparse as sp
from pydantic import Field, model_validator

from fusionrec.data.dataset import Dataset
from fusionrec.models.base import ModelConfig, ModelError, Recommender
from fusionrec.models.itemtools import history_row, request_history_matrix, row_terms, top_neighbours

log = logging.getLogger(__name__)

Similarity = Literal["cosine", "jaccard", "asymmetric_cosine"]
Weighting = Literal["none", "tfidf", "bm25"]
BLOCK_BYTES = 128 * 2**20  # dense scratch per block of similarity rows


# --- shared building blocks (also used by graph_walk) ----------------------------------------


def top_k_rows(block: Callable[[int, int], np.ndarray], n_rows: int, n_cols: int, k: int) -> sp.csr_matrix:
    """CSR ``n_rows x n_cols`` keeping the ``k`` largest positive entries of each row.

    ``block(start, stop)`` returns the dense float32 rows ``start:stop``; rows are requested in
    blocks sized so the dense scratch stays near `BLOCK_BYTES`.
    """
    k = max(0, min(k, n_cols))
    step = max(1, min(n_rows, BLOCK_BYTES // max(4 * n_cols, 1)))
    data, indices, counts = [], [], []
    for start in range(0, n_rows, step):
        stop = min(start + step, n_rows)
        dense = np.asarray(block(start, stop), dtype=np.float32)
        if k == 0:
            counts.append(np.zeros(stop - start, dtype=np.int64))
            continue
        cols = (
            np.argpartition(-dense, k - 1, axis=1)[:, :k]
            if k < n_cols
            else np.tile(np.arange(n_cols), (stop - start, 1))
        )
        values = np.take_along_axis(dense, cols, axis=1)
        keep = values > 0
        data.append(values[keep])
        indices.append(cols[keep])
        counts.append(keep.sum(axis=1))
    indptr = np.zeros(n_rows + 1, dtype=np.int64)
    np.cumsum(np.concatenate(counts) if counts else np.zeros(0, dtype=np.int64), out=indptr[1:])
    matrix = sp.csr_matrix(
        (
            np.concatenate(data) if data else np.zeros(0, dtype=np.float32),
            np.concatenate(indices) if indices else np.zeros(0, dtype=np.int64),
            indptr,
        ),
        shape=(n_rows, n_cols),
        dtype=np.float32,
    )
    matrix.sort_indices()
    return matrix


def weight_features(
    matrix: sp.csr_matrix, weighting: Weighting, k1: float = 1.2, b: float = 0.75
) -> sp.csr_matrix:
    """Reweight an ``objects x features`` matrix by feature rarity (TF-IDF or Okapi BM25).

    ``idf(f) = log(1 + n_objects / df(f))`` (always positive). BM25 also saturates each value and
    normalises by the object's length relative to the mean length.
    """
    if weighting == "none":
        return matrix
    coo = matrix.tocoo()
    df = np.bincount(coo.col, minlength=matrix.shape[1]).astype(np.float64)
    idf = np.log1p(matrix.shape[0] / np.maximum(df, 1.0))
    values = coo.data.astype(np.float64)
    if weighting == "tfidf":
        weighted = np.sqrt(values) * idf[coo.col]
    else:
        lengths = np.asarray(matrix.sum(axis=1)).ravel()
        norm = (1.0 - b) + b * lengths / max(lengths.mean(), 1e-12)
        weighted = values * (k1 + 1.0) / (k1 * norm[coo.row] + values) * idf[coo.col]
    return sp.csr_matrix((weighted.astype(np.float32), (coo.row, coo.col)), shape=matrix.shape)


def similarity_matrix(
    objects: sp.csr_matrix,
    *,
    similarity: Similarity,
    neighbours: int,
    shrink: float = 0.0,
    asymmetric_alpha: float = 0.5,
) -> sp.csr_matrix:
    """Top-``neighbours`` similarity between the rows of ``objects`` (``objects x features``).

    cosine: ``a.b / (|a| |b| + shrink)``; asymmetric cosine: ``a.b / (|a|^(2 alpha) |b|^(2 (1-alpha))
    + shrink)``; Jaccard (on the binarised rows): ``|a & b| / (|a| + |b| - |a & b| + shrink)``.
    The diagonal (an object with itself) is excluded.
    """
    objects = sp.csr_matrix(objects, dtype=np.float32)
    if similarity == "jaccard":
        objects = objects.copy()
        objects.data = np.ones_like(objects.data)
        sizes = np.diff(objects.indptr).astype(np.float32)
    else:
        sizes = np.asarray(objects.multiply(objects).sum(axis=1)).ravel().astype(np.float32)  # |a|^2
    transposed = objects.T.tocsr()
    n = objects.shape[0]

    def block(start: int, stop: int) -> np.ndarray:
        dots = (objects[start:stop] @ transposed).toarray()
        rows = sizes[start:stop, None]
        if similarity == "cosine":
            denominator = np.sqrt(rows) * np.sqrt(sizes)[None, :] + shrink
        elif similarity == "asymmetric_cosine":
            denominator = rows**asymmetric_alpha * sizes[None, :] ** (1.0 - asymmetric_alpha) + shrink
        else:
            denominator = rows + sizes[None, :] - dots + shrink
        out = np.divide(dots, denominator, out=np.zeros_like(dots), where=denominator > 0)
        out[np.arange(stop - start), np.arange(start, stop)] = 0.0
        return out

    return top_k_rows(block, n, n, neighbours)


# --- models ----------------------------------------------------------------------------------


class KNNConfig(ModelConfig):
    similarity: Similarity = "cosine"
    weighting: Weighting = "none"  # reweight the features (users for item-KNN, items for user-KNN)
    shrink: float = Field(default=0.0, ge=0)  # damps similarities resting on little overlap
    neighbours: int = Field(default=100, ge=1)  # top-k neighbours kept per row
    asymmetric_alpha: float = Field(default=0.5, ge=0, le=1)
    bm25_k1: float = Field(default=1.2, gt=0)
    bm25_b: float = Field(default=0.75, ge=0, le=1)
    binary: bool = True  # learn from presence (True) or from summed event weights (False)

    @model_validator(mode="after")
    def _jaccard_is_on_sets(self) -> Self:
        if self.similarity == "jaccard" and self.weighting != "none":
            raise ValueError("jaccard similarity compares sets of interactions; use weighting='none'")
        return self


class ItemKNN(Recommender):
    """Item-based collaborative filtering: ``score(u, j) = sum_i x_ui * sim(i, j)``.

    ``sim`` keeps, for each item ``i``, its top ``neighbours`` most similar items.
    """

    name = "item_knn"
    Config = KNNConfig
    config: KNNConfig
    supports_history = True
    item_to_item = True

    def _fit(self, dataset: Dataset) -> None:
        cfg = self.config
        self.user_items_ = dataset.matrix(binary=cfg.binary)
        items = weight_features(self.user_items_.T.tocsr(), cfg.weighting, cfg.bm25_k1, cfg.bm25_b)
        self.similarity_ = similarity_matrix(
            items,
            similarity=cfg.similarity,
            neighbours=cfg.neighbours,
            shrink=cfg.shrink,
            asymmetric_alpha=cfg.asymmetric_alpha,
        )
        log.info("item_knn: %d items, %d similarities kept", self.n_items_, self.similarity_.nnz)

    def _score_users(self, users: np.ndarray) -> np.ndarray:
        return np.asarray((self.user_items_[users] @ self.similarity_).toarray(), dtype=np.float32)

    def _score_histories(self, histories: list[np.ndarray]) -> np.ndarray:
        rows = request_history_matrix(histories, self.n_items_, binary=True)
        return np.asarray((rows @ self.similarity_).toarray(), dtype=np.float32)

    def history_weights(self) -> sp.csr_matrix:
        """``similarity_``: `_score_histories` is the binary history rows times it (see `Recommender`)."""
        return self.similarity_

    def history_terms(
        self, user: int, history: np.ndarray | None, item: int
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Each history item's term ``x_uj * similarity_[j, item]`` of the score (see `Recommender`)."""
        row = history_row(self.user_items_, user, history)
        return None if row is None else row_terms(row, self.similarity_, item)

    def similar_items(self, items: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` most similar items to each of ``items``: ``(items int32[n, k], scores)``."""
        self._check_fitted()
        return strongest_in_rows(self.similarity_, items, k)


class UserKNN(Recommender):
    """User-based collaborative filtering: ``score(u, j) = sum_v sim(u, v) * x_vj``.

    ``sim`` keeps, for each user, the top ``neighbours`` most similar users.
    """

    name = "user_knn"
    Config = KNNConfig
    config: KNNConfig

    def _fit(self, dataset: Dataset) -> None:
        cfg = self.config
        self.user_items_ = dataset.matrix(binary=cfg.binary)
        users = weight_features(self.user_items_, cfg.weighting, cfg.bm25_k1, cfg.bm25_b)
        self.similarity_ = similarity_matrix(
            users,
            similarity=cfg.similarity,
            neighbours=cfg.neighbours,
            shrink=cfg.shrink,
            asymmetric_alpha=cfg.asymmetric_alpha,
        )
        log.info("user_knn: %d users, %d similarities kept", self.n_users_, self.similarity_.nnz)

    def _score_users(self, users: np.ndarray) -> np.ndarray:
        return np.asarray((self.similarity_[users] @ self.user_items_).toarray(), dtype=np.float32)


def strongest_in_rows(weights: sp.csr_matrix, items: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each item's ``k`` largest positive entries of its row of an item x item ``weights`` matrix
    (``(items int32[n, k], scores)``, -1 padded); `ModelError` for an index out of range."""
    n_items = weights.shape[0]
    items = np.asarray(items, dtype=np.int64)
    if ((items < 0) | (items >= n_items)).any():
        raise ModelError(f"item indices must be in [0, {n_items})")
    k = min(k, n_items)
    if weights.format != "csr" or not weights.has_canonical_format:
        return top_neighbours(weights[items].toarray(), items, k)
    # Only the rows' stored entries can be positive: rank those instead of a dense row of every
    # item (what `top_neighbours` returns: best first, ties to the lower index, -1 / -inf padded).
    out_items = np.full((len(items), k), -1, dtype=np.int32)
    out_scores = np.full((len(items), k), -np.inf, dtype=np.float32)
    for r, item in enumerate(items.tolist()):
        start, end = weights.indptr[item], weights.indptr[item + 1]
        cols, values = weights.indices[start:end], weights.data[start:end].astype(np.float32)
        keep = (values > 0) & (cols != item)
        cols, values = cols[keep], values[keep]
        order = np.lexsort((cols, -values))[:k]
        out_items[r, : len(order)], out_scores[r, : len(order)] = cols[order], values[order]
    return out_items, out_scores
