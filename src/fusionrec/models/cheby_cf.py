"""ChebyCF: a training-free graph filter with a smooth, full-spectrum response.

Kim et al. 2025, "Graph Spectral Filtering with Chebyshev Interpolation for Recommendation"
(SIGIR). GF-CF's linear part ``R~^T R~`` responds to each graph frequency in proportion to its
eigenvalue, and its ideal part keeps only the top singular vectors. ChebyCF instead applies a
"plateau" low-pass response to the whole spectrum of the item graph: about 1 for the smooth
signals, falling to 0 for the rough ones, with ``flatness`` setting how square the shoulder is.
The response is a degree-``order`` Chebyshev polynomial of the scaled Laplacian
``L~ = I - 2 R~^T R~`` (eigenvalues in [-1, 1]), so scoring is ``order`` applications of
``R~^T R~`` to the user's row, never the dense item x item matrix. On top of it:

* an ideal low-pass part, ``alpha * x V V^T`` over the top ``n_components`` right singular
  vectors ``V`` of ``R~`` (as in GF-CF);
* degree normalisation: the user's row is scaled by ``item degree ** -beta`` before filtering and
  the scores by ``item degree ** beta`` after, which sets how far the filter favours popular items.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from typing import Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from fusionrec.data.dataset import Dataset
from fusionrec.models.base import ModelConfig
from fusionrec.models.graph import RowFilterRecommender, normalised_interactions, top_right_singular_vectors

logger = logging.getLogger("fusionrec.models.cheby_cf")

# Users filtered at once: each holds a few dense item-length vectors per user.
_CHUNK = 1024


class ChebyCFConfig(ModelConfig):
    order: int = Field(8, ge=1)  # degree of the Chebyshev polynomial (paper, Gowalla: 8)
    flatness: float = Field(1.5, gt=0.0)  # plateau shape: larger = flatter top, steeper fall
    alpha: float = Field(0.2, ge=0.0)  # weight of the ideal low-pass part (0 = none)
    n_components: int = Field(512, ge=1)  # singular vectors of the ideal part (paper: 512)
    beta: float = Field(0.4, ge=0.0)  # degree normalisation power (0 = none)
    svd_solver: Literal["randomized", "arpack"] = "randomized"
    n_iter: int = Field(4, ge=0)  # power iterations of the randomized SVD
    num_threads: int = Field(1, ge=1)  # user chunks filtered in parallel (scipy's products free the GIL)


def plateau_response(x: np.ndarray, flatness: float) -> np.ndarray:
    """The target response at scaled-Laplacian eigenvalues ``x`` in [-1, 1]: 1 at -1, 0 at 1."""
    return 0.5 - 0.5 * np.sign(x) * np.abs(x) ** flatness


def chebyshev_coefficients(order: int, flatness: float) -> np.ndarray:
    """``c_0..c_order`` with ``sum_k c_k T_k(x)`` interpolating the plateau at Chebyshev nodes."""
    return np.polynomial.chebyshev.chebinterpolate(lambda x: plateau_response(x, flatness), order)


class ChebyCF(RowFilterRecommender):
    """Plateau low-pass filter of the item graph by Chebyshev recursion, plus an ideal low-pass part."""

    name = "cheby_cf"
    Config = ChebyCFConfig
    config: ChebyCFConfig

    def _fit(self, dataset: Dataset) -> None:
        cfg = self.config
        matrix = dataset.matrix(binary=True)
        self.interactions_ = matrix
        self.normalised_, item_degree = normalised_interactions(matrix)
        degree = np.where(item_degree > 0, item_degree, 1.0)
        self.pre_scale_ = np.where(item_degree > 0, degree**-cfg.beta, 0.0).astype(np.float32)
        self.post_scale_ = np.where(item_degree > 0, degree**cfg.beta, 0.0).astype(np.float32)
        self.coefficients_ = chebyshev_coefficients(cfg.order, cfg.flatness)
        rank = cfg.n_components if cfg.alpha > 0 else 0
        vt = top_right_singular_vectors(self.normalised_, rank, cfg.svd_solver, cfg.n_iter, cfg.seed)
        self.ideal_ = np.ascontiguousarray(vt.T, dtype=np.float32)  # [n_items, rank]
        logger.info(
            "cheby_cf: %d users x %d items, order %d, %d singular vectors",
            *matrix.shape,
            cfg.order,
            self.ideal_.shape[1],
        )

    @cached_property
    def _normalised_t(self) -> sp.csr_matrix:
        """``R~^T`` in CSR (derived, so not saved): scipy's fastest layout for sparse @ dense."""
        return self.normalised_.T.tocsr()

    def _laplacian(self, columns: np.ndarray) -> np.ndarray:
        """``L~ x = x - 2 R~^T (R~ x)`` for item-length column vectors ``x`` ``[n_items, b]``."""
        return columns - 2.0 * (self._normalised_t @ (self.normalised_ @ columns))

    def _filter(self, rows: sp.csr_matrix) -> np.ndarray:
        """Scores of interaction rows ``[b, n_items]``, ``_CHUNK`` rows at a time."""
        out = np.empty(rows.shape, dtype=np.float32)
        starts = range(0, rows.shape[0], _CHUNK)

        def fill(start: int) -> None:
            out[start : start + _CHUNK] = self._filter_chunk(rows[start : start + _CHUNK])

        if self.config.num_threads == 1 or len(starts) == 1:
            for start in starts:
                fill(start)
        else:
            with ThreadPoolExecutor(self.config.num_threads) as pool:
                list(pool.map(fill, starts))
        return out

    def _filter_chunk(self, rows: sp.csr_matrix) -> np.ndarray:
        signal = sp.csr_matrix(rows, dtype=np.float32) @ sp.diags(self.pre_scale_)
        c = self.coefficients_
        # Chebyshev recursion T_k = 2 L~ T_(k-1) - T_(k-2), on columns (scipy's fast sparse @ dense).
        previous = np.ascontiguousarray(signal.toarray().T)
        filtered = c[0] * previous
        current = self._laplacian(previous)
        filtered += c[1] * current
        for k in range(2, len(c)):
            previous, current = current, 2.0 * self._laplacian(current) - previous
            filtered += c[k] * current
        scores = filtered.T
        if self.ideal_.shape[1]:
            scores += self.config.alpha * ((signal @ self.ideal_) @ self.ideal_.T)
        return np.asarray(scores * self.post_scale_[None, :], dtype=np.float32)
