"""TIFU-kNN against the paper's formulas written as plain loops over baskets and users."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fusionrec.data.dataset import Dataset
from fusionrec.models.tifu_knn import TIFUKNN


def basket_dataset(
    n_users: int = 30, n_items: int = 25, seed: int = 5
) -> tuple[Dataset, list[list[list[str]]]]:
    """Users with 1-9 baskets of 1-4 items (session ids), shuffled rows; also the baskets in time order."""
    rng = np.random.default_rng(seed)
    rows, baskets, session = [], [], 0
    for u in range(n_users):
        user_baskets = []
        for b in range(int(rng.integers(1, 10))):
            items = [f"i{i:02d}" for i in rng.choice(n_items, size=int(rng.integers(1, 5)), replace=False)]
            user_baskets.append(items)
            rows += [(f"u{u:02d}", item, 1_700_000_000 + 86_400 * b + u, f"s{session}") for item in items]
            session += 1
        baskets.append(user_baskets)
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "session_id"])
    frame = frame.sample(frac=1.0, random_state=seed)  # basket order must come from the times
    frame["event_type"] = "purchase"
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], unit="s", utc=True)
    return Dataset.from_frame(frame), baskets


def reference_vector(
    baskets: list[list[int]], n_items: int, groups: int, within: float, group: float
) -> np.ndarray:
    """The paper: decayed basket indicators, averaged per group, groups decayed and averaged."""
    n = len(baskets)
    decayed = []
    for i, items in enumerate(baskets):
        vector = np.zeros(n_items)
        vector[items] = within ** (n - 1 - i)
        decayed.append(vector)
    parts = np.array_split(np.arange(n), min(groups, n))
    means = [np.mean([decayed[i] for i in part], axis=0) for part in parts]
    return sum(group ** (len(parts) - 1 - g) * m for g, m in enumerate(means)) / len(parts)


@pytest.mark.parametrize(("groups", "alpha", "neighbours"), [(3, 0.7, 5), (7, 0.2, 12), (1, 0.0, 1)])
def test_tifu_knn_matches_the_papers_formulas(groups: int, alpha: float, neighbours: int) -> None:
    dataset, baskets = basket_dataset()
    model = TIFUKNN(groups=groups, within_decay=0.8, group_decay=0.6, alpha=alpha, neighbours=neighbours)
    model.fit(dataset)
    vectors = np.array(
        [
            reference_vector(
                [dataset.items.index(np.array(b)).tolist() for b in baskets[int(user_id[1:])]],
                dataset.n_items,
                groups,
                0.8,
                0.6,
            )
            for user_id in dataset.users.ids
        ]
    )
    np.testing.assert_allclose(model.vectors_.toarray(), vectors, rtol=1e-5, atol=1e-7)
    distances = np.linalg.norm(vectors[:, None, :] - vectors[None, :, :], axis=2)
    np.fill_diagonal(distances, np.inf)
    nearest = np.argsort(distances, axis=1, kind="stable")[:, :neighbours]
    expected = alpha * vectors + (1 - alpha) * vectors[nearest].mean(axis=1)
    np.testing.assert_allclose(model.score(np.arange(dataset.n_users)), expected, rtol=1e-5, atol=1e-6)


def test_without_sessions_the_events_at_one_timestamp_are_one_basket() -> None:
    # u: {a, b} at t0, then {a} at t1; with one group and within-decay 0.5: a = 0.5 + 1, b = 0.5
    rows = [("u", "a", 0), ("u", "b", 0), ("u", "a", 60), ("v", "c", 0)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    frame["event_type"] = "purchase"
    frame["timestamp"] = pd.to_datetime(1_700_000_000 + frame["timestamp"], unit="s", utc=True)
    dataset = Dataset.from_frame(frame)
    model = TIFUKNN(groups=1, within_decay=0.5, alpha=1.0).fit(dataset)
    a, b = dataset.items.index(np.array(["a", "b"]))
    u = dataset.users.index(np.array(["u"]))[0]
    np.testing.assert_allclose(model.vectors_[u, [a, b]].toarray().ravel(), [0.75, 0.25])  # / 2 baskets


def test_a_live_history_is_one_item_per_basket_and_finds_its_neighbours(tmp_path: Path) -> None:
    dataset, _ = basket_dataset()
    model = TIFUKNN(groups=2, within_decay=0.9, group_decay=0.7, alpha=0.5, neighbours=4).fit(dataset)
    history = dataset.items.index(np.array(["i03", "i07", "i03"]))
    own = reference_vector([[i] for i in history], dataset.n_items, 2, 0.9, 0.7)
    stored = model.vectors_.toarray()
    nearest = np.argsort(np.linalg.norm(stored - own[None, :], axis=1), kind="stable")[:4]
    expected = 0.5 * own + 0.5 * stored[nearest].mean(axis=0)
    np.testing.assert_allclose(model.score_histories([history])[0], expected, rtol=1e-5, atol=1e-6)
    loaded = TIFUKNN.load(model.save(tmp_path / "tifu"))
    users = np.arange(5)
    np.testing.assert_allclose(loaded.score(users), model.score(users), rtol=1e-6)
