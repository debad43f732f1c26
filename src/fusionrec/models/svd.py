"""PureSVD (Cremonesi et al. 2010): a truncated SVD of the interaction matrix, ``X ~ U S V^T``.

``score(u) = x_u V V^T = (U S)_u V^T``; the SVD is scikit-learn's seeded randomized SVD.
"""

from __future__ import annotations

import logging

import numpy as np
from pydantic import Field
from sklearn.utils.extmath import randomized_svd

from fusionrec.data.dataset import Dataset
from fusionrec.models.base import ModelConfig, Recommender
from fusionrec.models.itemtools import request_history_matrix

log = logging.getLogger(__name__)


class PureSVDConfig(ModelConfig):
    factors: int = Field(default=64, ge=1)
    n_iter: int = Field(default=7, ge=1)  # power iterations of the randomized SVD
    binary: bool = True


class PureSVD(Recommender):
    """Truncated-SVD recommender (see module docstring)."""

    name = "pure_svd"
    Config = PureSVDConfig
    config: PureSVDConfig
    supports_history = True

    def _fit(self, dataset: Dataset) -> None:
        matrix = dataset.matrix(binary=self.config.binary).astype(np.float64)
        factors = max(1, min(self.config.factors, *matrix.shape))
        u, s, vt = randomized_svd(
            matrix, n_components=factors, n_iter=self.config.n_iter, random_state=self.config.seed
        )
        self.user_factors_ = (u * s).astype(np.float32)
        self.item_factors_ = vt.T.astype(np.float32)
        log.info("pure_svd: %d factors, top singular value %.3f", factors, float(s[0]))

    def _score_users(self, users: np.ndarray) -> np.ndarray:
        return self.user_factors_[users] @ self.item_factors_.T

    def _score_histories(self, histories: list[np.ndarray]) -> np.ndarray:
        rows = request_history_matrix(histories, self.n_items_, binary=True)
        folded = rows @ self.item_factors_  # fold-in: x V
        return np.asarray(folded @ self.item_factors_.T, dtype=np.float32)
