"""EASE closed form and the in-place SPD inverse."""

from __future__ import annotations

import numpy as np
import pytest

from fusionrec.models.base import ModelError
from fusionrec.models.ease import EASE, gram_matrix, inverse_spd_inplace
from models.classic_data import matrix_dataset


def test_inverse_is_in_place_and_correct() -> None:
    rng = np.random.default_rng(1)
    a = rng.random((70, 70))
    spd = (a @ a.T + 70 * np.eye(70)).astype(np.float32)
    work = spd.copy()
    out = inverse_spd_inplace(work)
    assert np.shares_memory(out, work)
    np.testing.assert_allclose(out, np.linalg.inv(spd.astype(np.float64)), rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(out, out.T)


def test_inverse_rejects_a_matrix_that_is_not_positive_definite() -> None:
    with pytest.raises(ModelError, match="positive definite"):
        inverse_spd_inplace(-np.eye(3, dtype=np.float32))


def test_ease_matches_the_closed_form() -> None:
    dataset, x = matrix_dataset(seed=7)
    l2 = 5.0
    np.testing.assert_allclose(gram_matrix(dataset.matrix(binary=True)), x.T @ x)
    p = np.linalg.inv(x.T.astype(np.float64) @ x + l2 * np.eye(x.shape[1]))
    b = -p / np.diag(p)[None, :]
    np.fill_diagonal(b, 0.0)
    model = EASE(l2=l2).fit(dataset)
    np.testing.assert_allclose(model.weights_, b, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(model.score(np.arange(4)), x[:4] @ b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        model.score_histories([np.flatnonzero(x[2])])[0], x[2] @ b, rtol=1e-4, atol=1e-5
    )
