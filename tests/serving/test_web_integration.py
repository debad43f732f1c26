"""A shop's web pages: item fields in answers, events linked to the exposure they answer, and the
files the service serves to pages (/sdk/fusionrec.js, /demo-shop). The browser test is
test_widget_browser.py."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from fusionrec.serving.app import create_app
from fusionrec.serving.item_fields import ITEM_FIELDS
from serving.conftest import make_settings

SHOP = "https://shop.example"
PAGE_KEY, WRITE_KEY = "pk_page_0123456789ab", "sk_write_0123456789ab"
KEYS = {PAGE_KEY: ["events"], WRITE_KEY: ["write"], "sk_admin_0123456789ab": ["admin"]}


def catalogue(shop: tuple[pa.Table, pa.Table]) -> dict[str, dict]:
    return {row["item_id"]: row for row in shop[1].to_pylist()}


def test_fields_come_from_the_catalogue_and_missing_ones_are_null(
    client: TestClient, known_user: str, shop
) -> None:
    items = catalogue(shop)
    answer = client.get(
        "/v1/recommendations", params={"user_id": known_user, "k": 5, "fields": "title,price,image_url,url"}
    ).json()
    assert len(answer["items"]) == 5 and answer["exposure_id"]
    for entry in answer["items"]:
        stored = items[entry["item_id"]]
        assert entry["title"] == stored["title"] and entry["price"] == pytest.approx(stored["price"])
        assert entry["image_url"] is None and entry["url"] is None  # the generated catalogue has neither
    # A shop's catalogue keeps image and page in the item's attributes.
    first = answer["items"][0]["item_id"]
    attributes = {"image_url": "https://cdn.example/1.jpg", "url": "https://shop.example/p/1"}
    assert client.put(f"/v1/items/{first}", json={"attributes": attributes}).status_code == 200
    again = client.get(
        "/v1/recommendations", params={"user_id": known_user, "k": 5, "fields": "url,image_url"}
    ).json()
    by_id = {entry["item_id"]: entry for entry in again["items"]}
    assert by_id[first]["image_url"] == attributes["image_url"] and by_id[first]["url"] == attributes["url"]
    assert "title" not in by_id[first]  # only the fields asked for


def test_answers_without_fields_are_unchanged_and_cache_is_not_polluted(
    client: TestClient, known_user: str
) -> None:
    params = {"user_id": known_user, "k": 3}
    client.get("/v1/recommendations", params={**params, "fields": "title"})
    plain = client.get("/v1/recommendations", params=params).json()
    assert plain["cached"] is True  # the same list, served from the cache ...
    assert all(
        set(entry) == {"item_id", "score", "sources"} for entry in plain["items"]
    )  # ... without fields


def test_item_endpoints_take_fields(client: TestClient, shop) -> None:
    items = catalogue(shop)
    popular = client.get("/v1/popular", params={"k": 3, "fields": "title,price,category"}).json()
    item = popular["items"][0]["item_id"]
    assert popular["items"][0]["category"] == items[item]["category"]
    for kind in ("similar", "bought-together"):
        related = client.get(f"/v1/items/{item}/{kind}", params={"k": 3, "fields": "title,in_stock"}).json()
        assert related["items"], kind
        for entry in related["items"]:
            assert entry["title"] == items[entry["item_id"]]["title"]
            assert "in_stock" in entry


@pytest.mark.parametrize(
    "path", ["/v1/recommendations?user_id=u1", "/v1/popular?k=2", "/v1/items/any/similar"]
)
def test_unknown_fields_are_422_naming_the_allowed_ones(client: TestClient, path: str) -> None:
    response = client.get(path, params={"fields": "title,colour"})
    assert response.status_code == 422
    detail = response.json()["detail"][0]
    assert detail["loc"] == ["query", "fields"]
    assert "'colour'" in detail["msg"] and all(name in detail["msg"] for name in ITEM_FIELDS)


def test_an_exposure_event_is_stored_and_linked_once(client: TestClient, known_user: str) -> None:
    answer = client.get("/v1/recommendations", params={"user_id": known_user, "k": 3}).json()
    exposure, item = answer["exposure_id"], answer["items"][1]["item_id"]
    body = {"event_type": "click", "item_id": item, "user_id": known_user, "event_id": "ev-click-1"}
    first = client.post(f"/v1/exposures/{exposure}/events", json=body)
    assert first.status_code == 202 and first.json()["stored"] == 1
    resent = client.post(f"/v1/exposures/{exposure}/events", json=body)  # a retried request
    assert resent.status_code == 202 and resent.json()["duplicates"] == 1
    service = client.app.state.service
    rows = service.on_writer(
        lambda: service.store.query_arrow(
            "SELECT e.event_type, e.item_id, e.user_id, e.page, l.exposure_id FROM events e "
            "JOIN exposure_events l ON l.event_id = e.event_id WHERE e.event_id = 'ev-click-1'"
        ).to_pylist()
    )
    assert rows == [
        {
            "event_type": "click",
            "item_id": item,
            "user_id": known_user,
            "page": "recommendation",
            "exposure_id": exposure,
        }
    ]


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({"event_type": "click", "item_id": "i1"}, "body"),  # no visitor
        ({"event_type": "purchase", "item_id": "i1", "user_id": "u"}, "event_type"),
        ({"event_type": "view", "item_id": "i1", "user_id": "u", "is_bot": False}, "is_bot"),
    ],
)
def test_bad_exposure_events_are_422(client: TestClient, body: dict, where: str) -> None:
    response = client.post("/v1/exposures/x1/events", json=body)
    assert response.status_code == 422
    assert where in str(response.json()["detail"])


def test_the_publishable_key_posts_exposure_events_from_the_shop_only(
    store_url: str, models_dir: Path, known_user: str
) -> None:
    settings = make_settings(store_url, models_dir, api_keys=KEYS, cors_origins=[SHOP], public_read=True)
    body = {"event_type": "view", "item_id": "i1", "user_id": known_user}
    with TestClient(create_app(settings)) as client:
        page = {"X-API-Key": PAGE_KEY}
        shop = client.post("/v1/exposures/x1/events", json=body, headers={**page, "Origin": SHOP})
        assert shop.status_code == 202
        elsewhere = {**page, "Origin": "https://evil.example"}
        assert client.post("/v1/exposures/x1/events", json=body, headers=elsewhere).status_code == 403
        assert client.post("/v1/exposures/x1/events", json=body).status_code == 401  # no key: refused
        write = client.post("/v1/exposures/x1/events", json=body, headers={"X-API-Key": WRITE_KEY})
        assert write.status_code == 202
        # The page reads without a key (public_read); its key never opens anything but events.
        assert client.get("/v1/popular", params={"fields": "title"}).status_code == 200
        assert client.get("/v1/popular", headers={**page, "Origin": SHOP}).status_code == 403
        # The browser's preflight for the key header is answered for the shop only.
        preflight = {
            "Origin": SHOP,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-api-key",
        }
        answered = client.options("/v1/exposures/x1/events", headers=preflight)
        assert answered.status_code == 200 and answered.headers["access-control-allow-origin"] == SHOP


def test_the_sdk_is_served_to_anyone_and_the_demo_shop_only_when_on(store_url: str, models_dir: Path) -> None:
    settings = make_settings(store_url, models_dir, api_keys=KEYS, cors_origins=[SHOP])
    with TestClient(create_app(settings)) as client:
        sdk = client.get("/sdk/fusionrec.js")
        assert sdk.status_code == 200 and sdk.headers["content-type"].startswith("application/javascript")
        assert "window.FusionRec" not in sdk.text and "global.FusionRec" in sdk.text
        assert client.get("/demo-shop").status_code == 404
    with TestClient(create_app(make_settings(store_url, models_dir, demo_shop=True))) as client:
        page = client.get("/demo-shop")
        assert page.status_code == 200 and "/sdk/fusionrec.js" in page.text


def test_erasure_deletes_the_users_exposure_events(client: TestClient, known_user: str) -> None:
    answer = client.get("/v1/recommendations", params={"user_id": known_user, "k": 2}).json()
    body = {"event_type": "click", "item_id": answer["items"][0]["item_id"], "user_id": known_user}
    assert client.post(f"/v1/exposures/{answer['exposure_id']}/events", json=body).status_code == 202
    service = client.app.state.service  # the exposure is still buffered: the event's side finds the link
    erased = client.delete(f"/v1/users/{known_user}").json()
    assert erased["exposure_events_deleted"] == 1
    left = service.on_writer(lambda: service.store.query_arrow("SELECT count(*) AS n FROM exposure_events"))
    assert left.to_pylist() == [{"n": 0}]
