"""Training never materialises fixed-width strings (issue 24, finding 1).

numpy's unicode arrays make every cell as wide as the longest id: one 200 kB id among a few
hundred users cost hundreds of megabytes before ids were kept as object arrays.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

from fusionrec.data.dataset import Dataset
from fusionrec.models.base import Recommender
from fusionrec.models.popular import MostPopular
from fusionrec.serving.registry import LoadedVersion

LONG_ID = "x" * 200_000  # 800 kB per cell in a "<U200000" array
N_USERS = 300  # a fixed-width copy of the user ids would take 240 MB


def long_id_dataset() -> Dataset:
    users = [LONG_ID] + [f"u{i}" for i in range(1, N_USERS)]
    events = pd.DataFrame(
        {
            "user_id": users,
            "item_id": [f"i{i % 7}" for i in range(N_USERS)],
            "timestamp": pd.to_datetime(1_700_000_000 + np.arange(N_USERS), unit="s", utc=True),
            "event_type": "click",
        }
    )
    return Dataset.from_frame(events)


def test_fit_keeps_ids_as_object_arrays_and_peak_memory_small() -> None:
    dataset = long_id_dataset()
    tracemalloc.start()
    try:
        model = MostPopular().fit(dataset)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert model.user_ids_.dtype == object and model.item_ids_.dtype == object
    assert LONG_ID in set(model.user_ids_.tolist())
    assert peak < 20 * 2**20, f"fit peaked at {peak / 2**20:.0f} MiB"


def test_save_load_and_serving_lookups_stay_object_arrays(tmp_path: Path) -> None:
    model = MostPopular().fit(long_id_dataset())
    tracemalloc.start()
    try:
        model.save(tmp_path / "model")
        loaded = Recommender.load(tmp_path / "model")
        version = LoadedVersion.of("v0001", loaded, manifest=None)  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert loaded.user_ids_.dtype == object
    np.testing.assert_array_equal(loaded.user_ids_, model.user_ids_)
    assert version.user_index[LONG_ID] == int(np.flatnonzero(model.user_ids_ == LONG_ID)[0])
    # the saved arrays stay about the size of the ids themselves
    assert (tmp_path / "model" / "arrays.npz").stat().st_size < 2 * len(LONG_ID) + 2**20
    assert peak < 20 * 2**20, f"save/load peaked at {peak / 2**20:.0f} MiB"
