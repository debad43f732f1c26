"""The cold-start path: a registered user with attributes but no history gets their segment's
popular items; users without attributes keep the trending fallback."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from attribute_data import OLD_ITEMS, YOUNG_ITEMS, planted_shop
from fusionrec.data.dataset import Dataset
from fusionrec.data.ingest import ingest_frame
from fusionrec.data.schema import USER_SCHEMA
from fusionrec.data.store import open_store
from fusionrec.fusion.artifacts import ModelRepository
from fusionrec.serving.app import create_app
from fusionrec.training import TrainingSpec, train_version
from serving.conftest import make_settings


@pytest.fixture
def segment_client(tmp_path: Path) -> TestClient:
    events, users = planted_shop()
    url = f"duckdb:///{tmp_path / 'segments.duckdb'}"
    with open_store(url) as store:
        ingest_frame(store, events)
        store.upsert_users(pa.Table.from_pandas(users, schema=USER_SCHEMA, preserve_index=False))
    repo = ModelRepository(tmp_path / "models")
    train_version(
        Dataset.from_frame(events, users=users), repo, TrainingSpec("most_popular"), trained_by="tests"
    )
    return TestClient(create_app(make_settings(url, tmp_path / "models")))


def ids(answer: dict) -> list[str]:
    return [entry["item_id"] for entry in answer["items"]]


def test_known_attributes_without_history_get_their_segments_popular_items(
    segment_client: TestClient,
) -> None:
    with segment_client as client:
        young = client.get("/v1/recommendations", params={"user_id": "new_young", "k": 10}).json()
        old = client.get("/v1/recommendations", params={"user_id": "new_old", "k": 10}).json()
        assert young["fallback"] == "popular_in_segment"
        assert set(ids(young)) == set(YOUNG_ITEMS)
        assert all(entry["sources"] == ["popular_in_segment"] for entry in young["items"])
        assert old["fallback"] == "popular_in_segment" and set(ids(old)) == set(OLD_ITEMS)
        # A registered user without attributes, and a guest: the trending fallback, as before.
        stranger = client.get("/v1/recommendations", params={"user_id": "nobody", "k": 10}).json()
        guest = client.get("/v1/recommendations", params={"session_id": "s-1", "k": 10}).json()
        assert stranger["fallback"] == guest["fallback"] == "trending"
        assert ids(stranger) == ids(guest)


def test_an_erased_user_loses_the_segment_answer(segment_client: TestClient) -> None:
    with segment_client as client:
        assert client.get("/v1/recommendations", params={"user_id": "new_young"}).json()["fallback"] == (
            "popular_in_segment"
        )
        assert client.delete("/v1/users/new_young").status_code == 200
        after = client.get("/v1/recommendations", params={"user_id": "new_young"}).json()
        assert after["fallback"] == "trending"
