"""`DuckDBEngine`: the batch jobs in one in-process DuckDB (the default, one machine)."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import duckdb
import pyarrow as pa

from fusionrec.data.store.sql import render_params
from fusionrec.engine.base import Engine, EngineError, normalise_arrow
from fusionrec.engine.settings import EngineSettings


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class DuckDBEngine(Engine):
    """Relations are DuckDB views and temporary tables in a private in-memory database."""

    name: ClassVar[str] = "duckdb"

    def __init__(self, settings: EngineSettings | None = None) -> None:
        super().__init__(settings)
        self._con = duckdb.connect(":memory:")
        self._con.execute("SET TimeZone = 'UTC'")
        if self.settings.duckdb_threads:
            self._con.execute(f"SET threads = {int(self.settings.duckdb_threads)}")
        # Spill next to other temporary files, not into the working directory (DuckDB's default).
        spill = self.settings.duckdb_temp_directory or str(
            Path(tempfile.gettempdir()) / "fusionrec-duckdb-spill"
        )
        self._con.execute(f"SET temp_directory = {_quote(spill)}")
        if self.settings.duckdb_memory_limit:
            self._con.execute(f"SET memory_limit = {_quote(self.settings.duckdb_memory_limit)}")
        self._arrow: dict[str, pa.Table] = {}  # registered tables stay referenced while in use
        self._names: set[str] = set()
        self._kinds: dict[str, str] = {}  # defined relation -> VIEW or TABLE (DuckDB drops each by kind)

    def register_parquet(self, name: str, path: str) -> None:
        self._con.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet({_quote(path)})")
        self._names.add(name)

    def register_arrow(self, name: str, table: pa.Table) -> None:
        self._arrow[name] = table
        self._con.register(name, table)  # zero-copy scan of the Arrow buffers
        self._names.add(name)

    def define(self, name: str, sql: str, *, materialise: bool = False, dialect: str = "duckdb") -> None:
        if dialect not in ("duckdb", "postgres"):  # the analytics SQL runs on DuckDB as written
            raise EngineError(f"duckdb engine runs duckdb or postgres SQL, not {dialect!r}")
        kind = "TABLE" if materialise else "VIEW"
        self._drop(name)
        self._con.execute(f"CREATE TEMP {kind} {name} AS {sql}")
        self._kinds[name] = kind
        self._names.add(name)

    def _drop(self, name: str) -> None:
        if name in self._arrow:
            self._con.unregister(name)
            del self._arrow[name]
        kind = self._kinds.pop(name, None)
        if kind is not None:
            self._con.execute(f"DROP {kind} IF EXISTS {name}")

    def query(
        self, sql: str, params: Mapping[str, Any] | None = None, *, dialect: str = "duckdb"
    ) -> pa.Table:
        if dialect not in ("duckdb", "postgres"):
            raise EngineError(f"duckdb engine runs duckdb or postgres SQL, not {dialect!r}")
        statement = render_params(sql, "duckdb") if params else sql
        relation = self._con.sql(statement, params=dict(params) if params else None)
        return normalise_arrow(relation.to_arrow_table()) if relation is not None else pa.table({})

    def write_parquet(self, name: str, path: str) -> None:
        self._require(name)
        self._con.execute(f"COPY (SELECT * FROM {name}) TO {_quote(path)} (FORMAT parquet, COMPRESSION zstd)")

    def has_relation(self, name: str) -> bool:
        return name in self._names

    def close(self) -> None:
        self._con.close()
        self._arrow.clear()
        self._names.clear()
