"""Item vectors: the readers (JSON lines, Parquet, CSV, *_embedding columns), validation, the stores,
the Dataset interface (`vector_names`, `vector_matrix`) and the synthetic shop's planted vectors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fusionrec.data import item_vectors
from fusionrec.data.dataset import Dataset
from fusionrec.data.formats.base import FormatError
from fusionrec.data.formats.canonical import read_canonical
from fusionrec.data.ingest import ingest_items
from fusionrec.data.schema import ITEM_SCHEMA
from fusionrec.data.store import EventStore, open_store
from fusionrec.data.validate import check_items

EVENTS = (
    "user_id,item_id,event_type,timestamp\nu1,a,view,2024-01-01\nu1,b,view,2024-01-02\nu2,c,view,2024-01-03\n"
)


def _shop(tmp_path: Path) -> Path:
    (tmp_path / "events.csv").write_text(EVENTS)
    return tmp_path


def _vectors(dataset: Dataset, name: str) -> dict[str, list[float]]:
    matrix, present = item_vectors.vector_matrix(dataset, name)
    ids = dataset.items.id(np.flatnonzero(present))
    return {str(i): matrix[dataset.items.index([i])[0]].tolist() for i in ids}


# --- readers ---------------------------------------------------------------------------------------


def test_json_lines_vectors_and_embedding_columns_reach_the_dataset(tmp_path: Path) -> None:
    shop = _shop(tmp_path)
    rows = [
        {"item_id": "a", "title": "A", "vectors": {"image_embedding": [1, 2, 3]}},
        {"item_id": "b", "title": "B", "text_embedding": [0.5, -0.5]},
        {"item_id": "c", "title": "C", "colour": "red"},
    ]
    (shop / "items.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    source = read_canonical(shop)
    dataset = Dataset.from_frame(source.events, source.items)
    assert item_vectors.vector_names(dataset) == ["image_embedding", "text_embedding"]
    assert _vectors(dataset, "image_embedding") == {"a": [1.0, 2.0, 3.0]}
    assert _vectors(dataset, "text_embedding") == {"b": [0.5, -0.5]}
    # A vector column is not folded into the free-form attributes; other extra columns are.
    attributes = source.items.set_index("item_id")["attributes"]
    assert json.loads(attributes["c"]) == {"colour": "red"}
    assert "text_embedding" not in attributes["b"]


def test_parquet_map_column_arrives_as_pairs_and_is_read(tmp_path: Path) -> None:
    shop = _shop(tmp_path)
    table = pa.table(
        {
            "item_id": ["a", "b", "c"],
            "vectors": pa.array(
                [[("image_embedding", [1.0, 0.0])], None, [("image_embedding", [0.0, 2.0])]],
                ITEM_SCHEMA.field("vectors").type,
            ),
        }
    )
    pq.write_table(table, shop / "items.parquet")
    source = read_canonical(shop)
    dataset = Dataset.from_frame(source.events, source.items)
    matrix, present = item_vectors.vector_matrix(dataset, "image_embedding")
    assert present.tolist() == [True, False, True]
    assert matrix.tolist() == [[1.0, 0.0], [0.0, 0.0], [0.0, 2.0]]
    assert matrix.dtype == np.float32


def test_csv_vectors_are_a_json_object_column(tmp_path: Path) -> None:
    shop = _shop(tmp_path)
    frame = pd.DataFrame(
        {
            "item_id": ["a", "b", "c"],
            "vectors": [json.dumps({"image_embedding": [1, 2]}), "", json.dumps({"image_embedding": [3, 4]})],
            "style_vector": ["[0.1, 0.2, 0.3]", "[1, 1, 1]", ""],
        }
    )
    frame.to_csv(shop / "items.csv", index=False)
    dataset = Dataset.from_frame(read_canonical(shop).events, read_canonical(shop).items)
    assert _vectors(dataset, "image_embedding") == {"a": [1.0, 2.0], "c": [3.0, 4.0]}
    style = _vectors(dataset, "style_vector")
    assert set(style) == {"a", "b"}
    np.testing.assert_allclose(style["a"], [0.1, 0.2, 0.3], rtol=1e-6)
    assert style["b"] == [1.0, 1.0, 1.0]


def test_a_bad_vector_fails_the_whole_file_reader_with_the_item_and_line(tmp_path: Path) -> None:
    shop = _shop(tmp_path)
    rows = [{"item_id": "a", "vectors": {"v": [1, 2]}}, {"item_id": "b", "vectors": {"v": [1, 2, 3]}}]
    (shop / "items.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(FormatError, match=r"line 2.*item 'b': vector 'v' has 3 values, expected 2"):
        read_canonical(shop)


# --- validation ------------------------------------------------------------------------------------


def test_validation_quarantines_bad_vector_rows_and_keeps_the_rest() -> None:
    batch = pd.DataFrame(
        {
            "item_id": ["ok1", "nan", "inf", "empty", "short", "text", "notjson", "ok2", "none"],
            "vectors": [
                {"img": [1.0, 2.0]},
                {"img": [math.nan, 1.0]},
                {"img": [math.inf, 1.0]},
                {"img": []},
                {"img": [1.0]},
                {"img": ["x", "y"]},
                "{not json",
                '{"img": [3, 4]}',
                None,
            ],
        }
    )
    checked = check_items(batch, source="items.jsonl")
    assert checked.valid.column("item_id").to_pylist() == ["ok1", "ok2", "none"]
    assert checked.valid.schema.field("vectors").type == ITEM_SCHEMA.field("vectors").type
    assert checked.valid.column("vectors").to_pylist()[1] == [("img", [3.0, 4.0])]
    reasons = dict(
        zip(
            checked.quarantine.column("row_number").to_pylist(),
            checked.quarantine.column("reason").to_pylist(),
            strict=True,
        )
    )
    assert reasons == {
        2: "item 'nan': vector 'img' holds non-finite values (NaN or infinity)",
        3: "item 'inf': vector 'img' holds non-finite values (NaN or infinity)",
        4: "item 'empty': vector 'img' is empty",
        5: "item 'short': vector 'img' has 1 values, expected 2 as most rows of this batch",
        6: "item 'text': vector 'img' is not a list of numbers",
        7: "item 'notjson': vectors is not a JSON object",
    }


def test_validation_checks_lengths_against_the_stored_catalogue_first() -> None:
    batch = pd.DataFrame({"item_id": ["a", "b"], "image_embedding": [[1.0, 2.0], [3.0, 4.0, 5.0]]})
    checked = check_items(batch, source="x", vector_dims={"image_embedding": 3})
    assert checked.valid.column("item_id").to_pylist() == ["b"]
    assert checked.quarantine.column("reason").to_pylist() == [
        "item 'a': vector 'image_embedding' has 2 values, expected 3 as in the stored catalogue"
    ]


def test_ingest_refuses_a_length_that_differs_from_the_stored_catalogue(
    store: EventStore, tmp_path: Path
) -> None:
    first = pd.DataFrame({"item_id": ["a"], "vectors": [{"img": [1.0, 2.0, 3.0]}]})
    assert ingest_items(store, first).items == 1
    path = tmp_path / "items.jsonl"
    rows = [{"item_id": "b", "vectors": {"img": [1, 2]}}, {"item_id": "c", "vectors": {"img": [0, 0, 1]}}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    report = ingest_items(store, path, batch_rows=1)  # one row per batch: the stored length still holds
    assert report.items == 1
    assert store.item_vector_dims() == {"img": 3}
    quarantined = store.quarantine_arrow().column("reason").to_pylist()
    assert quarantined == ["item 'b': vector 'img' has 2 values, expected 3 as in the stored catalogue"]


# --- stores ----------------------------------------------------------------------------------------


def test_store_round_trip_keeps_names_values_and_nulls(store: EventStore) -> None:
    rows = pa.table(
        {
            "item_id": ["a", "b", "c"],
            "title": ["A", "B", "C"],
            "vectors": item_vectors.to_arrow(
                [
                    {"image_embedding": [0.25, -1.5], "text_embedding": [1.0]},
                    None,
                    {"image_embedding": [3.0, 4.0]},
                ]
            ),
        }
    )
    assert store.upsert_items(rows) == 3
    items = store.items_arrow()
    assert items.schema.equals(ITEM_SCHEMA)
    cells = {
        i: dict(v) if v else None
        for i, v in zip(items["item_id"].to_pylist(), items["vectors"].to_pylist(), strict=True)
    }
    assert cells == {
        "a": {"image_embedding": [0.25, -1.5], "text_embedding": [1.0]},
        "b": None,
        "c": {"image_embedding": [3.0, 4.0]},
    }
    assert store.item_vector_dims() == {"image_embedding": 2, "text_embedding": 1}
    dataset = Dataset.from_frame(
        pd.DataFrame(
            {
                "user_id": ["u"],
                "item_id": ["a"],
                "event_type": ["view"],
                "timestamp": [pd.Timestamp("2024-01-01", tz="UTC")],
            }
        ),
        items,
    )
    assert _vectors(dataset, "image_embedding") == {"a": [0.25, -1.5], "c": [3.0, 4.0]}


def test_a_version_2_store_gains_the_vectors_column(store_url: str) -> None:
    with open_store(store_url) as opened:
        opened.execute("ALTER TABLE items DROP COLUMN vectors")
        opened.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    with open_store(store_url) as migrated:
        assert migrated.schema_version == 3
        migrated.upsert_items(pd.DataFrame({"item_id": ["a"], "vectors": [{"img": [1.0]}]}))
        assert migrated.items_arrow()["vectors"].to_pylist() == [[("img", [1.0])]]


# --- the Dataset interface -------------------------------------------------------------------------


def test_vector_matrix_refuses_an_unknown_name_and_two_lengths() -> None:
    events = pd.DataFrame(
        {"user_id": ["u", "u"], "item_id": ["a", "b"], "event_type": ["view", "view"],
         "timestamp": pd.to_datetime([1, 2], unit="s", utc=True)}
    )  # fmt: skip
    items = pd.DataFrame({"item_id": ["a", "b"], "vectors": [{"v": [1.0, 0.0]}, {"v": [1.0]}]})
    dataset = Dataset.from_frame(events, items)
    with pytest.raises(ValueError, match="different lengths"):
        item_vectors.vector_matrix(dataset, "v")
    with pytest.raises(ValueError, match="no item carries the vector 'w'"):
        item_vectors.vector_matrix(dataset, "w")
    assert item_vectors.vector_names(Dataset.from_frame(events)) == []


def test_normalised_matrix_centres_and_leaves_absent_rows_zero() -> None:
    events = pd.DataFrame(
        {"user_id": ["u"] * 3, "item_id": ["a", "b", "c"], "event_type": ["view"] * 3,
         "timestamp": pd.to_datetime([1, 2, 3], unit="s", utc=True)}
    )  # fmt: skip
    items = pd.DataFrame(
        {"item_id": ["a", "b", "c"], "vectors": [{"v": [10.0, 1.0]}, {"v": [10.0, -1.0]}, None]}
    )
    matrix = item_vectors.normalised_matrix(Dataset.from_frame(events, items))
    # The shared (10, 0) is removed: what is left points in opposite directions.
    np.testing.assert_allclose(matrix, [[0.0, 1.0], [0.0, -1.0], [0.0, 0.0]], atol=1e-6)


# --- the synthetic shop ----------------------------------------------------------------------------


def test_generated_image_vectors_follow_the_hidden_item_factors() -> None:
    from fusionrec.data.synthetic import ShopConfig, generate_frames

    plain = generate_frames(n_events=20_000, seed=5)
    shop = generate_frames(n_events=20_000, seed=5, config=ShopConfig(image_vectors=16))
    assert "vectors" not in plain.items.column_names  # opt-in: the default catalogue is as before
    assert shop.events.equals(plain.events) and shop.users.equals(plain.users)
    assert shop.items.drop_columns(["vectors"]).equals(plain.items)
    assert shop.items.schema.equals(ITEM_SCHEMA)
    assert shop.summary.planted.image_vectors["dims"] == 16
    dataset = Dataset.from_frame(shop.events, shop.items)
    matrix, present = item_vectors.vector_matrix(dataset, "image_embedding")
    assert present.all() and matrix.shape[1] == 16
    # Items of one category are closer to each other than to the rest: the factors show through.
    unit = item_vectors.normalised_matrix(dataset)
    category = dataset.item_features["category"].to_numpy()
    similarity = unit @ unit.T
    same = category[:, None] == category[None, :]
    off_diagonal = ~np.eye(len(category), dtype=bool)
    assert similarity[same & off_diagonal].mean() > similarity[~same].mean() + 0.2
