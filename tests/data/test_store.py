"""EventStore: both backends through one suite (DuckDB file, real PostgreSQL server)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from fusionrec.data.schema import EVENT_SCHEMA, ITEM_SCHEMA
from fusionrec.data.store import SCHEMA_VERSION, EventStore, StoreError, StoreLockedError, open_store
from fusionrec.data.store.base import WriteResult
from fusionrec.data.store.duckdb import DuckDBStore

T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def events(rows: list[tuple]) -> pa.Table:
    """(event_id, user_id, item_id, event_type, seconds after T0) rows as canonical events."""
    return pa.table(
        {
            "event_id": [r[0] for r in rows],
            "user_id": [r[1] for r in rows],
            "item_id": [r[2] for r in rows],
            "event_type": [r[3] for r in rows],
            "timestamp": pa.array([T0 + timedelta(seconds=r[4]) for r in rows], pa.timestamp("us", tz="UTC")),
        }
    )


def test_new_store_has_every_table_and_the_schema_version(store: EventStore) -> None:
    assert store.schema_version == SCHEMA_VERSION == 3
    assert store.counts() == {
        "events": 0,
        "bot_events": 0,
        "items": 0,
        "users": 0,
        "quarantine": 0,
        "erased_users": 0,
    }
    empty = store.events_arrow()
    assert empty.num_rows == 0 and empty.schema.names == EVENT_SCHEMA.names


def test_insert_counts_only_new_events_and_ignores_known_ids(store: EventStore) -> None:
    first = events(
        [("a", "u1", "i1", "view", 0), ("b", "u1", "i2", "purchase", 5), ("a", "u1", "i1", "view", 0)]
    )
    result = store.write_batch(first)
    assert (result.stored, result.duplicates) == (2, 1)
    assert store.insert_events(events([("b", "u1", "i2", "purchase", 5), ("c", "u2", "i1", "view", 1)])) == 1
    assert store.counts()["events"] == 3


def test_events_come_back_time_ordered_in_the_canonical_schema(store: EventStore) -> None:
    store.insert_events(
        events([("z", "u1", "i1", "view", 30), ("b", "u2", "i2", "view", 10), ("a", "u3", "i3", "view", 10)])
    )
    table = store.events_arrow()
    assert table.schema.names == EVENT_SCHEMA.names
    assert table.schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
    assert table.column("event_id").to_pylist() == ["a", "b", "z"]
    assert table.column("timestamp")[0].as_py() == T0 + timedelta(seconds=10)
    assert store.events_arrow(columns=["user_id", "item_id"]).column_names == ["user_id", "item_id"]
    with pytest.raises(ValueError, match="unknown event column"):
        store.events_arrow(columns=["nope"])


def test_a_failing_write_stores_nothing_of_that_call(store: EventStore) -> None:
    good = events([("a", "u1", "i1", "view", 0)])
    bad = pa.table(
        {
            "event_id": ["b"],
            "user_id": ["u1"],
            "item_id": ["i1"],
            "event_type": [None],
            "timestamp": good.column("timestamp"),
        }
    )
    with pytest.raises(Exception):  # noqa: B017 - the backend's own NOT NULL error
        store.write_batch(
            pa.concat_tables([good, bad.cast(good.schema)]),
            [{"source": "s", "row_number": 1, "reason": "r", "raw": "{}"}],
        )
    assert store.counts()["events"] == 0 and store.counts()["quarantine"] == 0
    assert store.insert_events(good) == 1  # the store is still usable after the rollback


def test_upserts_replace_rows_by_key_last_write_wins(store: EventStore) -> None:
    assert (
        store.upsert_items(
            pa.table(
                {
                    "item_id": ["i1", "i2"],
                    "title": ["Tea", "Mug"],
                    "tags": [["hot", "drink"], None],
                    "price": [3.5, 9.0],
                }
            )
        )
        == 2
    )
    assert (
        store.upsert_items(
            pa.table(
                {"item_id": ["i1", "i1"], "title": ["Green tea", "Black tea"], "in_stock": [True, False]}
            )
        )
        == 1
    )
    items = store.items_arrow()
    assert items.schema.names == ITEM_SCHEMA.names
    rows = {r["item_id"]: r for r in items.to_pylist()}
    assert rows["i1"]["title"] == "Black tea" and rows["i1"]["in_stock"] is False
    assert rows["i2"]["tags"] is None and rows["i2"]["price"] == 9.0
    store.upsert_users(pa.table({"user_id": ["u1"], "attributes": ['{"tier": "gold"}']}))
    store.upsert_users(pa.table({"user_id": ["u1", "u2"], "attributes": ['{"tier": "silver"}', None]}))
    assert store.users_arrow().to_pylist() == [
        {"user_id": "u1", "attributes": '{"tier": "silver"}'},
        {"user_id": "u2", "attributes": None},
    ]


def test_quarantine_rows_are_kept_once(store: EventStore) -> None:
    rows = [
        {
            "source": "f.csv",
            "row_number": 7,
            "reason": "negative price",
            "user_id": "u1",
            "raw": '{"price": -1}',
        }
    ]
    assert store.add_quarantine(rows) == 1
    assert store.add_quarantine(rows) == 0  # the same rejected row from a re-run is not repeated
    assert store.quarantine_arrow().to_pylist()[0]["reason"] == "negative price"


def test_erasing_a_user_deletes_their_data_and_drops_their_later_events(store: EventStore) -> None:
    store.insert_events(
        events([("a", "u1", "i1", "view", 0), ("b", "u2", "i1", "view", 1), ("c", "u1", "i2", "view", 2)])
    )
    store.upsert_users(pa.table({"user_id": ["u1", "u2"]}))
    store.add_quarantine([{"source": "s", "row_number": 1, "reason": "r", "user_id": "u1", "raw": "{}"}])
    assert store.erase_user("u1") == 2
    assert store.events_arrow().column("user_id").to_pylist() == ["u2"]
    assert store.users_arrow().column("user_id").to_pylist() == ["u2"]
    assert store.counts()["quarantine"] == 0
    result = store.write_batch(
        events([("a", "u1", "i1", "view", 0), ("d", "u1", "i3", "view", 9), ("e", "u3", "i1", "view", 3)])
    )
    assert (result.stored, result.erased_skipped, result.duplicates) == (1, 2, 0)
    assert store.is_erased("u1") and not store.is_erased("u2")


def test_erasure_follows_linked_sessions_to_guest_events_sent_after_the_sign_in(store: EventStore) -> None:
    store.insert_events(events([("a", None, "i1", "view", 0), ("b", "u2", "i1", "view", 1)]))
    assert store.link_session("s1", "u1") == 0  # no session column in these rows: nothing moved yet
    later = events([("c", None, "i2", "view", 2), ("d", None, "i3", "view", 3)])
    later = later.append_column("session_id", pa.array(["s1", "s2"]))  # s1 after identify, s2 a stranger
    store.insert_events(later)
    assert store.linked_sessions("u1") == ["s1"]
    assert store.erase_user("u1") == 1  # the guest event of the linked session
    assert sorted(store.events_arrow().column("event_id").to_pylist()) == ["a", "b", "d"]
    assert store.linked_sessions("u1") == []


def test_erased_ids_are_kept_only_as_their_sha256(store: EventStore) -> None:
    import hashlib

    store.erase_user("secret-user")
    kept = store.query_arrow("SELECT * FROM erased_ids").to_pylist()
    assert [row["user_sha256"] for row in kept] == [hashlib.sha256(b"secret-user").hexdigest()]
    assert "secret-user" not in repr(kept)


def test_a_version_1_store_is_migrated_to_hashed_erased_ids(store_url: str) -> None:
    import hashlib

    from fusionrec.analytics.engine import table_exists

    with open_store(store_url) as opened:  # back to schema 1: the raw id in erased_users
        opened.execute("DROP TABLE erased_ids")
        opened.execute("CREATE TABLE erased_users (user_id TEXT PRIMARY KEY, erased_at TIMESTAMPTZ)")
        opened.execute("INSERT INTO erased_users (user_id) VALUES ('old-user')")
        opened.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    with open_store(store_url) as migrated:
        assert migrated.schema_version == SCHEMA_VERSION
        assert migrated.erased_hashes() == {hashlib.sha256(b"old-user").hexdigest()}
        assert migrated.is_erased("old-user")
        assert migrated.write_batch(events([("a", "old-user", "i1", "view", 0)])).erased_skipped == 1
        assert not table_exists(migrated, "erased_users")  # the raw ids are gone


def test_flag_bots_marks_inhuman_rates_and_training_reads_exclude_them(store: EventStore) -> None:
    bot = [(f"b{i}", "bot", f"i{i}", "view", i * 0.2) for i in range(200)]  # 5 events a second
    human = [(f"h{i}", "human", f"i{i}", "view", i * 20) for i in range(10)]
    coarse = [(f"c{i}", "hourly", f"i{i}", "view", 0) for i in range(300)]  # one timestamp: a coarse clock
    store.insert_events(events(bot + human + coarse))
    assert store.flag_bots(max_events_per_minute=120) == 200
    assert store.counts()["bot_events"] == 200
    assert set(store.events_arrow().column("user_id").to_pylist()) == {"human", "hourly"}
    assert store.events_arrow(exclude_bots=False).num_rows == 510
    assert store.flag_bots(max_events_per_minute=120) == 0  # already flagged


def test_query_arrow_takes_named_parameters(store: EventStore) -> None:
    store.insert_events(events([("a", "u1", "i1", "view", 0), ("b", "u2", "i1", "purchase", 1)]))
    table = store.query_arrow("SELECT event_id FROM events WHERE event_type = :kind", {"kind": "purchase"})
    assert table.column(0).to_pylist() == ["b"]


def test_data_survives_reopening(store_url: str) -> None:
    with open_store(store_url) as first:
        first.insert_events(events([("a", "u1", "i1", "view", 0)]))
    with open_store(store_url) as second:
        assert second.counts()["events"] == 1 and second.schema_version == SCHEMA_VERSION


def test_a_store_from_a_newer_release_is_refused(tmp_path) -> None:
    url = f"duckdb:///{tmp_path / 'new.duckdb'}"
    with open_store(url) as opened:
        opened.query_arrow("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match="schema version 99"):
        open_store(url)


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("duckdb:///relative/shop.duckdb", "relative/shop.duckdb"),
        ("duckdb:////abs/shop.duckdb", "/abs/shop.duckdb"),
        ("duckdb:///:memory:", ":memory:"),
    ],
)
def test_duckdb_urls_follow_sqlalchemy(url: str, path: str) -> None:
    from fusionrec.data.store import duckdb_path

    assert duckdb_path(url) == (path, False)


def test_unknown_store_url_is_a_clear_error() -> None:
    with pytest.raises(StoreError, match="unknown store URL"):
        open_store("mysql://x/y")


def test_memory_store_works(tmp_path) -> None:
    with open_store("duckdb:///:memory:") as opened:
        assert isinstance(opened, DuckDBStore)
        assert opened.insert_events(events([("a", "u1", "i1", "view", 0)])) == 1


def test_a_second_writing_process_gets_store_locked_error(tmp_path) -> None:
    path = tmp_path / "locked.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import sys, time
                from fusionrec.data.store import open_store
                store = open_store("duckdb:///{path}")
                print("ready", flush=True)
                sys.stdin.readline()
                """
            ),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        with pytest.raises(StoreLockedError, match="open for writing in another process"):
            open_store(f"duckdb:///{path}")
    finally:
        holder.communicate("\n", timeout=30)
    with open_store(f"duckdb:///{path}") as reopened:  # free again once the writer is gone
        assert reopened.schema_version == SCHEMA_VERSION


# --- public statement and table methods (used by analytics and serving) -----------------------

DUPLICATE_KEY = r"(?i)duplicate|primary key|unique"  # DuckDB's and PostgreSQL's wording
NOTES = pa.schema(
    [
        pa.field("day", pa.date32()),
        pa.field("tag", pa.string()),
        pa.field("value", pa.float64()),
        pa.field("labels", pa.list_(pa.string())),
    ]
)


def notes(rows: list[tuple]) -> pa.Table:
    return pa.Table.from_pylist([dict(zip(NOTES.names, row, strict=True)) for row in rows], schema=NOTES)


def make_notes_table(store: EventStore) -> None:
    text = "VARCHAR" if store.dialect == "duckdb" else "TEXT"
    store.execute(
        f'CREATE TABLE notes ("day" DATE NOT NULL, tag {text} NOT NULL, value DOUBLE PRECISION, '
        f'labels {text}[], PRIMARY KEY ("day", tag))'
    )


def test_execute_runs_ddl_and_dml_and_returns_row_counts(store: EventStore) -> None:
    make_notes_table(store)
    day = datetime(2024, 3, 1).date()
    store.execute("INSERT INTO notes VALUES (:d, 'a', 1.0, NULL), (:d, 'b', 2.0, NULL)", {"d": day})
    assert store.execute("UPDATE notes SET value = value + 1 WHERE tag = :t", {"t": "b"}) == 1
    assert store.query_arrow("SELECT value FROM notes ORDER BY tag").column(0).to_pylist() == [1.0, 3.0]
    with pytest.raises(Exception, match=DUPLICATE_KEY):
        store.execute("INSERT INTO notes VALUES (:d, 'a', 9.0, NULL)", {"d": day})
    assert store.query_arrow("SELECT count(*) AS n FROM notes").column(0)[0].as_py() == 2


def test_insert_table_appends_skips_or_replaces_by_key(store: EventStore) -> None:
    make_notes_table(store)
    d1, d2 = datetime(2024, 3, 1).date(), datetime(2024, 3, 2).date()
    assert store.insert_table("notes", notes([(d1, "a", 1.0, ["x", "y"]), (d1, "b", 2.0, None)])) == 2
    assert store.insert_table("notes", notes([])) == 0
    # skip_key: the known (d1, a) stays as it was, (d2, a) is new
    assert (
        store.insert_table(
            "notes", notes([(d1, "a", 9.0, []), (d2, "a", 3.0, ["z"])]), skip_key=["day", "tag"]
        )
        == 1
    )
    # replace_key: the last of repeated keys wins and overwrites the stored row
    written = store.insert_table(
        "notes", notes([(d1, "b", 5.0, None), (d1, "b", 6.0, ["w"])]), replace_key=("day", "tag")
    )
    assert written == 1
    got = store.query_arrow('SELECT "day", tag, value, labels FROM notes ORDER BY "day", tag').to_pylist()
    assert [(r["day"], r["tag"], r["value"], r["labels"]) for r in got] == [
        (d1, "a", 1.0, ["x", "y"]),
        (d1, "b", 6.0, ["w"]),
        (d2, "a", 3.0, ["z"]),
    ]
    with pytest.raises(ValueError, match="not both"):
        store.insert_table("notes", notes([(d1, "a", 1.0, None)]), replace_key="tag", skip_key="tag")


def test_a_failing_insert_table_writes_nothing(store: EventStore) -> None:
    make_notes_table(store)
    d1 = datetime(2024, 3, 1).date()
    with pytest.raises(Exception, match=DUPLICATE_KEY):
        store.insert_table("notes", notes([(d1, "a", 1.0, None), (d1, "a", 2.0, None)]))
    assert store.query_arrow("SELECT count(*) AS n FROM notes").column(0)[0].as_py() == 0


def test_query_arrow_of_a_statement_without_rows_is_an_empty_table(store: EventStore) -> None:
    result = store.query_arrow("CREATE TEMPORARY TABLE scratch (one INTEGER)")
    assert result.num_rows == 0
    store.execute("INSERT INTO scratch VALUES (1)")
    assert store.query_arrow("SELECT one FROM scratch").column(0).to_pylist() == [1]


def test_duckdb_progress_bar_is_off(tmp_path) -> None:
    with open_store(f"duckdb:///{tmp_path / 'quiet.duckdb'}") as store:
        setting = store.query_arrow("SELECT current_setting('enable_progress_bar') AS on_")
    assert setting.column(0)[0].as_py() is False


def test_create_tables_waits_for_another_process_ddl(store_url: str) -> None:
    """Two serving workers starting together: concurrent ``CREATE TABLE IF NOT EXISTS`` collide in
    PostgreSQL's catalogue, so `create_tables` waits for the DDL lock another connection holds."""
    import threading

    ddl = ["CREATE TABLE IF NOT EXISTS side_table (k INTEGER PRIMARY KEY)"]
    with open_store(store_url) as store:
        if store.dialect != "postgresql":
            store.create_tables(ddl)
            store.create_tables(ddl)  # idempotent
            assert store.query_arrow("SELECT count(*) AS n FROM side_table").column("n")[0].as_py() == 0
            return
        import psycopg

        from fusionrec.data.store.postgres import _DDL_LOCK

        base = store_url.split("?")[0]
        with psycopg.connect(base) as other:  # not autocommit: holds the lock until commit
            other.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))
            worker = threading.Thread(target=store.create_tables, args=(ddl,))
            worker.start()
            worker.join(timeout=1.0)
            assert worker.is_alive(), "create_tables must wait while another process holds the DDL lock"
            other.commit()
        worker.join(timeout=10)
        assert not worker.is_alive()
        assert store.query_arrow("SELECT count(*) AS n FROM side_table").column("n")[0].as_py() == 0


def test_events_stored_since_a_time_are_the_later_batches_in_stored_order(store: EventStore) -> None:
    store.write_batch(events([("a", "u1", "i1", "view", 50), ("b", "u2", "i1", "view", 60)]))
    since = datetime.now(UTC)
    store.write_batch(events([("c", "u1", "i2", "view", 9), ("d", "u3", "i1", "view", 1)]))
    store.write_batch(events([("e", "u1", "i3", "view", 0)]))
    later = store.events_stored_since(since, columns=["event_id", "user_id"])
    assert later.column("event_id").to_pylist() == ["d", "c", "e"]  # by batch, then by event time
    assert store.events_stored_since(datetime.now(UTC)).num_rows == 0


def test_write_rows_tells_each_rows_outcome_like_write_batch(store: EventStore) -> None:
    """A small batch without staging: known ids, repeats in the batch and erased users, per row."""
    store.insert_events(events([("a", "u1", "i1", "view", 0), ("gone-1", "u9", "i1", "view", 0)]))
    store.erase_user("u9")
    batch = events(
        [
            ("a", "u2", "i1", "view", 1),  # id stored already
            ("b", "u2", "i2", "purchase", 2),
            ("b", "u2", "i2", "purchase", 2),  # repeats the row before it
            ("c", "u9", "i3", "view", 3),  # an erased user
            ("d", None, "i4", "view", 4),  # a guest (no user)
        ]
    )
    batch = batch.append_column("session_id", pa.array([None, None, None, None, "s1"]))
    rejected = [{"source": "http", "row_number": 6, "reason": "unknown event_type", "raw": "{}"}]
    outcome = store.write_rows(batch, rejected)
    assert outcome.events == ("duplicate", "stored", "duplicate", "erased", "stored")
    assert outcome.result() == WriteResult(stored=2, duplicates=2, erased_skipped=1, quarantined=1)
    assert outcome.result(1, 3) == WriteResult(stored=1, duplicates=1, erased_skipped=0, quarantined=1)
    stored = {r["event_id"]: r for r in store.events_arrow().to_pylist()}
    assert set(stored) == {"a", "b", "d"} and stored["a"]["user_id"] == "u1"
    assert stored["d"]["session_id"] == "s1" and stored["d"]["is_bot"] is False
    assert stored["b"]["timestamp"] == T0 + timedelta(seconds=2) and stored["b"]["price"] is None
    assert store.counts()["quarantine"] == 1
    again = store.write_rows(batch, rejected)  # idempotent: nothing new, the rejected row kept once
    assert again.events == ("duplicate", "duplicate", "duplicate", "erased", "duplicate")
    assert again.quarantined == 0 and store.counts()["events"] == 3


@pytest.mark.parametrize("n", [1, 4, 5])  # DuckDB: up to 4 rows as a VALUES list, then as arrays
def test_write_rows_stores_every_field_however_many_rows(store: EventStore, n: int) -> None:
    rows = events([(f"e{i}", f"u{i}", "i1", "view", i) for i in range(n)])
    rows = rows.append_column("price", pa.array([2.5 if i % 2 else None for i in range(n)], pa.float64()))
    rows = rows.append_column("session_id", pa.array([None if i % 2 else f"s{i}" for i in range(n)]))
    assert store.write_rows(rows).events == ("stored",) * n
    back = {r["event_id"]: r for r in store.events_arrow().to_pylist()}
    for i in range(n):
        row = back[f"e{i}"]
        assert (row["user_id"], row["price"], row["session_id"]) == (
            f"u{i}",
            2.5 if i % 2 else None,
            None if i % 2 else f"s{i}",
        )
        assert row["timestamp"] == T0 + timedelta(seconds=i) and row["is_bot"] is False


def test_a_failing_write_rows_stores_nothing_of_that_call(store: EventStore) -> None:
    good = events([("a", "u1", "i1", "view", 0)])
    bad = good.set_column(0, "event_id", pa.array(["b"])).set_column(
        3, "event_type", pa.array([None], pa.string())
    )
    with pytest.raises(Exception):  # noqa: B017 - the backend's own NOT NULL error
        store.write_rows(pa.concat_tables([good, bad]))
    assert store.counts()["events"] == 0
    assert store.write_rows(good).events == ("stored",)
