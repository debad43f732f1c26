"""The store table ``recommendations_batch``: precomputed top-N lists that serving reads.

One row per (model, user, rank): ``model``, ``user_id``, ``rank`` (1 = best), ``item_id``,
``score``, ``generated_at``. A write replaces the model's previous lists in one transaction, so
serving never sees half of a run. Serving reads a user's list with `read_recommendations`
(one indexed range scan on the primary key).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from fusionrec.data.store.base import EventStore

TABLE = "recommendations_batch"
BATCH_SCHEMA = pa.schema(
    [
        pa.field("user_id", pa.string(), nullable=False),
        pa.field("rank", pa.int32(), nullable=False),
        pa.field("item_id", pa.string(), nullable=False),
        pa.field("score", pa.float64()),
    ]
)
_TYPES = {"duckdb": ("VARCHAR", "DOUBLE"), "postgresql": ("TEXT", "DOUBLE PRECISION")}


def create_statement(dialect: str) -> str:
    """DDL of ``recommendations_batch`` for ``duckdb`` or ``postgresql`` (idempotent)."""
    if dialect not in _TYPES:
        raise ValueError(f"no DDL for dialect {dialect!r}")
    text, double = _TYPES[dialect]
    return (
        f"CREATE TABLE IF NOT EXISTS {TABLE} (\n"
        f'  model {text} NOT NULL,\n  user_id {text} NOT NULL,\n  "rank" INTEGER NOT NULL,\n'
        f"  item_id {text} NOT NULL,\n  score {double},\n  generated_at TIMESTAMPTZ NOT NULL,\n"
        '  PRIMARY KEY (model, user_id, "rank")\n)'
    )


def _conform(batch: pa.Table | pa.RecordBatch) -> pa.Table:
    table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
    missing = [f.name for f in BATCH_SCHEMA if f.name not in table.column_names]
    if missing:
        raise ValueError(f"{TABLE}: batch lacks column(s) {missing}; have {table.column_names}")
    table = table.select(BATCH_SCHEMA.names)
    for name in ("user_id", "rank", "item_id"):
        nulls = table.column(name).null_count
        if nulls:
            row = int(np.flatnonzero(table.column(name).is_null().to_numpy(zero_copy_only=False))[0])
            raise ValueError(f"{TABLE}: row {row} has a null {name} ({nulls} such rows in the batch)")
    return table.cast(BATCH_SCHEMA)


def write_recommendations(
    store: EventStore, batches: Iterable[pa.Table | pa.RecordBatch], model: str, at: datetime | None = None
) -> int:
    """Replace ``model``'s lists with ``batches`` (columns of `BATCH_SCHEMA`); return rows written.

    All batches go in one transaction: on any error the previous lists stay.
    """
    if not model:
        raise ValueError("model name is empty")
    at = at or datetime.now(UTC)
    written = 0
    # The table is created under the store's DDL lock: two writers (a batch job and a serving
    # worker) must not both run CREATE TABLE in PostgreSQL's catalogue at once.
    store.create_tables([create_statement(store.dialect)])
    with store.transaction() as transaction:
        transaction.execute(f"DELETE FROM {TABLE} WHERE model = :model", {"model": model})
        for batch in batches:
            table = _conform(batch)
            stamped = table.add_column(0, "model", pa.array([model] * table.num_rows, pa.string()))
            stamped = stamped.append_column(
                "generated_at", pa.array([at] * table.num_rows, pa.timestamp("us", tz="UTC"))
            )
            written += transaction.insert(TABLE, stamped)
    return written


def read_recommendations(store: EventStore, model: str, user_id: str, k: int | None = None) -> pa.Table:
    """One user's stored list (``rank, item_id, score``), best first; empty when none is stored."""
    limit = f" LIMIT {int(k)}" if k is not None else ""
    statement = (
        f'SELECT "rank", item_id, score FROM {TABLE} WHERE model = :model AND user_id = :user '
        f'ORDER BY "rank"{limit}'
    )
    return store.query_arrow(statement, {"model": model, "user": str(user_id)})


def read_all_recommendations(store: EventStore, model: str) -> pa.Table:
    """Every stored list of ``model`` (``user_id, rank, item_id, score``); empty when none (or no table)."""
    from fusionrec.analytics.engine import table_exists

    if not table_exists(store, TABLE):
        return BATCH_SCHEMA.empty_table()
    return store.query_arrow(
        f'SELECT user_id, "rank", item_id, score FROM {TABLE} WHERE model = :model ORDER BY user_id, "rank"',
        {"model": model},
    )
