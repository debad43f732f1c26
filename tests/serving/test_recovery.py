"""Recovery of the service's in-memory state: exposures buffered in memory reach the store on a
short timer and at shutdown (the loss window of a crash is one flush interval)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from fusionrec.data.store import open_store
from fusionrec.serving.app import create_app
from serving.conftest import make_settings


def stored_exposures(store_url: str) -> list[str]:
    with open_store(store_url) as store:
        return store.query_arrow("SELECT exposure_id FROM exposures").column(0).to_pylist()


def recommend(client: TestClient, n: int) -> list[str]:
    answers = [client.get("/v1/recommendations", params={"session_id": f"s{i}", "k": 3}) for i in range(n)]
    return [answer.json()["exposure_id"] for answer in answers]


def test_exposures_reach_the_store_on_the_timer_without_a_shutdown(store_url: str, models_dir: Path) -> None:
    settings = make_settings(store_url, models_dir, exposure_flush_s=0.2)
    with TestClient(create_app(settings)) as client:
        shown = recommend(client, 5)
        service = client.app.state.service

        def stored() -> set[str]:
            rows = service.on_writer(lambda: service.store.query_arrow("SELECT exposure_id FROM exposures"))
            return set(rows.column(0).to_pylist())

        deadline = time.monotonic() + 10
        while not set(shown) <= stored() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert set(shown) <= stored()  # written by the timer: nobody called flush_exposures


def test_exposures_buffered_at_shutdown_are_written(store_url: str, models_dir: Path) -> None:
    settings = make_settings(store_url, models_dir, exposure_flush_s=3600)  # the timer never fires
    with TestClient(create_app(settings)) as client:
        shown = recommend(client, 7)
        assert len(client.app.state.service.exposures._rows) == 7  # still in memory
    assert sorted(stored_exposures(store_url)) == sorted(shown)


def test_exposures_a_flush_holds_when_the_service_stops_are_written(store_url: str, models_dir: Path) -> None:
    """The timer's flush has taken the buffer but not yet reached the store when shutdown begins."""
    settings = make_settings(store_url, models_dir, exposure_flush_s=0.1)
    with TestClient(create_app(settings)) as client:
        buffer = client.app.state.service.exposures
        drain = buffer.drain

        def slow_drain() -> list[dict[str, Any]]:
            rows = drain()
            if rows:
                time.sleep(0.5)  # a busy machine: the flushing thread is paused with the rows
            return rows

        buffer.drain = slow_drain
        shown = recommend(client, 3)
        time.sleep(0.25)  # the timer has drained them and is paused
    assert sorted(stored_exposures(store_url)) == sorted(shown)
