"""Most popular (time decay), trending and popular-in-category."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from fusionrec.data.dataset import Dataset
from fusionrec.models.popular import MostPopular, PopularInCategory, Trending

DAY = 86_400
T0 = 1_700_000_000


def frame(rows: list[tuple[str, str, int]], event_type: str = "click") -> pd.DataFrame:
    events = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    events["event_type"] = event_type
    events["timestamp"] = pd.to_datetime(events["timestamp"], unit="s", utc=True)
    return events


def test_most_popular_counts_users_and_breaks_ties_by_lower_id() -> None:
    events = frame([("u1", "b", T0), ("u1", "b", T0 + 1), ("u2", "a", T0), ("u3", "c", T0), ("u4", "c", T0)])
    model = MostPopular().fit(Dataset.from_frame(events))
    items, scores = model.recommend(np.array([-1]), k=3, exclude=None)
    # c has 2 users; a and b have 1 each (u1's repeat of b counts once): a before b by id
    assert list(model.item_ids_[items[0]]) == ["c", "a", "b"]
    np.testing.assert_array_equal(scores[0], [2.0, 1.0, 1.0])


def test_half_life_favours_recent_interactions() -> None:
    # "old" has 3 users 30 days ago, "new" has 2 users today
    rows = [(f"o{u}", "old", T0) for u in range(3)] + [(f"n{u}", "new", T0 + 30 * DAY) for u in range(2)]
    dataset = Dataset.from_frame(frame(rows))
    plain = MostPopular().fit(dataset)
    decayed = MostPopular(half_life_days=7.0).fit(dataset)
    names = list(dataset.items.ids)
    assert plain.item_scores_[names.index("old")] > plain.item_scores_[names.index("new")]
    assert decayed.item_scores_[names.index("new")] == pytest.approx(2.0)
    assert decayed.item_scores_[names.index("old")] == pytest.approx(3 * 0.5 ** (30 / 7), rel=1e-5)


def test_half_life_counts_each_pair_once_at_its_latest_event() -> None:
    rows = [("u1", "a", T0), ("u1", "a", T0 + 10 * DAY)]
    model = MostPopular(half_life_days=10.0).fit(Dataset.from_frame(frame(rows)))
    assert model.item_scores_[0] == pytest.approx(1.0)


def test_trending_ranks_growth_over_volume() -> None:
    # "steady": 10 users in each of the last two weeks; "rising": 1 user then 6 users
    rows = [(f"s{u}", "steady", T0 + u) for u in range(10)]
    rows += [(f"t{u}", "steady", T0 + 8 * DAY + u) for u in range(10)]
    rows += [("r0", "rising", T0 + 1)] + [(f"r{u}", "rising", T0 + 9 * DAY + u) for u in range(1, 7)]
    dataset = Dataset.from_frame(frame(rows))
    model = Trending(window_days=7.0, smoothing=1.0).fit(dataset)
    items, _ = model.recommend(np.array([0]), k=2, exclude=None)
    assert list(dataset.items.id(items[0])) == ["rising", "steady"]
    assert MostPopular().fit(dataset).recommend(np.array([0]), k=1, exclude=None)[0][0, 0] == list(
        dataset.items.ids
    ).index("steady")


def test_popular_in_category_prefers_the_users_categories() -> None:
    rows = [(f"u{u}", "shoe1", T0 + u) for u in range(5)] + [(f"u{u}", "hat1", T0 + u) for u in range(3)]
    rows += [("fan", "hat2", T0 + 100), ("u0", "shoe2", T0 + 101), ("u1", "shoe2", T0 + 102)]
    items = pd.DataFrame(
        {
            "item_id": ["shoe1", "shoe2", "hat1", "hat2", "misc"],
            "category": ["Apparel > Shoes", "Apparel > Shoes", "Apparel > Hats", "Apparel > Hats", None],
        }
    )
    dataset = Dataset.from_frame(frame(rows), items)
    fan = int(dataset.users.index(["fan"])[0])
    model = PopularInCategory().fit(dataset)
    top, _ = model.recommend(np.array([fan]), k=3)
    # the hat fan gets the popular hat first, though shoes are more popular overall
    assert dataset.items.id(top[0])[0] == "hat1"
    assert list(dataset.items.id(top[0])[1:]) == ["shoe1", "shoe2"]
    # at the top level everything is "Apparel": plain popularity order
    coarse = PopularInCategory(category_level=1).fit(dataset)
    top, _ = coarse.recommend(np.array([fan]), k=1)
    assert dataset.items.id(top[0])[0] == "shoe1"


def test_popular_in_category_without_categories_is_global_popularity() -> None:
    rows = [("u1", "a", T0), ("u2", "b", T0), ("u3", "b", T0)]
    dataset = Dataset.from_frame(frame(rows))
    scores = PopularInCategory().fit(dataset).score(np.array([0]))
    assert scores[0, 1] > scores[0, 0]


def test_invalid_parameters_are_rejected() -> None:
    with pytest.raises(ValidationError):
        MostPopular(half_life_days=0)
    with pytest.raises(ValidationError):
        Trending(window_days=-1)


# --- popular in the user's segment -------------------------------------------------------------


def test_segment_popular_learns_the_planted_segment_preference(tmp_path: Path) -> None:
    from attribute_data import OLD_ITEMS, YOUNG_ITEMS, planted_shop
    from fusionrec.models.popular import SegmentPopular
    from fusionrec.models.registry import create_model

    events, users = planted_shop()
    dataset = Dataset.from_frame(events, users=users)
    model = create_model("popular_segment").fit(dataset)
    assert isinstance(model, SegmentPopular)
    assert model.attribute_names == ["age", "region"]
    cold = model.score_attributes(['{"age": "young", "region": "north"}', {"age": "old"}, None])
    tops = [set(dataset.items.id(np.argsort(-row)[:10])) for row in cold]
    assert tops[0] == set(YOUNG_ITEMS)
    assert tops[1] == set(OLD_ITEMS)
    # Without attributes: exactly most popular's order (ties by lower id).
    popular = MostPopular().fit(dataset)
    np.testing.assert_array_equal(
        np.lexsort((np.arange(dataset.n_items), -cold[2]))[:10],
        popular.recommend(np.array([-1]), 10, exclude=None)[0][0],
    )
    # Known users are scored from their own attributes (a fused source), and it saves and loads.
    young_user = int(dataset.users.index(["u0"])[0])
    assert set(dataset.items.id(np.argsort(-model.score(np.array([young_user]))[0])[:10])) == set(YOUNG_ITEMS)
    loaded = SegmentPopular.load(model.save(tmp_path / "segment"))
    np.testing.assert_allclose(
        loaded.score_attributes([{"age": "young"}]), model.score_attributes([{"age": "young"}])
    )


def test_segment_popular_without_attributes_is_most_popular() -> None:
    from attribute_data import planted_shop
    from fusionrec.models.popular import SegmentPopular

    events, _ = planted_shop()
    dataset = Dataset.from_frame(events)
    model = SegmentPopular().fit(dataset)
    assert model.attribute_names == []
    assert not model.has_segment({"age": "young"})
    ranked = model.recommend(np.array([0, 1]), 10, exclude=None)[0]
    expected = MostPopular().fit(dataset).recommend(np.array([0, 1]), 10, exclude=None)[0]
    np.testing.assert_array_equal(ranked, expected)
