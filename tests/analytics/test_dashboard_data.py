"""The live dashboard's data (issue 25, part 3): heavy queries built once per version of the data,
filter changes served from them, a rebuild when the data changes (not after a fixed 60 s), and the
model panels' series."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from analytics.helpers import fill_generated
from fusionrec.analytics.dashboard import DashboardData
from fusionrec.analytics.queries import Filters
from fusionrec.analytics.report import build_payload
from fusionrec.analytics.tables import log_exposures
from fusionrec.data.store import EventStore, open_store


@pytest.fixture
def shop(tmp_path: Path) -> EventStore:
    store = open_store(f"duckdb:///{tmp_path / 'shop.duckdb'}")
    fill_generated(store, n_events=8_000, seed=6)
    yield store
    store.close()


def test_filter_changes_reuse_one_build_and_match_a_payload_built_for_them(shop: EventStore) -> None:
    data = DashboardData(shop, n_boot=20, check_s=0.0, refresh_s=0.0, background=False)
    everything = data.payload(Filters())
    category = everything["categories"][0]
    pets = data.payload(Filters.of(category=category))
    february = data.payload(Filters.of("2026-02-01", "2026-02-28", category))
    assert data.builds == 1  # no rebuild per filter change: the data did not change
    assert february["filters"] == {"start": "2026-02-01", "end": "2026-02-28", "category": category}
    assert min(february["cube"]["period"]) >= "2026-02-01"
    assert set(february["cube"]["category"]) <= {"(all)", category}
    # A category's users are those of a payload built for it (its sessions are the same rows).
    built = build_payload(shop, Filters(category=category), n_boot=20)
    assert next((u["users"], u["buyers"]) for u in pets["users"] if u["category"] == category) == (
        built["users"][0]["users"],
        built["users"][0]["buyers"],
    )
    assert pets["forecasts"]["category"] == category and pets["forecasts"]["series"]
    assert (
        pets["forecasts"]["series"]["sessions"]["fitted"]
        == built["forecasts"]["series"]["sessions"]["fitted"]
    )
    assert february["segments_scope"] == "every date and category"


def test_new_data_is_shown_at_the_next_request_and_a_busy_shop_is_rebuilt_at_most_every_refresh_s(
    shop: EventStore,
) -> None:
    now = datetime.now(UTC)

    def expose(n: int, version: str) -> None:
        log_exposures(
            shop,
            [
                {
                    "exposure_id": f"{version}-{i}",
                    "timestamp": now,
                    "user_id": f"u{i}",
                    "placement": "home",
                    "model_version": version,
                    "items": ["i1"],
                }
                for i in range(n)
            ],
        )

    data = DashboardData(shop, n_boot=20, check_s=0.0, refresh_s=0.0, background=False)
    first = data.payload(Filters())
    expose(3, "v0042")  # an API call logs exposures: the next filter change shows them
    second = data.payload(Filters.of(end=now.date().isoformat()))
    assert data.builds == 2
    assert first["model_panels"]["timeline"] != second["model_panels"]["timeline"]
    assert (
        next(r for r in second["model_panels"]["timeline"] if r["model_version"] == "v0042")["exposures"] == 3
    )
    series = second["model_panels"]["series"]
    assert "v0042" in series["model_version"] and "home" in series["placement"]
    assert second["bounds"]["last_day"] == now.date().isoformat()

    busy = DashboardData(shop, n_boot=20, check_s=0.0, refresh_s=3600.0, background=False)
    busy.payload(Filters())
    expose(2, "v0043")
    stale = busy.payload(Filters.of(category=first["categories"][1]))
    assert busy.builds == 1  # changed within refresh_s: served as of the last build, and said so
    assert stale["data_as_of"] <= stale["generated_at"]
    # A page load waits for the data as it is, whatever refresh_s says.
    assert "v0043" in busy.payload(Filters(), fresh=True)["model_panels"]["series"]["model_version"]
    assert busy.builds == 2


def test_a_filter_change_never_waits_for_a_build(shop: EventStore) -> None:
    """New data: the filter change is answered from the last snapshot while a newer one is built
    in the background; the request after it sees the new data."""
    data = DashboardData(shop, n_boot=20, check_s=0.0, refresh_s=0.0)
    category = data.payload(Filters())["categories"][0]
    log_exposures(
        shop,
        [
            {
                "exposure_id": "late",
                "timestamp": datetime.now(UTC),
                "user_id": "u1",
                "placement": "home",
                "model_version": "v0077",
                "items": ["i1"],
            }
        ],
    )
    old = data.payload(Filters.of(category=category))  # answered at once, from the last snapshot
    assert "v0077" not in old["model_panels"]["series"]["model_version"]
    data._building.join(timeout=300)
    assert data.builds == 2
    new = data.payload(Filters.of(category=category))
    assert "v0077" in new["model_panels"]["series"]["model_version"]


def test_a_users_recent_events(shop: EventStore) -> None:
    data = DashboardData(shop, n_boot=20, background=False)
    user = shop.query_arrow("SELECT min(user_id) AS u FROM events", {}).column(0)[0].as_py()
    events = data.user_events(user, limit=5)
    assert 0 < len(events) <= 5
    assert [e["ts"] for e in events] == sorted((e["ts"] for e in events), reverse=True)
    assert {"event_type", "item_id", "title", "category"} <= set(events[0])
    assert data.user_events("nobody") == []
