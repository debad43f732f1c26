"""The promotions calendar: which items or categories were on promotion, when, at what discount.

``promotions``: ``promotion_id``, ``item_id`` or ``category`` (exactly one: a category path covers
its whole subtree), ``start_date`` and ``end_date`` (UTC days, both inclusive) and ``discount`` (a
share in [0, 1), or null). A promotion is one or more rows with the same id (e.g. one per item).

`load_promotions` reads a CSV or Parquet file (or a frame), keeps the good rows and sends each bad
one to the store's quarantine with its row number and reason (as event ingestion does); loading a
promotion again replaces all of its rows. The table is created on first load, in DuckDB or
PostgreSQL, like the other analytics tables (`fusionrec.analytics.tables`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from fusionrec.analytics.engine import run, table_exists
from fusionrec.data.store.base import EventStore

PROMOTION_SCHEMA = pa.schema(
    [
        pa.field("promotion_id", pa.string(), nullable=False),
        pa.field("item_id", pa.string()),
        pa.field("category", pa.string()),
        pa.field("start_date", pa.date32(), nullable=False),
        pa.field("end_date", pa.date32(), nullable=False),
        pa.field("discount", pa.float64()),
    ]
)
# Column names a shop's export may use for the two dates.
_ALIASES = {"start": "start_date", "end": "end_date"}
_TEXT = {"duckdb": "VARCHAR", "postgresql": "TEXT"}
_FLOAT = {"duckdb": "DOUBLE", "postgresql": "DOUBLE PRECISION"}


def create_statements(dialect: str) -> list[str]:
    """DDL of the ``promotions`` table for ``duckdb`` or ``postgresql`` (idempotent)."""
    if dialect not in _TEXT:
        raise ValueError(f"no promotions DDL for dialect {dialect!r}")
    t, f = _TEXT[dialect], _FLOAT[dialect]
    return [
        "CREATE TABLE IF NOT EXISTS promotions (\n"
        f"  promotion_id {t} NOT NULL,\n  item_id {t},\n  category {t},\n"
        "  start_date DATE NOT NULL,\n  end_date DATE NOT NULL,\n"
        f"  discount {f} CHECK (discount >= 0 AND discount < 1),\n"
        "  CHECK ((item_id IS NULL) <> (category IS NULL)),\n"
        "  CHECK (end_date >= start_date)\n)",
        "CREATE INDEX IF NOT EXISTS promotions_id ON promotions (promotion_id)",
    ]


@dataclass(frozen=True)
class PromotionsLoad:
    """What `load_promotions` did: rows read, stored, quarantined (reason -> count), promotions."""

    read: int
    stored: int
    quarantined: dict[str, int]
    promotions: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "stored": self.stored,
            "quarantined": sum(self.quarantined.values()),
            "reasons": self.quarantined,
            "promotions": self.promotions,
        }


def read_promotions_file(path: str | Path) -> pd.DataFrame:
    """A promotions file as text columns: Parquet by its suffix, else CSV."""
    path = Path(path)
    if path.suffix.lower() in (".parquet", ".pq"):
        return pd.read_parquet(path)
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])


def validate_promotions(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.Series]:
    """The rows that pass, on `PROMOTION_SCHEMA`'s columns, and a reason for every row that fails
    (indexed like ``frame``). A missing required column is a `ValueError` for the whole file."""
    frame = frame.rename(columns={k: v for k, v in _ALIASES.items() if k in frame.columns})
    required = {"promotion_id": "promotion_id", "start_date": "start", "end_date": "end"}
    missing = [shown for c, shown in required.items() if c not in frame.columns]
    if "item_id" not in frame.columns and "category" not in frame.columns:
        missing.append("item_id or category")
    if missing:
        raise ValueError(f"promotions: missing column(s) {', '.join(missing)}")
    n = len(frame)

    def text(name: str) -> pd.Series:
        if name not in frame.columns:
            return pd.Series([None] * n, index=frame.index, dtype=object)
        values = frame[name].astype(object).where(frame[name].notna(), None)
        values = values.map(lambda v: None if v is None or str(v).strip() == "" else str(v).strip())
        return values

    pid, item, category = text("promotion_id"), text("item_id"), text("category")
    start = pd.to_datetime(frame["start_date"], errors="coerce")
    end = pd.to_datetime(frame["end_date"], errors="coerce")
    discount = (
        pd.to_numeric(frame["discount"], errors="coerce")
        if "discount" in frame.columns
        else pd.Series(float("nan"), index=frame.index)
    )
    given_discount = text("discount").notna()
    # The first failing check names a row's reason.
    checks = [
        (pid.isna(), "promotion_id is empty"),
        (item.isna() & category.isna(), "needs an item_id or a category"),
        (item.notna() & category.notna(), "has both an item_id and a category (one row per target)"),
        (start.isna(), "start is missing or not a date"),
        (end.isna(), "end is missing or not a date"),
        (end < start, "end is before start"),
        (given_discount & discount.isna(), "discount is not a number"),
        (discount.notna() & ((discount < 0) | (discount >= 1)), "discount is not a share in [0, 1)"),
    ]
    reasons = pd.Series([None] * n, index=frame.index, dtype=object)
    for bad, reason in checks:
        reasons = reasons.where(reasons.notna() | ~bad.fillna(False).astype(bool), reason)
    good = reasons.isna()
    out = pd.DataFrame(
        {
            "promotion_id": pid[good],
            "item_id": item[good],
            "category": category[good],
            "start_date": start[good].dt.date,
            "end_date": end[good].dt.date,
            "discount": discount[good].astype(float),
        }
    )
    return out.reset_index(drop=True), reasons[~good]


def load_promotions(
    store: EventStore,
    rows: pd.DataFrame | pa.Table | Iterable[Mapping[str, Any]] | str | Path,
    *,
    source: str | None = None,
) -> PromotionsLoad:
    """Validate and store promotions; bad rows go to the quarantine. Loading a promotion id again
    replaces its rows. Raises `ValueError` when a column is missing or no row is usable."""
    if isinstance(rows, str | Path):
        source = source or str(rows)
        frame = read_promotions_file(rows)
    elif isinstance(rows, pa.Table):
        frame = rows.to_pandas()
    elif isinstance(rows, pd.DataFrame):
        frame = rows.reset_index(drop=True)
    else:
        frame = pd.DataFrame(list(rows))
    good, bad = validate_promotions(frame)
    if len(frame) and not len(good):
        first = bad.iloc[0]
        raise ValueError(f"promotions: no usable row ({len(bad)} rejected; row 1: {first})")
    if len(bad):
        store.add_quarantine(
            [
                {
                    "source": source or "promotions",
                    "row_number": int(row) + 1,
                    "reason": f"promotions: {reason}",
                    "user_id": None,
                    "raw": json.dumps(frame.loc[row].astype(str).to_dict()),
                }
                for row, reason in bad.items()
            ]
        )
    table = pa.Table.from_pandas(good, schema=PROMOTION_SCHEMA, preserve_index=False)
    ids = sorted(set(good["promotion_id"]))
    if table.num_rows:
        store.create_tables(create_statements(store.dialect))
        with store.transaction() as tx:
            for pid in ids:  # a reloaded promotion replaces its rows, not adds to them
                tx.execute("DELETE FROM promotions WHERE promotion_id = :pid", {"pid": pid})
            tx.insert("promotions", table)
    return PromotionsLoad(len(frame), table.num_rows, bad.value_counts().to_dict(), ids)


def promotions_frame(store: EventStore) -> pd.DataFrame:
    """Every stored promotion row (empty, with the columns, when there is no calendar)."""
    if not table_exists(store, "promotions"):
        return pd.DataFrame(columns=PROMOTION_SCHEMA.names)
    return run(store, ("SELECT * FROM promotions ORDER BY promotion_id, item_id, category", {}))
