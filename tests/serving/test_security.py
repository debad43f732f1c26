"""API keys and scopes (401/403), body size (413), rate limit (429), no internals in errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fusionrec.serving.app import create_app
from fusionrec.serving.settings import SettingsError
from serving.conftest import make_settings

READ, WRITE, ADMIN = "r" * 24, "w" * 24, "a" * 24
EVENT = {"user_id": "u", "item_id": "i1", "event_type": "view", "timestamp": "2026-03-01T10:00:00Z"}


def test_scopes(store_url: str, models_dir: Path) -> None:
    settings = make_settings(
        store_url, models_dir, api_keys={READ: ["read"], WRITE: ["write"], ADMIN: ["admin"]}
    )
    with TestClient(create_app(settings)) as client:
        params = {"user_id": "u1"}
        assert client.get("/v1/recommendations", params=params).status_code == 401
        assert (
            client.get("/v1/recommendations", params=params, headers={"X-API-Key": "x" * 24}).status_code
            == 401
        )
        assert (
            client.get("/v1/recommendations", params=params, headers={"X-API-Key": READ}).status_code == 200
        )
        assert client.post("/v1/events", json=EVENT, headers={"X-API-Key": READ}).status_code == 403
        assert client.post("/v1/events", json=EVENT, headers={"X-API-Key": WRITE}).status_code == 202
        for path in ("/metrics", "/docs", "/openapi.json", "/v1/models"):
            assert client.get(path, headers={"X-API-Key": WRITE}).status_code == 403, path
            assert client.get(path, headers={"X-API-Key": ADMIN}).status_code == 200, path
        assert client.delete("/v1/users/u", headers={"X-API-Key": WRITE}).status_code == 403
        assert client.get("/healthz").status_code == 200  # probes need no key


def test_size_and_rate_limits(store_url: str, models_dir: Path) -> None:
    settings = make_settings(store_url, models_dir, max_body_bytes=2048, rate_limit_per_s=1.0, rate_burst=5)
    with TestClient(create_app(settings)) as client:
        big = {"events": [EVENT] * 100}
        assert client.post("/v1/events", json=big).status_code == 413
        codes = [client.get("/v1/popular").status_code for _ in range(8)]
        assert codes.count(429) >= 2 and codes[:4] == [200] * 4
        limited = client.get("/v1/popular")
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1


def test_server_errors_carry_no_internals(client: TestClient) -> None:
    def explode(*args, **kwargs):
        raise ValueError("secret-connection-string")

    client.app.state.service.registry.versions = explode
    raw = TestClient(client.app, raise_server_exceptions=False)  # no `with`: the running service stays
    response = raw.get("/v1/models")
    assert response.status_code == 500
    assert "secret" not in response.text and "Traceback" not in response.text
    assert set(response.json()) == {"detail", "error_id"}


def test_each_of_n_workers_enforces_its_share_of_the_rate_limit(store_url: str, models_dir: Path) -> None:
    settings = make_settings(store_url, models_dir, rate_limit_per_s=0.5, rate_burst=8, workers=2)
    with TestClient(create_app(settings)) as client:
        codes = [client.get("/v1/popular").status_code for _ in range(8)]
        assert codes[:4] == [200] * 4 and codes[4:] == [429] * 4  # burst 8 over 2 processes = 4 here


def test_without_keys_reads_are_open_and_writes_and_admin_are_refused(
    store_url: str, models_dir: Path
) -> None:
    """A fresh `fusionrec serve` (no keys, no --dev): nobody anonymous writes or administers."""
    with TestClient(create_app(make_settings(store_url, models_dir, dev=False))) as client:
        assert client.get("/v1/recommendations", params={"user_id": "u1"}).status_code == 200
        assert client.get("/v1/popular").status_code == 200
        refused = [
            client.post("/v1/events", json=EVENT),
            client.post("/v1/identify", json={"session_id": "s1", "user_id": "u1"}),
            client.put("/v1/items/i1", json={"title": "x"}),
            client.delete("/v1/users/u1"),
            client.post("/v1/models/train"),
            client.post("/v1/models/v0001/activate"),
            client.post("/v1/models/rollback"),
            client.get("/v1/models"),
            client.get("/metrics"),
            client.get("/docs"),
        ]
        assert [r.status_code for r in refused] == [401] * len(refused)
        assert "fusionrec serve --dev" in refused[0].json()["detail"]
        assert client.app.state.service.retrainer.state == {"state": "idle"}  # nothing was started
    closed = make_settings(store_url, models_dir, dev=False, public_read=False)
    with TestClient(create_app(closed)) as client:
        assert client.get("/v1/recommendations", params={"user_id": "u1"}).status_code == 401


def test_dev_mode_opens_every_scope_on_loopback_only(store_url: str, models_dir: Path) -> None:
    with TestClient(create_app(make_settings(store_url, models_dir, dev=True))) as client:
        assert client.post("/v1/events", json=EVENT).status_code == 202
        assert client.get("/v1/models").status_code == 200
    with pytest.raises(SettingsError, match=r"127\.0\.0\.1 only"):
        make_settings(store_url, models_dir, dev=True, host="0.0.0.0")


def test_bodies_must_be_declared_json(client: TestClient) -> None:
    """A `text/plain` or form post (which another web page can send without a CORS preflight)
    is refused before it is read, even in dev mode."""
    import json

    body = json.dumps(EVENT)
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {"Content-Type": content_type} if content_type else {}
        answer = client.post("/v1/events", content=body, headers=headers)
        assert answer.status_code == 415, (content_type, answer.text)
    assert (
        client.post(
            "/v1/events", content=body, headers={"Content-Type": "application/json; charset=utf-8"}
        ).status_code
        == 202
    )
    assert (
        client.put(
            "/v1/items/i1", content='{"title": "x"}', headers={"Content-Type": "text/plain"}
        ).status_code
        == 415
    )


def test_random_keys_do_not_bypass_the_rate_limit(store_url: str, models_dir: Path) -> None:
    """Buckets are keyed on an authenticated key or the client address, never on a raw header."""
    settings = make_settings(store_url, models_dir, rate_limit_per_s=0.5, rate_burst=4)
    with TestClient(create_app(settings)) as client:
        codes = [
            client.get("/v1/popular", headers={"X-API-Key": f"random-{n:020d}"}).status_code for n in range(8)
        ]
        assert codes[:4] == [200] * 4 and codes[4:] == [429] * 4
    keyed = make_settings(
        store_url, models_dir, api_keys={READ: ["read"]}, rate_limit_per_s=0.5, rate_burst=2
    )
    with TestClient(create_app(keyed)) as client:
        own = [client.get("/v1/popular", headers={"X-API-Key": READ}).status_code for _ in range(3)]
        assert own == [200, 200, 429]  # the key's own bucket
        assert client.get("/v1/popular").status_code == 401  # no key: the address's bucket, then auth


SHOP, OTHER = "https://shop.example", "https://evil.example"
PUBLISHABLE = "pk_" + "e" * 24


def keyed_with_cors(store_url: str, models_dir: Path, **overrides: object) -> TestClient:
    settings = make_settings(
        store_url,
        models_dir,
        api_keys={PUBLISHABLE: ["events"], READ: ["read"], ADMIN: ["admin"]},
        cors_origins=[SHOP + "/"],
        **overrides,
    )
    return TestClient(create_app(settings))


def preflight(client: TestClient, origin: str, path: str = "/v1/events") -> dict[str, str]:
    answer = client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-api-key",
        },
    )
    return dict(answer.headers)


def test_cors_answers_the_allowed_origins_only(store_url: str, models_dir: Path) -> None:
    with keyed_with_cors(store_url, models_dir) as client:
        allowed = preflight(client, SHOP)
        assert allowed["access-control-allow-origin"] == SHOP
        assert "x-api-key" in allowed["access-control-allow-headers"].lower()
        assert "access-control-allow-origin" not in preflight(client, OTHER)
        read = client.get("/v1/popular", headers={"Origin": SHOP, "X-API-Key": READ})
        assert read.headers["access-control-allow-origin"] == SHOP
        assert (
            "access-control-allow-origin"
            not in client.get("/v1/popular", headers={"Origin": OTHER, "X-API-Key": READ}).headers
        )
    with TestClient(create_app(make_settings(store_url, models_dir))) as client:  # not configured: off
        assert "access-control-allow-origin" not in preflight(client, SHOP)
        assert (
            "access-control-allow-origin" not in client.get("/v1/popular", headers={"Origin": SHOP}).headers
        )


def test_a_publishable_key_only_posts_events_from_the_allowed_origins(
    store_url: str, models_dir: Path
) -> None:
    with keyed_with_cors(store_url, models_dir) as client:
        key = {"X-API-Key": PUBLISHABLE}
        posted = client.post("/v1/events", json=EVENT, headers={**key, "Origin": SHOP})
        assert posted.status_code == 202 and posted.json()["stored"] == 1
        assert posted.headers["access-control-allow-origin"] == SHOP
        for origin in ({"Origin": OTHER}, {}):  # another page, or no browser at all
            refused = client.post("/v1/events", json={**EVENT, "item_id": "i2"}, headers={**key, **origin})
            assert refused.status_code == 403 and "cors_origins" in refused.json()["detail"]
        from_shop = {**key, "Origin": SHOP}
        others = [
            client.get("/v1/recommendations", params={"user_id": "u1"}, headers=from_shop),
            client.get("/v1/popular", headers=from_shop),
            client.post("/v1/identify", json={"session_id": "s1", "user_id": "u1"}, headers=from_shop),
            client.put("/v1/items/i1", json={"title": "x"}, headers=from_shop),
            client.delete("/v1/users/u1", headers=from_shop),
            client.get("/v1/models", headers=from_shop),
            client.post("/v1/models/train", headers=from_shop),
            client.get("/metrics", headers=from_shop),
            client.get("/dashboard/", headers=from_shop),
        ]
        assert [r.status_code for r in others] == [403] * len(others)
    with keyed_with_cors(store_url, models_dir, public_read=True) as client:  # open reads: still 403
        assert (
            client.get("/v1/popular", headers={"X-API-Key": PUBLISHABLE, "Origin": SHOP}).status_code == 403
        )
        assert client.get("/v1/popular", headers={"Origin": SHOP}).status_code == 200


def test_publishable_keys_are_checked_in_the_settings(store_url: str, models_dir: Path) -> None:
    with pytest.raises(SettingsError, match="needs the web pages"):
        make_settings(store_url, models_dir, api_keys={PUBLISHABLE: ["events"]})
    with pytest.raises(SettingsError, match="mix the publishable"):
        make_settings(store_url, models_dir, api_keys={PUBLISHABLE: ["events", "admin"]}, cors_origins=[SHOP])
    with pytest.raises(SettingsError, match="not an origin"):
        make_settings(store_url, models_dir, cors_origins=["*"])


def test_the_dashboard_needs_the_admin_scope(store_url: str, models_dir: Path) -> None:
    settings = make_settings(store_url, models_dir, api_keys={READ: ["read"], ADMIN: ["admin"]})
    with TestClient(create_app(settings)) as client:
        for path in ("/dashboard/", "/dashboard/api/data", "/dashboard/plotly.min.js"):
            assert client.get(path).status_code == 401, path
            assert client.get(path, headers={"X-API-Key": READ}).status_code == 403, path
        assert client.get("/dashboard/", headers={"X-API-Key": ADMIN}).status_code == 200
    with TestClient(create_app(make_settings(store_url, models_dir, dev=False))) as client:
        assert client.get("/dashboard/").status_code == 401  # no keys: refused, like every admin call
    with TestClient(create_app(make_settings(store_url, models_dir, dev=True))) as client:
        assert client.get("/dashboard/").status_code == 200


def test_a_browser_signs_in_to_the_dashboard_with_the_admin_key_in_a_form(
    store_url: str, models_dir: Path
) -> None:
    """A browser cannot send X-API-Key when a manager opens a page: /dashboard/login takes the key
    in a form and keeps it in an HttpOnly, SameSite=Strict cookie for the dashboard's pages only."""
    keys = {"a" * 24: ["admin"], "r" * 24: ["read"]}
    browser = {"Accept": "text/html"}
    with TestClient(create_app(make_settings(store_url, models_dir, api_keys=keys))) as client:
        closed = client.get("/dashboard/", headers=browser)
        assert closed.status_code == 401 and '<form method="post" action="/dashboard/login">' in closed.text
        assert client.get("/dashboard/").headers["content-type"].startswith("application/json")
        for wrong in ("", "x" * 24, "r" * 24):  # none, unknown, without the admin scope
            refused = client.post("/dashboard/login", data={"key": wrong}, follow_redirects=False)
            assert refused.status_code == 401 and "lacks the admin scope" in refused.text
        signed_in = client.post("/dashboard/login", data={"key": "a" * 24}, follow_redirects=False)
        assert signed_in.status_code == 303 and signed_in.headers["location"] == "/dashboard/"
        cookie = signed_in.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/dashboard" in cookie
        assert client.get("/dashboard/", headers=browser).status_code == 200
        assert client.get("/dashboard/api/data").status_code == 200
        client.post("/dashboard/logout")
        assert client.get("/dashboard/", headers=browser).status_code == 401
        # The cookie opens the dashboard only: the admin API still needs the header.
        client.cookies.set("fusionrec_dashboard_key", "a" * 24)
        assert client.get("/v1/models").status_code == 401
