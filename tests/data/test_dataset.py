"""Dataset: vocabularies, the weighted matrix, sequences, features and subsets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from fusionrec.data.dataset import Dataset, DatasetError, Vocabulary
from fusionrec.data.schema import EventTypes
from fusionrec.data.store import EventStore, open_store


def events(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "timestamp"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], unit="s", utc=True)
    return frame


def test_vocabulary_sorts_numeric_ids_numerically_and_maps_unknown_to_minus_one() -> None:
    vocab = Vocabulary(["10", "2", "33", "2"])
    assert list(vocab.ids) == ["2", "10", "33"]
    np.testing.assert_array_equal(vocab.index(["33", "2", "nope"]), [2, 0, -1])
    assert "10" in vocab and "11" not in vocab
    assert list(Vocabulary(["b", "a", "c"]).ids) == ["a", "b", "c"]


def test_matrix_sums_signed_weights_and_clips_negative_cells() -> None:
    ds = Dataset.from_frame(
        events(
            [
                ("u1", "a", "view", 1),
                ("u1", "a", "add_to_cart", 2),
                ("u1", "a", "purchase", 3),
                ("u1", "b", "add_to_cart", 4),
                ("u1", "b", "remove_from_cart", 5),
                ("u2", "c", "add_to_cart", 6),
                ("u2", "c", "remove_from_cart", 7),
                ("u2", "c", "remove_from_cart", 8),
            ]
        )
    )
    dense = ds.matrix().toarray()
    assert dense[0].tolist() == [13.0, 2.0, 0.0]  # 1 + 4 + 8; 4 - 2
    assert dense[1].tolist() == [0.0, 0.0, 0.0]  # 4 - 2 - 2, clipped: no interaction
    assert ds.matrix().nnz == 2
    assert ds.matrix(binary=True).toarray()[0].tolist() == [1.0, 1.0, 0.0]


def test_custom_event_weights_and_unknown_types() -> None:
    frame = events([("u1", "a", "view", 1), ("u1", "b", "purchase", 2)])
    ds = Dataset.from_frame(frame, event_types=EventTypes.from_weights({"view": 0.5, "purchase": 10}))
    assert ds.matrix().toarray().tolist() == [[0.5, 10.0]]
    with pytest.raises(DatasetError, match="teleport"):
        Dataset.from_frame(events([("u1", "a", "teleport", 1)]))


def test_time_decay_halves_weight_per_half_life() -> None:
    day = 86_400
    ds = Dataset.from_frame(events([("u", "old", "view", 0), ("u", "new", "view", 10 * day)]))
    old, new = ds.items.index(["old", "new"])
    decayed = ds.matrix(half_life_days=10).toarray()[0]
    assert decayed[old] == pytest.approx(0.5) and decayed[new] == pytest.approx(1.0)


def test_sequences_are_time_ordered_per_user_whatever_the_input_order() -> None:
    ds = Dataset.from_frame(
        events(
            [("u2", "x", "view", 5), ("u1", "b", "view", 3), ("u1", "a", "view", 1), ("u2", "y", "view", 2)]
        )
    )
    indptr, items = ds.sequences()
    u1, u2 = ds.users.index(["u1", "u2"])
    assert list(ds.items.id(items[indptr[u1] : indptr[u1 + 1]])) == ["a", "b"]
    assert list(ds.items.id(items[indptr[u2] : indptr[u2 + 1]])) == ["y", "x"]


def test_from_store_takes_the_stores_total_order_whatever_the_storage_order(
    store: EventStore, tmp_path
) -> None:
    # e3 and e1 share a second (e1 half a second later); e2 and e4 share the exact instant.
    rows = [
        ("e1", "u1", "a", 10.5, "s2"),
        ("e2", "u1", "b", 20.0, "s1"),
        ("e3", "u1", "c", 10.0, "s2"),
        ("e4", "u1", "d", 20.0, "s1"),
        ("e5", "u2", "a", 15.0, "s3"),
    ]
    frame = events([(user, item, "view", seconds) for _, user, item, seconds, _ in rows])
    frame.insert(0, "event_id", [row[0] for row in rows])
    frame["session_id"] = [row[4] for row in rows]
    for event_id in ("e4", "e1", "e3", "e2", "e5"):  # one insert each: storage order differs
        store.insert_events(frame[frame["event_id"] == event_id])
    with open_store(f"duckdb:///{tmp_path / 'forward.duckdb'}") as forward:
        forward.insert_events(frame)
        datasets = [Dataset.from_store(store), Dataset.from_store(forward)]
    for ds in datasets:
        indptr, items = ds.sequences()
        u1 = ds.users.index(["u1"])[0]
        assert list(ds.items.id(items[indptr[u1] : indptr[u1 + 1]])) == ["c", "a", "b", "d"]
    for name in ("user_idx", "item_idx", "timestamp", "event_code", "weight", "source_row", "session_idx"):
        np.testing.assert_array_equal(getattr(datasets[0], name), getattr(datasets[1], name), err_msg=name)


def test_anonymous_events_are_keyed_by_session_or_dropped() -> None:
    frame = events([(None, "a", "view", 1), ("u1", "b", "view", 2)])
    frame["session_id"] = ["s1", "s2"]
    assert sorted(Dataset.from_frame(frame).users.ids) == ["session:s1", "u1"]
    assert list(Dataset.from_frame(frame, anonymous="drop").users.ids) == ["u1"]


def test_bots_and_searches_are_left_out_of_training() -> None:
    frame = events([("u1", "a", "view", 1), ("bot", "a", "view", 2), ("u1", None, "search", 3)])
    frame["is_bot"] = [False, True, False]
    ds = Dataset.from_frame(frame)
    assert list(ds.users.ids) == ["u1"] and ds.n_events == 1


def test_item_features_cover_items_without_events_for_cold_start() -> None:
    items = pd.DataFrame({"item_id": ["a", "new"], "title": ["Apple", "Brand new"], "price": [1.0, 2.0]})
    ds = Dataset.from_frame(events([("u1", "a", "view", 1)]), items)
    assert list(ds.items.ids) == ["a", "new"]
    assert ds.item_features.loc[ds.items.index(["new"])[0], "title"] == "Brand new"
    assert ds.matrix().shape == (1, 2)


def test_select_keeps_vocabularies_and_arrow_input_works() -> None:
    table = pa.Table.from_pandas(events([("u1", "a", "view", 1), ("u2", "b", "click", 2)]))
    ds = Dataset.from_frame(table)
    part = ds.select(ds.timestamp > 1)
    assert part.n_users == ds.n_users and part.n_items == ds.n_items and part.n_events == 1
    assert part.matrix().toarray().tolist() == [[0.0, 0.0], [0.0, 2.0]]
    with pytest.raises(DatasetError, match="boolean mask"):
        ds.select(np.array([0, 1]))


def test_missing_required_column_is_named() -> None:
    with pytest.raises(DatasetError, match="item_id"):
        Dataset.from_frame(pd.DataFrame({"user_id": ["u"], "event_type": ["view"], "timestamp": [1]}))
