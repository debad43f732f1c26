"""Stores for the analytics tests: a generated shop (with exposures and costs) and the real samples."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from analytics.helpers import SAMPLES, drop_schema, fill_generated, fill_sample, postgres_store
from fusionrec.data.store import EventStore, open_store


@pytest.fixture(scope="session")
def generated_duckdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EventStore]:
    path = tmp_path_factory.mktemp("analytics") / "shop.duckdb"
    with open_store(f"duckdb:///{path}") as store:
        fill_generated(store)
        yield store


@pytest.fixture(scope="session")
def generated_postgres(postgres_url: str) -> Iterator[EventStore]:
    store, schema = postgres_store(postgres_url)
    try:
        fill_generated(store, n_events=15_000)
        yield store
    finally:
        store.close()
        drop_schema(postgres_url, schema)


@pytest.fixture(scope="session")
def sample_stores(shared_data: Path) -> Iterator[dict[str, EventStore]]:
    stores = {}
    for name in SAMPLES:
        if not (shared_data / "event-samples" / SAMPLES[name]).is_file():
            continue
        store = open_store("duckdb:///:memory:")
        fill_sample(store, name, shared_data)
        stores[name] = store
    yield stores
    for store in stores.values():
        store.close()
