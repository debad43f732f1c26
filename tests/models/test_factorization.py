"""iALS and BPR adapters over `implicit`."""

from __future__ import annotations

import numpy as np
import pytest
from implicit.cpu.als import AlternatingLeastSquares
from threadpoolctl import threadpool_limits

from fusionrec.models.base import Recommender
from fusionrec.models.factorization import BPR, IALS
from models.classic_data import matrix_dataset


def test_ials_equals_bare_implicit_on_the_same_matrix() -> None:
    dataset, _ = matrix_dataset(n_users=30, n_items=12, seed=10)
    params = {"factors": 6, "regularization": 0.5, "alpha": 3.0, "iterations": 5}
    model = IALS(**params, num_threads=1, seed=3).fit(dataset)
    with threadpool_limits(1, "blas"):
        bare = AlternatingLeastSquares(**params, num_threads=1, random_state=3)
        bare.fit(dataset.matrix(binary=True), show_progress=False)
    np.testing.assert_allclose(model.user_factors_, bare.user_factors, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        model.score(np.arange(5)), bare.user_factors[:5] @ bare.item_factors.T, rtol=1e-5, atol=1e-5
    )


def test_ials_fits_the_observed_cells() -> None:
    dataset, x = matrix_dataset(n_users=40, n_items=10, seed=11)
    model = IALS(factors=10, regularization=0.01, alpha=20.0, iterations=15, num_threads=1).fit(dataset)
    scores = model.score(np.arange(40))
    assert scores[x > 0].mean() > scores[x == 0].mean() + 0.4


@pytest.mark.parametrize("cls", [IALS, BPR])
def test_factors_are_numpy_state_and_round_trip(cls: type[Recommender], tmp_path) -> None:
    dataset, _ = matrix_dataset(seed=12)
    model = cls(factors=4, iterations=3).fit(dataset)
    assert isinstance(model.user_factors_, np.ndarray) and model.user_factors_.dtype == np.float32
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.score(np.arange(4)), model.score(np.arange(4)))


def test_bpr_is_reproducible_with_one_thread_and_seed() -> None:
    dataset, _ = matrix_dataset(seed=13)
    first = BPR(factors=4, iterations=20, seed=5).fit(dataset).user_factors_
    second = BPR(factors=4, iterations=20, seed=5).fit(dataset).user_factors_
    other = BPR(factors=4, iterations=20, seed=6).fit(dataset).user_factors_
    np.testing.assert_array_equal(first, second)
    assert not np.allclose(first, other)
