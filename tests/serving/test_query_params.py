"""Request parameters of GET /v1/recommendations: context parameters, and unknown ones refused."""

from __future__ import annotations

from fastapi.testclient import TestClient


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
