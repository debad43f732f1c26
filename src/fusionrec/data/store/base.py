"""The `EventStore` interface: events, items, users, a quarantine of rejected rows, erasure.

The SQL lives once in `sql`; a backend only provides the primitives (execute, stage an Arrow table,
read a query back as Arrow, transactions). Every write method is one transaction.
"""

from __future__ import annotations

import hashlib
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, ClassVar

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fusionrec.data import item_vectors
from fusionrec.data.schema import EVENT_SCHEMA, ITEM_SCHEMA, USER_SCHEMA
from fusionrec.data.store import sql


class StoreError(RuntimeError):
    """The store cannot be opened or used as asked."""


class StoreNotFoundError(StoreError):
    """A command that reads a store was pointed at one that does not exist (often a mistyped path)."""

    def __init__(self, url: str, why: str) -> None:
        super().__init__(
            f"no fusionrec store at {url} ({why}); check the URL, or create the store with `fusionrec ingest`"
        )


class StoreLockedError(StoreError):
    """Another process holds the (single-writer) store open for writing."""


@dataclass(frozen=True)
class WriteResult:
    """What one `EventStore.write_batch` call did."""

    stored: int = 0  # events newly stored
    duplicates: int = 0  # events whose id was already stored (or repeated in the call)
    erased_skipped: int = 0  # events of erased users, dropped
    quarantined: int = 0  # quarantine rows newly stored


# What `EventStore.write_rows` did with one event row.
STORED, DUPLICATE, ERASED = "stored", "duplicate", "erased"


@dataclass(frozen=True)
class RowOutcomes:
    """What one `EventStore.write_rows` call did, row by row."""

    events: tuple[str, ...]  # per event row, in order: STORED, DUPLICATE or ERASED
    quarantined: int = 0  # quarantine rows newly stored

    def result(self, start: int = 0, stop: int | None = None) -> WriteResult:
        """The counts of the event rows ``start:stop`` (all by default)."""
        part = self.events[start:stop]
        return WriteResult(part.count(STORED), part.count(DUPLICATE), part.count(ERASED), self.quarantined)


def _event_rows(events: pa.Table | pd.DataFrame) -> pa.Table:
    """Events on `EVENT_SCHEMA`, an unset bot flag stored as false."""
    table = _as_table(events, EVENT_SCHEMA)
    if table.column("is_bot").null_count:
        index = table.schema.get_field_index("is_bot")
        table = table.set_column(index, "is_bot", pc.fill_null(table.column("is_bot"), False))
    return table


def _as_table(rows: pa.Table | pd.DataFrame | Iterable[Mapping[str, Any]], schema: pa.Schema) -> pa.Table:
    """Coerce rows onto ``schema`` (missing nullable columns become nulls; extra columns are dropped)."""
    if isinstance(rows, pd.DataFrame):
        rows = pa.Table.from_pandas(rows, preserve_index=False)
    elif not isinstance(rows, pa.Table):
        rows = pa.Table.from_pylist(list(rows))
    columns = []
    for field in schema:
        if field.name in rows.column_names:
            column = rows.column(field.name)
            if (
                pa.types.is_timestamp(field.type)
                and pa.types.is_timestamp(column.type)
                and column.type.tz is None
            ):
                column = pc.assume_timezone(column, "UTC")
            columns.append(column.cast(field.type))
        elif field.nullable:
            columns.append(pa.nulls(rows.num_rows, field.type))
        else:
            raise ValueError(f"column {field.name!r} is required (have: {', '.join(rows.column_names)})")
    return pa.Table.from_arrays(columns, schema=schema)


def _vectors_as_text(rows: pa.Table | pd.DataFrame) -> pa.Table | pd.DataFrame:
    """``rows`` with their ``vectors`` cells as the JSON text the stores keep."""
    if isinstance(rows, pd.DataFrame):
        if "vectors" not in rows.columns:
            return rows
        text = item_vectors.to_json_text(
            item_vectors.to_arrow(map(item_vectors.cell_mapping, rows["vectors"]))
        )
        return rows.assign(vectors=text.to_pylist())
    if "vectors" not in rows.column_names:
        return rows
    index = rows.column_names.index("vectors")
    cells = map(item_vectors.cell_mapping, rows.column(index).to_pylist())
    text = item_vectors.to_json_text(item_vectors.to_arrow(cells))
    return rows.set_column(index, pa.field("vectors", pa.string()), text)


def _keep_last(table: pa.Table, key: str | Sequence[str]) -> pa.Table:
    """Drop earlier rows that repeat a key, so an upsert sees each key once (the last one wins)."""
    keys = table.select([key] if isinstance(key, str) else list(key)).to_pandas()
    dup = keys.duplicated(keep="last").to_numpy()
    return table.filter(pa.array(~dup)) if dup.any() else table


def id_sha256(user_id: str) -> str:
    """Hex SHA-256 of an id's UTF-8 bytes: how erased ids are kept (the same as `sql.sha256_hex`)."""
    return hashlib.sha256(str(user_id).encode()).hexdigest()


class EventStore(ABC):
    """Where events, catalogue, users and rejected rows live.

    Open one with `fusionrec.data.store.open_store`. Tables: ``events`` (primary key ``event_id``),
    ``items``, ``users``, ``quarantine``, ``erased_ids`` (SHA-256 of erased user ids),
    ``session_links`` (session -> signed-in user) and ``meta`` (``schema_version``).
    """

    dialect: ClassVar[str]

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.RLock()  # one connection per store; calls from threads take turns
        self._closed = False

    # --- backend primitives ----------------------------------------------------------------

    @abstractmethod
    def _execute(self, statement: str, params: Mapping[str, Any] | None = None) -> int:
        """Run one statement written with ``:name`` parameters; return its row count (or -1)."""

    @abstractmethod
    def _scalar(self, statement: str, params: Mapping[str, Any] | None = None) -> Any:
        """Run a query returning one value."""

    @abstractmethod
    def _fetch(self, statement: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a statement that returns rows (a query, or DML with RETURNING); all its rows."""

    @abstractmethod
    def _read(self, statement: str, schema: pa.Schema, params: Mapping[str, Any] | None = None) -> pa.Table:
        """Run a query whose columns are ``schema``'s, returning them as that schema."""

    @abstractmethod
    def _transaction(self) -> AbstractContextManager[None]:
        """Commit on success, roll back on error."""

    @abstractmethod
    def _stage(self, table: pa.Table, name: str) -> AbstractContextManager[str]:
        """Make ``table`` readable by SQL inside the current transaction; yield the relation's name."""

    @abstractmethod
    def query_arrow(self, statement: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        """Run a query (``:name`` parameters) and return its result as Arrow (no columns if it has none)."""

    @abstractmethod
    def _close(self) -> None: ...

    # --- schema ------------------------------------------------------------------------------

    def _ensure_schema(self) -> None:
        """Create missing tables, then migrate an older store up to `sql.SCHEMA_VERSION`."""
        with self._transaction():
            for statement in sql.create_statements(self.dialect):
                self._execute(statement)
            version = self._scalar("SELECT value FROM meta WHERE key = 'schema_version'")
            if version is None:
                self._execute(
                    "INSERT INTO meta (key, value) VALUES ('schema_version', :v)",
                    {"v": str(sql.SCHEMA_VERSION)},
                )
                return
            current = int(version)
            if current > sql.SCHEMA_VERSION:
                raise StoreError(
                    f"{self.url}: store has schema version {current}, newer than this fusionrec "
                    f"understands ({sql.SCHEMA_VERSION}); upgrade fusionrec"
                )
            while current < sql.SCHEMA_VERSION:
                for statement in sql.migrations(self.dialect)[current]:
                    self._execute(statement)
                current += 1
                self._execute("UPDATE meta SET value = :v WHERE key = 'schema_version'", {"v": str(current)})

    @property
    def schema_version(self) -> int:
        with self._lock:
            return int(self._scalar("SELECT value FROM meta WHERE key = 'schema_version'"))

    # --- writes ------------------------------------------------------------------------------

    def write_batch(
        self,
        events: pa.Table | pd.DataFrame | None = None,
        quarantine: pa.Table | pd.DataFrame | Iterable[Mapping[str, Any]] | None = None,
    ) -> WriteResult:
        """Store events (known ids and erased users skipped) and rejected rows, in one transaction."""
        stored = duplicates = erased = 0
        with self._lock, self._transaction():
            if events is not None:
                table = _event_rows(events)
                if table.num_rows:
                    with self._stage(table, "events") as staged:
                        erased = int(self._scalar(sql.count_erased(staged, self.dialect)) or 0)
                        stored = max(
                            self._execute(sql.insert_events(staged, table.column_names, self.dialect)), 0
                        )
                    if stored:  # which rows were new is not told: all the batch's ids may be stored now
                        self._note_stored(table.column("event_id").to_pylist())
                    duplicates = table.num_rows - stored - erased
            quarantined = self._write_quarantine(quarantine)
        return WriteResult(stored, duplicates, erased, quarantined)

    def write_rows(self, events: pa.Table, quarantine: pa.Table | pd.DataFrame | None = None) -> RowOutcomes:
        """`write_batch` for a small batch (a few requests' events), telling each row's outcome.

        The same rules in one transaction of two statements, with no staged table: a look-up of
        the batch's ids among the stored events and of its users among the erased ones, then one
        insert of the rows left, given as array parameters. Of rows repeating an id, the first is
        stored. Staging a table costs milliseconds whatever its size, which only a large batch
        (`write_batch`) earns back.
        """
        table = _event_rows(events)
        ids = table.column("event_id").to_pylist()
        users = table.column("user_id").to_pylist()
        hashes = {user: id_sha256(user) for user in set(users) if user is not None}
        outcomes: list[str] = []
        with self._lock, self._transaction():
            if ids:
                found = self._known_and_erased(ids, sorted(set(hashes.values())))
                known = {key for kind, key in found if kind == "event"}
                erased = {key for kind, key in found if kind == "erased"}
                fresh: list[int] = []
                for row, (event_id, user) in enumerate(zip(ids, users, strict=True)):
                    if user is not None and hashes[user] in erased:
                        outcomes.append(ERASED)
                    elif event_id in known:
                        outcomes.append(DUPLICATE)
                    else:
                        known.add(event_id)  # a later row repeating it is a duplicate
                        fresh.append(row)
                        outcomes.append(STORED)
                if fresh:
                    statement, params = sql.insert_new_rows(table.take(pa.array(fresh)), self.dialect)
                    stored = {row[0] for row in self._fetch(statement, params)}
                    self._note_stored(list(stored))
                    for row in fresh:  # PostgreSQL: another writer stored it after the look-up
                        if ids[row] not in stored:
                            outcomes[row] = DUPLICATE
            quarantined = self._write_quarantine(quarantine)
        return RowOutcomes(tuple(outcomes), quarantined)

    def prepare_writes(self) -> None:
        """Read ahead what a small write checks, for a store that keeps it in memory; else nothing."""
        return

    def _known_and_erased(self, ids: list[str], hashes: list[str]) -> list[tuple[str, str]]:
        """Rows ``(kind, key)`` as `sql.known_events_and_erased` gives them: the ids of ``ids``
        stored, the user hashes of ``hashes`` erased. Only the ids and hashes the `_candidates`
        name are looked up; with none, nothing is."""
        ids, hashes = self._candidates(ids, hashes)
        if ids:
            return self._fetch(sql.known_events_and_erased(self.dialect), {"ids": ids, "hashes": hashes})
        if not hashes:
            return []
        return [
            ("erased", key) for (key,) in self._fetch(sql.erased_hashes(self.dialect), {"hashes": hashes})
        ]

    def _candidates(self, ids: list[str], hashes: list[str]) -> tuple[list[str], list[str]]:
        """The event ids of ``ids`` the store may hold, and the user hashes of ``hashes`` it may
        have erased: here all of them (its indexes answer the look-up); a store without an index
        on the event ids narrows them first."""
        return ids, hashes

    def _note_stored(self, ids: list[str]) -> None:
        """Ids just stored (or possibly stored), for a store that keeps its own record of them."""
        return  # PostgreSQL's primary-key index is that record

    def _note_erased(self, user_sha256: str) -> None:
        """A user just erased, for a store that keeps its own record of them."""
        return

    def _write_quarantine(self, rows: pa.Table | pd.DataFrame | Iterable[Mapping[str, Any]] | None) -> int:
        """Store rejected rows inside the caller's transaction; how many were new."""
        if rows is None:
            return 0
        table = _as_table(rows, sql.QUARANTINE_SCHEMA)
        if not table.num_rows:
            return 0
        with self._stage(table, "quarantine") as staged:
            return max(self._execute(sql.insert_quarantine(staged)), 0)

    def insert_events(self, table: pa.Table | pd.DataFrame) -> int:
        """Store canonical events; return how many were new (known ``event_id``s are ignored)."""
        return self.write_batch(events=table).stored

    def add_quarantine(self, rows: pa.Table | pd.DataFrame | Iterable[Mapping[str, Any]]) -> int:
        """Store rejected rows (source, row_number, reason, user_id, raw JSON); return how many were new."""
        return self.write_batch(quarantine=rows).quarantined

    def _upsert(self, rows: pa.Table | pd.DataFrame, schema: pa.Schema, table: str, key: str) -> int:
        data = _as_table(rows, schema)
        if not data.num_rows:
            return 0
        data = _keep_last(data, key)
        with self._lock, self._transaction(), self._stage(data, table) as staged:
            self._execute(sql.upsert(table, key, staged, data.column_names))
        return data.num_rows

    def upsert_items(self, table: pa.Table | pd.DataFrame) -> int:
        """Insert or replace catalogue rows by ``item_id``; return the number of distinct items written.

        A ``vectors`` column may hold any spelling of `item_vectors.cell_mapping` (validated
        already: `validate.check_items`, or the items API's body)."""
        return self._upsert(_vectors_as_text(table), sql.STORED_ITEM_SCHEMA, "items", "item_id")

    def item_vector_dims(self) -> dict[str, int]:
        """The length of each item vector name in the stored catalogue (what new rows must match)."""
        with self._lock:
            stored = self._read(
                "SELECT vectors FROM items WHERE vectors IS NOT NULL", pa.schema([("vectors", pa.string())])
            )
        return item_vectors.dims_of(stored.column(0))

    def upsert_users(self, table: pa.Table | pd.DataFrame) -> int:
        """Insert or replace user rows by ``user_id``; return the number of distinct users written."""
        return self._upsert(table, USER_SCHEMA, "users", "user_id")

    def erase_user(self, user_id: str) -> int:
        """Delete a user's events (their own and those of every session linked to them, guest
        events sent after the sign-in included), profile, rejected rows and session links; later
        events of theirs are dropped.

        Returns the number of events deleted. Only the id's SHA-256 is kept (``erased_ids``), so
        that re-ingesting an old file does not bring the user back.
        """
        params = {"u": str(user_id)}
        linked = "session_id IN (SELECT session_id FROM session_links WHERE user_id = :u)"
        with self._lock, self._transaction():
            self._execute(
                "INSERT INTO erased_ids (user_sha256) VALUES (:h) ON CONFLICT (user_sha256) DO NOTHING",
                {"h": id_sha256(user_id)},
            )
            deleted = self._execute(f"DELETE FROM events WHERE user_id = :u OR {linked}", params)
            self._execute("DELETE FROM users WHERE user_id = :u", params)
            self._execute("DELETE FROM quarantine WHERE user_id = :u", params)
            self._execute("DELETE FROM session_links WHERE user_id = :u", params)
            self._note_erased(id_sha256(user_id))
        return max(deleted, 0)

    def delete_older_than(self, cutoff: datetime) -> dict[str, int]:
        """Retention: delete events that happened, and rejected rows quarantined, before ``cutoff``
        (an aware datetime); the rows deleted per table."""
        params = {"cutoff": cutoff}
        with self._lock, self._transaction():
            events = self._execute('DELETE FROM events WHERE "timestamp" < :cutoff', params)
            quarantine = self._execute("DELETE FROM quarantine WHERE quarantined_at < :cutoff", params)
        return {"events": max(events, 0), "quarantine": max(quarantine, 0)}

    def linked_sessions(self, user_id: str) -> list[str]:
        """The sessions ``user_id`` signed in on (`link_session`), oldest first."""
        with self._lock:
            table = self._read(
                "SELECT session_id FROM session_links WHERE user_id = :u ORDER BY linked_at, session_id",
                pa.schema([("session_id", pa.string())]),
                {"u": str(user_id)},
            )
        return table.column(0).to_pylist()

    def link_session(self, session_id: str, user_id: str) -> int:
        """Give the anonymous events of ``session_id`` to ``user_id`` (a guest who signed in), so
        the next training sees them as the user's, and remember the link (erasure follows it to
        the session's later guest events); returns the number of events linked. An erased user
        is never linked (whichever service process was asked)."""
        params = {"u": str(user_id), "s": str(session_id)}
        if self.is_erased(user_id):
            return 0
        with self._lock, self._transaction():
            self._execute(
                "INSERT INTO session_links (session_id, user_id) VALUES (:s, :u) "
                "ON CONFLICT (session_id) DO UPDATE SET user_id = excluded.user_id",
                params,
            )
            linked = self._execute(
                "UPDATE events SET user_id = :u WHERE session_id = :s AND user_id IS NULL", params
            )
        return max(linked, 0)

    def item_counts_in_windows(self, days: float) -> pa.Table:
        """Per item, its events (no bots) in the last ``days`` before the newest event (``recent``)
        and in the ``days`` before those (``previous``): what trending is computed from."""
        params = {"recent": f"{days * 86400:.0f} seconds", "both": f"{2 * days * 86400:.0f} seconds"}
        return self.query_arrow(sql.WINDOWED_ITEM_COUNTS, params)

    def item_event_counts(self, item_ids: Sequence[str]) -> pa.Table:
        """Events (no bots) per item of ``item_ids`` and event type: ``item_id, event_type, n``
        (what serving's new-item counters start from)."""
        parts = []
        for start in range(0, len(item_ids), 1000):
            chunk = {f"i{i}": item for i, item in enumerate(item_ids[start : start + 1000])}
            marks = ", ".join(f":{name}" for name in chunk)
            parts.append(
                self.query_arrow(
                    "SELECT item_id, event_type, CAST(count(*) AS DOUBLE PRECISION) AS n FROM events "
                    f"WHERE item_id IN ({marks}) AND NOT coalesce(is_bot, FALSE) GROUP BY item_id, event_type",
                    chunk,
                )
            )
        parts = [part for part in parts if part.num_columns]
        return pa.concat_tables(parts) if parts else pa.table({"item_id": [], "event_type": [], "n": []})

    def purchases(self) -> pa.Table:
        """Each (user, basket, item) bought, with the time of its last purchase in epoch seconds
        (``basket`` is the session, else the user)."""
        return self.query_arrow(sql.PURCHASES)

    def erased_hashes(self) -> set[str]:
        """The SHA-256 (`id_sha256`) of every erased user id."""
        with self._lock:
            table = self._read(
                "SELECT user_sha256 FROM erased_ids", pa.schema([("user_sha256", pa.string())])
            )
        return set(table.column(0).to_pylist())

    def is_erased(self, user_id: str) -> bool:
        return bool(self.erased_among([user_id]))

    def erased_among(self, user_ids: Iterable[str | None]) -> set[str]:
        """Which of ``user_ids`` were erased (looked up by their SHA-256, all in one bound list:
        the service asks for every exposure flush, and a statement with a placeholder per id cost
        more to build and parse than to run)."""
        by_hash = {id_sha256(user): user for user in set(user_ids) if user is not None}
        if not by_hash:
            return set()
        with self._lock:
            rows = self._fetch(sql.erased_hashes(self.dialect), {"hashes": sorted(by_hash)})
        return {by_hash[h] for (h,) in rows}

    def flag_bots(self, max_events_per_minute: int = 30) -> int:
        """Mark users (or anonymous sessions) above ``max_events_per_minute`` as bots; return events flagged.

        Flagged events stay in the store (analytics may want them) but `events_arrow` leaves them
        out by default, so training does not learn from them.
        """
        if max_events_per_minute < 1:
            raise ValueError("max_events_per_minute must be at least 1")
        with self._lock, self._transaction():
            return max(self._execute(sql.flag_bot_users(), {"limit": int(max_events_per_minute)}), 0)

    # --- statements and tables of other modules (analytics, serving) -------------------------

    def execute(self, statement: str, params: Mapping[str, Any] | None = None) -> int:
        """Run one DDL/DML statement (``:name`` parameters) in a transaction; return its row count or -1."""
        with self._lock, self._transaction():
            return self._execute(statement, params)

    def create_tables(self, statements: Sequence[str]) -> None:
        """Another module's idempotent DDL (``CREATE ... IF NOT EXISTS``), in one transaction.

        Processes that share a server store (serving workers starting together) take turns:
        concurrent ``CREATE TABLE IF NOT EXISTS`` can collide in PostgreSQL's catalogue.
        """
        with self._lock, self._transaction():
            self._lock_ddl()
            for statement in statements:
                self._execute(statement)

    def _lock_ddl(self) -> None:  # noqa: B027 - a hook: only server stores have other processes
        """Serialise DDL with other processes until the transaction ends (embedded stores: no-op)."""

    @contextmanager
    def transaction(self) -> Iterator[StoreTransaction]:
        """Several statements and inserts as one transaction, holding the writer lock: all or nothing.

        For a module's own tables (serving's precomputed lists): replace a slice in one go, so
        readers never see half of it.
        """
        with self._lock, self._transaction():
            yield StoreTransaction(self)

    def insert_table(
        self,
        name: str,
        table: pa.Table,
        *,
        replace_key: str | Sequence[str] | None = None,
        skip_key: str | Sequence[str] | None = None,
    ) -> int:
        """Bulk insert ``table``'s columns into the existing table ``name``, in one transaction.

        ``replace_key``: rows whose key is stored already overwrite it (an upsert; of rows repeating
        a key in ``table``, the last wins). ``skip_key``: such rows are skipped instead. The key
        must be the table's primary key or a unique constraint. Returns the rows written.
        """
        if replace_key is not None and skip_key is not None:
            raise ValueError("insert_table: give replace_key or skip_key, not both")
        key = replace_key if replace_key is not None else skip_key
        keys = None if key is None else ([key] if isinstance(key, str) else list(key))
        if not table.num_rows:
            return 0
        if replace_key is not None:
            table = _keep_last(table, keys)
        with self._lock, self._transaction(), self._stage(table, name) as staged:
            statement = sql.insert_select(
                name, staged, table.column_names, keys, replace=replace_key is not None
            )
            return max(self._execute(statement), 0)

    # --- reads -------------------------------------------------------------------------------

    def events_arrow(
        self, columns: Sequence[str] | None = None, exclude_bots: bool = True, *, ordered: bool = True
    ) -> pa.Table:
        """Events in the canonical schema (or the chosen columns), ordered by (timestamp, event_id).

        ``ordered=False`` skips the sort (storage order), for callers that order by time
        themselves: sorting ten million rows by a text key is most of this read's memory.
        """
        names = list(columns) if columns is not None else EVENT_SCHEMA.names
        unknown = [n for n in names if n not in sql.STORED_EVENT_SCHEMA.names]
        if unknown:
            raise ValueError(f"unknown event column(s): {', '.join(unknown)}")
        schema = pa.schema([sql.STORED_EVENT_SCHEMA.field(n) for n in names])
        where = " WHERE NOT coalesce(is_bot, FALSE)" if exclude_bots else ""
        order = ' ORDER BY "timestamp", event_id' if ordered else ""
        statement = f"SELECT {sql.cols(names)} FROM events{where}{order}"
        with self._lock:
            return self._read(statement, schema)

    def events_stored_since(self, since: datetime, columns: Sequence[str] | None = None) -> pa.Table:
        """Events stored at or after ``since`` (their ``ingested_at``), in the order they were stored:
        what a reader that missed them replays (the service's live state, after a Redis outage)."""
        names = list(columns) if columns is not None else EVENT_SCHEMA.names
        schema = pa.schema([sql.STORED_EVENT_SCHEMA.field(n) for n in names])
        statement = (
            f"SELECT {sql.cols(names)} FROM events WHERE ingested_at >= :since "
            'ORDER BY ingested_at, "timestamp", event_id'
        )
        with self._lock:
            return self._read(statement, schema, {"since": since})

    def items_arrow(self) -> pa.Table:
        with self._lock:
            stored = self._read(
                f"SELECT {sql.cols(ITEM_SCHEMA.names)} FROM items ORDER BY item_id", sql.STORED_ITEM_SCHEMA
            )
        index = stored.schema.get_field_index("vectors")
        vectors = item_vectors.from_json_text(stored.column(index))
        return stored.set_column(index, ITEM_SCHEMA.field("vectors"), vectors).cast(ITEM_SCHEMA)

    def users_arrow(self) -> pa.Table:
        with self._lock:
            return self._read(
                f"SELECT {sql.cols(USER_SCHEMA.names)} FROM users ORDER BY user_id", USER_SCHEMA
            )

    def quarantine_arrow(self) -> pa.Table:
        statement = (
            f"SELECT {sql.cols(sql.QUARANTINE_SCHEMA.names)} FROM quarantine ORDER BY source, row_number"
        )
        with self._lock:
            return self._read(statement, sql.QUARANTINE_SCHEMA)

    def counts(self) -> dict[str, int]:
        """Row counts: events, bot_events, items, users, quarantine, erased_users."""
        sources = {
            "events": "events",
            "bot_events": "events WHERE is_bot",
            "items": "items",
            "users": "users",
            "quarantine": "quarantine",
            "erased_users": "erased_ids",
        }
        statement = "SELECT " + ", ".join(
            f"(SELECT count(*) FROM {src}) AS {name}" for name, src in sources.items()
        )
        with self._lock:
            row = self.query_arrow(statement).to_pylist()[0]
        return {name: int(row[name]) for name in sources}

    # --- lifetime ----------------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._close()

    def __enter__(self) -> EventStore:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


class StoreTransaction:
    """What runs inside `EventStore.transaction`: statements and plain bulk inserts."""

    def __init__(self, store: EventStore) -> None:
        self._store = store

    def execute(self, statement: str, params: Mapping[str, Any] | None = None) -> int:
        """Run one statement (``:name`` parameters); its row count or -1."""
        return self._store._execute(statement, params)

    def insert(self, name: str, table: pa.Table) -> int:
        """Append ``table``'s columns to the existing table ``name``; the rows written."""
        if not table.num_rows:
            return 0
        with self._store._stage(table, name) as staged:
            return max(self._store._execute(sql.insert_select(name, staged, table.column_names)), 0)
