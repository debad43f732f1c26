"""Small random datasets for the classic-model tests (not a test module)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fusionrec.data.dataset import Dataset


def matrix_dataset(
    n_users: int = 12, n_items: int = 9, density: float = 0.35, seed: int = 0
) -> tuple[Dataset, np.ndarray]:
    """A click Dataset whose binary user x item matrix is returned too (ids sort like indices)."""
    rng = np.random.default_rng(seed)
    x = (rng.random((n_users, n_items)) < density).astype(np.float32)
    x[np.arange(n_users), rng.integers(0, n_items, n_users)] = 1.0  # nobody is empty
    x[0, :] = 0.0
    x[0, :2] = 1.0
    users, items = np.nonzero(x)
    events = pd.DataFrame(
        {
            "user_id": [f"u{u:03d}" for u in users],
            "item_id": [f"i{i:03d}" for i in items],
            "event_type": "click",
            "timestamp": pd.to_datetime(1_700_000_000 + np.arange(len(users)), unit="s", utc=True),
        }
    )
    dataset = Dataset.from_frame(events)
    assert dataset.n_users == n_users and dataset.n_items == n_items
    return dataset, x
