"""Redis Streams ingestion: kill the consumer mid-stream, restart it: nothing lost, nothing doubled."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis

from fusionrec.data.store import StoreLockedError, open_store
from fusionrec.serving.service import Service
from fusionrec.serving.settings import load_settings
from fusionrec.serving.stream import StreamConsumer, parse_stream_url

pytestmark = pytest.mark.redis

N = 600
CHILD = """
import sys, time
from fusionrec.serving.service import Service
from fusionrec.serving.settings import load_settings
from fusionrec.serving.stream import StreamConsumer
service = Service(load_settings(None, store_url=sys.argv[1], log_exposures=False))
def slow(rows, source):
    report = service.ingest(rows, source)
    time.sleep(0.2)  # slow enough to be killed mid-stream
    return report
StreamConsumer(sys.argv[2], slow, consumer="worker-1", batch=50).run()
"""


def test_parse_stream_url() -> None:
    assert parse_stream_url("redis://h:1/events").stream == "events"
    assert parse_stream_url("redis://h:1/3/events").redis_url == "redis://h:1/3"
    with pytest.raises(ValueError, match="STREAM"):
        parse_stream_url("http://h/events")


def test_kill_and_restart_loses_and_doubles_nothing(redis_url: str, tmp_path: Path) -> None:
    base = redis_url.rsplit("/", 1)[0]
    stream = f"fr-test-{uuid.uuid4().hex[:8]}"
    url = f"{base}/15/{stream}"
    client = redis.Redis.from_url(f"{base}/15", decode_responses=True)
    store_url = f"duckdb:///{tmp_path / 'stream.duckdb'}"
    open_store(store_url).close()
    try:
        for i in range(N):
            event = {
                "event_id": f"s{i}",
                "user_id": f"u{i % 37}",
                "item_id": f"i{i % 91}",
                "event_type": "view",
                "timestamp": "2026-03-01T10:00:00Z",
            }
            client.xadd(stream, {"event": json.dumps(event)})
        client.xadd(stream, {"event": "not json"})  # a bad message is quarantined, never blocks the group
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, store_url, url], env={**os.environ}, stderr=subprocess.PIPE
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            groups = client.xinfo_groups(stream)
            if groups and (groups[0].get("entries-read") or 0) >= 200:
                break
            time.sleep(0.05)
        with pytest.raises(StoreLockedError):  # DuckDB: the running consumer is the one writer
            open_store(store_url)
        child.send_signal(signal.SIGKILL)  # mid-stream: some messages read and not acknowledged
        child.wait(timeout=10)
        assert client.xpending(stream, "fusionrec")["pending"] > 0
        service = Service(load_settings(None, store_url=store_url, log_exposures=False))
        consumer = StreamConsumer(url, service.ingest, consumer="worker-1", batch=100)
        consumer.run(idle_exit=True)
        consumer.close()
        counts = service.store.counts()
        stored_ids = service.store.query_arrow(
            "SELECT count(DISTINCT event_id) AS n FROM events"
        ).to_pylist()[0]["n"]
        service.close()
        assert counts["events"] == N and stored_ids == N  # nothing lost, nothing doubled
        assert counts["quarantine"] >= 1
        assert client.xpending(stream, "fusionrec")["pending"] == 0
    finally:
        client.delete(stream)
        client.close()
