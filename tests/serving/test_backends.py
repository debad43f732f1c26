"""Multi-worker storage against the real servers: Redis online state and caches, PostgreSQL events.

One test runs its own redis-server and stops it mid-test: every request still gets an answer,
flagged degraded.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from conftest import free_port, skip_or_fail, wait_until_ready
from fusionrec.data.ingest import ingest_frame
from fusionrec.data.store import open_store
from fusionrec.serving.app import create_app
from fusionrec.serving.online import OnlineState, RedisUnavailableError
from serving.conftest import make_settings

T = "2026-03-01T10:00:00Z"

pytestmark = pytest.mark.redis


def ids(answer: dict) -> list[str]:
    return [entry["item_id"] for entry in answer["items"]]


def start_redis(port: int) -> subprocess.Popen:
    """A redis-server of our own on ``port`` (so a test may stop it without touching the shared one)."""
    binary = shutil.which("redis-server")
    if binary is None:
        skip_or_fail("redis-server binary not found")
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    major = int(version.split("v=", 1)[1].split(".", 1)[0]) if "v=" in version else 0
    debug = ["--enable-debug-command", "local"] if major >= 7 else []  # DEBUG SLEEP: on by default before 7
    process = subprocess.Popen(
        [binary, "--port", str(port), "--save", "", "--appendonly", "no", *debug], stdout=subprocess.DEVNULL
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            break
        except OSError:
            time.sleep(0.05)
    return process


def stop_redis(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def private_redis() -> Iterator[tuple[str, subprocess.Popen]]:
    port = free_port()
    process = start_redis(port)
    yield f"redis://127.0.0.1:{port}/0", process
    stop_redis(process)


def test_redis_state_is_shared_between_workers(store_url: str, models_dir: Path, redis_url: str) -> None:
    prefix = f"fr:test-{uuid.uuid4().hex[:8]}:"
    settings = make_settings(store_url, models_dir, redis_url=redis_url, redis_prefix=prefix)
    app = create_app(settings)
    with TestClient(app) as one:
        cold = one.get("/v1/recommendations", params={"session_id": "g", "k": 5}).json()
        item = ids(cold)[0]
        one.post(
            "/v1/events", json={"session_id": "g", "item_id": item, "event_type": "purchase", "timestamp": T}
        )
        state = app.state.service.online
        assert state.get("s:g").bought.keys() == {item}
        # A second worker (its own process state) sees the same visitor through Redis.
        from fusionrec.serving.online import RedisOnlineState
        from fusionrec.serving.redis_client import RedisGuard

        other = RedisOnlineState(RedisGuard(redis_url, prefix=prefix))
        assert other.get("s:g").items == [item]
        warm = one.get("/v1/recommendations", params={"session_id": "g", "k": 5}).json()
        assert item not in ids(warm) and not warm["degraded"] and warm["fallback"] is None
        one.post("/v1/identify", json={"session_id": "g", "user_id": "shared-user"})
        assert other.get("u:shared-user").items == [item] and other.get("s:g").items == []
        one.delete("/v1/users/shared-user")
        assert other.get("u:shared-user").empty
        other.guard.client.close()


def test_redis_stopped_mid_test_still_answers_degraded(
    store_url: str, models_dir: Path, private_redis
) -> None:
    url, process = private_redis
    settings = make_settings(store_url, models_dir, redis_url=url, redis_retry_s=0.5)
    with TestClient(create_app(settings)) as client:
        params = {"session_id": "g2", "k": 5}
        assert not client.get("/v1/recommendations", params=params).json()["degraded"]
        process.terminate()  # Redis goes away mid-test
        process.wait(timeout=10)
        for _ in range(20):
            response = client.get("/v1/recommendations", params=params)
            assert response.status_code == 200
            answer = response.json()
            assert (
                answer["degraded"]
                and "online_state" in answer["degraded_causes"]
                and len(answer["items"]) == 5
            )
        accepted = client.post(
            "/v1/events",
            json={"session_id": "g2", "item_id": ids(answer)[0], "event_type": "view", "timestamp": T},
        )
        assert accepted.status_code == 202 and accepted.json()["stored"] == 1  # the store does not need Redis
        assert client.get("/v1/popular").status_code == 200
        assert client.get("/healthz").json()["redis"] is False


def test_a_busy_redis_within_the_default_timeout_answers_in_full(
    store_url: str, models_dir: Path, private_redis
) -> None:
    """Redis busy for 120 ms (a loaded host): the default timeout waits for it instead of degrading."""
    import redis

    url, _ = private_redis
    settings = make_settings(store_url, models_dir, redis_url=url)
    busy = redis.Redis.from_url(url)
    with TestClient(create_app(settings)) as client:
        params = {"session_id": "busy", "k": 5}
        assert not client.get("/v1/recommendations", params=params).json()["degraded"]
        sleeper = threading.Thread(target=lambda: busy.execute_command("DEBUG", "SLEEP", "0.12"))
        sleeper.start()
        time.sleep(0.02)  # the server is now blocked for about 100 ms more
        answer = client.get("/v1/recommendations", params={"session_id": "busy-2", "k": 5}).json()
        sleeper.join()
        assert not answer["degraded"], answer["degraded_causes"]
    busy.close()


def live_items(online: OnlineState, visitor: str) -> list[str] | None:
    """The visitor's recent items in the live state; None while it is unavailable."""
    try:
        return online.get(visitor).items
    except RedisUnavailableError:
        return None


@pytest.mark.parametrize("trigger", ["timer", "next event"])
def test_events_stored_while_redis_was_down_reach_the_live_state_when_it_returns(
    store_url: str, models_dir: Path, private_redis, trigger: str
) -> None:
    url, process = private_redis
    settings = make_settings(store_url, models_dir, redis_url=url, redis_retry_s=0.2)
    with TestClient(create_app(settings)) as client:
        online = client.app.state.service.online

        def post(session: str, item: str) -> None:
            event = {"session_id": session, "item_id": item, "event_type": "view"}
            assert client.post("/v1/events", json=event).json()["stored"] == 1

        stop_redis(process)
        post("outage", "i1")  # stored, not applied live: Redis is down
        post("outage", "i2")
        restarted = start_redis(int(url.rsplit(":", 1)[1].split("/")[0]))  # back, and empty
        try:
            if trigger == "next event":
                time.sleep(0.3)  # past the circuit breaker's pause
                post("after", "i3")
            deadline = time.monotonic() + 10  # the timer replays every second
            while live_items(online, "s:outage") != ["i1", "i2"] and time.monotonic() < deadline:
                time.sleep(0.1)
            assert live_items(online, "s:outage") == ["i1", "i2"]
            if trigger == "next event":
                assert live_items(online, "s:after") == ["i3"]  # once: the replay brought it
        finally:
            stop_redis(restarted)


@pytest.mark.postgres
def test_postgresql_store(shop, models_dir: Path, postgres_url: str) -> None:
    schema = f"fr_serving_{uuid.uuid4().hex[:8]}"
    url = f"{postgres_url}?schema={schema}"
    events, items = shop
    store = open_store(url)
    try:
        ingest_frame(store, events)
        store.upsert_items(items)
        with TestClient(create_app(make_settings(url, models_dir))) as client:
            user = events.column("user_id").to_pylist()[0]
            answer = client.get("/v1/recommendations", params={"user_id": user, "k": 5}).json()
            assert len(answer["items"]) == 5 and answer["model_version"] == "v0002"
            event = {
                "event_id": "pg-1",
                "user_id": user,
                "item_id": "i1",
                "event_type": "view",
                "timestamp": T,
            }
            assert client.post("/v1/events", json=event).json()["stored"] == 1
            assert client.post("/v1/events", json=event).json()["duplicates"] == 1
            assert client.delete(f"/v1/users/{user}").json()["events_deleted"] > 0
            client.app.state.service.flush_exposures()
        # A second process-like writer works at the same time with PostgreSQL.
        assert store.counts()["erased_users"] == 1
    finally:
        with store._lock, store._transaction():
            store._execute(f"DROP SCHEMA {schema} CASCADE")
        store.close()


@pytest.mark.postgres
def test_two_worker_processes_share_state(shop, models_dir: Path, postgres_url: str, redis_url: str) -> None:
    """`fusionrec serve --workers 2` on PostgreSQL + Redis: an event sent to one process changes the
    answers of both (the visitor's state lives in Redis, the events in PostgreSQL)."""
    import os
    import sys

    import httpx

    schema = f"fr_workers_{uuid.uuid4().hex[:8]}"
    url = f"{postgres_url}?schema={schema}"
    events, items = shop
    with open_store(url) as store:
        ingest_frame(store, events)
        store.upsert_items(items)
    port = free_port()
    env = {**os.environ, "FUSIONREC_SERVING_REDIS_PREFIX": f"fr-test-{uuid.uuid4().hex[:8]}"}
    command = [
        sys.executable, "-m", "fusionrec.cli", "serve", "--store", url, "--models", str(models_dir),
        "--redis", redis_url, "--port", str(port), "--workers", "2", "--dev",
    ]  # fmt: skip
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_ready(server, base, 120, "two workers")
        session = f"s-{uuid.uuid4().hex[:6]}"
        seen = items.column("item_id").to_pylist()[0]
        event = {
            "event_id": f"w-{session}",
            "session_id": session,
            "item_id": seen,
            "event_type": "view",
            "timestamp": T,
        }
        with httpx.Client(base_url=base, timeout=10) as client:  # keep-alive: one process
            assert client.post("/v1/events", json=event).json()["stored"] == 1
        workers: set[int] = set()
        for _ in range(200):  # fresh connections until both processes have answered
            with httpx.Client(base_url=base, timeout=10) as client:
                answer = client.get("/v1/recommendations", params={"session_id": session, "k": 10}).json()
                assert seen not in ids(answer)  # the viewed item is excluded by every worker
                assert any("session" in entry["sources"] for entry in answer["items"]), answer
                workers.add(client.get("/healthz").json()["worker"])
            if len(workers) == 2:
                break
        assert len(workers) == 2, workers
    finally:
        server.terminate()
        server.wait(timeout=30)
        with open_store(url) as store:
            store.execute(f"DROP SCHEMA {schema} CASCADE")
