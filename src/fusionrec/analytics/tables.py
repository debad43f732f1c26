"""The experiment tables next to the event store's own: ``exposures`` and ``campaign_costs``.

``exposures``: one row per recommendation list shown (what serving logs): ``exposure_id``,
``timestamp`` (UTC), ``user_id``, ``session_id`` (one of the two at least), ``placement`` (home, pdp,
cart...), ``experiment`` and ``variant`` (null outside experiments), ``model_version`` and
``items``, the shown item ids in display order (an array: position 1 is the first element).
``exposure_events``: one row per stored event that a page sent back about a shown list (the
widget's views, clicks and add-to-cart): ``event_id`` (the event in ``events``), ``exposure_id``,
``event_type``, ``item_id``, ``timestamp``. It names the exposure an event came from, where
attribution otherwise infers it (same visitor, shown item, within the window).
``campaign_costs``: ``date``, ``channel``, ``campaign``, ``cost`` (spend of one campaign on one day).

`ensure_analytics_tables` creates them in either backend (idempotent); `log_exposures`,
`log_exposure_events` and `load_campaign_costs` validate rows and append them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fusionrec.data.schema import UTC_TIMESTAMP
from fusionrec.data.store.base import EventStore

EXPOSURE_SCHEMA = pa.schema(
    [
        pa.field("exposure_id", pa.string(), nullable=False),
        pa.field("timestamp", UTC_TIMESTAMP, nullable=False),
        pa.field("user_id", pa.string()),
        pa.field("session_id", pa.string()),
        pa.field("placement", pa.string()),
        pa.field("experiment", pa.string()),
        pa.field("variant", pa.string()),
        pa.field("model_version", pa.string()),
        pa.field("items", pa.list_(pa.string()), nullable=False),
    ]
)
EXPOSURE_EVENT_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string(), nullable=False),
        pa.field("exposure_id", pa.string(), nullable=False),
        pa.field("event_type", pa.string(), nullable=False),
        pa.field("item_id", pa.string()),
        pa.field("timestamp", UTC_TIMESTAMP, nullable=False),
    ]
)
COST_SCHEMA = pa.schema(
    [
        pa.field("date", pa.date32(), nullable=False),
        pa.field("channel", pa.string(), nullable=False),
        pa.field("campaign", pa.string(), nullable=False),
        pa.field("cost", pa.float64(), nullable=False),
    ]
)

_TYPES = {
    "duckdb": {"text": "VARCHAR", "list": "VARCHAR[]", "float": "DOUBLE"},
    "postgresql": {"text": "TEXT", "list": "TEXT[]", "float": "DOUBLE PRECISION"},
}


def create_statements(dialect: str) -> list[str]:
    """DDL of the analytics tables for ``duckdb`` or ``postgresql`` (idempotent)."""
    if dialect not in _TYPES:
        raise ValueError(f"no analytics DDL for dialect {dialect!r}")
    t = _TYPES[dialect]
    return [
        "CREATE TABLE IF NOT EXISTS exposures (\n"
        f"  exposure_id {t['text']} PRIMARY KEY,\n"
        '  "timestamp" TIMESTAMPTZ NOT NULL,\n'
        f"  user_id {t['text']},\n  session_id {t['text']},\n  placement {t['text']},\n"
        f"  experiment {t['text']},\n  variant {t['text']},\n  model_version {t['text']},\n"
        f"  items {t['list']} NOT NULL,\n"
        "  logged_at TIMESTAMPTZ DEFAULT now(),\n"
        "  CHECK (user_id IS NOT NULL OR session_id IS NOT NULL)\n)",
        "CREATE INDEX IF NOT EXISTS exposures_experiment ON exposures (experiment, variant)",
        "CREATE TABLE IF NOT EXISTS exposure_events (\n"
        f"  event_id {t['text']} PRIMARY KEY,\n"
        f"  exposure_id {t['text']} NOT NULL,\n  event_type {t['text']} NOT NULL,\n"
        f"  item_id {t['text']},\n"
        '  "timestamp" TIMESTAMPTZ NOT NULL\n)',
        "CREATE INDEX IF NOT EXISTS exposure_events_exposure ON exposure_events (exposure_id)",
        "CREATE TABLE IF NOT EXISTS campaign_costs (\n"
        '  "date" DATE NOT NULL,\n'
        f"  channel {t['text']} NOT NULL,\n  campaign {t['text']} NOT NULL,\n"
        f"  cost {t['float']} NOT NULL CHECK (cost >= 0),\n"
        '  PRIMARY KEY ("date", channel, campaign)\n)',
    ]


def ensure_analytics_tables(store: EventStore) -> None:
    """Create ``exposures``, ``exposure_events`` and ``campaign_costs`` in the store if missing."""
    store.create_tables(create_statements(store.dialect))


def _frame(rows: pd.DataFrame | pa.Table | Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    if isinstance(rows, pd.DataFrame):
        return rows.reset_index(drop=True)
    if isinstance(rows, pa.Table):
        return rows.to_pandas()
    return pd.DataFrame(list(rows))


def _fail(what: str, row: int, message: str) -> None:
    raise ValueError(f"{what} row {row}: {message}")


def exposures_table(rows: pd.DataFrame | pa.Table | Iterable[Mapping[str, Any]]) -> pa.Table:
    """Validate exposure rows onto `EXPOSURE_SCHEMA`; an error names the first bad row and field."""
    frame = _frame(rows)
    missing = [c for c in ("exposure_id", "timestamp", "items") if c not in frame.columns]
    if missing:
        raise ValueError(f"exposures: missing column(s) {', '.join(missing)}")
    for name in ("exposure_id", "timestamp", "items"):
        bad = frame[name].isna().to_numpy()
        if bad.any():
            _fail("exposures", int(np.argmax(bad)), f"{name} is null")
    users = frame["user_id"] if "user_id" in frame else pd.Series(None, index=frame.index)
    sessions = frame["session_id"] if "session_id" in frame else pd.Series(None, index=frame.index)
    anonymous = (users.isna() & sessions.isna()).to_numpy()
    if anonymous.any():
        _fail("exposures", int(np.argmax(anonymous)), "needs a user_id or a session_id")
    lengths = frame["items"].map(len).to_numpy()
    if (lengths == 0).any():
        _fail("exposures", int(np.argmax(lengths == 0)), "items is empty")
    dup = frame["exposure_id"].duplicated().to_numpy()
    if dup.any():
        row = int(np.argmax(dup))
        _fail("exposures", row, f"exposure_id {frame['exposure_id'].iloc[row]!r} repeats an earlier row")
    times = pd.to_datetime(frame["timestamp"], utc=True)
    columns: dict[str, Any] = {}
    for field in EXPOSURE_SCHEMA:
        if field.name == "timestamp":
            columns[field.name] = pa.array(times.dt.floor("us")).cast(UTC_TIMESTAMP)
        elif field.name == "items":
            columns[field.name] = pa.array([[str(i) for i in x] for x in frame["items"]], field.type)
        elif field.name in frame.columns:
            values = frame[field.name]
            columns[field.name] = pa.array(values.where(values.isna(), values.astype(str)), pa.string())
        else:
            columns[field.name] = pa.nulls(len(frame), field.type)
    return pa.Table.from_pydict(columns, schema=EXPOSURE_SCHEMA)


def log_exposures(
    store: EventStore, rows: pd.DataFrame | pa.Table | Iterable[Mapping[str, Any]], *, create: bool = True
) -> int:
    """Append exposures (known ``exposure_id``s are skipped); return how many were new.

    ``create=False`` skips the table DDL, for a caller that ensured the tables once (the service
    flushes every second, and three DDL transactions per flush cost more than the insert).
    """
    table = _without_erased(store, exposures_table(rows))
    if not table.num_rows:
        return 0
    if create:
        ensure_analytics_tables(store)
    return store.insert_table("exposures", table, skip_key="exposure_id")


def log_exposure_events(store: EventStore, rows: Iterable[Mapping[str, Any]], *, create: bool = True) -> int:
    """Append exposure-event links (known ``event_id``s are skipped: a resent event links once);
    return how many were new. ``create=False``: the caller ensured the tables."""
    frame = _frame(rows)
    for name in ("event_id", "exposure_id", "event_type", "timestamp"):
        if name not in frame.columns or frame[name].isna().any():
            raise ValueError(f"exposure events: {name} is missing")
    columns = {
        "event_id": pa.array(frame["event_id"].astype(str), pa.string()),
        "exposure_id": pa.array(frame["exposure_id"].astype(str), pa.string()),
        "event_type": pa.array(frame["event_type"].astype(str), pa.string()),
        "item_id": pa.array(frame.get("item_id", pd.Series(None, index=frame.index)), pa.string()),
        "timestamp": pa.array(pd.to_datetime(frame["timestamp"], utc=True).dt.floor("us")).cast(
            UTC_TIMESTAMP
        ),
    }
    table = pa.Table.from_pydict(columns, schema=EXPOSURE_EVENT_SCHEMA)
    if create:
        ensure_analytics_tables(store)
    return store.insert_table("exposure_events", table, skip_key="event_id")


def _without_erased(store: EventStore, table: pa.Table) -> pa.Table:
    """Exposure rows of erased users dropped: never written, whichever service process answered."""
    erased = store.erased_among(table.column("user_id").to_pylist())
    if not erased:
        return table
    theirs = pc.fill_null(pc.is_in(table.column("user_id"), value_set=pa.array(sorted(erased))), False)
    return table.filter(pc.invert(theirs))


def costs_table(rows: pd.DataFrame | pa.Table | Iterable[Mapping[str, Any]]) -> pa.Table:
    """Validate campaign cost rows (date, channel, campaign, cost >= 0) onto `COST_SCHEMA`."""
    frame = _frame(rows)
    missing = [c for c in COST_SCHEMA.names if c not in frame.columns and c != "campaign"]
    if missing:
        raise ValueError(f"campaign costs: missing column(s) {', '.join(missing)}")
    if "campaign" not in frame.columns:
        frame = frame.assign(campaign="(none)")
    dates = pd.to_datetime(frame["date"], errors="coerce")
    cost = pd.to_numeric(frame["cost"], errors="coerce")
    checks = [
        (dates.isna(), "date is missing or not a date"),
        (frame["channel"].isna(), "channel is empty"),
        (cost.isna(), "cost is missing or not a number"),
        (cost < 0, "cost is negative"),
    ]
    for bad, message in checks:
        mask = bad.to_numpy()
        if mask.any():
            row = int(np.argmax(mask))
            _fail("campaign costs", row, f"{message} ({frame.iloc[row].to_dict()})")
    out = pd.DataFrame(
        {
            "date": dates.dt.date,
            "channel": frame["channel"].astype(str),
            "campaign": frame["campaign"].fillna("(none)").astype(str),
            "cost": cost.astype(float),
        }
    )
    # One row per (date, channel, campaign): repeated rows add up (e.g. two invoices on one day).
    out = out.groupby(["date", "channel", "campaign"], as_index=False, sort=True)["cost"].sum()
    return pa.Table.from_pandas(out, schema=COST_SCHEMA, preserve_index=False)


def load_campaign_costs(
    store: EventStore, rows: pd.DataFrame | pa.Table | Iterable[Mapping[str, Any]] | str | Path
) -> int:
    """Insert or replace campaign costs (a frame, rows or a CSV path); return the rows written."""
    if isinstance(rows, str | Path):
        rows = pd.read_csv(rows)
    table = costs_table(rows)
    if not table.num_rows:
        return 0
    ensure_analytics_tables(store)
    store.insert_table("campaign_costs", table, replace_key=["date", "channel", "campaign"])
    return table.num_rows
