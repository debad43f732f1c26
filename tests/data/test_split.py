"""Splits: leave-last-out, temporal and fixed; shared vocabularies and recorded protocols."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fusionrec.data.dataset import Dataset
from fusionrec.data.split import fixed_split, leave_last_out, temporal_split

DAY = 86_400


def shop() -> Dataset:
    rows = [(f"u{u}", f"i{(u + t) % 7}", "view", u * 10 + t * DAY) for u in range(5) for t in range(u + 1)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "timestamp"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], unit="s", utc=True)
    return Dataset.from_frame(frame)


def test_leave_last_out_holds_out_last_and_second_to_last_per_user() -> None:
    ds = shop()
    split = leave_last_out(ds)
    # u0 (1 event) and u1 (2 events) are too short: all training. u2..u4 give one test and one validation.
    assert split.test.n_events == 3 and split.validation.n_events == 3
    assert split.train.n_events + 6 == ds.n_events
    for user in ("u2", "u3", "u4"):
        u = ds.users.index([user])[0]
        last = ds.timestamp[ds.user_idx == u].max()
        assert split.test.timestamp[split.test.user_idx == u].tolist() == [last]
    assert split.train_full.n_events == ds.n_events - 3
    assert split.protocol["split"] == "leave_last_out"
    assert split.test.items == ds.items and split.train.users == ds.users


def test_temporal_split_cuts_by_time_without_overlap() -> None:
    ds = shop()
    split = temporal_split(ds, test_days=1, valid_days=1)
    assert split.train.timestamp.max() < split.validation.timestamp.min()
    assert split.validation.timestamp.max() < split.test.timestamp.min()
    assert split.train.n_events + split.validation.n_events + split.test.n_events == ds.n_events
    assert {"test_start", "valid_start"} <= set(split.protocol)


def test_fixed_split_keeps_file_membership() -> None:
    train = pd.DataFrame({"user_id": ["0", "0", "1"], "item_id": ["0", "1", "1"], "event_type": "rating"})
    test = pd.DataFrame({"user_id": ["0", "1"], "item_id": ["2", "0"], "event_type": "rating"})
    train["timestamp"] = pd.to_datetime(np.arange(3), unit="s", utc=True)
    test["timestamp"] = pd.to_datetime(
        np.arange(2), unit="s", utc=True
    )  # older than train: order is not membership
    split = fixed_split(train, test)
    assert split.train.n_events == 3 and split.test.n_events == 2
    assert split.test.matrix(binary=True).toarray().tolist() == [[0, 0, 1], [1, 0, 0]]
    assert split.protocol == {"split": "fixed"}
