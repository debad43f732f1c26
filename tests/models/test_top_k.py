"""The ranking step every model shares: deterministic top-k with the documented tie rule."""

from __future__ import annotations

import numpy as np

from fusionrec.models.base import top_k


def reference_top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Stable sort by descending score: ties go to the lower column; -inf slots become -1."""
    order = np.argsort(-scores, axis=1, kind="stable")[:, : min(k, scores.shape[1])]
    values = np.take_along_axis(scores, order, axis=1)
    return np.where(np.isneginf(values), -1, order)


def test_top_k_equals_a_stable_full_sort_on_heavily_tied_scores() -> None:
    rng = np.random.default_rng(0)
    for _ in range(300):
        n_rows, n_cols, k = rng.integers(1, 20), rng.integers(1, 30), rng.integers(1, 35)
        scores = rng.integers(0, 4, (n_rows, n_cols)).astype(np.float32)
        scores[rng.random((n_rows, n_cols)) < 0.2] = -np.inf
        items, values = top_k(scores, k)
        np.testing.assert_array_equal(items, reference_top_k(scores, k))
        assert np.all(values[:, :-1] >= values[:, 1:])


def test_nan_scores_rank_last_and_never_break_the_shape() -> None:
    items, values = top_k(np.array([[np.nan, 2.0, 1.0]], dtype=np.float32), 3)
    assert items.tolist() == [[1, 2, -1]]
    assert values[0, :2].tolist() == [2.0, 1.0]


def test_top_k_of_a_sparse_sources_row_full_of_zeros_matches_a_full_sort() -> None:
    # A sparse source's dense row: a few hundred positive scores among thousands of zeros (and
    # -inf where excluded), the case the k-th value is selected for from the front of the row.
    rng = np.random.default_rng(1)
    for _ in range(50):
        scores = np.zeros((2, 3000), dtype=np.float32)
        for row in scores:
            row[rng.choice(3000, int(rng.integers(0, 300)), replace=False)] = (
                rng.integers(1, 5, 1)[0] * rng.random()
            )
        scores[rng.random(scores.shape) < 0.05] = -np.inf
        k = int(rng.integers(1, 400))
        items, _ = top_k(scores, k)
        np.testing.assert_array_equal(items, reference_top_k(scores, k))
