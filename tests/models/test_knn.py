"""Item-KNN / user-KNN similarities, weighting and neighbour pruning."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from pydantic import ValidationError

from fusionrec.models.itemtools import top_neighbours
from fusionrec.models.knn import (
    ItemKNN,
    UserKNN,
    similarity_matrix,
    strongest_in_rows,
    top_k_rows,
    weight_features,
)
from models.classic_data import matrix_dataset


def dense_reference(x: np.ndarray, similarity: str, shrink: float, alpha: float = 0.5) -> np.ndarray:
    dots = x @ x.T
    if similarity == "jaccard":
        b = (x > 0).astype(float)
        inter = b @ b.T
        size = b.sum(1)
        out = inter / (size[:, None] + size[None, :] - inter + shrink)
    else:
        sq = (x * x).sum(1)
        if similarity == "cosine":
            out = dots / (np.sqrt(sq)[:, None] * np.sqrt(sq)[None, :] + shrink)
        else:
            out = dots / (sq[:, None] ** alpha * sq[None, :] ** (1 - alpha) + shrink)
    out = np.nan_to_num(out)  # an empty row divides 0 by 0
    np.fill_diagonal(out, 0.0)
    return out


@pytest.mark.parametrize("similarity", ["cosine", "jaccard", "asymmetric_cosine"])
@pytest.mark.parametrize("shrink", [0.0, 3.0])
def test_similarity_matches_dense_formula(similarity: str, shrink: float) -> None:
    rng = np.random.default_rng(0)
    x = (rng.random((30, 50)) < 0.2) * rng.integers(1, 4, (30, 50)).astype(float)
    x[0] = 0.0  # an empty row has no neighbours
    got = similarity_matrix(
        sp.csr_matrix(x), similarity=similarity, neighbours=30, shrink=shrink, asymmetric_alpha=0.3
    ).toarray()
    np.testing.assert_allclose(got, dense_reference(x, similarity, shrink, 0.3), rtol=1e-5, atol=1e-6)
    assert not got[0].any()


def test_top_k_rows_keeps_the_largest_positive_entries() -> None:
    dense = np.array([[0.1, 0.9, 0.0, 0.5], [0.0, 0.0, 0.0, 0.2], [-1.0, 3.0, 2.0, 1.0]], dtype=np.float32)
    kept = top_k_rows(lambda a, b: dense[a:b], 3, 4, 2).toarray()
    np.testing.assert_allclose(kept, [[0, 0.9, 0, 0.5], [0, 0, 0, 0.2], [0, 3.0, 2.0, 0]])


def test_weighting_downweights_common_features() -> None:
    x = sp.csr_matrix(np.array([[1, 1, 0], [1, 0, 1], [1, 0, 0]], dtype=np.float32))
    for weighting in ("tfidf", "bm25"):
        w = weight_features(x, weighting).toarray()
        assert w[0, 0] < w[0, 1], weighting  # feature 0 is in every row: lowest idf
        assert (w[x.toarray() == 0] == 0).all()
    assert weight_features(x, "none") is x


def test_item_knn_scores_are_user_row_times_similarity() -> None:
    dataset, x = matrix_dataset(seed=3)
    model = ItemKNN(neighbours=5, shrink=1.0).fit(dataset)
    sim = model.similarity_.toarray()
    assert ((sim > 0).sum(axis=1) <= 5).all()
    np.testing.assert_allclose(model.score(np.arange(4)), x[:4] @ sim, rtol=1e-5, atol=1e-6)
    # item-to-item and history scoring use the same similarity
    items, _ = model.similar_items(np.array([2]), k=3)
    assert items[0, 0] == np.argmax(sim[2])
    np.testing.assert_allclose(model.score_histories([np.flatnonzero(x[1])])[0], x[1] @ sim, rtol=1e-5)


def test_user_knn_scores_are_neighbour_rows() -> None:
    dataset, x = matrix_dataset(seed=4)
    model = UserKNN(neighbours=3, similarity="jaccard").fit(dataset)
    sim = model.similarity_.toarray()
    assert ((sim > 0).sum(axis=1) <= 3).all()
    np.testing.assert_allclose(model.score(np.arange(5)), sim[:5] @ x, rtol=1e-5, atol=1e-6)


def test_jaccard_with_weighting_is_rejected() -> None:
    with pytest.raises(ValidationError, match="jaccard"):
        ItemKNN(similarity="jaccard", weighting="bm25")
    with pytest.raises(ValidationError):
        UserKNN(neighbours=0)


def test_strongest_in_rows_equals_the_top_of_the_dense_rows() -> None:
    # From the rows' stored entries only: the same list as ranking a dense row of every item
    # (positive scores, the item itself left out, ties to the lower index, -1 padded).
    rng = np.random.default_rng(0)
    for seed in range(40):
        n = int(rng.integers(2, 300))
        weights = sp.random(
            n, n, density=float(rng.random() * 0.3), format="csr", dtype=np.float32, random_state=seed
        )
        weights.data = np.round(weights.data * 4) - 1  # ties, stored zeros and negative entries
        items = rng.integers(0, n, int(rng.integers(1, 20)))
        k = int(rng.integers(1, n + 5))
        got = strongest_in_rows(weights, items, k)
        expected = top_neighbours(weights[items].toarray(), items, min(k, n))
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])
