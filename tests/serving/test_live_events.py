"""Stored events as the live state reads them: grouped by visitor, in time order, from Arrow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from fusionrec.serving.online import LiveEvents, MemoryOnlineState, group_events

T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def table(rows: list[tuple], unit: str = "us") -> pa.Table:
    """(user_id, session_id, item_id, event_type, seconds after T0) rows."""
    return pa.table(
        {
            "user_id": pa.array([r[0] for r in rows], pa.string()),
            "session_id": pa.array([r[1] for r in rows], pa.string()),
            "item_id": pa.array([r[2] for r in rows], pa.string()),
            "event_type": pa.array([r[3] for r in rows], pa.string()),
            "timestamp": pa.array([T0 + timedelta(seconds=r[4]) for r in rows], pa.timestamp(unit, tz="UTC")),
        }
    )


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_times_are_unix_seconds_whatever_the_columns_unit(unit: str) -> None:
    events = LiveEvents.from_arrow(table([("u1", None, "i1", "view", 7)], unit))
    assert events.times == [T0.timestamp() + 7]


def test_events_group_by_visitor_in_time_order_with_sessions_following_their_user() -> None:
    events = LiveEvents.from_arrow(
        table(
            [
                ("u1", None, "i1", "view", 5),
                (None, "s1", "i2", "view", 1),  # a guest
                ("u1", "s9", "i3", "purchase", 2),  # earlier than u1's first row
                (None, "s2", "i4", "view", 3),  # a session that logged in as u2
                (None, None, "i5", "view", 0),  # nobody: skipped
                ("u1", None, None, "view", 0),  # no item: skipped
                ("u1", None, "i6", "purchase", 5),  # same time as i1: after it
            ]
        )
    )
    updates = group_events(events, {"s2": "u2"})
    assert [u.visitor for u in updates] == ["u:u1", "s:s1", "u:u2"]  # as they first appear
    first = updates[0]
    assert first.items == ["i3", "i1", "i6"]
    assert first.times == [T0.timestamp() + 2, T0.timestamp() + 5, T0.timestamp() + 5]
    assert (first.purchases, first.purchase_times) == (["i3", "i6"], [T0.timestamp() + 2, T0.timestamp() + 5])
    assert updates[2].items == ["i4"] and updates[2].purchases == []


def test_the_memory_state_records_what_it_is_given_and_where() -> None:
    state = MemoryOnlineState()
    state.identify("s2", "u2")
    changed = state.record(
        LiveEvents.from_arrow(table([(None, "s2", "i4", "purchase", 3), (None, "s1", "i2", "view", 1)]))
    )
    assert changed == ["u:u2", "s:s1"]
    mine = state.get(state.resolve(None, "s2"))
    assert mine.items == ["i4"] and mine.bought == {"i4": T0.timestamp() + 3}
    kept = LiveEvents.from_arrow(table([("u1", None, "i1", "view", 0), ("u2", None, "i2", "view", 0)]))
    assert kept.where([False, True]).user_id == ["u2"] and len(kept.where([False, False])) == 0
