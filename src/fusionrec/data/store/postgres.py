"""The PostgreSQL backend (psycopg 3): many writers, bulk loads through COPY.

Writes COPY an Arrow batch (as CSV, written by Arrow's C++ writer) into a temporary staging table,
then one ``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` moves it into place, so concurrent
writers never store an event twice. Reads stream ``COPY (query) TO STDOUT`` into Arrow's CSV reader.
"""

from __future__ import annotations

import hashlib
import io
import itertools
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pyarrow as pa
import pyarrow.csv as pacsv

from fusionrec.data.store import sql
from fusionrec.data.store.base import EventStore, StoreError, StoreNotFoundError
from fusionrec.data.store.convert import conform
from fusionrec.extras import require

_DDL_LOCK = 0x46555352  # pg_advisory_xact_lock key: concurrent first opens create the tables once


def split_schema(url: str) -> tuple[str, str | None]:
    """Remove fusionrec's own ``?schema=NAME`` option from a libpq URL (libpq rejects it)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None)
    rest = urlencode([(k, v) for k, v in query if k != "schema"])
    scheme = (
        "postgresql" if parts.scheme in ("postgres", "postgresql", "postgresql+psycopg") else parts.scheme
    )
    return urlunsplit((scheme, parts.netloc, parts.path, rest, parts.fragment)), schema


class _CopyReader(io.RawIOBase):
    """A file over ``COPY ... TO STDOUT`` blocks, for Arrow's streaming CSV reader."""

    def __init__(self, blocks: Iterator[Any]) -> None:
        self._blocks = blocks
        self._pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._pending:
            block = next(self._blocks, None)
            if block is None:
                return 0
            self._pending = memoryview(bytes(block))
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


class PostgresStore(EventStore):
    """A store in a PostgreSQL database; ``?schema=NAME`` in the URL keeps it in its own schema."""

    dialect = "postgresql"

    def __init__(self, url: str, *, create: bool = True) -> None:
        super().__init__(url)
        psycopg: Any = require("psycopg", "a PostgreSQL store")
        self._psycopg = psycopg
        conninfo, self.schema = split_schema(url)
        try:
            self._con = psycopg.connect(conninfo, autocommit=True)
        except psycopg.OperationalError as err:
            reason = " ".join(str(err).split())  # libpq's message spans lines: keep it to one
            raise StoreError(f"cannot connect to PostgreSQL at {url}: {reason}") from err
        self._con.execute("SET TimeZone TO 'UTC'")
        self._con.execute("SET client_min_messages TO warning")  # no NOTICEs for IF NOT EXISTS
        if not create and not self._holds_store():
            self._con.close()
            where = f"schema {self.schema}" if self.schema else "the database"
            raise StoreNotFoundError(url, f"{where} has no fusionrec tables")
        self._ensure_schema()

    def _holds_store(self) -> bool:
        """Whether the schema (or the search path) already has fusionrec's ``meta`` table."""
        name = f"{sql.q(self.schema)}.meta" if self.schema else "meta"
        row = self._con.execute("SELECT to_regclass(%s)", (name,)).fetchone()
        return row is not None and row[0] is not None

    def _lock_ddl(self) -> None:
        self._con.execute("SELECT pg_advisory_xact_lock(%s)", (_DDL_LOCK,))

    def _ensure_schema(self) -> None:
        with self._con.transaction():
            self._lock_ddl()
            if self.schema:
                name = sql.q(self.schema)
                self._con.execute(f"CREATE SCHEMA IF NOT EXISTS {name}")
                self._con.execute(f"SET search_path TO {name}")
            super()._ensure_schema()

    def _execute(self, statement: str, params: Mapping[str, Any] | None = None) -> int:
        cursor = self._con.execute(sql.render_params(statement, "postgresql"), params or None)
        return cursor.rowcount

    def _scalar(self, statement: str, params: Mapping[str, Any] | None = None) -> Any:
        row = self._con.execute(sql.render_params(statement, "postgresql"), params or None).fetchone()
        return row[0] if row else None

    def _fetch(self, statement: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        return self._con.execute(sql.render_params(statement, "postgresql"), params or None).fetchall()

    def _read(self, statement: str, schema: pa.Schema, params: Mapping[str, Any] | None = None) -> pa.Table:
        if any(pa.types.is_list(f.type) for f in schema):  # arrays do not round-trip through CSV
            return conform(self.query_arrow(statement, params), schema)
        types = {f.name: f.type for f in schema}
        convert = pacsv.ConvertOptions(
            column_types=types,
            strings_can_be_null=True,
            quoted_strings_can_be_null=False,  # COPY writes NULL bare and '' quoted
            true_values=["t"],
            false_values=["f"],
        )
        read = pacsv.ReadOptions(column_names=schema.names, block_size=1 << 24)
        with self._lock, self._con.cursor() as cursor:
            copy_sql = f"COPY ({sql.render_params(statement, 'postgresql')}) TO STDOUT (FORMAT CSV)"
            with cursor.copy(copy_sql, params or None) as copy:
                blocks = iter(copy)
                first = next(blocks, None)
                if first is None:  # Arrow refuses an empty CSV
                    return schema.empty_table()
                reader = _CopyReader(itertools.chain([first], blocks))
                table = pacsv.read_csv(reader, read_options=read, convert_options=convert)
        return conform(table, schema)

    def query_arrow(self, statement: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        with self._lock:
            cursor = self._con.execute(sql.render_params(statement, "postgresql"), params or None)
            if cursor.description is None:  # a statement that returns no rows (DDL, DML)
                return pa.table({})
            names = [d.name for d in cursor.description]
            rows = cursor.fetchall()
        columns = list(zip(*rows, strict=True)) if rows else [[] for _ in names]
        return pa.table({name: pa.array(list(values)) for name, values in zip(names, columns, strict=True)})

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._con.transaction():  # nested calls become savepoints
            yield

    @contextmanager
    def _stage(self, table: pa.Table, name: str) -> Iterator[str]:
        definition = ", ".join(f"{sql.q(f.name)} {sql.sql_type(f.type, 'postgresql')}" for f in table.schema)
        # The temporary table lives for the session and empties itself at every commit.
        staged = f"_fusionrec_stage_{name}_{hashlib.md5(definition.encode()).hexdigest()[:8]}"
        self._con.execute(f"CREATE TEMP TABLE IF NOT EXISTS {staged} ({definition}) ON COMMIT DELETE ROWS")
        copy_sql = f"COPY {staged} ({sql.cols(table.column_names)}) FROM STDIN"
        with self._con.cursor() as cursor:
            if any(pa.types.is_list(f.type) for f in table.schema):
                with cursor.copy(copy_sql) as copy:  # lists: psycopg adapts them to arrays, row by row
                    for row in zip(*(c.to_pylist() for c in table.columns), strict=True):
                        copy.write_row(row)
            else:
                sink = pa.BufferOutputStream()
                pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False))
                with cursor.copy(copy_sql + " (FORMAT CSV)") as copy:
                    copy.write(memoryview(sink.getvalue()))
        yield staged

    def _close(self) -> None:
        self._con.close()
