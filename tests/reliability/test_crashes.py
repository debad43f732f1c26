"""Crash tests: ``kill -9`` of a real ``fusionrec ingest`` at several moments, and of a real served
service during a burst of ``POST /v1/events``; then a re-run or a restart, and a count."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import free_port, synthetic_store
from data.conftest import drop_schema, fresh_postgres_url
from data.test_ingest import good_events
from fusionrec.data.store import open_store
from reliability.figures import count

BATCH_ROWS, BATCHES = 500, 60
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}
# The real CLI, with batches of 500 rows instead of 200,000 so that a small file makes many commits.
INGEST = (
    "import sys; from fusionrec.data import ingest; "
    f"ingest.ingest_path.__kwdefaults__['batch_rows'] = {BATCH_ROWS}; "
    "from fusionrec.cli import app; sys.argv[0] = 'fusionrec'; app()"
)


def wait_until(predicate, timeout: float, what: str, step: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def kill(child: subprocess.Popen) -> None:
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)


@pytest.fixture
def postgres_store(postgres_url: str) -> Iterator[str]:
    """PostgreSQL, so the test can count committed rows while the ingest runs."""
    url, schema = fresh_postgres_url(postgres_url)
    try:
        yield url
    finally:
        drop_schema(postgres_url, schema)


@pytest.mark.postgres
@pytest.mark.parametrize("after_batches", [1, 3, 6])
def test_kill_9_during_ingest_then_a_rerun_stores_every_row_once(
    postgres_store: str, tmp_path: Path, after_batches: int
) -> None:
    rows = BATCH_ROWS * BATCHES
    path = tmp_path / "events.parquet"
    pq.write_table(pa.Table.from_pandas(good_events(rows, seed=after_batches), preserve_index=False), path)
    with open_store(postgres_store) as store:
        store.counts()  # creates the tables, so the count below never races their creation
    command = [sys.executable, "-c", INGEST, "ingest", str(path), "--store", postgres_store]
    child = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with open_store(postgres_store) as store:
            wait_until(
                lambda: store.counts()["events"] >= after_batches * BATCH_ROWS or child.poll() is not None,
                timeout=90,
                what=f"{after_batches} committed batches",
            )
    finally:
        kill(child)
    assert child.returncode == -signal.SIGKILL, "the ingest finished before it could be killed"

    with open_store(postgres_store) as store:
        stored = store.counts()["events"]
        half_written = stored % BATCH_ROWS  # a batch is committed whole or not at all
        assert after_batches * BATCH_ROWS <= stored < rows and half_written == 0, stored
    rerun = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    with open_store(postgres_store) as store:
        ids = store.events_arrow(columns=["event_id"]).column(0).to_pylist()
        quarantined = store.counts()["quarantine"]
    count(
        "crash_ingest",
        kills=1,
        rows=rows,
        rows_stored_before_rerun=stored,
        rows_lost=rows - len(set(ids)),
        rows_duplicated=len(ids) - len(set(ids)),
        half_written_rows=half_written,
        quarantined=quarantined,
    )
    assert len(ids) == len(set(ids)) == rows and quarantined == 0


EVENTS, PER_POST = 300, 10


def serve(store_url: str, models: Path, port: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "fusionrec.cli", "serve", "--store", store_url, "--models", str(models)]
    command += ["--port", str(port), "--dev"]
    child = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def up() -> bool:
        if child.poll() is not None:
            raise AssertionError(f"the service exited with {child.returncode}")
        try:
            return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(up, timeout=120, what="the service to answer /healthz", step=0.2)
    return child


def test_kill_9_during_an_event_burst_loses_no_acknowledged_event(tmp_path: Path) -> None:
    store_url = synthetic_store(tmp_path / "shop.duckdb", n_events=2_000, seed=11)
    models, port = tmp_path / "models", free_port()
    child = serve(store_url, models, port)
    acknowledged: list[str] = []
    stop = threading.Event()

    def burst() -> None:  # a bounded burst: 30 posts of 10 events, stops at the first failure
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            for post in range(EVENTS // PER_POST):
                batch = [
                    {
                        "event_id": f"burst-{post}-{n}",
                        "user_id": f"burst-user-{n}",
                        "item_id": f"burst-item-{post}",
                        "event_type": "view",
                    }
                    for n in range(PER_POST)
                ]
                try:
                    answer = http.post("/v1/events", json={"events": batch})
                except httpx.HTTPError:
                    return
                if answer.status_code == 202 and answer.json()["stored"] == PER_POST:
                    acknowledged.extend(event["event_id"] for event in batch)
                if stop.is_set():
                    return

    sender = threading.Thread(target=burst, daemon=True)
    sender.start()
    try:  # kill in the middle of the burst: after a third of it was acknowledged
        wait_until(lambda: len(acknowledged) >= EVENTS // 3 or not sender.is_alive(), 120, "acknowledgements")
    finally:
        kill(child)
        stop.set()
        sender.join(timeout=30)
    assert not sender.is_alive() and EVENTS // 3 <= len(acknowledged) < EVENTS, len(acknowledged)

    restarted = serve(store_url, models, port)  # the store opens again after the crash
    restarted.send_signal(signal.SIGTERM)
    restarted.wait(timeout=60)
    with open_store(store_url) as store:
        stored = set(store.events_arrow(columns=["event_id"]).column(0).to_pylist())
    lost = [event_id for event_id in acknowledged if event_id not in stored]
    count(
        "crash_serve",
        kills=1,
        events_sent=EVENTS,
        events_acknowledged=len(acknowledged),
        events_lost=len(lost),
    )
    assert not lost, lost[:10]
