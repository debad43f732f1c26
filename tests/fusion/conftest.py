"""Small shared data for the fusion tests: a seeded synthetic shop with every event type."""

from __future__ import annotations

import pytest

from fusionrec.data.dataset import Dataset
from fusionrec.data.split import Split, temporal_split
from fusionrec.data.synthetic import generate_frames

FAST_SOURCES = [
    {"model": "item_knn", "n": 30, "min_score": 0.0, "params": {"neighbours": 30}},
    {"model": "most_popular", "n": 20},
]
FAST_RANKER = {"params": {"n_estimators": 30, "min_data_in_leaf": 10, "num_leaves": 15}}


@pytest.fixture(scope="session")
def shop() -> Dataset:
    events, items, users = generate_frames(n_events=20_000, seed=3)
    return Dataset.from_frame(events, items, users)


@pytest.fixture(scope="session")
def shop_split(shop: Dataset) -> Split:
    return temporal_split(shop, test_days=7, valid_days=7)
