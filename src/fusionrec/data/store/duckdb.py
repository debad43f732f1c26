"""The embedded DuckDB backend: one file, zero set-up, one writing process at a time."""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from fusionrec.data.store import known_ids, sql
from fusionrec.data.store.base import EventStore, StoreError, StoreLockedError
from fusionrec.data.store.convert import conform


class DuckDBStore(EventStore):
    """A store in one DuckDB file (or in memory with ``:memory:``).

    DuckDB lets one process write a file; a second process opening it gets `StoreLockedError`.
    Readers in other processes can open it with ``read_only=True`` while nobody writes.
    """

    dialect = "duckdb"

    def __init__(self, path: str | Path, *, read_only: bool = False, url: str | None = None) -> None:
        super().__init__(url or f"duckdb:///{path}")
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = duckdb.connect(self.path, read_only=read_only)
        except duckdb.IOException as err:
            message = str(err)
            if "lock" in message.lower():
                holder = re.search(r"PID \d+", message)
                who = f" ({holder.group(0)})" if holder else ""
                raise StoreLockedError(
                    f"{self.path} is open for writing in another process{who}; DuckDB allows one writer "
                    "at a time: stop that process, or use a PostgreSQL store for many writers"
                ) from err
            raise StoreError(f"cannot open DuckDB store {self.path}: {message}") from err
        self._depth = 0
        memory = self.path == ":memory:"
        self._known_ids = known_ids.Holder(None if memory else str(Path(self.path).expanduser().resolve()))
        weakref.finalize(self, self._known_ids.release)  # a store dropped without `close` lets go too
        self._con.execute("SET TimeZone = 'UTC'")  # timestamps come back as UTC
        self._con.execute("SET enable_progress_bar = false")  # long queries must not draw on stdout
        if read_only:
            version = self._scalar("SELECT value FROM meta WHERE key = 'schema_version'")
            if version is None or int(version) != sql.SCHEMA_VERSION:
                raise StoreError(f"{self.path}: not a fusionrec store of schema version {sql.SCHEMA_VERSION}")
        else:
            self._ensure_schema()

    def _execute(self, statement: str, params: Mapping[str, Any] | None = None) -> int:
        cursor = self._con.execute(sql.render_params(statement, "duckdb"), dict(params) if params else None)
        rows = cursor.fetchall() if cursor.description else []  # DuckDB wants every result read
        return int(rows[0][0]) if rows and isinstance(rows[0][0], int) else -1

    def _scalar(self, statement: str, params: Mapping[str, Any] | None = None) -> Any:
        rows = self._con.execute(
            sql.render_params(statement, "duckdb"), dict(params) if params else None
        ).fetchall()
        return rows[0][0] if rows else None

    def _fetch(self, statement: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return self._con.execute(
            sql.render_params(statement, "duckdb"), dict(params) if params else None
        ).fetchall()

    def _read(self, statement: str, schema: pa.Schema, params: Mapping[str, Any] | None = None) -> pa.Table:
        return conform(self.query_arrow(statement, params), schema)

    def query_arrow(self, statement: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        with self._lock:
            relation = self._con.sql(
                sql.render_params(statement, "duckdb"), params=dict(params) if params else None
            )
            return relation.to_arrow_table() if relation is not None else pa.table({})

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        if self._depth:  # already inside one: join it
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._con.begin()
        self._depth = 1
        try:
            yield
        except BaseException:
            self._con.rollback()
            raise
        else:
            self._con.commit()
        finally:
            self._depth = 0

    @contextmanager
    def _stage(self, table: pa.Table, name: str) -> Iterator[str]:
        view = f"_fusionrec_stage_{name}"
        self._con.register(view, table)  # zero-copy: DuckDB scans the Arrow buffers
        try:
            yield view
        except BaseException:
            # An aborted transaction refuses the unregister; its error would hide the real one. The
            # view then stays registered until the next stage of that name replaces it.
            with suppress(duckdb.Error):
                self._con.unregister(view)
            raise
        self._con.unregister(view)

    def prepare_writes(self) -> None:
        with self._lock:
            self._known_ids.get(self._read_keys)

    def _candidates(self, ids: list[str], hashes: list[str]) -> tuple[list[str], list[str]]:
        # No index on event_id (see `sql.create_statements`), and the scan cannot be pruned when
        # ids spread over the stored range: only the ids the keys may hold are looked up.
        keys = self._known_ids.get(self._read_keys)
        return keys.event_ids.maybe_known(ids), keys.erased_among(hashes)

    def _read_keys(self) -> known_ids.StoredKeys:
        reader = self._con.sql("SELECT event_id FROM events").to_arrow_reader(100_000)
        event_ids = known_ids.KnownIds(batch.column(0) for batch in reader)
        erased = self._con.execute("SELECT user_sha256 FROM erased_ids").fetchall()
        return known_ids.StoredKeys(event_ids, (row[0] for row in erased))

    def _note_stored(self, ids: list[str]) -> None:
        keys = self._known_ids.read_already()
        if keys is not None:
            keys.event_ids.add(ids)

    def _note_erased(self, user_sha256: str) -> None:
        keys = self._known_ids.read_already()
        if keys is not None:
            keys.add_erased(user_sha256)

    def _close(self) -> None:
        self._known_ids.release()
        self._con.close()
