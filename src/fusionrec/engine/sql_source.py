"""The analytics report's SQL answered by a batch engine instead of the store.

`fusionrec.analytics` reads a store through three calls: ``query_arrow`` (its SQL, PostgreSQL
dialect, ``:name`` parameters), ``materialised`` temporary tables, and ``table_exists``. `EngineSource`
gives an `Engine` those three, so ``fusionrec report --engine spark`` runs the same queries on Spark
(transpiled by SQLGlot) over the same events, with no second copy of any query.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from fusionrec.engine.base import Engine, normalise_arrow


class EngineSource:
    """An `Engine` seen through the read-only slice of the `EventStore` interface analytics uses."""

    dialect = "postgresql"  # the analytics SQL is written in PostgreSQL's dialect

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def query_arrow(self, statement: str, params: Mapping[str, Any] | None = None) -> pa.Table:
        return normalise_arrow(self.engine.query(statement, params, dialect="postgres"))

    def materialise(self, name: str, statement: str) -> None:
        """Compute ``statement`` (PostgreSQL dialect, parameters inlined) once as relation ``name``;
        it lives until the engine closes."""
        self.engine.define(name, statement, materialise=True, dialect="postgres")

    def has_table(self, name: str) -> bool:
        return self.engine.has_relation(name)

    def __repr__(self) -> str:
        return f"EngineSource({self.engine!r})"
