"""API keys and scopes (401/403), body size (413), rate limit (429), no internals in errors."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from fusionrec.serving.app import create_app
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
