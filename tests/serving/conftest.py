"""Fixtures of the serving tests: a small synthetic shop, trained versions, a store, a client."""

from __future__ import annotations

import shutil
import time
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
from fusionrec.serving.app import create_app
from fusionrec.serving.settings import ServingSettings, load_settings
from fusionrec.training import TrainingSpec, train_version


@pytest.fixture(scope="session")
def shop() -> tuple[pa.Table, pa.Table]:
    events, items, _ = generate_frames(n_events=10_000, seed=3)
    return events, items


@pytest.fixture(scope="session")
def trained_models(shop: tuple[pa.Table, pa.Table], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """v0001 = most_popular, v0002 = item_knn, trained through `train_version`: v0002 was scored
    beside v0001 on the same last 7 days, and is the better one there."""
    events, items = shop
    dataset = Dataset.from_frame(events, items)
    directory = tmp_path_factory.mktemp("models")
    repo = ModelRepository(directory)
    for name in ("most_popular", "item_knn"):
        train_version(dataset, repo, TrainingSpec(name), trained_by="tests")
    return directory


@pytest.fixture
def models_dir(trained_models: Path, tmp_path: Path) -> Path:
    """A test's own copy of `trained_models`: erasing a user rewrites every saved version."""
    return Path(shutil.copytree(trained_models, tmp_path / "trained-models"))


@pytest.fixture
def store_url(shop: tuple[pa.Table, pa.Table], tmp_path: Path) -> str:
    events, items = shop
    url = f"duckdb:///{tmp_path / 'shop.duckdb'}"
    with open_store(url) as store:
        ingest_frame(store, events)
        store.upsert_items(items)
    return url


def make_settings(store_url: str, models_dir: Path, **overrides: Any) -> ServingSettings:
    """Settings for a test service. It runs as `fusionrec serve --dev` does (every scope without a
    key) unless the test configures API keys or says otherwise; precomputing has its own test."""
    dev = not overrides.get("api_keys")
    overrides = {"cache_ttl_s": 30.0, "precompute_users": 0, "dev": dev, **overrides}
    return load_settings(None, store_url=store_url, models_dir=models_dir, **overrides)


@pytest.fixture
def client(store_url: str, models_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(store_url, models_dir))) as test_client:
        yield test_client


def precomputed_client(store_url: str, models_dir: Path) -> Iterator[TestClient]:
    """A test service whose known users' lists, and its one-item guests' lists where the model
    takes live histories, are all pre-scored before the first request."""
    settings = make_settings(store_url, models_dir, precompute_users=100_000)
    with TestClient(create_app(settings)) as test_client:
        deadline = time.time() + 120
        while not test_client.get("/readyz").json()["precomputed"]:
            assert time.time() < deadline, "the pre-scored lists were not in in time"
            time.sleep(0.1)
        yield test_client


@pytest.fixture(scope="session")
def known_user(shop: tuple[pa.Table, pa.Table]) -> str:
    users = shop[0].column("user_id").drop_null().to_numpy(zero_copy_only=False)
    values, counts = np.unique(users, return_counts=True)
    return str(values[np.argmax(counts)])
