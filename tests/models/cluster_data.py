"""Two disjoint user clusters, shared by the graph and neural model tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fusionrec.data.dataset import Dataset


def two_clusters(n_users: int = 40, n_items: int = 20, seed: int = 5) -> Dataset:
    """Users 0..n/2-1 use items 0..m/2-1 only, the others the other half (4 items each)."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(n_users):
        offset = 0 if user < n_users // 2 else n_items // 2
        for item in rng.choice(n_items // 2, size=4, replace=False) + offset:
            rows.append((f"u{user:03d}", f"i{item:03d}", "click", 1_700_000_000 + len(rows)))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "timestamp"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], unit="s", utc=True)
    return Dataset.from_frame(frame)
