"""One user's data: erased everywhere it is stored, or exported as JSON; and retention, which
deletes everyone's data older than a number of days.

Shared by ``DELETE /v1/users/{id}`` (which also purges the service's online state and caches) and
the `fusionrec erase` / `fusionrec export` commands. What is stored about a user: their events and
those of every session they signed in on (``session_links``), their profile (``users``), rejected
rows (``quarantine``), the answers shown to them (``exposures``, and ``exposure_events``: which of
their events answered which exposure) and Spark's precomputed lists (``recommendations_batch``).
The last tables exist only once written, so each is optional.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fusionrec.analytics.engine import table_exists
from fusionrec.data.store import EventStore
from fusionrec.engine.recommendations import TABLE as BATCH_TABLE

EXPOSURES = "exposures"
EXPOSURE_EVENTS = "exposure_events"


def _of_exposures(condition: str) -> str:
    """SQL condition on ``exposure_events``: the link belongs to an exposure, or an event, matching
    ``condition`` (the event's side catches links to an exposure not yet written when erased)."""
    return (
        f"(exposure_id IN (SELECT exposure_id FROM {EXPOSURES} WHERE {condition}) "
        f"OR event_id IN (SELECT event_id FROM events WHERE {condition}))"
    )


def erase_stored(store: EventStore, user_id: str) -> dict[str, int]:
    """Delete everything the store holds about ``user_id`` and remember the id (as its SHA-256) so
    later writes are refused; the rows deleted per kind."""
    sessions = store.linked_sessions(user_id)  # read first: `erase_user` deletes the links
    theirs, params = _user_or_sessions(sessions), _params(user_id, sessions)
    links = _delete_where(store, EXPOSURE_EVENTS, _of_exposures(theirs), params) if _has(store) else 0
    exposures = _delete_where(store, EXPOSURES, theirs, params)
    batch_rows = _delete_where(store, BATCH_TABLE, "user_id = :u", {"u": user_id})
    events = store.erase_user(user_id)
    return {
        "events_deleted": events,
        "sessions_unlinked": len(sessions),
        "exposures_deleted": exposures,
        "exposure_events_deleted": links,
        "batch_rows_deleted": batch_rows,
    }


def export_user(store: EventStore, user_id: str) -> dict[str, Any]:
    """Everything the store holds about ``user_id``, as JSON-ready lists of rows per table."""
    sessions = store.linked_sessions(user_id)
    theirs, params = _user_or_sessions(sessions), _params(user_id, sessions)
    own, user = "user_id = :u", {"u": user_id}
    return {
        "user_id": user_id,
        "erased": store.is_erased(user_id),
        "sessions": sessions,
        "profile": _rows(store, "users", own, user),
        "events": _rows(store, "events", theirs, params, order='"timestamp", event_id'),
        "quarantine": _rows(store, "quarantine", own, user),
        "exposures": _rows(store, EXPOSURES, theirs, params, order='"timestamp"'),
        "exposure_events": (
            _rows(store, EXPOSURE_EVENTS, _of_exposures(theirs), params, order='"timestamp"')
            if _has(store)
            else []
        ),
        "recommendations_batch": _rows(store, BATCH_TABLE, own, user, order='model, "rank"'),
    }


def _has(store: EventStore) -> bool:
    """Whether both exposure tables exist (the links are found through the exposures)."""
    return table_exists(store, EXPOSURES) and table_exists(store, EXPOSURE_EVENTS)


def _params(user_id: str, sessions: list[str]) -> dict[str, str]:
    return {"u": str(user_id), **{f"s{i}": session for i, session in enumerate(sessions)}}


def _user_or_sessions(sessions: list[str]) -> str:
    """SQL condition: the row is the user's, or one of ``sessions``' (parameters from `_params`)."""
    if not sessions:
        return "user_id = :u"
    return f"(user_id = :u OR session_id IN ({', '.join(f':s{i}' for i in range(len(sessions)))}))"


def _delete_where(store: EventStore, table: str, condition: str, params: dict[str, Any]) -> int:
    if not table_exists(store, table):
        return 0
    return max(store.execute(f"DELETE FROM {table} WHERE {condition}", params), 0)


def _rows(
    store: EventStore, table: str, condition: str, params: dict[str, str], order: str | None = None
) -> list[dict[str, Any]]:
    if not table_exists(store, table):
        return []
    order_by = f" ORDER BY {order}" if order else ""
    return store.query_arrow(f"SELECT * FROM {table} WHERE {condition}{order_by}", params).to_pylist()


def apply_retention(store: EventStore, days: float, now: datetime | None = None) -> dict[str, int]:
    """Delete events, rejected rows, exposures and their events' links older than ``days`` (before
    ``now`` - days); the rows deleted per table."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    deleted = store.delete_older_than(cutoff)
    deleted["exposures"] = _delete_where(store, EXPOSURES, '"timestamp" < :cutoff', {"cutoff": cutoff})
    deleted["exposure_events"] = _delete_where(
        store, EXPOSURE_EVENTS, '"timestamp" < :cutoff', {"cutoff": cutoff}
    )
    return deleted
