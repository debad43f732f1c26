"""RP3beta: a three-step random walk item -> user -> item, with popularity penalised.

Paudel et al. 2017, "Updatable, accurate, diverse, and scalable recommendations for interactive
applications"; the form used by Dacrema et al. 2019:
``W = (P_iu^alpha @ P_ui^alpha) / pop(j)^beta``, top ``neighbours`` per row, ``score = X @ W``.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from fusionrec.data.dataset import Dataset
from fusionrec.models.base import ModelConfig, Recommender
from fusionrec.models.itemtools import history_row, request_history_matrix, row_terms
from fusionrec.models.knn import strongest_in_rows, top_k_rows

log = logging.getLogger(__name__)


class RP3BetaConfig(ModelConfig):
    alpha: float = Field(default=1.0, gt=0)  # exponent of the transition probabilities
    beta: float = Field(default=0.5, ge=0)  # popularity penalty of the destination item
    neighbours: int = Field(default=200, ge=1)
    normalize: bool = False  # rescale each kept row of W to sum 1
    binary: bool = True


def _row_normalise(matrix: sp.csr_matrix) -> sp.csr_matrix:
    sums = np.asarray(matrix.sum(axis=1)).ravel()
    return (sp.diags(1.0 / np.where(sums > 0, sums, 1.0)) @ matrix).tocsr()


class RP3Beta(Recommender):
    """Item-to-item random-walk model with a popularity penalty (see module docstring)."""

    name = "rp3beta"
    Config = RP3BetaConfig
    config: RP3BetaConfig
    supports_history = True
    item_to_item = True

    def _fit(self, dataset: Dataset) -> None:
        cfg = self.config
        self.user_items_ = dataset.matrix(binary=cfg.binary)
        p_ui = _row_normalise(self.user_items_).astype(np.float32)
        p_iu = _row_normalise(self.user_items_.T.tocsr()).astype(np.float32)
        if cfg.alpha != 1.0:
            p_ui.data **= cfg.alpha
            p_iu.data **= cfg.alpha
        degree = np.asarray((self.user_items_ > 0).sum(axis=0)).ravel().astype(np.float64)
        penalty = np.where(degree > 0, np.power(np.maximum(degree, 1.0), -cfg.beta), 0.0).astype(np.float32)
        n = self.n_items_

        def block(start: int, stop: int) -> np.ndarray:
            walk = (p_iu[start:stop] @ p_ui).toarray()
            walk *= penalty[None, :]
            walk[np.arange(stop - start), np.arange(start, stop)] = 0.0
            return walk

        weights = top_k_rows(block, n, n, cfg.neighbours)
        self.weights_ = _row_normalise(weights).astype(np.float32) if cfg.normalize else weights
        log.info("rp3beta: %d items, %d weights kept", n, self.weights_.nnz)

    def _score_users(self, users: np.ndarray) -> np.ndarray:
        return np.asarray((self.user_items_[users] @ self.weights_).toarray(), dtype=np.float32)

    def _score_histories(self, histories: list[np.ndarray]) -> np.ndarray:
        return np.asarray(
            (request_history_matrix(histories, self.n_items_, binary=True) @ self.weights_).toarray(),
            dtype=np.float32,
        )

    def history_weights(self) -> sp.csr_matrix:
        """``weights_``: `_score_histories` is the binary history rows times it (see `Recommender`)."""
        return self.weights_

    def history_terms(
        self, user: int, history: np.ndarray | None, item: int
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Each history item's term ``x_uj * weights_[j, item]`` of the score (see `Recommender`)."""
        row = history_row(self.user_items_, user, history)
        return None if row is None else row_terms(row, self.weights_, item)

    def similar_items(self, items: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` items a walk from each of ``items`` reaches most: ``(items int32[n, k], scores)``."""
        self._check_fitted()
        return strongest_in_rows(self.weights_, items, k)
