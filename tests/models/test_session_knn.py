"""Session kNN: anonymous histories, recency weighting, neighbour count, own-session exclusion."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fusionrec.data.dataset import Dataset
from fusionrec.models.session_knn import SessionKNN


def sessions_frame(sessions: list[list[str]], users: list[str | None] | None = None) -> pd.DataFrame:
    rows = []
    for s, items in enumerate(sessions):
        for position, item in enumerate(items):
            user = users[s] if users else None
            rows.append((user, f"s{s}", item, "view", 1_700_000_000 + s * 10_000 + position * 60))
    frame = pd.DataFrame(rows, columns=["user_id", "session_id", "item_id", "event_type", "timestamp"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], unit="s", utc=True)
    return frame


@pytest.fixture(scope="module")
def shop() -> Dataset:
    # Anonymous sessions: "a" is followed by "b" (3 times); "c" by "d" (2 times), plus noise.
    return Dataset.from_frame(
        sessions_frame(
            [["a", "b"], ["a", "b"], ["a", "b", "e"], ["c", "d"], ["c", "d"], ["e", "f"], ["f", "g"]]
        )
    )


def ids(dataset: Dataset, names: list[str]) -> np.ndarray:
    return dataset.items.index(names).astype(np.int32)


def test_anonymous_history_gets_items_of_similar_sessions(shop: Dataset) -> None:
    model = SessionKNN(k=10).fit(shop)
    top, _ = model.recommend_from_history([ids(shop, ["a"]), ids(shop, ["c"])], k=1)
    np.testing.assert_array_equal(top[:, 0], ids(shop, ["b", "d"]))


def test_recent_items_weigh_more_than_older_ones(shop: Dataset) -> None:
    # History "a" then "c": with recency decay the latest item ("c" -> "d") leads.
    history = [ids(shop, ["a", "c"])]
    decayed, _ = SessionKNN(k=10, position_decay="harmonic").fit(shop).recommend_from_history(history, k=1)
    assert decayed[0, 0] == ids(shop, ["d"])[0]
    flat, _ = SessionKNN(k=10, position_decay="none").fit(shop).recommend_from_history(history, k=1)
    assert flat[0, 0] == ids(shop, ["b"])[0], "without decay the three a-b sessions outvote the two c-d"


def test_only_k_neighbours_vote(shop: Dataset) -> None:
    # History "e": neighbours are the a-b-e session and e-f. With k=1 only the most similar
    # session (e-f, shorter so higher cosine) votes, so "a"/"b" get no neighbour score.
    scores = SessionKNN(k=1).fit(shop).score_histories([ids(shop, ["e"])])[0]
    assert scores[ids(shop, ["f"])[0]] > 0.5
    assert scores[ids(shop, ["b"])[0]] < 1e-3
    wide = SessionKNN(k=10).fit(shop).score_histories([ids(shop, ["e"])])[0]
    assert wide[ids(shop, ["b"])[0]] > 0.1


def test_known_users_do_not_use_their_own_sessions() -> None:
    # User u1's only session holds x, y; nobody else has y. Scored as a known user, u1 must not
    # be recommended y via its own session; scored as an anonymous history it is.
    frame = sessions_frame([["x", "y"], ["x", "z"]], users=["u1", "u2"])
    dataset = Dataset.from_frame(frame)
    model = SessionKNN(k=5).fit(dataset)
    u1 = int(dataset.users.index(["u1"])[0])
    y = ids(dataset, ["y"])[0]
    assert model.score(np.array([u1]))[0, y] < 1e-3
    assert model.score_histories([ids(dataset, ["x"])])[0, y] > 0.5


def test_falls_back_to_users_when_there_are_no_sessions(shop: Dataset) -> None:
    frame = sessions_frame([["a", "b"], ["a", "b"], ["c", "d"]], users=["u1", "u2", "u3"]).drop(
        columns="session_id"
    )
    dataset = Dataset.from_frame(frame)
    model = SessionKNN(k=5).fit(dataset)
    assert model.sessions_.shape[0] == 3
    top, _ = model.recommend_from_history([ids(dataset, ["a"])], k=1)
    assert top[0, 0] == ids(dataset, ["b"])[0]


def test_max_sessions_keeps_only_the_most_recent(shop: Dataset) -> None:
    model = SessionKNN(k=10, max_sessions=2).fit(shop)
    assert model.sessions_.shape[0] == 2
    # The two latest sessions are e-f and f-g: an "a" history finds no neighbour.
    scores = model.score_histories([ids(shop, ["a"])])[0]
    assert scores.max() < 1e-3


def test_unknown_items_only_history_gets_popularity(shop: Dataset) -> None:
    model = SessionKNN().fit(shop)
    np.testing.assert_array_equal(model.score_histories([np.array([-1, 999])])[0], model.popularity_)
