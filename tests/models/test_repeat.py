"""Buy again: the user's own items first (count, then recency), then popular items."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fusionrec.data.dataset import Dataset
from fusionrec.models.repeat import RepeatPurchase

DAY = 86_400
T0 = 1_700_000_000


def purchases(rows: list[tuple[str, str, int]]) -> Dataset:
    events = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    events["event_type"] = "purchase"
    events["timestamp"] = pd.to_datetime(events["timestamp"], unit="s", utc=True)
    return Dataset.from_frame(events)


ROWS = [
    ("u1", "milk", T0),
    ("u1", "milk", T0 + 7 * DAY),
    ("u1", "bread", T0 + 14 * DAY),
    ("u2", "eggs", T0),
    ("u3", "eggs", T0),
    ("u3", "tea", T0 + 14 * DAY),
]


def test_own_items_by_count_then_the_rest_by_popularity() -> None:
    dataset = purchases(ROWS)
    model = RepeatPurchase().fit(dataset)
    user = dataset.users.index(np.array(["u1"]))
    items, scores = model.recommend(user, k=4, exclude=None)
    # milk bought twice, bread once; then eggs (2 users) before tea (1 user)
    assert list(dataset.items.id(items[0])) == ["milk", "bread", "eggs", "tea"]
    np.testing.assert_allclose(scores[0, :2], [2.0, 1.0])
    assert (scores[0, 2:] < 0).all()


def test_half_life_puts_the_recent_item_first() -> None:
    dataset = purchases(ROWS)
    model = RepeatPurchase(half_life_days=3.0).fit(dataset)
    user = dataset.users.index(np.array(["u1"]))
    items, scores = model.recommend(user, k=2, exclude=None)
    # bread today (1.0) beats milk a week and two weeks ago (0.5**(7/3) + 0.5**(14/3))
    assert list(dataset.items.id(items[0])) == ["bread", "milk"]
    assert scores[0, 1] == pytest.approx(0.5 ** (7 / 3) + 0.5 ** (14 / 3), rel=1e-5)


def test_live_history_counts_each_event() -> None:
    dataset = purchases(ROWS)
    model = RepeatPurchase().fit(dataset)
    tea, bread = dataset.items.index(np.array(["tea", "bread"]))
    items, scores = model.recommend_from_history([np.array([tea, bread, tea])], k=3, exclude_history=False)
    assert list(dataset.items.id(items[0])) == ["tea", "bread", "eggs"]
    np.testing.assert_allclose(scores[0, :2], [2.0, 1.0])
