"""A tiny shop with a planted segment preference: young users take the y-items, old users the
o-items (more old users, so the o-items are the most popular overall); ``region`` is noise."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

T0 = 1_700_000_000
YOUNG_ITEMS = [f"y{i}" for i in range(10)]
OLD_ITEMS = [f"o{i}" for i in range(10)]


def planted_shop(n_young: int = 60, n_old: int = 120, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(events, users)``: each user views 3 items of their age group's 10; users ``new_young``,
    ``new_old`` (attributes, no events) and ``no_attributes`` (an event, no attributes) are extra."""
    rng = np.random.default_rng(seed)
    rows, users = [], []
    t = T0
    for u in range(n_young + n_old):
        young = u < n_young
        pool = YOUNG_ITEMS if young else OLD_ITEMS
        user = f"u{u}"
        for item in rng.choice(pool, 3, replace=False):
            rows.append((user, str(item), t))
            t += 60
        region = "north" if rng.random() < 0.5 else "south"
        users.append((user, json.dumps({"age": "young" if young else "old", "region": region})))
    rows.append(("no_attributes", OLD_ITEMS[0], t))
    users += [
        ("new_young", json.dumps({"age": "young", "region": "north"})),
        ("new_old", json.dumps({"age": "old", "region": "south"})),
    ]
    events = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    events["event_type"] = "view"
    events["timestamp"] = pd.to_datetime(events["timestamp"], unit="s", utc=True)
    return events, pd.DataFrame(users, columns=["user_id", "attributes"])
