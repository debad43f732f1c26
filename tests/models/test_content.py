"""Content models: TF-IDF and tag/category matching, sentence embeddings, cold-start items."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusionrec.data.dataset import Dataset
from fusionrec.models.base import Recommender
from fusionrec.models.content import (
    SentenceEmbeddingRecommender,
    TfidfContentRecommender,
    embedding_texts,
    item_tokens,
)

CATALOGUE = pd.DataFrame(
    {
        "item_id": ["tea1", "tea2", "tea3", "shoe1", "shoe2", "shoe3", "mug", "blank"],
        "title": [
            "Green tea leaves",
            "Jasmine green tea",
            "Sencha green tea (new)",
            "Trail running shoes",
            "Road running shoes",
            "Running shoes for kids (new)",
            "Ceramic mug",
            None,
        ],
        "description": [None, "fragrant", "fresh harvest", "grip", "light", "small sizes", "holds tea", None],
        "category": [
            "Food > Tea",
            "Food > Tea",
            "Food > Tea",
            "Sport > Shoes",
            "Sport > Shoes",
            "Sport > Shoes",
            "Home > Kitchen",
            None,
        ],
        "brand": ["Leafy", "Leafy", "Leafy", "Stride", "Stride", "Stride", None, None],
        "tags": [["organic"], ["organic"], [], ["outdoor"], [], ["outdoor"], None, None],
    }
)


def events(rows: list[tuple[str, str, str, int]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "timestamp"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], unit="s", utc=True)
    return frame


@pytest.fixture(scope="module")
def shop() -> Dataset:
    """tea3 and shoe3 are new: in the catalogue, never interacted with."""
    rows = [
        ("alice", "tea1", "view", 1),
        ("alice", "tea2", "purchase", 2),
        ("bob", "shoe1", "view", 3),
        ("bob", "shoe2", "view", 4),
        ("carol", "shoe1", "view", 5),
        ("carol", "tea1", "purchase", 6),
        ("dave", "tea2", "purchase", 7),
        ("dave", "shoe2", "view", 8),
        ("erin", "mug", "view", 9),
    ]
    return Dataset.from_frame(events(rows), items=CATALOGUE)


def index(dataset: Dataset, *ids: str) -> np.ndarray:
    return dataset.items.index(list(ids))


def user(dataset: Dataset, uid: str) -> np.ndarray:
    return dataset.users.index([uid]).astype(np.int64)


def test_new_items_are_recommended_from_their_content(shop: Dataset) -> None:
    model = TfidfContentRecommender().fit(shop)
    assert model.popularity_[index(shop, "tea3", "shoe3")].sum() == 0  # truly cold
    items, scores = model.recommend(user(shop, "alice"), k=2)
    assert items[0, 0] == index(shop, "tea3")[0], "the unseen tea is alice's best match"
    items, _ = model.recommend(user(shop, "bob"), k=1)
    assert items[0, 0] == index(shop, "shoe3")[0]
    assert scores[0, 0] > 0


def test_event_weights_and_recency_shape_the_profile(shop: Dataset) -> None:
    carol = user(shop, "carol")  # viewed shoe1, then purchased tea1 (purchase weighs 8, view 1)
    weighted = TfidfContentRecommender().fit(shop).recommend(carol, k=1)[0][0, 0]
    assert weighted in index(shop, "tea2", "tea3")
    # Binary weighting with a strong recency decay: the newest event (the purchase) still wins...
    recent = TfidfContentRecommender(weighting="binary", recency_half_life=0.1).fit(shop)
    assert recent.recommend(carol, k=1)[0][0, 0] in index(shop, "tea2", "tea3")
    # ...and with last_n=1 the profile only knows dave's newest event (a shoe view).
    dave = user(shop, "dave")
    last = TfidfContentRecommender(last_n=1).fit(shop)
    assert last.recommend(dave, k=1)[0][0, 0] in index(shop, "shoe1", "shoe3")


def test_scores_are_cosines_and_unscored_items_fall_below(shop: Dataset) -> None:
    model = TfidfContentRecommender().fit(shop)
    scores = model.score(user(shop, "alice"))[0]
    tea = index(shop, "tea1", "tea2", "tea3")
    blank = index(shop, "blank")[0]
    assert np.all((scores[tea] > 0) & (scores[tea] <= 1.0 + 1e-5))
    assert scores[blank] < 0, "an item with no features gets a fill score below every match"


def test_category_prefixes_match_partially() -> None:
    features = pd.DataFrame(
        {"category": ["Food > Tea > Green", "Food > Tea > Black", "Food > Coffee", "Toys"]}
    )
    tokens = item_tokens(features)["category"]
    assert tokens[0] == ["food", "food > tea", "food > tea > green"]
    ds = Dataset.from_frame(
        events([("u", "0", "view", 1)]),
        items=features.assign(item_id=["0", "1", "2", "3"]),
    )
    model = TfidfContentRecommender().fit(ds)
    items, scores = model.similar_items(np.array([0]), k=3)
    assert list(items[0]) == [1, 2, -1], "deeper shared path ranks higher; unrelated items are not similar"
    assert scores[0, 0] > scores[0, 1] > 0


def test_tags_attributes_and_odd_formats_are_tokens() -> None:
    features = pd.DataFrame(
        {
            "tags": [["attr:12", "attr:7"], '["Vegan", "gift"]', "red, sale", np.array(["x"]), None],
            "attributes": [None, '{"colour": "Red", "size": 3, "nested": {"a": 1}}', "not json", None, None],
        }
    )
    tags = item_tokens(features)["tags"]
    assert tags[0] == ["attr:12", "attr:7"]
    assert tags[1] == ["vegan", "gift", "colour=red", "size=3"]
    assert tags[2] == ["red", "sale"]
    assert tags[3] == ["x"]
    assert tags[4] == []


def test_attribute_ids_only_catalogue_like_amazon_beauty() -> None:
    features = pd.DataFrame(
        {
            "item_id": ["1", "2", "3", "4"],
            "tags": [["attr:1", "attr:2"], ["attr:1", "attr:2"], ["attr:3"], None],
        }
    )
    ds = Dataset.from_frame(events([("u", "1", "rating", 1), ("v", "3", "rating", 2)]), items=features)
    model = TfidfContentRecommender().fit(ds)
    items, _ = model.recommend(ds.users.index(["u"]).astype(np.int64), k=3)
    assert items[0, 0] == ds.items.index(["2"])[0]


def test_history_scoring_equals_user_scoring(shop: Dataset) -> None:
    model = TfidfContentRecommender(weighting="binary", recency_half_life=2.0).fit(shop)
    bob = user(shop, "bob")
    history = index(shop, "shoe1", "shoe2")
    np.testing.assert_allclose(model.score_histories([history])[0], model.score(bob)[0], rtol=1e-6)
    items, _ = model.recommend_from_history([history, np.array([], dtype=np.int32)], k=2)
    assert not set(items[0]) & set(history)
    popular = np.argsort(-model.popularity_, kind="stable")[:2]
    np.testing.assert_array_equal(items[1], popular)


def test_save_load_round_trip_with_features(shop: Dataset, tmp_path: Path) -> None:
    model = TfidfContentRecommender(ngram_max=2, popularity_weight=0.01).fit(shop)
    model.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    users = np.arange(shop.n_users)
    np.testing.assert_array_equal(loaded.score(users), model.score(users))
    np.testing.assert_array_equal(
        loaded.similar_items(np.arange(3), 3)[0],  # type: ignore[attr-defined]
        model.similar_items(np.arange(3), 3)[0],
    )


def test_field_weights_switch_matching_off(shop: Dataset) -> None:
    only_brand = TfidfContentRecommender(text_weight=0, category_weight=0, tag_weight=0).fit(shop)
    items, _ = only_brand.similar_items(index(shop, "mug"), k=3)
    assert (items == -1).all(), "the mug has no brand, so nothing is similar by brand alone"


def test_bad_input_is_rejected(shop: Dataset) -> None:
    model = TfidfContentRecommender().fit(shop)
    with pytest.raises(IndexError, match="item index 99"):
        model.similar_items(np.array([0, 99]))
    with pytest.raises(ValueError):
        TfidfContentRecommender(recency_half_life=0)


# --- sentence embeddings ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def synonym_shop() -> Dataset:
    """Synonyms without shared words: only an embedding model can match them."""
    catalogue = pd.DataFrame(
        {
            "item_id": ["a", "b", "c", "d"],
            "title": ["jogging sneakers", "herbal infusion", "running shoes", "chamomile tea"],
        }
    )
    return Dataset.from_frame(events([("u", "a", "view", 1), ("v", "b", "view", 2)]), items=catalogue)


def test_embedding_text_joins_every_field() -> None:
    text = embedding_texts(CATALOGUE.iloc[[0]].reset_index(drop=True))[0]
    assert text == "Green tea leaves. Food > Tea. leafy. organic"
    assert embedding_texts(CATALOGUE.iloc[[7]].reset_index(drop=True)) == [""]


def test_embedding_model_matches_meaning_offline(synonym_shop: Dataset, tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers", reason="content_embedding needs fusionrec[deep]")
    model = SentenceEmbeddingRecommender().fit(synonym_shop)
    assert model.item_vectors_.shape == (4, 384)
    items, _ = model.similar_items(synonym_shop.items.index(["a", "b"]), k=1)
    assert synonym_shop.items.id(items[:, 0]).tolist() == ["c", "d"]
    recs, _ = model.recommend(synonym_shop.users.index(["u"]).astype(np.int64), k=1)
    assert synonym_shop.items.id(recs[0])[0] == "c"
    model.save(tmp_path / "emb")
    loaded = Recommender.load(tmp_path / "emb")
    np.testing.assert_array_equal(loaded.score(np.arange(2)), model.score(np.arange(2)))
