"""PureSVD reconstructs the interaction matrix from its top singular vectors."""

from __future__ import annotations

import numpy as np

from fusionrec.models.svd import PureSVD
from models.classic_data import matrix_dataset


def test_pure_svd_is_the_rank_k_projection() -> None:
    dataset, x = matrix_dataset(n_users=30, n_items=12, seed=8)
    k = 4
    _, _, vt = np.linalg.svd(x.astype(np.float64), full_matrices=False)
    expected = x @ vt[:k].T @ vt[:k]
    model = PureSVD(factors=k, n_iter=20).fit(dataset)
    np.testing.assert_allclose(model.score(np.arange(30)), expected, rtol=1e-3, atol=1e-4)
    # fold-in of a known user's history gives that user's scores
    np.testing.assert_allclose(
        model.score_histories([np.flatnonzero(x[3])])[0], expected[3], rtol=1e-3, atol=1e-4
    )


def test_full_rank_pure_svd_reproduces_the_matrix() -> None:
    dataset, x = matrix_dataset(n_users=20, n_items=6, seed=9)
    model = PureSVD(factors=6, n_iter=20).fit(dataset)
    np.testing.assert_allclose(model.score(np.arange(20)), x, atol=1e-4)
