"""Similar and bought-together items: the key, the path and the query checked by the route itself.

These hot routes take the request alone (FastAPI's resolution of parameters and dependencies
cost more than their answer), so what FastAPI did for them is asserted here: a missing key is a
401 before anything else, bad parameters are one 422 in FastAPI's shape (path errors first),
unknown parameters are ignored as before, and the OpenAPI document still lists the parameters
and the key.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fusionrec.serving.app import create_app
from serving.conftest import make_settings

READ, ADMIN = "r" * 24, "a" * 24
ROUTES = ("similar", "bought-together")


@pytest.fixture
def keyed(store_url: str, models_dir: Path) -> TestClient:
    settings = make_settings(store_url, models_dir, api_keys={READ: ["read"], ADMIN: ["admin"]})
    with TestClient(create_app(settings)) as client:
        yield client


def _item(client: TestClient) -> str:
    return str(client.app.state.service.registry.active.item_ids[0])


@pytest.mark.parametrize("route", ROUTES)
def test_the_key_is_checked_before_the_parameters(keyed: TestClient, route: str) -> None:
    item = _item(keyed)
    assert keyed.get(f"/v1/items/{item}/{route}").status_code == 401
    assert keyed.get(f"/v1/items/{'x' * 300}/{route}", params={"k": 0}).status_code == 401
    ok = keyed.get(f"/v1/items/{item}/{route}", params={"k": 3}, headers={"X-API-Key": READ})
    assert ok.status_code == 200, ok.text
    assert ok.json()["item_id"] == item and len(ok.json()["items"]) <= 3


@pytest.mark.parametrize("route", ROUTES)
def test_bad_parameters_are_one_422_in_fastapis_shape(client: TestClient, route: str) -> None:
    response = client.get(f"/v1/items/{'x' * 300}/{route}", params={"k": 0})
    assert response.status_code == 422
    errors = response.json()["detail"]
    assert [e["loc"] for e in errors] == [["path", "item_id"], ["query", "k"]]
    assert errors[0]["type"] == "string_too_long" and errors[1]["type"] == "greater_than_equal"
    too_many = client.get(f"/v1/items/{_item(client)}/{route}", params={"k": 201})
    assert too_many.status_code == 422 and too_many.json()["detail"][0]["loc"] == ["query", "k"]
    # An unknown field is refused first, alone (it was a dependency of its own).
    bad_field = client.get(f"/v1/items/{'x' * 300}/{route}", params={"k": 0, "fields": "nope"})
    assert bad_field.status_code == 422
    assert [e["loc"] for e in bad_field.json()["detail"]] == [["query", "fields"]]
    long_field = client.get(f"/v1/items/{'x' * 300}/{route}", params={"k": 0, "fields": "t" * 300})
    assert [e["loc"] for e in long_field.json()["detail"]] == [
        ["query", "fields"],
        ["path", "item_id"],
        ["query", "k"],
    ]


def test_unknown_parameters_are_ignored_and_fields_are_added(client: TestClient) -> None:
    item = _item(client)
    plain = client.get(f"/v1/items/{item}/similar", params={"k": 4, "limit": 9})
    assert plain.status_code == 200 and len(plain.json()["items"]) == 4
    with_titles = client.get(f"/v1/items/{item}/similar", params={"k": 4, "fields": "title"})
    assert [i["item_id"] for i in with_titles.json()["items"]] == [
        i["item_id"] for i in plain.json()["items"]
    ]
    assert all("title" in i for i in with_titles.json()["items"])
    assert client.get("/v1/items/no-such-item/similar").status_code == 404


def test_the_openapi_document_lists_the_parameters_and_the_key(keyed: TestClient) -> None:
    document = keyed.get("/openapi.json", headers={"X-API-Key": ADMIN}).json()
    for route in ROUTES:
        operation = document["paths"][f"/v1/items/{{item_id}}/{route}"]["get"]
        names = {(p["name"], p["in"]) for p in operation["parameters"]}
        assert names == {("item_id", "path"), ("k", "query"), ("fields", "query")}
        assert operation["security"] == [{"APIKeyHeader": []}]
    assert "APIKeyHeader" in document["components"]["securitySchemes"]
