"""Train / validation / test splits that record their protocol.

All three parts share the full dataset's vocabularies, so item indices line up and metrics can
rank over the whole catalogue. Tuning fits on ``train`` and scores on ``validation``; the final
test fits on ``train_full`` (train + validation) and scores on ``test``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from fusionrec.data.dataset import SECONDS_PER_DAY, Dataset, DatasetError
from fusionrec.data.schema import EventTypes


@dataclass(frozen=True)
class Split:
    """Three disjoint views of one dataset's events, and how they were made."""

    train: Dataset
    validation: Dataset | None
    test: Dataset
    protocol: dict[str, Any] = field(default_factory=dict)

    @property
    def train_full(self) -> Dataset:
        """Train plus validation: what the model sees before it is scored on the test part."""
        if self.validation is None or self.validation.n_events == 0:
            return self.train
        return _union(self.train, self.validation)


def _union(a: Dataset, b: Dataset) -> Dataset:
    """Both parts' events in one Dataset, via the parent's rows (``source_row`` keeps them apart)."""
    parent = a._cache.get("parent") or b._cache.get("parent")
    if parent is None:
        raise DatasetError("train_full needs parts made by a split function")
    rows = np.union1d(a.source_row, b.source_row)
    return parent.select(np.isin(parent.source_row, rows))


def _parts(dataset: Dataset, masks: dict[str, np.ndarray], protocol: dict[str, Any]) -> Split:
    parts = {name: dataset.select(mask) for name, mask in masks.items()}
    for part in parts.values():
        part._cache["parent"] = dataset
    return Split(
        train=parts["train"], validation=parts.get("validation"), test=parts["test"], protocol=protocol
    )


def leave_last_out(dataset: Dataset, *, validation: bool = True, min_train: int = 1) -> Split:
    """Per user: the last event is the test, the one before it validation, the rest training.

    Users with fewer than ``min_train + 1`` (or ``+ 2`` with validation) events stay wholly in
    training. This is the S3-Rec / SASRec leave-one-out protocol.
    """
    order = np.lexsort((np.arange(dataset.n_events), dataset.timestamp, dataset.user_idx))
    users = dataset.user_idx[order]
    counts = np.bincount(users, minlength=dataset.n_users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position_from_end = counts[users] - (np.arange(len(order)) - starts[users]) - 1
    held = 2 if validation else 1
    eligible = counts[users] >= min_train + held
    is_test = np.zeros(dataset.n_events, dtype=bool)
    is_valid = np.zeros(dataset.n_events, dtype=bool)
    is_test[order] = eligible & (position_from_end == 0)
    is_valid[order] = eligible & (position_from_end == 1) & validation
    masks = {"train": ~(is_test | is_valid), "test": is_test}
    if validation:
        masks["validation"] = is_valid
    protocol = {"split": "leave_last_out", "validation": validation, "min_train": min_train}
    return _parts(dataset, masks, protocol)


def temporal_split(dataset: Dataset, *, test_days: float, valid_days: float = 0.0) -> Split:
    """Global time cut-offs: the last ``test_days`` are the test, the ``valid_days`` before them validation."""
    if dataset.n_events == 0:
        raise DatasetError("cannot split an empty dataset")
    end = int(dataset.timestamp.max()) + 1
    test_start = end - int(test_days * SECONDS_PER_DAY)
    valid_start = test_start - int(valid_days * SECONDS_PER_DAY)
    masks = {
        "train": dataset.timestamp < valid_start,
        "test": dataset.timestamp >= test_start,
    }
    if valid_days > 0:
        masks["validation"] = (dataset.timestamp >= valid_start) & (dataset.timestamp < test_start)
    protocol = {
        "split": "temporal",
        "test_days": test_days,
        "valid_days": valid_days,
        "test_start": pd.Timestamp(test_start, unit="s", tz="UTC").isoformat(),
        "valid_start": pd.Timestamp(valid_start, unit="s", tz="UTC").isoformat(),
    }
    return _parts(dataset, masks, protocol)


def fixed_split(
    train_events: pd.DataFrame | pa.Table,
    test_events: pd.DataFrame | pa.Table,
    items: pd.DataFrame | pa.Table | None = None,
    users: pd.DataFrame | pa.Table | None = None,
    *,
    event_types: EventTypes | None = None,
) -> Split:
    """A split shipped with the data (e.g. LightGCN's train.txt / test.txt)."""
    train_table = (
        train_events
        if isinstance(train_events, pa.Table)
        else pa.Table.from_pandas(train_events, preserve_index=False)
    )
    test_table = (
        test_events
        if isinstance(test_events, pa.Table)
        else pa.Table.from_pandas(test_events, preserve_index=False)
    )
    common = [c for c in train_table.column_names if c in test_table.column_names]
    test_table = test_table.select(common).cast(train_table.select(common).schema)
    combined = pa.concat_tables([train_table.select(common), test_table])
    dataset = Dataset.from_frame(combined, items, users, event_types=event_types)
    is_test = dataset.source_row >= train_table.num_rows
    return _parts(dataset, {"train": ~is_test, "test": is_test}, {"split": "fixed"})
