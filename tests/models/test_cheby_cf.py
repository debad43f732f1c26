"""ChebyCF: the Chebyshev recursion against the filter built from an eigendecomposition."""

from __future__ import annotations

import numpy as np
import pytest

from fusionrec.models.cheby_cf import ChebyCF, chebyshev_coefficients, plateau_response
from models.test_graph import random_dataset


def test_chebyshev_coefficients_interpolate_the_plateau_at_the_nodes() -> None:
    order, flatness = 8, 1.5
    coefficients = chebyshev_coefficients(order, flatness)
    nodes = np.cos(np.pi * (np.arange(order + 1) + 0.5) / (order + 1))
    polynomial = np.polynomial.chebyshev.chebval(nodes, coefficients)
    np.testing.assert_allclose(polynomial, plateau_response(nodes, flatness), atol=1e-12)
    # A low-pass: near 1 for the smoothest signals (x = -1), near 0 for the roughest (x = 1).
    ends = np.polynomial.chebyshev.chebval(np.array([-1.0, 0.0, 1.0]), coefficients)
    np.testing.assert_allclose(ends, [1.0, 0.5, 0.0], atol=0.06)


def dense_cheby_cf(matrix: np.ndarray, order: int, flatness: float, alpha: float, rank: int, beta: float):
    """ChebyCF's scores from the eigendecomposition of the scaled Laplacian (no recursion)."""
    du, di = matrix.sum(1), matrix.sum(0)
    normalised = np.where(du > 0, du, np.inf)[:, None] ** -0.5 * matrix * np.where(di > 0, di, np.inf) ** -0.5
    laplacian = np.eye(matrix.shape[1]) - 2.0 * normalised.T @ normalised
    eigenvalues, eigenvectors = np.linalg.eigh(laplacian)
    response = np.polynomial.chebyshev.chebval(
        np.clip(eigenvalues, -1, 1), chebyshev_coefficients(order, flatness)
    )
    item_filter = eigenvectors @ np.diag(response) @ eigenvectors.T
    _, _, vt = np.linalg.svd(normalised)
    ideal = vt[:rank].T @ vt[:rank]
    pre = np.where(di > 0, np.maximum(di, 1) ** -beta, 0.0)
    post = np.where(di > 0, np.maximum(di, 1) ** beta, 0.0)
    signal = matrix * pre[None, :]
    return (signal @ item_filter + alpha * signal @ ideal) * post[None, :]


@pytest.mark.parametrize(("order", "alpha", "beta"), [(8, 0.2, 0.4), (3, 0.0, 0.5), (1, 0.5, 0.0)])
def test_cheby_cf_matches_the_spectral_formula(order: int, alpha: float, beta: float) -> None:
    dataset = random_dataset()
    model = ChebyCF(order=order, alpha=alpha, beta=beta, n_components=5, svd_solver="arpack").fit(dataset)
    matrix = dataset.matrix(binary=True).toarray().astype(np.float64)
    expected = dense_cheby_cf(matrix, order, 1.5, alpha, 5, beta)
    np.testing.assert_allclose(model._score_users(np.arange(dataset.n_users)), expected, rtol=1e-4, atol=1e-5)


def test_cheby_cf_scores_a_history_like_the_user_and_survives_save_load(tmp_path) -> None:  # type: ignore[no-untyped-def]
    dataset = random_dataset()
    model = ChebyCF(n_components=5).fit(dataset)
    matrix = dataset.matrix(binary=True)
    users = np.array([0, 7, 19])
    histories = [matrix[u].indices[::-1] for u in users]
    np.testing.assert_allclose(model.score_histories(histories), model.score(users), rtol=1e-5, atol=1e-6)
    loaded = ChebyCF.load(model.save(tmp_path / "cheby"))
    np.testing.assert_allclose(loaded.score(users), model.score(users), rtol=1e-6)


def test_cheby_cf_threads_give_the_same_scores(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import fusionrec.models.cheby_cf as cheby_cf

    monkeypatch.setattr(cheby_cf, "_CHUNK", 7)  # several chunks for the pool to share
    dataset = random_dataset()
    users = np.arange(dataset.n_users)
    single = ChebyCF(n_components=5).fit(dataset).score(users)
    threaded = ChebyCF(n_components=5, num_threads=2).fit(dataset).score(users)
    np.testing.assert_array_equal(threaded, single)
