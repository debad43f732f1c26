"""`SparkEngine`: the same jobs on Spark SQL, the DuckDB SQL transpiled by SQLGlot."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any, ClassVar

import pyarrow as pa

from fusionrec.engine.base import Engine, EngineError, normalise_arrow
from fusionrec.engine.settings import EngineSettings
from fusionrec.engine.spark_session import spark_session


@lru_cache(maxsize=512)
def to_spark(sql: str, dialect: str = "duckdb") -> str:
    """``sql`` (DuckDB or PostgreSQL dialect) as Spark SQL; ``$name`` and ``:name`` become ``:name``."""
    import sqlglot
    from sqlglot.errors import SqlglotError

    try:
        return sqlglot.transpile(sql, read=dialect, write="spark")[0]
    except SqlglotError as error:
        raise EngineError(f"cannot transpile {dialect} SQL to Spark: {error}\n{sql}") from error


class SparkEngine(Engine):
    """Relations are Spark temporary views; materialised ones are cached (memory, then disk)."""

    name: ClassVar[str] = "spark"

    def __init__(self, settings: EngineSettings | None = None) -> None:
        super().__init__(settings)
        self.spark = spark_session(self.settings.spark)
        self._names: set[str] = set()
        self._cached: dict[str, Any] = {}

    def register_parquet(self, name: str, path: str) -> None:
        self.spark.read.parquet(path).createOrReplaceTempView(name)
        self._names.add(name)

    def register_arrow(self, name: str, table: pa.Table) -> None:
        if table.num_rows == 0:  # Spark infers nothing from an empty Arrow table: give the schema
            frame = self.spark.createDataFrame([], schema=_spark_schema(table.schema))
        else:
            frame = self.spark.createDataFrame(table)
        frame.createOrReplaceTempView(name)
        self._names.add(name)

    def define(self, name: str, sql: str, *, materialise: bool = False, dialect: str = "duckdb") -> None:
        self._uncache(name)
        frame = self.spark.sql(to_spark(sql, dialect))
        if materialise:
            from pyspark import StorageLevel

            frame = frame.persist(StorageLevel.MEMORY_AND_DISK)
            self._cached[name] = frame
        frame.createOrReplaceTempView(name)
        self._names.add(name)

    def _uncache(self, name: str) -> None:
        old = self._cached.pop(name, None)
        if old is not None:
            old.unpersist()

    def frame(self, name: str) -> Any:
        """Relation ``name`` as a Spark DataFrame (to chain DataFrame code, or write elsewhere)."""
        self._require(name)
        return self.spark.table(name)

    def query(
        self, sql: str, params: Mapping[str, Any] | None = None, *, dialect: str = "duckdb"
    ) -> pa.Table:
        if dialect not in ("duckdb", "postgres"):
            raise EngineError(f"spark engine transpiles duckdb or postgres SQL, not {dialect!r}")
        statement = to_spark(sql, dialect)
        frame = self.spark.sql(statement, args=dict(params)) if params else self.spark.sql(statement)
        return normalise_arrow(frame.toArrow())

    def write_parquet(self, name: str, path: str) -> None:
        self.frame(name).write.mode("overwrite").parquet(path)

    def has_relation(self, name: str) -> bool:
        return name in self._names

    def close(self) -> None:
        """Drop this engine's views and caches; the session stays up for the process (JVM start is slow)."""
        for name in list(self._cached):
            self._uncache(name)
        for name in self._names:
            self.spark.catalog.dropTempView(name)
        self._names.clear()


def _spark_schema(schema: pa.Schema) -> Any:
    """A Spark StructType for an Arrow schema (through PySpark's own Arrow type mapping)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    try:
        return from_arrow_schema(schema)
    except TypeError as error:
        raise EngineError(f"no Spark type for Arrow schema {schema}: {error}") from error
