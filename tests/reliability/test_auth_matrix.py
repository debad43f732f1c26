"""The auth matrix: every route of the app x every kind of caller, on a keyed service and on a
fresh one without keys. Routes are read from ``app.routes`` so a new endpoint lands in the
matrix by itself, and fails it until ``SCOPES`` says which scope it needs."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
from starlette.routing import Mount

from fusionrec.serving.app import create_app
from headless import served
from reliability.figures import count
from serving.conftest import make_settings

READ, WRITE, ADMIN = "r" * 24, "w" * 24, "a" * 24
PUBLISHABLE, SHOP = "pk_" + "e" * 24, "https://shop.example"
BAD = "x" * 24

# The scope each route needs; None = open to anyone (probes, the docs' static files).
SCOPES: dict[tuple[str, str], str | None] = {
    ("GET", "/v1/recommendations"): "read",
    ("GET", "/v1/recommendations/explain"): "read",
    ("GET", "/v1/items/{item_id}/similar"): "read",
    ("GET", "/v1/items/{item_id}/bought-together"): "read",
    ("GET", "/v1/popular"): "read",
    ("POST", "/v1/events"): "events",  # write, or a publishable key from an allowed origin
    ("POST", "/v1/exposures/{exposure_id}/events"): "events",  # the widget's views, clicks, carts
    ("POST", "/v1/identify"): "write",
    ("PUT", "/v1/items/{item_id}"): "admin",
    ("DELETE", "/v1/users/{user_id}"): "admin",
    ("GET", "/v1/models"): "admin",
    ("POST", "/v1/models/{version}/activate"): "admin",
    ("POST", "/v1/models/rollback"): "admin",
    ("POST", "/v1/models/train"): "admin",
    ("GET", "/healthz"): None,
    ("GET", "/readyz"): None,
    ("GET", "/metrics"): "admin",
    ("GET", "/openapi.json"): "admin",
    ("GET", "/docs"): "admin",
    ("GET", "/docs-static/"): None,
    ("GET", "/dashboard/login"): None,  # the sign-in form
    ("POST", "/dashboard/login"): "form",  # the key comes in the form: none here, so refused
    ("POST", "/dashboard/logout"): None,
    ("GET", "/sdk/fusionrec.js"): None,  # the widget's script: no key, no data
    ("GET", "/demo-shop"): None,  # a static page (404 unless demo_shop, as here)
}
PREFIX_SCOPES = {"/dashboard": "admin"}  # the dashboard's own routes, all admin

# Callers: name -> headers. "events+origin" is the shop's widget; "events" the same key elsewhere.
CALLERS = {
    "no key": {},
    "bad key": {"X-API-Key": BAD},
    "read": {"X-API-Key": READ},
    "events+origin": {"X-API-Key": PUBLISHABLE, "Origin": SHOP},
    "events": {"X-API-Key": PUBLISHABLE},
    "write": {"X-API-Key": WRITE},
    "admin": {"X-API-Key": ADMIN},
}
# Which callers a route's scope lets through on the keyed service (reads closed: keys are on).
ALLOWED = {
    None: set(CALLERS),
    "read": {"read", "admin"},
    "events": {"events+origin", "write", "admin"},
    "write": {"write", "admin"},
    "admin": {"admin"},
    "form": set(),
}


def endpoints(routes: list, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(method, path) of every route, through included routers and mounts."""
    for route in routes:
        if hasattr(route, "original_router"):  # FastAPI's included router
            yield from endpoints(route.original_router.routes, prefix + route.include_context.prefix)
        elif isinstance(route, Mount):
            if hasattr(route, "routes") and route.routes:
                yield from endpoints(route.routes, prefix + route.path)
            else:
                yield "GET", prefix + route.path + "/"
        else:
            for method in sorted(set(getattr(route, "methods", None) or ()) - {"HEAD"}):
                yield method, prefix + route.path


def scope_of(method: str, path: str) -> str | None:
    if (method, path) in SCOPES:
        return SCOPES[(method, path)]
    for prefix, scope in PREFIX_SCOPES.items():
        if path.startswith(prefix):
            return scope
    raise AssertionError(f"{method} {path} is not in the auth matrix: add it to SCOPES")


def call(http: httpx.Client, method: str, path: str, headers: dict[str, str]) -> int:
    url = re.sub(r"\{version\}", "v9999", path)
    url = re.sub(r"\{[^}]+\}", "x1", url)
    body = {"json": {}} if method in ("POST", "PUT") else {}
    return http.request(method, url, headers=headers, params={"user_id": "u1"}, **body).status_code


def verdict(status: int) -> str:
    """The status class of a cell: refused (401/403), a server error, or let through."""
    if status >= 500:
        return "5xx"
    return "refused" if status in (401, 403) else "through"


def run_matrix(app, base: str, expected: dict[str, set[str]]) -> tuple[int, list[str]]:
    cells, wrong = 0, []
    with httpx.Client(base_url=base, timeout=30.0) as http:
        routes = sorted(set(endpoints(app.routes)))
        assert len(routes) >= 18, routes  # the walk found the app's routes, the dashboard's too
        for method, path in routes:
            scope = scope_of(method, path)
            for caller, allowed in expected.items():
                got = verdict(call(http, method, path, CALLERS[caller]))
                want = "through" if caller in allowed_for(scope, allowed) else "refused"
                cells += 1
                if got != want:
                    wrong.append(f"{method} {path} as {caller}: {got}, expected {want}")
    return cells, wrong


def allowed_for(scope: str | None, table: set[str] | dict) -> set[str]:
    return table[scope] if isinstance(table, dict) else table


def test_every_route_by_every_caller_with_keys(store_url: str, models_dir: Path) -> None:
    settings = make_settings(
        store_url,
        models_dir,
        api_keys={READ: ["read"], WRITE: ["write"], ADMIN: ["admin"], PUBLISHABLE: ["events"]},
        cors_origins=[SHOP],
        train_model="most_popular",
    )
    app = create_app(settings)
    with served(app) as base:
        cells, wrong = run_matrix(app, base, {caller: ALLOWED for caller in CALLERS})
    count("auth_matrix", cells=cells, failures=len(wrong))
    assert not wrong, "\n".join(wrong)


def test_a_fresh_service_without_keys_lets_nobody_anonymous_write(store_url: str, models_dir: Path) -> None:
    """The safe default (no keys, no --dev): reads and probes are open, every write and admin call
    is refused to an anonymous caller, with or without a made-up key."""
    app = create_app(make_settings(store_url, models_dir, dev=False, train_model="most_popular"))
    open_scopes = {None, "read"}
    expected = {
        caller: {s: ({caller} if s in open_scopes else set()) for s in ALLOWED}
        for caller in ("no key", "bad key")
    }
    with served(app) as base:
        cells, wrong = run_matrix(app, base, expected)
    anonymous_writes = sum("expected refused" in line for line in wrong)
    count("auth_matrix", cells=cells, failures=len(wrong), anonymous_writes_accepted=anonymous_writes)
    assert not wrong, "\n".join(wrong)


def test_the_dashboard_answers_before_any_model_folder_exists(store_url: str, tmp_path: Path) -> None:
    """Found by the matrix on a service started before `fusionrec train` made its models folder."""
    app = create_app(make_settings(store_url, tmp_path / "no-models-yet", api_keys={ADMIN: ["admin"]}))
    with served(app) as base:
        answer = httpx.get(f"{base}/dashboard/api/data", headers={"X-API-Key": ADMIN}, timeout=60)
    assert answer.status_code < 500
