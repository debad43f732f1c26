"""Run an analytics query on a store and get a pandas frame back (results are small aggregates)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
import pyarrow as pa

from fusionrec.analytics.queries import Query
from fusionrec.data.store import EventStore

_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")  # the store's ``:name`` parameters


def run(store: EventStore, query: Query) -> pd.DataFrame:
    """The query's result as a DataFrame (dates as ``datetime.date``, counts as numbers)."""
    sql, params = query
    used = set(_PARAM.findall(sql))  # a statement over a materialised table may need fewer parameters
    table = store.query_arrow(sql, {k: v for k, v in params.items() if k in used})
    columns = {}
    for name, column in zip(table.column_names, table.columns, strict=True):
        # PostgreSQL hands back untyped columns for empty results, and decimals for some sums.
        if pa.types.is_null(column.type) or pa.types.is_decimal(column.type):
            column = column.cast(pa.float64())
        columns[name] = column
    return pa.table(columns).to_pandas() if columns else pd.DataFrame()


def table_exists(store: EventStore, name: str) -> bool:
    """Whether ``name`` is a table in the store's current schema."""
    if hasattr(store, "has_table"):  # a batch engine (`fusionrec.engine.sql_source.EngineSource`)
        return bool(store.has_table(name))
    where = "table_schema = current_schema()" if store.dialect == "postgresql" else "TRUE"
    rows = store.query_arrow(
        f"SELECT count(*) AS n FROM information_schema.tables WHERE table_name = :name AND {where}",
        {"name": name},
    )
    return bool(rows.column(0)[0].as_py())


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime):
        return f"CAST('{value.astimezone(UTC).isoformat()}' AS TIMESTAMPTZ)"
    if isinstance(value, date):
        return f"CAST('{value.isoformat()}' AS DATE)"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"cannot inline a parameter of type {type(value).__name__}")


def inline_params(sql: str, params: dict[str, Any]) -> str:
    """The statement with its ``:name`` parameters replaced by SQL literals."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in params:
            raise KeyError(f"query parameter :{name} has no value")
        return _literal(params[name])

    return _PARAM.sub(replace, sql)


@contextmanager
def materialised(store: EventStore, query: Query, prefix: str = "fr_tmp") -> Iterator[str]:
    """A temporary table holding the query's result for the block, then dropped; yields its name.

    Used so that one scan of the events (the session rows) feeds many KPI queries. Works on a
    read-only DuckDB store too (temporary tables live in memory).
    """
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    if hasattr(store, "materialise"):  # a batch engine: the relation lives until the engine closes
        store.materialise(name, inline_params(*query))
        yield name
        return
    # PostgreSQL takes no bound parameters in CREATE TABLE AS, so the (filter) values are inlined.
    store.execute(f"CREATE TEMPORARY TABLE {name} AS {inline_params(*query)}")
    try:
        yield name
    finally:
        store.execute(f"DROP TABLE IF EXISTS {name}")
