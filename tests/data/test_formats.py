"""Format readers on the real public files (counts from ../shared/data/README.md) and on broken copies."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from fusionrec.data.formats import (
    FORMATS,
    SYNTHETIC_EPOCH,
    FormatError,
    SourceData,
    read_format,
    split_spec,
)
from fusionrec.data.schema import (
    CANONICAL_EVENT_TYPES,
    EVENT_SCHEMA,
    ITEM_SCHEMA,
    OPTIONAL_EVENT_COLUMNS,
    USER_SCHEMA,
)

CANONICAL_TYPES = {t.name for t in CANONICAL_EVENT_TYPES}

# format -> path inside the shared data folder
REAL = {
    "rees46": "event-samples/rees46_2019-Oct_first1000.csv",
    "otto": "event-samples/otto_train_20sessions.jsonl",
    "tianchi": "event-samples/tianchi_mobile_sample_user_behavior.csv",
    "diginetica": "sessions/diginetica-sample",
    "lightgcn": "gowalla",
    "s3rec": "amazon-beauty/Beauty.txt",
    "movielens": "movielens-100k",
    "dunnhumby": "dunnhumby-completejourney",
}


@pytest.fixture(scope="module")
def real(shared_data: Path) -> dict[str, SourceData]:
    """Each real dataset read once for the whole module."""
    return {name: read_format(name, shared_data / rel) for name, rel in REAL.items()}


def _conforms(frame: pd.DataFrame, schema: pa.Schema) -> None:
    """The frame's schema columns convert to exactly the canonical Arrow types."""
    fields = [schema.field(c) for c in frame.columns if c in schema.names]
    table = pa.Table.from_pandas(frame[[f.name for f in fields]], preserve_index=False)
    for f in fields:
        got = table.schema.field(f.name).type
        want = f.type
        if pa.types.is_large_string(got) and pa.types.is_string(want):
            continue
        if pa.types.is_list(want):
            assert pa.types.is_list(got) or pa.types.is_large_list(got), f.name
            continue
        assert got == want, f"{f.name}: {got} != {want}"
    for f in fields:
        if not f.nullable:
            assert frame[f.name].notna().all(), f"{f.name} has nulls"


# --- contract shared by every reader --------------------------------------------------------


@pytest.mark.parametrize("name", list(REAL))
def test_reader_contract(real: dict[str, SourceData], name: str) -> None:
    data = real[name]
    events = data.events
    required = [c for c in EVENT_SCHEMA.names if c not in OPTIONAL_EVENT_COLUMNS]
    assert set(required) <= set(events.columns)
    assert set(events.columns) <= set(EVENT_SCHEMA.names) | {"row_number"}
    assert str(events["timestamp"].dtype) == "datetime64[us, UTC]"
    assert set(events["event_type"].unique()) <= CANONICAL_TYPES
    assert events["item_id"].notna().all()
    assert events["user_id"].notna().any()
    rows = events["row_number"].to_numpy()
    assert rows.dtype == np.int64 and rows[0] == 1 and (np.diff(rows) >= 0).all()
    _conforms(events, EVENT_SCHEMA)
    if data.items is not None:
        assert set(data.items.columns) <= set(ITEM_SCHEMA.names)
        assert data.items["item_id"].is_unique
        _conforms(data.items, ITEM_SCHEMA)
    if data.users is not None:
        assert data.users["user_id"].is_unique
        _conforms(data.users, USER_SCHEMA)
        assert all(isinstance(json.loads(a), dict) for a in data.users["attributes"].head(50))
    assert data.protocol == FORMATS[name].protocol
    assert data.name


# --- per-format row counts and mappings -------------------------------------------------------


def test_rees46(real: dict[str, SourceData]) -> None:
    data = real["rees46"]
    events = data.events
    assert len(events) == 1_000
    assert events["event_type"].value_counts().to_dict() == {"view": 987, "purchase": 10, "add_to_cart": 3}
    assert events["timestamp"].iloc[0] == pd.Timestamp("2019-10-01T00:00:00Z")
    assert events.loc[0, ["user_id", "item_id", "price"]].tolist() == ["541312140", "44600062", 35.79]
    assert events["session_id"].iloc[0] == "72d76fde-8bb3-4e00-8c23-a032dfed738c"
    items = data.items.set_index("item_id")
    assert items.loc["3900821", "category"] == "appliances > environment > water_heater"
    assert items.loc["3900821", "brand"] == "aqua"
    assert json.loads(items.loc["3900821", "attributes"]) == {"category_id": "2053013552326770905"}
    assert len(items) == events["item_id"].nunique()


def test_otto(real: dict[str, SourceData]) -> None:
    events = real["otto"].events
    assert len(events) == 862
    assert set(events["event_type"]) == {"click", "add_to_cart", "purchase"}
    assert (events["user_id"] == events["session_id"]).all()
    assert events["session_id"].nunique() == 20
    first = events.iloc[0]
    assert (first["user_id"], first["item_id"], first["event_type"]) == ("0", "1517085", "click")
    assert first["timestamp"] == pd.Timestamp(1659304800025, unit="ms", tz="UTC")
    # one session a line: a session's events all carry its line number, lines 1..20
    per_session = events.groupby("session_id", sort=False)["row_number"].agg(["min", "max"])
    assert (per_session["min"] == per_session["max"]).all()
    assert per_session["min"].tolist() == list(range(1, 21))
    assert events.loc[events["row_number"] == 11, "session_id"].iloc[0] == "12899769"


def test_tianchi_keeps_exact_duplicates(real: dict[str, SourceData]) -> None:
    events = real["tianchi"].events
    assert len(events) == 1_999
    assert events["event_type"].value_counts().to_dict() == {
        "click": 1876,
        "add_to_cart": 70,
        "purchase": 35,
        "favorite": 18,
    }
    assert events["event_id"].duplicated().sum() == 104  # exact copies of a source row share an id
    assert events["timestamp"].iloc[0] == pd.Timestamp("2014-12-06T02:00:00Z")
    items = real["tianchi"].items
    assert items["item_id"].is_unique
    # the item file found beside the behaviour file adds its items (they barely overlap)
    assert len(items) > events["item_id"].nunique()
    with_geo = items.dropna(subset=["attributes"])
    assert len(with_geo) > 0 and "geohashes" in json.loads(with_geo["attributes"].iloc[0])


def test_diginetica(real: dict[str, SourceData]) -> None:
    events = real["diginetica"].events
    assert len(events) == 12_391
    assert events["session_id"].nunique() == 2_986
    assert events["item_id"].nunique() == 7_139
    assert (events["event_type"] == "view").all()
    assert events["user_id"].isna().sum() == 12_391 - 4_710  # "NA" -> anonymous, session kept
    day = pd.Timestamp("2016-05-09T00:00:00Z")
    assert events["timestamp"].iloc[0] == day + pd.Timedelta(milliseconds=526309)  # date + ms offset


def test_lightgcn_gowalla(real: dict[str, SourceData]) -> None:
    data = real["lightgcn"]
    train, test = data.events, data.test_events
    assert len(train) == 810_128 and len(test) == 217_242
    assert train["user_id"].nunique() == 29_858
    assert len(set(train["item_id"]) | set(test["item_id"])) == 40_981
    assert len(data.users) == 29_858 and len(data.items) == 40_981
    assert (train["event_type"] == "rating").all() and "quantity" not in train.columns
    # synthetic clock: file order kept, every test event after every training event
    assert train["timestamp"].iloc[0] == SYNTHETIC_EPOCH
    assert train["timestamp"].is_monotonic_increasing and test["timestamp"].is_monotonic_increasing
    assert train["timestamp"].iloc[-1] < test["timestamp"].iloc[0]
    # the two train parts read as one file: line numbers run on across the split
    assert train["row_number"].iloc[-1] == 29_858 and train["user_id"].iloc[-1] == "29857"
    assert json.loads(data.users.set_index("user_id").loc["0", "attributes"]) == {"org_id": "343"}


def test_s3rec_beauty(real: dict[str, SourceData]) -> None:
    data = real["s3rec"]
    events = data.events
    assert len(events) == 198_502
    assert events["user_id"].nunique() == 22_363 and events["item_id"].nunique() == 12_101
    assert events["timestamp"].is_monotonic_increasing
    assert events["item_id"].head(5).tolist() == ["1", "2", "3", "4", "5"]  # user 1's sequence, in order
    items = data.items.set_index("item_id")
    assert len(items) == 12_101
    assert items.loc["4", "tags"] == ["attr:1", "attr:2", "attr:3"]
    assert len({t for tags in items["tags"] for t in tags}) == 637


def test_movielens_100k(real: dict[str, SourceData]) -> None:
    data = real["movielens"]
    events = data.events
    assert len(events) == 100_000
    assert events["user_id"].nunique() == 943 and events["item_id"].nunique() == 1_682
    assert (events["event_type"] == "rating").all()
    assert events.loc[0, ["user_id", "item_id", "quantity"]].tolist() == ["196", "242", 3.0]
    assert set(events["quantity"].unique()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert events["timestamp"].iloc[0] == pd.Timestamp(881250949, unit="s", tz="UTC")
    items = data.items.set_index("item_id")
    assert len(items) == 1_682
    assert items.loc["1", "title"] == "Toy Story (1995)"
    assert items.loc["1", "tags"] == ["Animation", "Children's", "Comedy"]
    assert items.loc["1", "category"] == "Animation"
    assert items.loc["543", "title"] == "Misérables, Les (1995)"  # Latin-1 decoded
    assert items.loc["1", "created_at"] == pd.Timestamp("1995-01-01T00:00:00Z")
    assert pd.isna(items.loc["267", "created_at"])  # "unknown" movie without a date
    users = data.users.set_index("user_id")
    assert len(users) == 943
    assert json.loads(users.loc["1", "attributes"]) == {
        "age": 24,
        "gender": "M",
        "occupation": "technician",
        "zip": "85711",
    }


def test_dunnhumby(real: dict[str, SourceData]) -> None:
    data = real["dunnhumby"]
    events = data.events
    assert len(events) == 1_469_307
    assert events["session_id"].nunique() == 155_848
    assert (events["event_type"] == "purchase").all()
    assert len(data.items) == 92_331
    assert len(data.users) == 801
    # returns and adjustments kept as they are; no unit price where nothing was counted
    zero_quantity = events["quantity"] <= 0
    assert zero_quantity.sum() == 8_869
    assert events.loc[zero_quantity, "price"].isna().all()
    assert events.loc[~zero_quantity, "price"].notna().all()
    first = events.iloc[0]
    assert first["timestamp"] == pd.Timestamp("2017-01-01T11:53:26Z")
    assert (first["user_id"], first["item_id"], first["session_id"]) == ("900", "1095275", "31198570044")
    assert first["price"] == pytest.approx(0.50) and first["channel"] == "store:330"
    item = data.items.set_index("item_id").loc["25671"]
    assert item["category"] == "GROCERY > FRZN ICE > ICE - CRUSHED/CUBED"
    assert item["title"] == "ICE - CRUSHED/CUBED" and item["brand"] == "National"
    assert json.loads(item["attributes"]) == {"manufacturer_id": 2, "package_size": "22 LB"}
    assert json.loads(data.users.set_index("user_id").loc["1", "attributes"])["age"] == "65+"


# --- any copy at any path ----------------------------------------------------------------------


def test_copies_at_other_paths_load(shared_data: Path, tmp_path: Path) -> None:
    otto = tmp_path / "mine" / "sessions.jsonl"
    otto.parent.mkdir()
    shutil.copy(shared_data / REAL["otto"], otto)
    assert len(read_format("otto", str(otto)).events) == 862  # a str path works as well as a Path
    assert len(read_format("otto", otto.parent).events) == 862  # a folder with one file works too

    views = tmp_path / "digi" / "train-item-views.csv"
    views.parent.mkdir()
    shutil.copy(shared_data / REAL["diginetica"] / "sample_train-item-views.csv", views)
    assert len(read_format("diginetica", views.parent).events) == 12_391

    ml = tmp_path / "ml"
    ml.mkdir()
    shutil.copy(shared_data / "movielens-100k" / "u.data", ml / "u.data")
    data = read_format("movielens", ml)
    assert len(data.events) == 100_000 and data.items is None and data.users is None


def test_lightgcn_parts_in_part_order_and_single_file(tmp_path: Path) -> None:
    folder = tmp_path / "toy"
    folder.mkdir()
    (folder / "train.part2.txt").write_text("2 0\n")
    (folder / "train.part10.txt").write_text("3 1 2\n")  # part 10 after part 2, not before
    (folder / "train.part1.txt").write_text("0 0 1 2\n1 2\n")
    (folder / "test.txt").write_text("0 3\n1\n2 1\n")  # a user with no test items gives no event
    data = read_format("lightgcn", folder)
    assert data.events["user_id"].tolist() == ["0", "0", "0", "1", "2", "3", "3"]
    assert data.events["row_number"].tolist() == [1, 1, 1, 2, 3, 4, 4]
    assert data.test_events[["user_id", "item_id"]].to_numpy().tolist() == [["0", "3"], ["2", "1"]]
    assert data.test_events["row_number"].tolist() == [1, 3]
    assert data.users is None and data.items is None and data.protocol == "fixed"

    single = read_format("lightgcn", folder / "train.part1.txt")
    assert len(single.events) == 4 and single.test_events is not None


def test_canonical_mapping_and_folder(tmp_path: Path) -> None:
    events = pd.DataFrame(
        {
            "visitor": [7, 8, 7],
            "sku": ["a", "b", "a"],
            "kind": ["View", "cart", "orders"],
            "when": ["2024-01-01T10:00:00+02:00", "1704103200", "2024-01-01 12:00:00"],
            "qty": ["", "1", "2"],
        }
    )
    events.to_csv(tmp_path / "events.csv", index=False)
    pd.DataFrame({"item_id": ["a", "b"], "title": ["Tea", "Cup"], "colour": ["green", None]}).to_parquet(
        tmp_path / "items.parquet"
    )
    mapping = {
        "visitor": "user_id",
        "sku": "item_id",
        "kind": "event_type",
        "when": "timestamp",
        "qty": "quantity",
    }
    data = read_format("canonical", tmp_path, mapping=mapping)
    out = data.events
    assert out["user_id"].tolist() == ["7", "8", "7"]
    assert out["event_type"].tolist() == ["view", "add_to_cart", "purchase"]
    assert out["timestamp"].tolist() == [
        pd.Timestamp("2024-01-01T08:00:00Z"),
        pd.Timestamp("2024-01-01T10:00:00Z"),
        pd.Timestamp("2024-01-01T12:00:00Z"),
    ]
    assert out["quantity"].isna().tolist() == [True, False, False]
    assert out["row_number"].tolist() == [1, 2, 3]
    items = data.items.set_index("item_id")
    assert json.loads(items.loc["a", "attributes"]) == {"colour": "green"}  # extra column folded in
    assert data.users is None


# --- malformed files ----------------------------------------------------------------------------


def _error(name: str, path: Path, **options: object) -> FormatError:
    with pytest.raises(FormatError) as info:
        read_format(name, path, **options)
    return info.value


REES_HEADER = "event_time,event_type,product_id,category_id,category_code,brand,price,user_id,user_session\n"
REES_ROW = "2019-10-01 00:00:00 UTC,view,1,2,a.b,x,1.50,3,s\n"


def test_rees46_bad_time_names_line_and_field(tmp_path: Path) -> None:
    f = tmp_path / "r.csv"
    f.write_text(REES_HEADER + REES_ROW + REES_ROW.replace("2019-10-01 00:00:00", "yesterday"))
    err = _error("rees46", f)
    assert (err.path, err.line, err.field) == (f, 3, "event_time")
    assert "r.csv: line 3: field 'event_time'" in str(err) and "yesterday" in str(err)


def test_rees46_wrong_field_count_and_bad_price(tmp_path: Path) -> None:
    f = tmp_path / "r.csv"
    f.write_text(REES_HEADER + REES_ROW + REES_ROW + "2019-10-01 00:00:00 UTC,view,1,2,a.b,x,1.5,3,s,extra\n")
    assert _error("rees46", f).line == 4
    f.write_text(REES_HEADER + REES_ROW.replace("1.50", "cheap"))
    err = _error("rees46", f)
    assert (err.line, err.field) == (2, "price")


def test_rees46_missing_column_and_unknown_type(tmp_path: Path) -> None:
    f = tmp_path / "r.csv"
    f.write_text(REES_HEADER.replace("price,", "") + REES_ROW.replace("1.50,", ""))
    err = _error("rees46", f)
    assert err.line == 1 and "price" in str(err)
    # an unknown type is a bad value, not a bad file: passed on for ingestion to quarantine
    f.write_text(REES_HEADER + REES_ROW.replace(",view,", ",wishlist_shared,"))
    assert read_format("rees46", f).events["event_type"].tolist() == ["wishlist_shared"]


def test_otto_bad_json_and_bad_field(tmp_path: Path) -> None:
    good = '{"session": 1, "events": [{"aid": 5, "ts": 1659304800025, "type": "orders"}]}\n'
    f = tmp_path / "o.jsonl"
    f.write_text(good + "\n" + good.replace('"session": 1', '"session": 2') + '{"session": 3, "events": [\n')
    assert _error("otto", f).line == 4
    f.write_text(good + good.replace('"aid": 5', '"aid": "five"'))
    err = _error("otto", f)
    assert (err.line, err.field) == (2, "events[0].aid")
    f.write_text(good + "\n" + good.replace('"session": 1', '"session": 2'))  # blank line skipped
    events = read_format("otto", f).events
    assert events["row_number"].tolist() == [1, 3] and events["event_type"].tolist() == ["purchase"] * 2


def test_tianchi_bad_hour(tmp_path: Path) -> None:
    f = tmp_path / "tianchi_user_behavior.csv"
    f.write_bytes(
        b"user_id,item_id,behavior_type,user_geohash,item_category,time\r\n"
        b"1,2,4,,9,2014-12-06 02\r\n1,2,4,,9,2014-12-06 02\r\n1,3,1,,9,2014-12-06 25"
    )
    err = _error("tianchi", f)
    assert (err.line, err.field) == (4, "time")


def test_diginetica_bad_timeframe(tmp_path: Path) -> None:
    f = tmp_path / "views.csv"
    f.write_text(
        "sessionId;userId;itemId;timeframe;eventdate\n1;NA;5;10;2016-05-09\n1;NA;6;soon;2016-05-09\n"
    )
    err = _error("diginetica", f)
    assert (err.line, err.field) == (3, "timeframe")


def test_lightgcn_bad_token(tmp_path: Path) -> None:
    (tmp_path / "train.txt").write_text("0 1 2\n1 2 x3\n")
    err = _error("lightgcn", tmp_path)
    assert (err.path, err.line, err.field) == (tmp_path / "train.txt", 2, "item 2")
    assert _error("lightgcn", tmp_path / "missing").reason == "no such file or folder"


def test_s3rec_bad_attribute_file(tmp_path: Path) -> None:
    (tmp_path / "Toy.txt").write_text("1 1 2 3\n")
    (tmp_path / "Toy_item2attributes.json").write_text('{"1": [1, 2], "2": ')
    err = _error("s3rec", tmp_path)
    assert err.path == tmp_path / "Toy_item2attributes.json" and "invalid JSON" in str(err)
    (tmp_path / "Toy_item2attributes.json").write_text('{"1": [1, 2]}')
    data = read_format("s3rec", tmp_path / "Toy.txt")
    assert data.items["tags"].tolist() == [["attr:1", "attr:2"]] and len(data.events) == 3


def test_movielens_bad_rating(tmp_path: Path) -> None:
    (tmp_path / "u.data").write_text("1\t2\t3\t881250949\n1\t3\tfive\t881250949\n")
    err = _error("movielens", tmp_path)
    assert (err.line, err.field) == (2, "rating")


def test_dunnhumby_missing_column(tmp_path: Path) -> None:
    pd.DataFrame({"household_id": [1], "basket_id": [2], "product_id": [3]}).to_parquet(
        tmp_path / "transactions.parquet"
    )
    err = _error("dunnhumby", tmp_path)
    assert err.path == tmp_path / "transactions.parquet" and "quantity" in str(err)


def test_canonical_errors(tmp_path: Path) -> None:
    f = tmp_path / "events.csv"
    f.write_text("user_id,item_id,event_type\n1,2,view\n")
    assert "timestamp" in str(_error("canonical", f))
    f.write_text("user_id,item_id,event_type,timestamp\n1,2,view,2024-01-01\n1,2,view,not a time\n")
    err = _error("canonical", f)
    assert (err.line, err.field) == (3, "timestamp")


def test_registry_names() -> None:
    expected = {
        "canonical",
        "rees46",
        "otto",
        "tianchi",
        "diginetica",
        "lightgcn",
        "s3rec",
        "movielens",
        "dunnhumby",
    }
    assert set(FORMATS) == expected
    assert all(FORMATS[n].name == n and FORMATS[n].description for n in FORMATS)


def test_unknown_format_and_option() -> None:
    with pytest.raises(FormatError, match="known formats: canonical"):
        read_format("csv-ish", ".")
    with pytest.raises(FormatError, match="does not take that option"):
        read_format("otto", ".", colour="red")


def test_split_spec() -> None:
    assert split_spec("lightgcn:data/gowalla") == ("lightgcn", Path("data/gowalla"))
    assert split_spec("MovieLens:/x/ml-100k") == ("movielens", Path("/x/ml-100k"))
    assert split_spec("events.parquet") == ("canonical", Path("events.parquet"))
    assert split_spec("C:/data/events.csv") == ("canonical", Path("C:/data/events.csv"))
