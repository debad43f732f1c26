"""The `Engine` interface: one place to run the batch jobs' SQL, on DuckDB or on Spark.

A job is SQL written once in DuckDB's dialect (`fusionrec.engine.jobs`); an engine registers the
inputs as named relations (``events``, ``items``, ...), runs each step as a named relation of its
own (a view, or a materialised table when later steps reuse it), and hands results back as Arrow
(small ones) or writes them as Parquet (large ones). `DuckDBEngine` runs the SQL as it is;
`SparkEngine` transpiles it with SQLGlot, so there is no second copy of any query.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Self

import pyarrow as pa
import pyarrow.compute as pc

from fusionrec.engine.settings import EngineSettings

if TYPE_CHECKING:
    import pandas as pd

    from fusionrec.analytics.queries import Filters
    from fusionrec.data.store.base import EventStore

# Tables a job may read; the analytics ones are optional (KPIs of exposures need them).
INPUT_TABLES = ("events", "items")
OPTIONAL_TABLES = ("exposures", "campaign_costs", "promotions")


class EngineError(RuntimeError):
    """A job cannot run as asked (no input, unknown relation, bad SQL for the engine)."""


class Engine(ABC):
    """Runs SQL (DuckDB dialect unless told otherwise) over named relations."""

    name: ClassVar[str]

    def __init__(self, settings: EngineSettings | None = None) -> None:
        self.settings = settings or EngineSettings()

    # --- primitives ----------------------------------------------------------------------------

    @abstractmethod
    def register_parquet(self, name: str, path: str) -> None:
        """Expose Parquet at ``path`` (file, directory or glob; any filesystem the engine reads) as ``name``."""

    @abstractmethod
    def register_arrow(self, name: str, table: pa.Table) -> None:
        """Expose an in-memory Arrow table as ``name``."""

    @abstractmethod
    def define(self, name: str, sql: str, *, materialise: bool = False, dialect: str = "duckdb") -> None:
        """Make ``name`` the result of ``sql`` (a view, or a table computed once when ``materialise``);
        ``sql`` is in ``dialect`` (``duckdb``, or ``postgres`` for the analytics SQL)."""

    @abstractmethod
    def query(
        self, sql: str, params: Mapping[str, Any] | None = None, *, dialect: str = "duckdb"
    ) -> pa.Table:
        """Run a query written in ``dialect`` (``duckdb``, or ``postgres`` for the analytics SQL) with
        ``:name``/``$name`` parameters, and return the (small) result as Arrow."""

    @abstractmethod
    def write_parquet(self, name: str, path: str) -> None:
        """Write relation ``name`` as Parquet to ``path`` (DuckDB: one file; Spark: a directory)."""

    @abstractmethod
    def has_relation(self, name: str) -> bool:
        """Whether ``name`` is registered or defined."""

    @abstractmethod
    def close(self) -> None:
        """Release what this engine holds (temporary relations, caches, connections)."""

    # --- shared ------------------------------------------------------------------------------

    def table(self, name: str, order_by: str | None = None) -> pa.Table:
        """Relation ``name`` as Arrow (ordered when ``order_by`` is given); for results that fit in memory."""
        self._require(name)
        return self.query(f"SELECT * FROM {name}" + (f" ORDER BY {order_by}" if order_by else ""))

    def count(self, name: str) -> int:
        self._require(name)
        return int(self.query(f"SELECT count(*) AS n FROM {name}").column(0)[0].as_py())

    def _require(self, name: str) -> None:
        if not self.has_relation(name):
            raise EngineError(f"{self.name} engine: no relation {name!r}; run the job that defines it first")

    def load(self, store: EventStore | None = None) -> None:
        """Register ``events`` and ``items``: from the settings' Parquet paths, else from ``store``.

        From a store, the exposure log and campaign costs come along when the store has them.
        """
        if self.settings.events:
            self.register_parquet("events", self.settings.events)
            if self.settings.items:
                self.register_parquet("items", self.settings.items)
            else:
                from fusionrec.data.schema import ITEM_SCHEMA

                self.register_arrow("items", ITEM_SCHEMA.empty_table())
            return
        if store is None:
            raise EngineError(
                f"{self.name} engine has no input: set [engine] events = <Parquet path> or pass a store"
            )
        from fusionrec.analytics.engine import table_exists

        self.register_arrow("events", store.events_arrow(exclude_bots=False))
        self.register_arrow("items", store.items_arrow())
        for name in OPTIONAL_TABLES:
            if table_exists(store, name):
                self.register_arrow(name, store.query_arrow(f"SELECT * FROM {name}"))

    # --- the jobs, for callers such as the CLI ---------------------------------------------------

    def interactions(self, **options: Any) -> pa.Table:
        """``(user_id, item_id, weight, events, last_ts)`` rows; options as `jobs.interactions`."""
        from fusionrec.engine import jobs

        jobs.interactions(self, **options)
        return self.table("interactions", order_by="user_id, item_id")

    def kpis(self, filters: Filters | None = None, grain: str | None = None) -> dict[str, pd.DataFrame]:
        """The report's KPI tables (sessions, users, retention), as `jobs.kpis`."""
        from fusionrec.engine import jobs

        return jobs.kpis(self, filters, grain)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def normalise_arrow(table: pa.Table) -> pa.Table:
    """Engine-neutral column types: whole decimals (DuckDB's HUGEINT sums) -> int64, other decimals
    -> float64, large strings -> strings, so DuckDB's and Spark's results compare equal."""
    columns = []
    for column in table.columns:
        kind = column.type
        if pa.types.is_decimal(kind):
            column = pc.cast(column, pa.int64() if kind.scale == 0 else pa.float64())
        elif pa.types.is_large_string(kind):
            column = pc.cast(column, pa.string())
        elif pa.types.is_integer(kind) and kind != pa.int64():
            column = pc.cast(column, pa.int64())
        columns.append(column)
    return pa.table(columns, names=table.column_names)


def get_engine(
    settings: EngineSettings | None = None, store: EventStore | None = None, *, load: bool = True
) -> Engine:
    """The engine the settings name, with ``events`` and ``items`` loaded (from Parquet or ``store``;
    ``load=False`` leaves registering the inputs to the caller).

    This is the one call `fusionrec train/evaluate/report --engine ...` needs; close the engine
    (or use it in a ``with`` block) when done.
    """
    settings = settings or EngineSettings()
    engine: Engine
    if settings.engine == "spark":
        from fusionrec.engine.spark_engine import SparkEngine

        engine = SparkEngine(settings)
    else:
        from fusionrec.engine.duckdb_engine import DuckDBEngine

        engine = DuckDBEngine(settings)
    if not load:
        return engine
    try:
        engine.load(store)
    except BaseException:
        engine.close()
        raise
    return engine
