"""Ingestion: validation and quarantine, idempotence, file formats, folders, kill safety."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fusionrec.data.import_options import ImportOptions
from fusionrec.data.ingest import (
    MAX_EXAMPLES,
    IngestError,
    IngestReport,
    ingest_batches,
    ingest_frame,
    ingest_items,
    ingest_path,
    ingest_users,
    iter_canonical_batches,
)
from fusionrec.data.store import EventStore, open_store

NOW = datetime(2024, 6, 1, tzinfo=UTC)


def good_events(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "user_id": [f"u{i}" for i in rng.integers(0, 50, n)],
            "item_id": [f"i{i}" for i in rng.integers(0, 80, n)],
            "event_type": rng.choice(["view", "add_to_cart", "purchase"], n),
            "timestamp": pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(np.arange(n) * 7, unit="s"),
            "price": np.round(rng.uniform(1, 50, n), 2),
        }
    )


MIXED = pd.DataFrame(
    {
        "user_id": [" u1 ", "u2", None, "u3", "u4", "u1", "u5", "u6", "u7", "u8"],
        "session_id": [None, None, "s2", "s3", None, None, None, None, None, "s8"],
        "item_id": ["i1", "i2", "i3", None, "i5", "i1", "i7", None, "i9", "i10"],
        "event_type": [
            "View",
            "cart",
            "purchase",
            "search",
            "bogus",
            "view",
            "view",
            "view",
            "purchase",
            "click",
        ],
        "timestamp": [
            "2024-01-01T10:00:00Z",
            "2024-01-01 11:00:00",
            "1700000000",
            "1700000000000",
            "2024-01-02",
            "2024-01-01T12:00:00+02:00",  # = row 1, same instant and fields: an exact duplicate
            "not a time",
            "2024-01-03",
            "2030-01-01",
            "2024-01-04T00:00:00",
        ],
        "price": ["1.5", None, "2", None, "1", "1.5", "3", "4", "5", "-1"],
        "quantity": ["1", "2", "1", None, None, "1", None, None, "x", None],
    }
)
# Expected fate of each MIXED row (1-based): valid rows and the reason of each rejected one.
UNITLESS = "timestamp is an epoch number but no epoch unit is configured (--epoch-unit s|ms|us|ns or [ingest] epoch_unit)"
MIXED_BAD = {
    3: UNITLESS,  # a number's unit is never guessed from its size
    4: UNITLESS,
    5: "unknown event_type",
    7: "unparseable timestamp",
    8: "missing item_id",
    9: "timestamp in the future; quantity is not a number",
    10: "negative price",
}


def test_mixed_rows_are_kept_or_quarantined_with_reasons(store: EventStore) -> None:
    report = ingest_frame(store, MIXED, source="mixed.csv", now=NOW)
    assert (report.read, report.stored, report.duplicates, report.quarantined) == (10, 2, 1, 7)
    rejected = {r["row_number"]: r["reason"] for r in store.quarantine_arrow().to_pylist()}
    assert rejected == MIXED_BAD
    raw = json.loads(next(r["raw"] for r in store.quarantine_arrow().to_pylist() if r["row_number"] == 10))
    assert raw["price"] == "-1" and raw["item_id"] == "i10"
    assert report.reasons["negative price"] == 1 and len(report.examples) == MAX_EXAMPLES
    stored = store.events_arrow().to_pandas()
    assert sorted(stored["user_id"]) == ["u1", "u2"]  # ids trimmed
    assert set(stored["event_type"]) == {"view", "add_to_cart"}  # aliases mapped
    times = dict(zip(stored["user_id"], stored["timestamp"], strict=True))
    assert times["u1"] == pd.Timestamp("2024-01-01 10:00", tz="UTC")
    assert times["u2"] == pd.Timestamp("2024-01-01 11:00", tz="UTC")  # naive means UTC

    again = ingest_frame(store, MIXED, source="mixed.csv", now=NOW)
    assert (again.stored, again.duplicates, again.quarantined) == (0, 3, 7)
    assert store.counts()["events"] == 2 and store.counts()["quarantine"] == 7


@pytest.mark.parametrize(
    ("unit", "written", "expected"),
    [
        ("s", ["1700000000", 1_700_000_000.5], [1_700_000_000_000_000, 1_700_000_000_500_000]),
        ("ms", ["1700000000000", 1_700_000_000_123], [1_700_000_000_000_000, 1_700_000_000_123_000]),
        ("us", ["1700000000000000"], [1_700_000_000_000_000]),
        ("ns", [1_700_000_000_000_000_000], [1_700_000_000_000_000]),
    ],
)
def test_epoch_numbers_are_read_in_the_configured_unit(
    unit: str, written: list[object], expected: list[int]
) -> None:
    """Text or typed numbers, in the unit the import options name (never guessed from size)."""
    frame = pd.DataFrame(
        {
            "user_id": [f"u{n}" for n in range(len(written))],
            "item_id": "i1",
            "event_type": "view",
            "timestamp": pd.Series(written, dtype=object),
        }
    )
    with open_store("duckdb:///:memory:") as store:
        report = ingest_frame(store, frame, options=ImportOptions(epoch_unit=unit), now=NOW)
        assert (report.stored, report.quarantined) == (len(written), 0), report.reasons
        micros = store.events_arrow(columns=["timestamp"]).column(0).cast(pa.int64()).to_pylist()
    assert sorted(micros) == expected


def test_event_ids_do_not_depend_on_the_input_format(tmp_path: Path) -> None:
    frame = good_events(300)
    frame.to_csv(tmp_path / "e.csv", index=False)
    frame.to_parquet(tmp_path / "e.parquet")
    frame.assign(timestamp=frame["timestamp"].astype("int64") // 10**6).to_json(  # epoch seconds
        tmp_path / "e.jsonl", orient="records", lines=True
    )
    ids = []
    for name in ("e.csv", "e.parquet", "e.jsonl"):
        with open_store("duckdb:///:memory:") as store:
            options = ImportOptions(epoch_unit="s")
            report = ingest_path(store, tmp_path / name, progress=False, batch_rows=128, options=options)
            assert (report.read, report.stored, report.quarantined) == (300, 300, 0), name
            ids.append(store.events_arrow(columns=["event_id"]).column(0).to_pylist())
    assert ids[0] == ids[1] == ids[2]


def test_canonical_batches_are_fixed_size_and_numbered(tmp_path: Path) -> None:
    good_events(1000).rename(columns={"user_id": "customer"}).to_csv(tmp_path / "e.csv", index=False)
    batches = list(
        iter_canonical_batches(tmp_path / "e.csv", column_map={"customer": "user_id"}, batch_rows=300)
    )
    assert [len(b) for b in batches] == [300, 300, 300, 100]
    assert batches[1]["row_number"].iloc[0] == 301 and batches[-1]["row_number"].iloc[-1] == 1000
    assert "user_id" in batches[0].columns
    with pytest.raises(IngestError, match="column_map names column"):
        next(iter_canonical_batches(tmp_path / "e.csv", column_map={"nope": "user_id"}))


def test_missing_required_column_is_a_clear_error(store: EventStore) -> None:
    with pytest.raises(IngestError, match=r"missing column.*timestamp"):
        ingest_frame(store, good_events(3).drop(columns=["timestamp"]))


def test_folder_from_generate_ingests_events_items_and_users(tmp_path: Path, store: EventStore) -> None:
    good_events(500).to_parquet(tmp_path / "events.parquet")
    pd.DataFrame(
        {
            "item_id": ["i1", "i2", None],
            "title": ["Tea", "Mug", "?"],
            "price": [3.0, -1.0, 1.0],
            "tags": [["a", "b"], [], None],
        }
    ).to_parquet(tmp_path / "items.parquet")
    pd.DataFrame({"user_id": ["u1", "u2"], "attributes": ['{"tier": 1}', None]}).to_parquet(
        tmp_path / "users.parquet"
    )
    report = ingest_path(store, tmp_path, progress=False)
    assert (report.stored, report.items, report.users) == (500, 1, 2)
    assert (
        report.quarantined == 2
        and report.reasons["negative price"] == 1
        and report.reasons["missing item_id"] == 1
    )
    assert store.items_arrow().column("tags").to_pylist() == [["a", "b"]]
    assert not report.failed(max_quarantine_share=0.01)
    assert report.to_dict()["read"] == 505


def test_items_and_users_from_frames_upsert(store: EventStore) -> None:
    items = pd.DataFrame(
        {"item_id": [1, 2], "price": ["2.5", "x"], "tags": ["a|b", '["c"]'], "in_stock": ["yes", "no"]}
    )
    report = ingest_items(store, items)
    assert (report.items, report.quarantined) == (1, 1) and report.reasons["price is not a number"] == 1
    row = store.items_arrow().to_pylist()[0]
    assert (row["item_id"], row["price"], row["tags"], row["in_stock"]) == ("1", 2.5, ["a", "b"], True)
    assert ingest_users(store, pd.DataFrame({"user_id": ["u1", " "]})).quarantined == 1


def test_exit_policy() -> None:
    assert IngestReport(read=10, quarantined=10).failed()  # nothing valid
    assert IngestReport(read=10, stored=0, duplicates=10).failed() is False  # a re-run is fine
    assert IngestReport(read=10, stored=7, quarantined=3).failed(max_quarantine_share=0.2)
    assert not IngestReport(read=10, stored=9, quarantined=1).failed(max_quarantine_share=0.2)


def test_erased_users_stay_erased_on_reingest(store: EventStore) -> None:
    frame = good_events(200)
    ingest_frame(store, frame)
    victim = frame["user_id"].iloc[0]
    n_victim = int((frame["user_id"] == victim).sum())
    assert store.erase_user(victim) == n_victim
    report = ingest_frame(store, frame)
    assert (report.stored, report.erased_skipped) == (0, n_victim)
    assert victim not in set(store.events_arrow(columns=["user_id"]).column(0).to_pylist())


def test_timestamps_from_arrow_and_pandas_types_are_utc() -> None:
    instant = pd.Timestamp("2024-02-03 04:05:06.789", tz="UTC")
    frames = [
        pd.DataFrame({"timestamp": [instant]}),
        pd.DataFrame({"timestamp": [instant.tz_convert("Asia/Tokyo")]}),
        pd.DataFrame({"timestamp": [instant.tz_localize(None)]}),
        pa.table({"timestamp": pa.array([instant.value // 1000], pa.timestamp("us"))}),
        pd.DataFrame({"timestamp": [instant.value // 10**6]}),  # epoch milliseconds, so configured
    ]
    milliseconds = ImportOptions(epoch_unit="ms")
    seen = set()
    for frame in frames:
        base = {"user_id": ["u"], "item_id": ["i"], "event_type": ["view"]}
        data = (
            frame.assign(**base)
            if isinstance(frame, pd.DataFrame)
            else frame.append_column("user_id", pa.array(["u"]))
            .append_column("item_id", pa.array(["i"]))
            .append_column("event_type", pa.array(["view"]))
        )
        with open_store("duckdb:///:memory:") as store:
            assert ingest_frame(store, data, options=milliseconds).stored == 1
            seen.add(store.events_arrow().column("timestamp")[0].as_py())
    assert seen == {instant.to_pydatetime()}


# --- property: any mix of good, bad and repeated rows ------------------------------------------

_good_row = st.fixed_dictionaries(
    {
        "user_id": st.sampled_from(["u1", "u2", "u3", " u4 "]),
        "item_id": st.sampled_from(["i1", "i2", "i3"]),
        "event_type": st.sampled_from(["view", "purchase", "Add To Cart"]),
        "timestamp": st.integers(1_600_000_000, 1_700_000_000).map(str),
        "price": st.one_of(st.none(), st.floats(0, 1000, allow_nan=False).map(lambda v: f"{v:.2f}")),
    }
)
_BREAKERS = {
    "unknown event_type": ("event_type", "teleport"),
    "missing item_id": ("item_id", None),
    "unparseable timestamp": ("timestamp", "yesterday-ish"),
    "negative price": ("price", "-3"),
    "price is not a number": ("price", "cheap"),
    "timestamp in the future": ("timestamp", "2999-01-01T00:00:00"),
}
_row = st.one_of(
    _good_row.map(lambda r: (r, None)),
    st.tuples(_good_row, st.sampled_from(sorted(_BREAKERS))).map(
        lambda pair: ({**pair[0], _BREAKERS[pair[1]][0]: _BREAKERS[pair[1]][1]}, pair[1])
    ),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows=st.lists(_row, min_size=1, max_size=40),
    repeats=st.lists(st.integers(0, 39), max_size=15),
    batch_rows=st.integers(1, 16),
)
def test_property_good_rows_kept_once_bad_rows_quarantined(rows, repeats, batch_rows) -> None:
    ordered = rows + [rows[i % len(rows)] for i in repeats]
    frame = pd.DataFrame([r for r, _ in ordered])
    with open_store("duckdb:///:memory:") as store:
        report = ingest_frame(store, frame, batch_rows=batch_rows, options=ImportOptions(epoch_unit="s"))
        bad_numbers = {i + 1: reason for i, (_, reason) in enumerate(ordered) if reason is not None}
        quarantined = {r["row_number"]: r["reason"] for r in store.quarantine_arrow().to_pylist()}
        assert set(quarantined) == set(bad_numbers)
        for number, reason in bad_numbers.items():
            assert reason in quarantined[number]
        good = {
            (
                r["user_id"].strip(),
                r["item_id"],
                r["event_type"].lower().replace(" ", "_"),
                int(r["timestamp"]),
                None if r["price"] is None else float(r["price"]),
            )
            for r, reason in ordered
            if reason is None
        }
        stored = store.events_arrow().to_pylist()
        keys = [
            (e["user_id"], e["item_id"], e["event_type"], int(e["timestamp"].timestamp()), e["price"])
            for e in stored
        ]
        # Every good row, exactly once (compared as sets: prices may be None, which does not sort).
        assert len(keys) == len(set(keys)) and set(keys) == good
        assert report.stored == len(good) and report.quarantined == len(bad_numbers)
        assert report.stored + report.duplicates + report.quarantined == report.read == len(ordered)


# --- kill safety --------------------------------------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import sys
    from fusionrec.data.ingest import ingest_batches
    from fusionrec.data.batches import iter_arrow_batches
    from fusionrec.data.store import open_store

    url, path, batch_rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = open_store(url)
    ingest_batches(store, iter_arrow_batches(path, batch_rows=batch_rows), source=path,
                   progress=lambda n: print("batch", n, flush=True))
    print("done", flush=True)
    """
)


def test_kill_mid_ingest_leaves_whole_batches_and_a_rerun_completes(tmp_path: Path, store_url: str) -> None:
    rows, batch_rows = 20_000, 1_000
    path = tmp_path / "events.parquet"
    pq.write_table(pa.Table.from_pandas(good_events(rows, seed=7), preserve_index=False), path)
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, store_url, str(path), str(batch_rows)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert child.stdout is not None
    for _ in range(5):  # let a few batches commit, then kill without warning
        assert child.stdout.readline().startswith("batch")
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL

    with open_store(store_url) as store:
        stored = store.counts()["events"]
        assert 5 * batch_rows <= stored < rows and stored % batch_rows == 0  # whole batches only
        report = ingest_path(store, path, batch_rows=batch_rows, progress=False, flag_bots=False)
        assert report.stored == rows - stored and report.duplicates == stored
        assert store.counts()["events"] == rows
        ids = store.events_arrow(columns=["event_id"]).column(0)
        assert len(set(ids.to_pylist())) == rows


def test_ingest_batches_accepts_arrow_and_pandas_batches(store: EventStore) -> None:
    frame = good_events(10)
    batches = [
        frame.iloc[:5].assign(row_number=range(1, 6)),
        pa.Table.from_pandas(frame.iloc[5:].assign(row_number=range(6, 11)), preserve_index=False),
    ]
    report = ingest_batches(store, batches, source="mixed", event_types=["view", "add_to_cart", "purchase"])
    assert report.stored == 10 and report.read == 10
    report = ingest_batches(store, [frame.assign(event_type="refund")], event_types=["view"], source="x")
    assert report.quarantined == 10 and report.failed()


def test_future_limit_is_configurable(store: EventStore) -> None:
    frame = good_events(2).assign(timestamp=[NOW + timedelta(hours=2), NOW + timedelta(hours=30)])
    report = ingest_frame(store, frame, now=NOW)
    assert (report.stored, report.quarantined) == (1, 1)
    assert ingest_frame(store, frame, now=NOW, max_future=timedelta(days=2)).stored == 1


def test_bots_planted_by_the_synthetic_shop_are_flagged_and_only_they(tmp_path: Path) -> None:
    from fusionrec.data.synthetic import generate_shop

    summary = generate_shop(tmp_path / "shop", n_events=60_000, seed=3, progress=False)
    with open_store(f"duckdb:///{tmp_path / 's.duckdb'}") as store:
        report = ingest_path(store, tmp_path / "shop", progress=False)
        assert report.bot_events > 0 and report.quarantined == 0
        flagged = store.query_arrow("SELECT DISTINCT user_id FROM events WHERE is_bot").column(0).to_pylist()
        assert sorted(flagged) == sorted(summary.bots)
        assert not set(summary.bots) & set(store.events_arrow(columns=["user_id"]).column(0).to_pylist())


def test_a_rerun_after_a_crash_before_flagging_flags_the_bots(
    tmp_path: Path, store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    start = pd.Timestamp("2024-01-01", tz="UTC")
    bot = pd.DataFrame(
        {
            "user_id": "bot",
            "item_id": [f"i{i}" for i in range(300)],
            "event_type": "view",
            "timestamp": start + pd.to_timedelta(np.arange(300) * 0.2, unit="s"),  # 5 a second
        }
    )
    path = tmp_path / "events.parquet"
    pq.write_table(pa.Table.from_pandas(pd.concat([good_events(50), bot]), preserve_index=False), path)
    real_flag = store.flag_bots

    def killed(*args: object, **kwargs: object) -> int:  # the process dies after the last commit
        raise KeyboardInterrupt

    monkeypatch.setattr(store, "flag_bots", killed)
    with pytest.raises(KeyboardInterrupt):
        ingest_path(store, path, batch_rows=100, progress=False, max_events_per_minute=120)
    assert store.counts()["events"] == 350 and store.counts()["bot_events"] == 0  # the crash state

    monkeypatch.setattr(store, "flag_bots", real_flag)
    report = ingest_path(store, path, batch_rows=100, progress=False, max_events_per_minute=120)
    assert report.stored == 0 and report.duplicates == 350
    assert report.bot_events == 300 and store.counts()["bot_events"] == 300
    assert "bot" not in set(store.events_arrow(columns=["user_id"]).column(0).to_pylist())


# The bad-input corpus of issue 24 (ids, times, numbers): each row alone in a batch of good ones.
GOOD_EVENT = {"user_id": "u1", "item_id": "i1", "event_type": "view", "timestamp": "2026-03-01T10:00:00Z"}
BAD_INPUT = [
    ({"user_id": "u" * 257}, "user_id longer than 256 characters"),
    ({"item_id": "i" * 1_000_000}, "item_id longer than 256 characters"),
    ({"session_id": "s" * 300, "user_id": None}, "session_id longer than 256 characters"),
    ({"event_id": "e" * 257}, "event_id longer than 256 characters"),
    ({"user_id": "bad\x00user"}, "user_id holds control characters"),
    ({"item_id": "i\x1b[31m"}, "item_id holds control characters"),
    ({"timestamp": "0001-01-01T00:00:00Z"}, "timestamp before 1990"),
    ({"timestamp": "1900-06-01T00:00:00Z"}, "timestamp before 1990"),
    ({"quantity": 1e308}, "quantity above 1,000,000"),
    ({"quantity": float("inf")}, "quantity is not a number"),
    ({"price": 5e9}, "price above 1,000,000,000"),
]


@pytest.mark.parametrize(("change", "reason"), BAD_INPUT, ids=[r for _, r in BAD_INPUT])
def test_bad_input_is_quarantined_and_the_good_rows_kept(
    store: EventStore, change: dict, reason: str
) -> None:
    """On DuckDB and PostgreSQL: the bad row goes to the quarantine with its reason (its user_id
    column stays storable), the ten good rows of the same batch are stored."""
    good = [{**GOOD_EVENT, "item_id": f"g{n}"} for n in range(10)]
    report = ingest_frame(store, pd.DataFrame([*good, {**GOOD_EVENT, **change}]))
    assert report.stored == 10 and report.quarantined == 1
    (row,) = store.quarantine_arrow().to_pylist()
    assert reason in row["reason"] and row["row_number"] == 11
    assert row["user_id"] in (None, "u1")  # a refused id is not copied into the quarantine's column


def test_a_part_of_a_checked_batch_is_what_checking_those_rows_alone_gives() -> None:
    """`CheckedBatch.part`: rows checked in one pass, then told apart, as if checked alone."""
    from fusionrec.data.schema import EventTypes
    from fusionrec.data.validate import check_events

    t = "2024-03-01T12:00:00Z"
    rows = [
        {"user_id": "u1", "item_id": "i1", "event_type": "view", "timestamp": t},
        {"user_id": "u1", "item_id": None, "event_type": "teleport", "timestamp": t},
        {"user_id": "u2", "item_id": "i2", "event_type": "purchase", "timestamp": "soon"},
        {"user_id": None, "item_id": "i3", "event_type": "view", "timestamp": t, "session_id": "s1"},
        {"user_id": "u3", "item_id": "i4", "event_type": "Add To Cart", "timestamp": t},
        {"user_id": "u3", "item_id": "i4", "event_type": "teleport", "timestamp": t},
    ]
    types = EventTypes()

    def check(part: list[dict[str, object]], numbers: list[int]) -> object:
        frame = pd.DataFrame.from_records(
            part, columns=["user_id", "item_id", "event_type", "timestamp", "session_id"]
        )
        frame["row_number"] = numbers
        return check_events(frame, source="http", event_types=types, now=datetime(2024, 3, 2, tzinfo=UTC))

    whole = check(rows, [1, 2, 3, 1, 2, 3])
    for start, stop in ((0, 3), (3, 6), (1, 2), (2, 2)):
        alone = check(rows[start:stop], list(range(1, stop - start + 1)))
        part = whole.part(start, stop)
        assert part.read == alone.read == stop - start
        assert part.valid.to_pylist() == alone.valid.to_pylist()
        assert (
            part.quarantine.drop_columns("row_number").to_pylist()
            == alone.quarantine.drop_columns("row_number").to_pylist()
        )
        assert part.reasons == alone.reasons
        assert (part.types_read, part.types_rejected, part.types_unknown) == (
            alone.types_read,
            alone.types_rejected,
            alone.types_unknown,
        )
    assert whole.part(0, 3).reasons == {
        "missing item_id": 1,
        "unknown event_type": 1,
        "unparseable timestamp": 1,
    }
