"""The DuckDB store's in-memory record of its event ids and erased users: a new id and a user not
erased are stored without a look-up; a known id or an erased user never slips through."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pyarrow as pa
import pytest
from tests.data.test_store import events

from fusionrec.data.store import known_ids
from fusionrec.data.store.duckdb import DuckDBStore
from fusionrec.data.store.known_ids import KnownIds


def uuids(n: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]


def test_the_filter_names_every_stored_id_across_its_merges(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(known_ids, "MERGE_AT", 50)
    stored = uuids(300)
    ids = KnownIds([pa.array(stored[:100]), pa.array(stored[100:120])])
    for start in range(120, 260, 7):  # small adds, merged into the sorted part every 50
        ids.add(stored[start : start + 7])
    ids.add(stored[260:])
    assert len(ids) == 300
    assert ids.maybe_known(stored) == stored
    fresh = uuids(1000)
    assert len(ids.maybe_known(fresh)) <= 1  # a shared 64-bit hash: possible, and only a look-up
    assert KnownIds([]).maybe_known(fresh[:3]) == []


def looked_up(store: DuckDBStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The statements the store runs from now on that read the events table."""
    statements: list[str] = []
    fetch = store._fetch

    def spy(statement: str, params: object = None) -> list[tuple]:
        if "FROM events" in statement:
            statements.append(statement)
        return fetch(statement, params)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "_fetch", spy)
    return statements


def test_a_new_id_is_not_looked_up_among_the_stored_events(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = uuids(2000)
    with DuckDBStore(tmp_path / "shop.duckdb") as store:
        store.write_batch(events([(e, f"u{i % 7}", "i1", "view", i) for i, e in enumerate(stored)]))
        store.erase_user("u6")
        statements = looked_up(store, monkeypatch)
        new = store.write_rows(events([(uuid.uuid4().hex, "u1", "i2", "view", 1)]))
        assert new.events == ("stored",) and statements == []
        erased = store.write_rows(events([(uuid.uuid4().hex, "u6", "i2", "view", 1)]))
        assert erased.events == ("erased",) and statements == []  # known in memory, confirmed apart
        again = store.write_rows(
            events([(stored[5], "u1", "i2", "view", 1), (stored[-1], "u2", "i3", "view", 2)])
        )
        assert again.events == ("duplicate", "duplicate") and len(statements) == 1
        written = uuid.uuid4().hex
        assert store.write_rows(events([(written, "u3", "i2", "view", 3)])).events == ("stored",)
        assert store.write_rows(events([(written, "u3", "i2", "view", 3)])).events == ("duplicate",)
        assert store.counts()["events"] == len(stored) - 2000 // 7 + 2


def test_stores_open_on_one_file_see_each_others_ids(tmp_path: Path) -> None:
    path = tmp_path / "shop.duckdb"
    with DuckDBStore(path) as first, DuckDBStore(path) as second:
        assert first.write_rows(events([("a", "u1", "i1", "view", 0)])).events == ("stored",)  # builds
        second.write_batch(events([("b", "u1", "i2", "view", 1)]))
        second.erase_user("u2")
        later = first.write_rows(events([("b", "u1", "i2", "view", 1), ("c", "u2", "i2", "view", 1)]))
        assert later.events == ("duplicate", "erased")


def test_a_store_opened_again_reads_what_another_process_wrote_meanwhile(tmp_path: Path) -> None:
    path = tmp_path / "shop.duckdb"
    with DuckDBStore(path) as store:
        assert store.write_rows(events([("a", "u1", "i1", "view", 0)])).events == ("stored",)
    writer = textwrap.dedent(
        f"""
        from tests.data.test_store import events
        from fusionrec.data.store.duckdb import DuckDBStore
        with DuckDBStore({str(path)!r}) as store:
            store.write_batch(events([("b", "u1", "i2", "view", 1)]))
            store.erase_user("u2")
        """
    )
    subprocess.run([sys.executable, "-c", writer], check=True, cwd=Path(__file__).parents[2])
    with DuckDBStore(path) as store:
        later = store.write_rows(events([("b", "u1", "i2", "view", 1), ("c", "u2", "i2", "view", 1)]))
        assert later.events == ("duplicate", "erased")


def test_prepare_writes_reads_the_keys_ahead_of_the_first_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with DuckDBStore(tmp_path / "shop.duckdb") as store:
        store.write_batch(events([("a", "u1", "i1", "view", 0)]))
        store.prepare_writes()  # the service does this on its writer thread at start-up

        def read_again() -> None:
            raise AssertionError("the keys were read already")

        monkeypatch.setattr(store, "_read_keys", read_again)
        assert store.write_rows(
            events([("a", "u1", "i1", "view", 0), ("b", "u1", "i1", "view", 0)])
        ).events == (
            "duplicate",
            "stored",
        )
