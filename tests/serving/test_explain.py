"""Explanations over HTTP: ``explain=true`` on recommendations and ``GET /v1/recommendations/explain``.

The served version is the default fused pipeline (EASE, RP3beta and item-kNN ranked by LightGBM).
A reason must be true to the model: the item it names is in the visitor's history, and removing
it from the history lowers the explained item's score from the source the reason comes from.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from fusionrec.data.dataset import Dataset
from fusionrec.fusion.artifacts import ModelRepository
from fusionrec.serving.app import create_app
from fusionrec.training import TrainingSpec, train_version
from serving.conftest import make_settings, precomputed_client

READ = "r" * 24


@pytest.fixture(scope="module")
def fused_models(shop: tuple[pa.Table, pa.Table], tmp_path_factory: pytest.TempPathFactory) -> Path:
    events, items = shop
    directory = tmp_path_factory.mktemp("explained-models")
    train_version(
        Dataset.from_frame(events, items),
        ModelRepository(directory),
        TrainingSpec("fusion"),
        trained_by="tests",
        guardrail=False,
    )
    return directory


@pytest.fixture
def client(store_url: str, fused_models: Path) -> Iterator[TestClient]:
    yield from precomputed_client(store_url, fused_models)


def get(client: TestClient, path: str = "/v1/recommendations", **params: object) -> dict:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def titles(client: TestClient) -> dict[str, str]:
    frame = client.app.state.service.catalogue.frame
    return {str(k): str(v) for k, v in frame["title"].items()}


def check_reasons_drive_scores(client: TestClient, user: int, live: list[int], answer: dict) -> int:
    """Every history reason names an item of the visitor's history whose removal lowers the
    explained item's score from the named source; co-visitation reasons name a recent item linked
    to the item. Returns how many items had a history reason."""
    loaded = client.app.state.service.registry.active
    model = loaded.model.answering
    history = np.concatenate([loaded.user_items(user), np.asarray(live, dtype=np.int64)]).astype(np.int32)
    names = titles(client)
    checked = 0
    for entry in answer["items"]:
        why = entry["explanation"]
        assert isinstance(entry["reason"], str) and entry["reason"]
        assert why["candidate"] == bool(why["source_ranks"])  # proposed by the model's sources
        assert set(why["source_ranks"]) == set(entry["sources"]) - {"session"}
        named = why["named_item"]
        if why["driver"] in ("history", "covisit"):
            index = loaded.item_index[named]
            assert index in history.tolist(), (entry, "names an item outside the visitor's history")
            assert names[named] in entry["reason"]
        if why["driver"] == "history" and why["driven_by"] == "session":  # live item-to-item
            neighbours, _ = loaded.extras["neighbours"].neighbours(index)
            assert index in live and loaded.item_index[entry["item_id"]] in neighbours.tolist()
        elif why["driver"] == "history":
            source = model.source_models[why["driven_by"]]
            item = loaded.item_index[entry["item_id"]]
            without = history[history != index]
            before = source.score_histories([history])[0, item]
            after = source.score_histories([without])[0, item]
            assert after < before, (entry, before, after)
            checked += 1
        if why["driver"] == "covisit":
            covisit = model.feature_context.covisit
            assert covisit[loaded.item_index[named], loaded.item_index[entry["item_id"]]] > 0
    return checked


def test_an_explained_answer_names_history_items_that_drive_each_score(
    client: TestClient, known_user: str
) -> None:
    answer = get(client, user_id=known_user, k=10, explain="true")
    loaded = client.app.state.service.registry.active
    assert check_reasons_drive_scores(client, loaded.user_index[known_user], [], answer) >= 1
    reasons = [entry["reason"] for entry in answer["items"]]
    assert len(set(reasons)) > 1, reasons  # item-specific, not one sentence for the whole list
    for entry in answer["items"]:
        parts = entry["explanation"]["features"]
        assert parts and all(isinstance(p["contribution"], float) for p in parts)
        sizes = [abs(p["contribution"]) for p in parts]
        assert sizes == sorted(sizes, reverse=True)


def test_without_explain_the_answer_is_the_same_and_carries_no_reasons(
    client: TestClient, known_user: str
) -> None:
    plain = get(client, user_id=known_user, k=10)
    explained = get(client, user_id=known_user, k=10, explain="true")
    again = get(client, user_id=known_user, k=10)  # not the explained answer from the cache
    for entry in plain["items"] + again["items"]:
        assert "reason" not in entry and "explanation" not in entry
    assert [(e["item_id"], e["score"], e["sources"]) for e in plain["items"]] == [
        (e["item_id"], e["score"], e["sources"]) for e in explained["items"]
    ]


def test_live_visitors_and_guests_are_explained_from_their_live_history(client: TestClient) -> None:
    loaded = client.app.state.service.registry.active
    viewed = [str(i) for i in loaded.item_ids[np.argsort(-loaded.model.popularity_)[:3]]]
    for item_id in viewed:
        response = client.post(
            "/v1/events", json={"session_id": "guest-1", "item_id": item_id, "event_type": "view"}
        )
        assert response.status_code == 202, response.text
    answer = get(client, session_id="guest-1", k=10, explain="true")
    assert answer["fallback"] is None
    live = [loaded.item_index[i] for i in viewed]
    named = {e["explanation"]["named_item"] for e in answer["items"]} - {None}
    assert named and named <= set(viewed)  # a guest has no other history
    check_reasons_drive_scores(client, -1, live, answer)


def test_one_item_is_explained_whether_recommended_or_not(client: TestClient, known_user: str) -> None:
    answer = get(client, user_id=known_user, k=10, explain="true")
    first = answer["items"][0]
    one = get(client, "/v1/recommendations/explain", user_id=known_user, item_id=first["item_id"])
    assert one["reason"] == first["reason"] and one["explanation"]["rank"] == first["explanation"]["rank"]
    assert set(one["sources"]) == set(first["explanation"]["source_ranks"])
    # An item of the user's own history is never proposed (seen items are excluded) yet answered.
    loaded = client.app.state.service.registry.active
    own = str(loaded.item_ids[loaded.user_items(loaded.user_index[known_user])[0]])
    other = get(client, "/v1/recommendations/explain", user_id=known_user, item_id=own)
    assert other["explanation"]["candidate"] is False and other["sources"] == []
    assert other["reason"].startswith("Not among your recommendations")


@pytest.mark.parametrize(
    ("params", "status", "says"),
    [
        ({"user_id": "u1", "item_id": "no-such-item"}, 404, "item_id 'no-such-item'"),
        ({"user_id": "nobody-at-all", "item_id": None}, 404, "user_id 'nobody-at-all'"),
        ({"item_id": None}, 422, "give user_id or session_id"),
        ({"user_id": "u1", "item_id": None, "explain": "true"}, 422, "unknown query parameter 'explain'"),
    ],
)
def test_unknown_ids_get_a_clear_error(
    client: TestClient, known_user: str, params: dict, status: int, says: str
) -> None:
    loaded = client.app.state.service.registry.active
    params = {k: (str(loaded.item_ids[0]) if v is None else v) for k, v in params.items()}
    if params.get("user_id") == "u1":
        params["user_id"] = known_user
    response = client.get("/v1/recommendations/explain", params=params)
    assert response.status_code == status, response.text
    assert says in response.text


def test_explain_needs_the_read_scope(store_url: str, fused_models: Path, known_user: str) -> None:
    settings = make_settings(store_url, fused_models, api_keys={READ: ["read"]})
    with TestClient(create_app(settings)) as client:
        item = str(client.app.state.service.registry.active.item_ids[0])
        params = {"user_id": known_user, "item_id": item}
        assert client.get("/v1/recommendations/explain", params=params).status_code == 401
        ok = client.get("/v1/recommendations/explain", params=params, headers={"X-API-Key": READ})
        assert ok.status_code == 200, ok.text


def test_the_openapi_document_describes_the_explanation(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "/v1/recommendations/explain" in spec["paths"]
    parameters = {p["name"] for p in spec["paths"]["/v1/recommendations"]["get"]["parameters"]}
    assert "explain" in parameters
    item = spec["components"]["schemas"]["RecommendedItem"]["properties"]
    assert "reason" in item and "explanation" in item
    assert "named_item" in spec["components"]["schemas"]["ItemExplanation"]["properties"]


def test_a_single_item_knn_model_names_the_history_item_behind_each_score(
    store_url: str, models_dir: Path, known_user: str
) -> None:
    with TestClient(create_app(make_settings(store_url, models_dir, precompute_users=100_000))) as client:
        service = client.app.state.service
        deadline = time.time() + 120
        while "precomputed" not in service.registry.active.extras:
            assert time.time() < deadline
            time.sleep(0.1)
        loaded = service.registry.active
        model = loaded.model.answering
        assert model.name == "item_knn"
        answer = get(client, user_id=known_user, k=10, explain="true")
        history = loaded.user_items(loaded.user_index[known_user]).astype(np.int32)
        reasons = [entry for entry in answer["items"] if entry["explanation"]["driver"] == "history"]
        assert reasons
        for entry in reasons:
            named = loaded.item_index[entry["explanation"]["named_item"]]
            item = loaded.item_index[entry["item_id"]]
            assert named in history.tolist()
            before = model.score_histories([history])[0, item]
            after = model.score_histories([history[history != named]])[0, item]
            assert after < before
        assert len({entry["reason"] for entry in answer["items"]}) > 1


def test_a_known_user_with_live_events_is_explained_with_them(client: TestClient, known_user: str) -> None:
    loaded = client.app.state.service.registry.active
    user = loaded.user_index[known_user]
    own = set(loaded.user_items(user).tolist())
    fresh = [i for i in np.argsort(-loaded.model.popularity_).tolist() if i not in own][:2]
    for item in fresh:
        event = {"user_id": known_user, "item_id": str(loaded.item_ids[item]), "event_type": "add_to_cart"}
        assert client.post("/v1/events", json=event).status_code == 202
    answer = get(client, user_id=known_user, k=10, explain="true")
    assert check_reasons_drive_scores(client, user, fresh, answer) >= 1
    named = {e["explanation"]["named_item"]: e for e in answer["items"]}
    for item in fresh:  # the online state keeps no event types: no sentence claims a view of a cart
        entry = named.get(str(loaded.item_ids[item]))
        if entry is not None and entry["explanation"]["driver"] == "history":
            assert entry["explanation"]["named_event"] is None
            assert entry["reason"].startswith("Because you looked at ")
