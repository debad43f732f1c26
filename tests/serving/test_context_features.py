"""The request's device reaches the fused ranker through the service, when the data says it matters.

The shop's customers take one half of the catalogue on the app and the other half on the web; the
version is the default fused pipeline trained from the store by `train_version`. The same known
user, asked for on each device, gets that device's items; asked with no device, the pre-scored list.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from fusionrec.data.dataset import Dataset
from fusionrec.data.ingest import ingest_frame
from fusionrec.data.store import open_store
from fusionrec.fusion.artifacts import ModelRepository
from fusionrec.training import TrainingSpec, train_version
from serving.conftest import precomputed_client

HALF = 40  # items 0-39 are taken on the app, 40-79 on the web


def _events(seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    start = pd.Timestamp("2026-09-01", tz="UTC")
    for n in range(6000):
        user = int(rng.integers(400))
        device = "app" if rng.random() < 0.5 else "web"
        item = (0 if device == "app" else HALF) + min(int(rng.zipf(1.5)) - 1, HALF - 1)
        when = start + pd.Timedelta(minutes=12 * n)
        rows.append((f"u{user}", f"i{item}", "view", when, device, f"s{user}-{n // 40}"))
    return pd.DataFrame(
        rows, columns=["user_id", "item_id", "event_type", "timestamp", "device", "session_id"]
    )


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    directory = tmp_path_factory.mktemp("context-shop")
    url = f"duckdb:///{directory / 'shop.duckdb'}"
    with open_store(url) as store:
        ingest_frame(store, _events())
        dataset = Dataset.from_store(store)
    models = directory / "models"
    train_version(
        dataset, ModelRepository(models), TrainingSpec("fusion"), trained_by="tests", guardrail=False
    )
    return url, models


@pytest.fixture
def client(planted: tuple[str, Path]) -> Iterator[TestClient]:
    yield from precomputed_client(*planted)


def _app_share(client: TestClient, **params: str) -> float:
    response = client.get("/v1/recommendations", params={"user_id": "u7", "k": 10, **params})
    assert response.status_code == 200, response.text
    items = [int(entry["item_id"][1:]) for entry in response.json()["items"]]
    assert len(items) == 10
    return float(np.mean([item < HALF for item in items]))


def test_the_same_user_gets_the_items_of_the_device_asked_for(client: TestClient) -> None:
    model = client.app.state.service.registry.active.model.answering
    assert model.context_columns == ("device",)
    on_app, on_web = _app_share(client, device="app"), _app_share(client, device="web")
    assert on_app >= 0.8 and on_web <= 0.2, (on_app, on_web)
    # A device the training data never had is no context: the pre-scored list, as with none.
    assert _app_share(client, device="tv") == _app_share(client)
