"""Request parameters of GET /v1/recommendations: context parameters, and unknown ones refused."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from fusionrec.serving.recommend import RecQuery, recommend, recommend_inline
from fusionrec.serving.routes.schemas import RecommendationsQuery
from serving.conftest import precomputed_client


def test_device_and_channel_are_request_parameters(client: TestClient, known_user: str) -> None:
    def ask(device: str, channel: str) -> dict:
        params = {"user_id": known_user, "k": 5, "placement": "home", "device": device, "channel": channel}
        response = client.get("/v1/recommendations", params=params)
        assert response.status_code == 200, response.text
        return response.json()

    assert len(ask("mobile", "app")["items"]) == 5
    # Each context has its own answer: not the cached answer of another device or channel.
    assert ask("desktop", "app")["cached"] is False
    assert ask("desktop", "web")["cached"] is False
    assert ask("desktop", "web")["cached"] is True


def test_an_unknown_query_parameter_is_a_422_listing_the_allowed_ones(
    client: TestClient, known_user: str
) -> None:
    response = client.get("/v1/recommendations", params={"user_id": known_user, "devise": "mobile"})
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["query", "devise"]
    allowed = error["msg"].split("allowed: ", 1)[1].split(", ")
    assert {"user_id", "session_id", "k", "placement", "device", "channel", "context"} <= set(allowed)
    assert "devise" not in allowed


def test_every_unknown_parameter_is_named(client: TestClient, known_user: str) -> None:
    response = client.get("/v1/recommendations", params={"user_id": known_user, "limit": 5, "page": 2})
    assert response.status_code == 422
    assert [e["loc"][1] for e in response.json()["detail"]] == ["limit", "page"]


def test_bad_context_values_are_refused(client: TestClient, known_user: str) -> None:
    for name in ("device", "channel"):
        too_long = client.get("/v1/recommendations", params={"user_id": known_user, name: "x" * 65})
        assert too_long.status_code == 422, name
        empty = client.get("/v1/recommendations", params={"user_id": known_user, name: ""})
        assert empty.status_code == 422, name


def test_a_guest_on_a_new_items_page_gets_items_like_it(client: TestClient) -> None:
    service = client.app.state.service
    loaded = service.registry.active
    categories = service.catalogue.view(loaded.item_ids).category
    category = next(c for c in categories.tolist() if isinstance(c, str))
    put = client.put("/v1/items/brand-new-item", json={"title": "New", "category": category, "price": 9.5})
    assert put.status_code == 200, put.text
    assert "brand-new-item" not in loaded.item_index  # unknown to the model: no retrain happened
    answer = client.get(
        "/v1/recommendations", params={"session_id": "on-new-page", "context": "brand-new-item", "k": 5}
    ).json()
    # Its closest items in content (its category, here) lead, and seed the model's live answer.
    assert answer["fallback"] is None and len(answer["items"]) == 5
    index = loaded.item_index
    assert all(categories[index[entry["item_id"]]] == category for entry in answer["items"])
    assert all("content" in entry["sources"] for entry in answer["items"])


def test_every_parameter_is_documented_and_repeated_excludes_all_apply(
    client: TestClient, known_user: str
) -> None:
    spec = client.get("/openapi.json").json()
    documented = {p["name"] for p in spec["paths"]["/v1/recommendations"]["get"]["parameters"]}
    assert set(RecommendationsQuery.model_fields) <= documented
    first = client.get("/v1/recommendations", params={"user_id": known_user, "k": 4}).json()["items"]
    ids = [entry["item_id"] for entry in first]
    # Repeated and comma-separated: every one is left out.
    params = [("user_id", known_user), ("k", "4"), ("exclude", ids[0]), ("exclude", f"{ids[1]},{ids[2]}")]
    again = client.get("/v1/recommendations", params=params)
    assert again.status_code == 200, again.text
    assert not {entry["item_id"] for entry in again.json()["items"]} & set(ids[:3])
    bad = client.get("/v1/recommendations", params={"user_id": known_user, "k": "0", "min_price": "-1"})
    assert bad.status_code == 422
    assert [e["loc"] for e in bad.json()["detail"]] == [["query", "k"], ["query", "min_price"]]


def test_a_prescored_answer_on_the_event_loop_is_the_threads_answer(
    store_url: str, models_dir: Path, known_user: str
) -> None:
    for client in precomputed_client(store_url, models_dir):
        service = client.app.state.service
        query = RecQuery(user_id=known_user, k=7)
        inline = recommend_inline(service, query)
        assert inline is not None
        service.cache.clear()  # the thread's answer is scored again, not read from the cache
        threaded = recommend(service, query)
        assert [e["item_id"] for e in inline["items"]] == [e["item_id"] for e in threaded["items"]]
        # An event since training: the model scores (a worker thread), nothing inline.
        item = str(service.registry.active.item_ids[0])
        service.ingest([{"user_id": known_user, "item_id": item, "event_type": "view"}])
        assert recommend_inline(service, query) is None
        assert recommend_inline(service, RecQuery(user_id=known_user, explain=True)) is None
