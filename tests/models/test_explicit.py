"""SVD and SVD++ for explicit ratings."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fusionrec.data.dataset import Dataset
from fusionrec.models.base import ModelError, Recommender
from fusionrec.models.explicit import SVD, SVDpp, rating_triples


def rating_frame(seed: int = 0, n_users: int = 60, n_items: int = 30) -> pd.DataFrame:
    """Two taste groups: a user rates items of its own half 4-5 and the other half 1-2."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        for i in rng.choice(n_items, size=12, replace=False):
            liked = (u < n_users // 2) == (i < n_items // 2)
            rows.append(
                (f"u{u:03d}", f"i{i:03d}", float(rng.integers(4, 6) if liked else rng.integers(1, 3)))
            )
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "quantity"])
    frame["event_type"] = "rating"
    frame["timestamp"] = pd.to_datetime(1_700_000_000 + np.arange(len(frame)), unit="s", utc=True)
    return frame


@pytest.fixture(scope="module")
def ratings() -> Dataset:
    return Dataset.from_frame(rating_frame())


def test_rating_triples_keep_the_last_rating_and_default_to_one() -> None:
    frame = pd.DataFrame(
        {
            "user_id": ["a", "a", "b"],
            "item_id": ["x", "x", "y"],
            "event_type": "rating",
            "quantity": [2.0, 5.0, None],
            "timestamp": pd.to_datetime([1, 2, 3], unit="s", utc=True),
        }
    )
    users, items, values = rating_triples(Dataset.from_frame(frame))
    assert sorted(zip(users.tolist(), items.tolist(), values.tolist(), strict=True)) == [
        (0, 0, 5.0),
        (1, 1, 1.0),
    ]


@pytest.mark.parametrize("cls", [SVD, SVDpp])
def test_learns_the_taste_groups(cls: type[SVD], ratings: Dataset) -> None:
    model = cls(factors=8, epochs=40, learning_rate=0.01).fit(ratings)
    users, items, values = rating_triples(ratings)
    predicted = model.predict_ratings(users, items)
    assert predicted.dtype == np.float32
    assert np.sqrt(np.mean((predicted - values) ** 2)) < 0.6
    # unseen pairs: liked half predicted above the other half
    user_group = ratings.users.ids < "u030"
    item_group = ratings.items.ids < "i015"
    scores = model.score(np.arange(ratings.n_users))
    liked = user_group[:, None] == item_group[None, :]
    assert scores[liked].mean() > scores[~liked].mean() + 1.5
    top, _ = model.recommend(np.arange(ratings.n_users), k=3)
    assert (liked[np.arange(ratings.n_users)[:, None], top]).mean() > 0.9


def test_predictions_are_clipped_and_unknowns_get_baselines(ratings: Dataset) -> None:
    model = SVD(factors=4, epochs=5).fit(ratings)
    predicted = model.predict_ratings(np.array([0, -1, 0, -1]), np.array([0, 0, 999, -1]))
    assert ((predicted >= 1.0) & (predicted <= 5.0)).all()
    assert predicted[3] == pytest.approx(model.global_mean_, rel=1e-6)
    assert predicted[1] == pytest.approx(np.clip(model.global_mean_ + model.item_bias_[0], 1, 5), rel=1e-5)
    with pytest.raises(ModelError, match="shape"):
        model.predict_ratings(np.array([0, 1]), np.array([0]))


def test_svdpp_round_trips_and_is_seeded(ratings: Dataset, tmp_path) -> None:
    model = SVDpp(factors=4, epochs=3).fit(ratings)
    again = SVDpp(factors=4, epochs=3).fit(ratings)
    np.testing.assert_array_equal(model.user_vectors_, again.user_vectors_)
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    pairs = (np.array([0, 5, 7]), np.array([1, 2, 3]))
    np.testing.assert_array_equal(loaded.predict_ratings(*pairs), model.predict_ratings(*pairs))


def test_svdpp_lazy_updates_equal_naive_per_rating_sgd() -> None:
    """The O(k)-per-rating SVD++ epoch equals the textbook loop over every y_j."""
    from fusionrec.models.explicit import _svdpp_epoch

    rng = np.random.default_rng(0)
    n_users, n_items, k = 4, 6, 3
    indptr = np.array([0, 3, 5, 5, 8])
    items = np.array([0, 2, 4, 1, 2, 0, 3, 5])
    ratings = rng.integers(1, 6, len(items)).astype(np.float32)
    user_order = np.array([3, 0, 2, 1])
    rating_order = np.array([2, 0, 1, 4, 3, 7, 5, 6])
    init = [rng.normal(0, 0.1, s) for s in [(n_users,), (n_items,), (n_users, k), (n_items, k), (n_items, k)]]
    fast = [a.copy() for a in init]
    _svdpp_epoch(indptr, items, ratings, user_order, rating_order, 3.0, *fast, 0.05, 0.1)
    bu, bi, p, q, y = [a.copy() for a in init]
    lr, reg = 0.05, 0.1
    for u in user_order:
        rated = items[indptr[u] : indptr[u + 1]]
        norm = 1 / np.sqrt(len(rated)) if len(rated) else 0.0
        for pos in rating_order[indptr[u] : indptr[u + 1]]:
            i, r = items[pos], ratings[pos]
            implicit = norm * y[rated].sum(0)
            err = r - (3.0 + bu[u] + bi[i] + q[i] @ (p[u] + implicit))
            bu[u] += lr * (err - reg * bu[u])
            bi[i] += lr * (err - reg * bi[i])
            pu, qi = p[u].copy(), q[i].copy()
            p[u] += lr * (err * qi - reg * pu)
            q[i] += lr * (err * (pu + implicit) - reg * qi)
            y[rated] += lr * (err * norm * qi - reg * y[rated])
    for got, want in zip(fast, [bu, bi, p, q, y], strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
