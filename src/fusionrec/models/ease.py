"""EASE: the closed-form shallow autoencoder (Steck 2019, "Embarrassingly Shallow Autoencoders").

``P = (X^T X + lambda I)^-1``, ``B = -P / diag(P)`` (column-wise) with ``diag(B) = 0``,
``score = X @ B``. The dense item x item matrices are float32 and built, inverted (Cholesky,
LAPACK ``spotrf``/``spotri``) and scaled in place, so peak memory is about one
``n_items x n_items`` float32 matrix (6.7 GB for Gowalla's 40,981 items) plus one block.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp
from pydantic import Field
from scipy.linalg import lapack

from fusionrec.data.dataset import Dataset
from fusionrec.models.base import ModelConfig, ModelError, Recommender
from fusionrec.models.itemtools import history_row, request_history_matrix, row_terms

log = logging.getLogger(__name__)
BLOCK_BYTES = 256 * 2**20


class EASEConfig(ModelConfig):
    l2: float = Field(default=500.0, gt=0)  # lambda: the L2 penalty added to the Gram diagonal
    binary: bool = True


def gram_matrix(matrix: sp.csr_matrix) -> np.ndarray:
    """Dense ``X^T X`` (float32), filled one block of columns at a time."""
    n = matrix.shape[1]
    csc = matrix.tocsc().astype(np.float32)
    transposed = csc.T.tocsr()
    gram = np.empty((n, n), dtype=np.float32)
    step = max(1, BLOCK_BYTES // max(4 * n, 1))
    for start in range(0, n, step):
        stop = min(start + step, n)
        gram[:, start:stop] = (transposed @ csc[:, start:stop]).toarray()
    return gram


def inverse_spd_inplace(matrix: np.ndarray) -> np.ndarray:
    """Invert a symmetric positive definite C-ordered float32 matrix in place (Cholesky).

    LAPACK works on the Fortran view ``matrix.T`` (same memory, the matrix being symmetric);
    ``spotri`` leaves the inverse in one triangle, mirrored into the other block by block.
    """
    fortran = matrix.T  # F-contiguous view of the same symmetric matrix
    factor, info = lapack.spotrf(fortran, lower=0, clean=0, overwrite_a=1)
    if info != 0:
        raise ModelError(f"EASE: Gram matrix is not positive definite (LAPACK info {info}); raise l2")
    inverse, info = lapack.spotri(factor, lower=0, overwrite_c=1)
    if info != 0:
        raise ModelError(f"EASE: inversion failed (LAPACK info {info})")
    if not np.shares_memory(inverse, matrix):  # LAPACK had to copy: write back
        fortran[...] = inverse
    # The upper triangle of the Fortran view is the lower triangle of `matrix`: mirror it up.
    n = matrix.shape[0]
    step = max(1, BLOCK_BYTES // max(4 * n, 1))
    for start in range(0, n, step):
        stop = min(start + step, n)
        diagonal = matrix[start:stop, start:stop]
        diagonal[...] = np.tril(diagonal) + np.tril(diagonal, -1).T
        matrix[start:stop, stop:] = matrix[stop:, start:stop].T
    return matrix


class EASE(Recommender):
    """Item-item linear model in closed form (see module docstring)."""

    name = "ease"
    Config = EASEConfig
    config: EASEConfig
    supports_history = True

    def _fit(self, dataset: Dataset) -> None:
        self.user_items_ = dataset.matrix(binary=self.config.binary)
        n = self.n_items_
        log.info("ease: Gram matrix %d x %d float32 (%.1f GB)", n, n, 4 * n * n / 1e9)
        weights = gram_matrix(self.user_items_)
        weights[np.diag_indices(n)] += np.float32(self.config.l2)
        inverse_spd_inplace(weights)
        diagonal = np.diag(weights).copy()
        weights /= -diagonal[None, :]
        weights[np.diag_indices(n)] = 0.0
        self.weights_ = weights

    def _score_users(self, users: np.ndarray) -> np.ndarray:
        return np.asarray(self.user_items_[users] @ self.weights_, dtype=np.float32)

    def _score_histories(self, histories: list[np.ndarray]) -> np.ndarray:
        return np.asarray(
            request_history_matrix(histories, self.n_items_, binary=True) @ self.weights_, dtype=np.float32
        )

    def history_weights(self) -> np.ndarray:
        """``weights_``: `_score_histories` is the binary history rows times it (see `Recommender`)."""
        return self.weights_

    def history_terms(
        self, user: int, history: np.ndarray | None, item: int
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Each history item's term ``x_uj * weights_[j, item]`` of the score (see `Recommender`)."""
        row = history_row(self.user_items_, user, history)
        return None if row is None else row_terms(row, self.weights_, item)
