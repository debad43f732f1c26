"""Shared fixtures: the seed convention, real-data paths and real service connections."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from fusionrec.data.paths import data_root

SEED = 1234
# The tests build hundreds of services in one process: freezing its heap after each version's
# lists would keep every earlier test's garbage cycles (`serving.heap`); the test of the freeze
# turns it on for itself.
os.environ.setdefault("FUSIONREC_SERVING_FREEZE_HEAP", "false")
POSTGRES_URL = os.environ.get("FUSIONREC_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("FUSIONREC_TEST_REDIS", "redis://127.0.0.1:6379/15")


def services_required() -> bool:
    """In CI (FUSIONREC_REQUIRE_SERVICES=1) a missing server or dataset is a failure, not a skip."""
    return os.environ.get("FUSIONREC_REQUIRE_SERVICES") == "1"


def skip_or_fail(reason: str) -> None:
    if services_required():
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


def synthetic_store(path: Path, n_events: int, seed: int) -> str:
    """A DuckDB store at ``path`` holding a generated shop (catalogue, then events); its URL."""
    from fusionrec.data.ingest import ingest_frame, ingest_items
    from fusionrec.data.store import open_store
    from fusionrec.data.synthetic import generate_frames

    events, items, _ = generate_frames(n_events=n_events, seed=seed)
    url = f"duckdb:///{path}"
    with open_store(url) as store:
        ingest_items(store, items)
        ingest_frame(store, events)
    return url


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_ready(server: subprocess.Popen, base: str, seconds: float, what: str) -> None:
    """Poll ``base``/readyz until it answers 200; fail with the server's errors if it exits first."""
    import httpx

    deadline = time.monotonic() + seconds
    while True:
        assert server.poll() is None, server.stderr.read() if server.stderr else f"{what} exited"
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"{what} was not ready in {seconds:.0f} s"
        time.sleep(0.5)


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    """One seed convention for every test."""
    random.seed(SEED)
    np.random.seed(SEED)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = data_root()
    if not root.is_dir():
        skip_or_fail(f"real datasets not found at {root} (set FUSIONREC_DATA)")
    return root


@pytest.fixture(scope="session")
def postgres_url() -> str:
    if not _port_open("127.0.0.1", 5432):
        skip_or_fail("PostgreSQL is not running at 127.0.0.1:5432")
    return POSTGRES_URL


@pytest.fixture(scope="session")
def redis_url() -> str:
    if not _port_open("127.0.0.1", 6379):
        skip_or_fail("Redis is not running at 127.0.0.1:6379")
    return REDIS_URL
