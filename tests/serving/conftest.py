"""Fixtures of the serving tests: a small synthetic shop, trained versions, a store, a client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from fusionrec.data.dataset import Dataset
from fusionrec.data.ingest import ingest_frame
from fusionrec.data.store import open_store
from fusionrec.data.synthetic import generate_frames
from fusionrec.fusion.artifacts import ModelRepository
from fusionrec.models.registry import create_model
from fusionrec.serving.app import create_app
from fusionrec.serving.settings import ServingSettings, load_settings


@pytest.fixture(scope="session")
def shop() -> tuple[pa.Table, pa.Table]:
    events, items, _ = generate_frames(n_events=10_000, seed=3)
    return events, items


@pytest.fixture(scope="session")
def models_dir(shop: tuple[pa.Table, pa.Table], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """v0001 = most_popular (NDCG@20 0.05), v0002 = item_knn (0.10): the newest is the better one."""
    events, items = shop
    dataset = Dataset.from_frame(events, items)
    directory = tmp_path_factory.mktemp("models")
    repo = ModelRepository(directory)
    repo.add_version(create_model("most_popular").fit(dataset), {"metrics": {"NDCG@20": 0.05}})
    repo.add_version(create_model("item_knn").fit(dataset), {"metrics": {"NDCG@20": 0.10}})
    return directory


@pytest.fixture
def store_url(shop: tuple[pa.Table, pa.Table], tmp_path: Path) -> str:
    events, items = shop
    url = f"duckdb:///{tmp_path / 'shop.duckdb'}"
    with open_store(url) as store:
        ingest_frame(store, events)
        store.upsert_items(items)
    return url


def make_settings(store_url: str, models_dir: Path, **overrides: Any) -> ServingSettings:
    overrides = {"cache_ttl_s": 30.0, "precompute_users": 0, **overrides}  # precompute: its own test
    return load_settings(None, store_url=store_url, models_dir=models_dir, **overrides)


@pytest.fixture
def client(store_url: str, models_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(store_url, models_dir))) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def known_user(shop: tuple[pa.Table, pa.Table]) -> str:
    users = shop[0].column("user_id").drop_null().to_numpy(zero_copy_only=False)
    values, counts = np.unique(users, return_counts=True)
    return str(values[np.argmax(counts)])
