"""The one-visitor scoring paths give what the general paths give, to the bit.

Serving scores one live history per request: sources whose history scores are ``rows @ W``
share one history matrix and rank a sparse score row by its stored entries (`weighted_top`,
`sparse_top_k`), and the co-visitation feature of the recent items is gathered without the
sparse product (`_product_gather`). A ranker reads these values, so "close" is not enough: each
is compared with the dense or scipy computation it replaces.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from fusionrec.data.dataset import Dataset
from fusionrec.fusion.candidates import _dense_scores, sparse_top_k, weighted_top
from fusionrec.fusion.features import _gather, _product_gather, _recent_matrix
from fusionrec.models.base import top_k
from fusionrec.models.ease import EASE
from fusionrec.models.graph_walk import RP3Beta
from fusionrec.models.itemtools import request_history_matrix
from fusionrec.models.knn import ItemKNN


def _random_sparse(rng: np.random.Generator, shape: tuple[int, int], density: float) -> sp.csr_matrix:
    matrix = sp.random(*shape, density=density, format="csr", random_state=rng, dtype=np.float32)
    # Ties (equal values, the lower item wins) and negative entries (ranked below absent zeros).
    matrix.data = np.round(matrix.data * 4).astype(np.float32) - 1.0
    return matrix


@pytest.mark.parametrize("k", [1, 5, 20, 60])
def test_sparse_top_k_equals_top_k_of_the_dense_rows(k: int) -> None:
    rng = np.random.default_rng(3)
    dense = _random_sparse(rng, (40, 50), 0.3).toarray()
    dense[7, 3] = np.nan  # a NaN row is ranked densely, NaN as -inf
    dense[8] = 0.0  # no positive entry at all
    scores = sp.csr_matrix(dense)
    mask = _random_sparse(rng, (40, 50), 0.1)
    mask.data[:5] = 0.0  # an explicit zero in the mask does not mask
    for masked in (None, mask):
        expected = dense.copy()
        if masked is not None:
            rows, cols = masked.nonzero()
            expected[rows, cols] = -np.inf
        items, values = sparse_top_k(scores, k, masked)
        want_items, want_values = top_k(expected, k)
        np.testing.assert_array_equal(items, want_items)
        np.testing.assert_array_equal(values, want_values)


@pytest.mark.parametrize("model", [EASE(l2=50.0), ItemKNN(neighbours=20), RP3Beta(neighbours=20)])
def test_weighted_top_equals_the_dense_history_scores(shop: Dataset, model: object) -> None:
    fitted = model.fit(shop)  # type: ignore[attr-defined]
    rng = np.random.default_rng(5)
    histories = [rng.integers(shop.n_items, size=size).astype(np.int32) for size in (1, 3, 12, 40)]
    rows = request_history_matrix(histories, shop.n_items, binary=True)
    users = np.full(len(histories), -1)
    for exclude in (rows, None):
        for k in (5, 50):
            got = weighted_top(rows, fitted.history_weights(), k, exclude)
            want = top_k(_dense_scores(fitted, users, exclude, histories), k)
            np.testing.assert_array_equal(got[0], want[0])
            np.testing.assert_array_equal(got[1], want[1])


def test_product_gather_equals_the_scipy_product_to_the_bit() -> None:
    rng = np.random.default_rng(11)
    # Weights like the recent-items matrix (1, 1/2, 1/3 ...) against counts like co-visitation.
    left = sp.random(30, 80, density=0.06, format="csr", random_state=rng, dtype=np.float32)
    left.data = (1.0 / rng.integers(1, 6, size=left.nnz)).astype(np.float32)
    right = sp.random(80, 80, density=0.2, format="csr", random_state=rng, dtype=np.float32)
    right.data = rng.random(right.nnz, dtype=np.float32) * 7
    rows = rng.integers(30, size=500)
    cols = rng.integers(80, size=500)
    want = _gather((left @ right).tocsr(), rows, cols, cache=False)
    got = _product_gather(left, right, rows, cols)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    assert (got > 0).any()  # the check compared real values, not only zeros


def test_recent_matrix_equals_scipys_duplicate_sums() -> None:
    rng = np.random.default_rng(2)
    for repeats in (6, 40):  # few distinct items: items two and three times among the last five
        lengths = rng.integers(0, 9, size=6)
        indptr = np.r_[0, np.cumsum(lengths)]
        sequence = rng.integers(repeats, size=indptr[-1]).astype(np.int32)
        matrix, last = _recent_matrix(indptr, sequence, 40, 5)
        user_of = np.repeat(np.arange(6), lengths)
        from_end = indptr[1:][user_of] - np.arange(len(sequence))
        keep = from_end <= 5
        want = sp.csr_matrix(
            (1.0 / from_end[keep].astype(np.float32), (user_of[keep], sequence[keep])), shape=(6, 40)
        )
        want.sum_duplicates()
        assert matrix.dtype == np.float32 and matrix.has_sorted_indices
        np.testing.assert_array_equal(matrix.toarray(), want.toarray())
        assert last.tolist() == [
            int(sequence[e - 1]) if n else -1 for e, n in zip(indptr[1:], lengths, strict=True)
        ]
