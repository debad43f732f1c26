"""The vector_similarity ranking feature: present only with item vectors, a true cosine."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fusionrec.data.dataset import Dataset
from fusionrec.data.item_vectors import normalised_matrix
from fusionrec.fusion.candidates import union
from fusionrec.fusion.features import FeatureContext

VECTORS = {"a": [1.0, 0.0], "b": [0.8, 0.2], "c": [0.0, 1.0], "d": [0.1, 0.9], "e": None}


def _dataset(with_vectors: bool = True) -> Dataset:
    rows = [("u", "a", 1), ("u", "b", 2), ("v", "c", 3), ("v", "e", 4), ("w", "e", 5)]
    events = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).assign(event_type="view")
    events["timestamp"] = pd.to_datetime(events["timestamp"], unit="s", utc=True)
    cells = [None if v is None else {"image_embedding": v} for v in VECTORS.values()]
    items = pd.DataFrame(
        {"item_id": list(VECTORS), "vectors": cells if with_vectors else [None] * len(cells)}
    )
    return Dataset.from_frame(events, items)


def _candidates(dataset: Dataset, users: list[str]):  # every item for every user
    items = np.tile(np.arange(dataset.n_items, dtype=np.int32), (len(users), 1))
    scores = np.ones(items.shape, dtype=np.float32)
    return dataset.users.index(users), union({"x": (items, scores)}, len(users), dataset.n_items)


def test_vector_similarity_is_the_cosine_with_the_recent_items_mean() -> None:
    dataset = _dataset()
    ctx = FeatureContext.build(dataset)
    assert ctx.has_vectors
    names = FeatureContext.feature_names(["x"], vectors=True)
    assert names[-1] == "vector_similarity"
    users, cands = _candidates(dataset, ["u", "v", "w"])
    X = ctx.features(users, cands)
    assert X.shape == (len(cands), len(names))
    similarity = X[:, -1]
    unit = normalised_matrix(dataset)
    index = {item: int(dataset.items.index([item])[0]) for item in VECTORS}
    # u's recent items: b (newest, weight 1) and a (1/2); the profile is their weighted sum.
    profile = unit[index["b"]] + 0.5 * unit[index["a"]]
    profile /= np.linalg.norm(profile)
    row_u = cands.row == 0
    for item, value in zip(cands.item[row_u], similarity[row_u], strict=True):
        if VECTORS[str(dataset.items.id(np.array([item]))[0])] is None:
            assert np.isnan(value)  # the candidate has no vector: unknown
        else:
            assert np.isclose(value, unit[item] @ profile, rtol=1e-5)
    by_item = dict(zip(cands.item[row_u].tolist(), similarity[row_u].tolist(), strict=True))
    assert by_item[index["a"]] > 0.5 > by_item[index["c"]]  # like what u looked at, unlike the rest
    # w only saw an item without a vector: no profile, so no similarity.
    assert np.isnan(similarity[cands.row == 2]).all()
    # Live histories give the same values as the stored recent items.
    live = ctx.features(
        np.array([-1]), _candidates(dataset, ["u"])[1], histories=[np.array([index["a"], index["b"]])]
    )
    np.testing.assert_allclose(live[:, -1], similarity[row_u], equal_nan=True)


def test_no_vectors_no_feature_and_older_saves_still_load() -> None:
    plain = FeatureContext.build(_dataset(with_vectors=False))
    assert not plain.has_vectors
    users, cands = _candidates(_dataset(with_vectors=False), ["u"])
    assert plain.features(users, cands).shape[1] == len(FeatureContext.feature_names(["x"]))
    arrays = FeatureContext.build(_dataset()).to_arrays()
    older = {k: v for k, v in arrays.items() if k != "item_vectors"}  # saved before item vectors
    assert not FeatureContext.from_arrays(older).has_vectors
    assert FeatureContext.from_arrays(arrays).has_vectors
