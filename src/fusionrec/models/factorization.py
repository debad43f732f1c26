"""Matrix factorisation for implicit feedback through the `implicit` library (its public API).

`IALS` wraps ``implicit.cpu.als.AlternatingLeastSquares`` (Hu, Koren & Volinsky 2008) and `BPR`
wraps ``implicit.cpu.bpr.BayesianPersonalizedRanking`` (Rendle et al. 2009). Both fit on the
user x item matrix (confidence ``1 + alpha * x`` for iALS), with BLAS limited to one thread
during the fit (implicit parallelises itself; a threaded BLAS underneath only oversubscribes),
and keep the learned factors as numpy arrays: ``score = user_factors @ item_factors.T``.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import scipy.sparse as sp
from pydantic import Field
from threadpoolctl import threadpool_limits

from fusionrec.data.dataset import Dataset
from fusionrec.models.base import ModelConfig, Recommender

log = logging.getLogger(__name__)


class _ImplicitConfig(ModelConfig):
    factors: int = Field(default=64, ge=1)
    regularization: float = Field(default=0.01, ge=0)
    iterations: int = Field(default=15, ge=1)
    num_threads: int = Field(default=0, ge=0)  # implicit's own threads; 0 = all cores
    binary: bool = True  # presence (True) or summed event weights (False) as the signal
    show_progress: bool = False


class IALSConfig(_ImplicitConfig):
    alpha: float = Field(default=1.0, gt=0)  # confidence = 1 + alpha * x
    use_cg: bool = True  # conjugate-gradient solver (fast) or exact Cholesky


class BPRConfig(_ImplicitConfig):
    learning_rate: float = Field(default=0.01, gt=0)
    iterations: int = Field(default=100, ge=1)
    # BPR's SGD is Hogwild-parallel: one thread keeps a fixed seed reproducible.
    num_threads: int = Field(default=1, ge=0)
    verify_negative_samples: bool = True


class _ImplicitAdapter(Recommender):
    """Shared fit/score/save for implicit models; subclasses build the estimator."""

    config: _ImplicitConfig

    def _estimator(self) -> Any:
        raise NotImplementedError

    def _fit(self, dataset: Dataset) -> None:
        user_items = sp.csr_matrix(dataset.matrix(binary=self.config.binary), dtype=np.float32)
        with threadpool_limits(limits=1, user_api="blas"):  # implicit checks BLAS when built
            estimator = self._estimator()
            estimator.fit(user_items, show_progress=self.config.show_progress)
        self.user_factors_ = np.ascontiguousarray(estimator.user_factors, dtype=np.float32)
        self.item_factors_ = np.ascontiguousarray(estimator.item_factors, dtype=np.float32)
        log.info("%s: fitted %d x %d factors", self.name, *self.user_factors_.shape)

    def _score_users(self, users: np.ndarray) -> np.ndarray:
        return self.user_factors_[users] @ self.item_factors_.T


class IALS(_ImplicitAdapter):
    """Implicit alternating least squares (weighted matrix factorisation)."""

    name = "ials"
    Config = IALSConfig
    config: IALSConfig

    def _estimator(self) -> Any:
        from implicit.cpu.als import AlternatingLeastSquares

        cfg = self.config
        return AlternatingLeastSquares(
            factors=cfg.factors,
            regularization=cfg.regularization,
            alpha=cfg.alpha,
            iterations=cfg.iterations,
            use_cg=cfg.use_cg,
            num_threads=cfg.num_threads,
            random_state=cfg.seed,
        )


class BPR(_ImplicitAdapter):
    """Bayesian personalised ranking (pairwise SGD); implicit adds an item-bias column."""

    name = "bpr"
    Config = BPRConfig
    config: BPRConfig

    def _estimator(self) -> Any:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        cfg = self.config
        return BayesianPersonalizedRanking(
            factors=cfg.factors,
            learning_rate=cfg.learning_rate,
            regularization=cfg.regularization,
            iterations=cfg.iterations,
            num_threads=cfg.num_threads,
            verify_negative_samples=cfg.verify_negative_samples,
            random_state=cfg.seed,
        )
