"""content_vectors: cosine over the items' precomputed vectors, alone or beside TF-IDF."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusionrec.data.dataset import Dataset
from fusionrec.models.base import Recommender
from fusionrec.models.registry import create_model

# Two "looks": a* items point one way, b* items the other; new items have a vector and no events.
VECTORS = {
    "a1": [1.0, 0.1, 0.0],
    "a2": [0.9, 0.0, 0.1],
    "a_new": [1.0, 0.05, 0.05],
    "b1": [0.0, 1.0, 0.1],
    "b2": [0.1, 0.9, 0.0],
    "b_new": [0.0, 1.0, 0.0],
    "plain": None,
}


def _dataset() -> Dataset:
    rows = [
        ("ann", "a1", 1), ("ann", "a2", 2), ("bob", "b1", 3), ("bob", "b2", 4),
        ("cid", "a1", 5), ("cid", "b1", 6), ("dan", "plain", 7), ("dan", "a2", 8),
    ]  # fmt: skip
    events = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).assign(event_type="view")
    events["timestamp"] = pd.to_datetime(events["timestamp"], unit="s", utc=True)
    items = pd.DataFrame(
        {
            "item_id": list(VECTORS),
            # Titles say nothing about the look: TF-IDF alone cannot tell a* from b*.
            "title": ["Framed print"] * len(VECTORS),
            "vectors": [None if v is None else {"image_embedding": v} for v in VECTORS.values()],
        }
    )
    return Dataset.from_frame(events, items)


def _index(dataset: Dataset, item: str) -> int:
    return int(dataset.items.index([item])[0])


def test_new_items_with_only_a_vector_get_similar_items_and_users() -> None:
    dataset = _dataset()
    model = create_model("content_vectors").fit(dataset)
    neighbours, scores = model.similar_items(
        np.array([_index(dataset, "a_new"), _index(dataset, "b_new")]), k=2
    )
    names = [[str(dataset.items.id(np.array([i]))[0]) for i in row if i >= 0] for row in neighbours]
    assert set(names[0]) == {"a1", "a2"} and set(names[1]) == {"b1", "b2"}
    assert (scores[:, 0] > 0.5).all()
    # ann used a* items: of the two new items she is shown a_new first; bob the other way round.
    users = dataset.users.index(["ann", "bob"])
    items, _ = model.recommend(users, k=dataset.n_items)
    new = {_index(dataset, "a_new"), _index(dataset, "b_new")}
    first_new = [next(int(i) for i in row if int(i) in new) for row in items]
    assert first_new == [_index(dataset, "a_new"), _index(dataset, "b_new")]


def test_tfidf_alone_cannot_tell_the_looks_apart_but_the_combination_can() -> None:
    dataset = _dataset()
    tfidf = create_model("content_tfidf").fit(dataset)
    both = create_model("content_vectors", tfidf_weight=1.0).fit(dataset)
    item = np.array([_index(dataset, "a_new")])
    _, tfidf_scores = tfidf.similar_items(item, k=6)
    assert np.allclose(tfidf_scores[0][np.isfinite(tfidf_scores[0])], tfidf_scores[0][0])  # all tie
    neighbours, _ = both.similar_items(item, k=2)
    assert {str(x) for x in dataset.items.id(neighbours[0])} == {"a1", "a2"}


def test_save_load_and_a_catalogue_without_vectors(tmp_path: Path) -> None:
    dataset = _dataset()
    model = create_model("content_vectors", vectors=["image_embedding"]).fit(dataset)
    users = np.arange(dataset.n_users)
    loaded = Recommender.load(model.save(tmp_path / "m"))
    np.testing.assert_array_equal(loaded.recommend(users, k=3)[0], model.recommend(users, k=3)[0])
    with pytest.raises(ValueError, match="no item carries the vector 'clip'"):
        create_model("content_vectors", vectors=["clip"]).fit(dataset)
    bare = Dataset.from_frame(pd.DataFrame({"user_id": ["u"], "item_id": ["x"], "event_type": ["view"],
                                            "timestamp": [pd.Timestamp("2024-01-01", tz="UTC")]}))  # fmt: skip
    items, _ = create_model("content_vectors").fit(bare).recommend(np.array([0]), k=1, exclude=None)
    assert items.tolist() == [[0]]  # popularity fills where no item has a vector


def test_an_item_known_only_by_its_vectors_gets_neighbours_after_training(tmp_path: Path) -> None:
    dataset = _dataset()
    model = create_model("content_vectors", tfidf_weight=1.0).fit(dataset)
    loaded = Recommender.load(model.save(tmp_path / "m"))
    for fitted in (model, loaded):
        items, scores = fitted.similar_to_vectors({"image_embedding": [0.95, 0.05, 0.0]}, k=4)
        names = [str(x) for x in dataset.items.id(items[items >= 0])]
        assert set(names[:3]) == {"a1", "a2", "a_new"}
        assert (np.diff(scores[items >= 0]) <= 0).all()
    # The neighbours are those of a catalogue item with the same vector.
    same, _ = model.similar_to_vectors({"image_embedding": VECTORS["b_new"]}, k=3)
    assert same[0] == _index(dataset, "b_new")
    with pytest.raises(ValueError, match="vector 'image_embedding' has 2 values, expected 3"):
        model.similar_to_vectors({"image_embedding": [1.0, 0.0]})
    assert (model.similar_to_vectors({"other": [1.0]}, k=2)[0] == -1).all()  # nothing to compare
