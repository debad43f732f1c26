"""Store statistics for `fusionrec stats`: counts, event-type mix, sparsity, long-tail shape.

Computed inside the store with SQL that DuckDB and PostgreSQL both run, never by loading events.
"""

from __future__ import annotations

from typing import Any

from fusionrec.data.store.base import EventStore

_TOTALS = """
SELECT COUNT(*) AS events,
       COUNT(DISTINCT user_id) AS users,
       COUNT(DISTINCT item_id) AS items,
       COUNT(DISTINCT session_id) AS sessions,
       SUM(CASE WHEN is_bot THEN 1 ELSE 0 END) AS bot_events,
       MIN(timestamp) AS first_event,
       MAX(timestamp) AS last_event
FROM events
"""

_MIX = "SELECT event_type, COUNT(*) AS events FROM events GROUP BY event_type ORDER BY events DESC"

_PAIRS = """
SELECT COUNT(*) AS pairs FROM (
  SELECT user_id, item_id FROM events
  WHERE user_id IS NOT NULL AND item_id IS NOT NULL GROUP BY user_id, item_id
) AS p
"""

# Share of item events carried by the most popular 1%, 10% and 20% of items, and the Gini index
# of item popularity (0 = every item equally popular).
_TAIL = """
WITH counts AS (
  SELECT item_id, COUNT(*) AS n FROM events WHERE item_id IS NOT NULL GROUP BY item_id
), ranked AS (
  SELECT n, ROW_NUMBER() OVER (ORDER BY n DESC, item_id) AS r, COUNT(*) OVER () AS m,
         SUM(n) OVER () AS total
  FROM counts
)
SELECT
  SUM(CASE WHEN r <= GREATEST(1, CAST(m * 0.01 AS BIGINT)) THEN n ELSE 0 END) * 1.0 / MAX(total) AS top1,
  SUM(CASE WHEN r <= GREATEST(1, CAST(m * 0.10 AS BIGINT)) THEN n ELSE 0 END) * 1.0 / MAX(total) AS top10,
  SUM(CASE WHEN r <= GREATEST(1, CAST(m * 0.20 AS BIGINT)) THEN n ELSE 0 END) * 1.0 / MAX(total) AS top20,
  2.0 * SUM((m - r + 1) * n) / (MAX(m) * MAX(total)) - (MAX(m) + 1.0) / MAX(m) AS gini
FROM ranked
"""


def store_stats(store: EventStore) -> dict[str, Any]:
    """Counts, event-type mix, sparsity and long-tail shape of everything in ``store``."""
    totals = store.query_arrow(_TOTALS).to_pylist()[0]
    mix = store.query_arrow(_MIX).to_pylist()
    pairs = store.query_arrow(_PAIRS).to_pylist()[0]["pairs"]
    tail = store.query_arrow(_TAIL).to_pylist()[0] if totals["events"] else {}
    users, items = int(totals["users"] or 0), int(totals["items"] or 0)
    cells = users * items
    return {
        "events": int(totals["events"]),
        "users": users,
        "items": items,
        "sessions": int(totals["sessions"] or 0),
        "bot_events": int(totals["bot_events"] or 0),
        "first_event": _iso(totals["first_event"]),
        "last_event": _iso(totals["last_event"]),
        "event_types": {row["event_type"]: int(row["events"]) for row in mix},
        "user_item_pairs": int(pairs),
        "density": (pairs / cells) if cells else 0.0,
        "sparsity": (1.0 - pairs / cells) if cells else 1.0,
        "long_tail": {
            "top_1pct_items_share": _float(tail.get("top1")),
            "top_10pct_items_share": _float(tail.get("top10")),
            "top_20pct_items_share": _float(tail.get("top20")),
            "item_popularity_gini": _float(tail.get("gini")),
        },
        "catalogue": store.counts(),
    }


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def _float(value: Any) -> float | None:
    return None if value is None else round(float(value), 4)
