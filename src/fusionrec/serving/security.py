"""API keys with scopes, request size limits (413) and rate limits (429).

Keys are compared with `secrets.compare_digest` against every configured key (no early exit, so
timing reveals nothing about which key nearly matched). Scopes: ``read`` (recommendations),
``write`` (events), ``admin`` (items, users, models, metrics, docs, dashboard; implies the others), and
``events``: the publishable key a web page holds (a page cannot keep a secret), which may only post
events and only from the ``cors_origins`` allow-list (its ``Origin`` header); anything else is 403.

Safe by default: without keys, reads are open (``public_read``, which defaults to "open only when no
keys are configured") and every write or admin call is refused with 401, until keys are configured.
Only ``dev`` mode (`fusionrec serve --dev`, `fusionrec demo`: bound to 127.0.0.1) opens every scope.
Limits run as a pure ASGI middleware: cheaper than Starlette's BaseHTTPMiddleware on the hot path.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import HTTPException, Request, Security
from fastapi.security import APIKeyHeader

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

API_KEY_HEADER = "X-API-Key"
DASHBOARD_COOKIE = "fusionrec_dashboard_key"  # set by /dashboard/login, read on the dashboard only
api_key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False, description="API key (when keys are on)")


NO_KEYS = (
    "this service has no API keys configured, so writes and admin calls are refused: set "
    "[serving] api_keys (or FUSIONREC_SERVING_API_KEYS), or run `fusionrec serve --dev` for local use"
)


PUBLISHABLE = frozenset({"events"})  # the scopes of a key that web pages hold


def normal_origin(origin: str) -> str:
    """``origin`` as browsers send it in the ``Origin`` header: lower case, no trailing slash."""
    return origin.strip().rstrip("/").lower()


class ApiKeys:
    """The configured keys and their scopes, what passes without a key, and the web pages
    (``origins``) that publishable keys are accepted from."""

    def __init__(
        self,
        keys: dict[str, list[str]],
        *,
        dev: bool = False,
        public_read: bool | None = None,
        origins: list[str] | None = None,
    ) -> None:
        self._keys = [(key.encode(), frozenset(scopes)) for key, scopes in keys.items()]
        self.dev = dev
        self.public_read = (not self._keys) if public_read is None else public_read
        self.origins = frozenset(normal_origin(o) for o in origins or ())

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def open_to_anyone(self, scope: str) -> bool:
        """Whether a request without a key may use ``scope``."""
        return self.dev or (scope == "read" and self.public_read)

    def scopes(self, presented: str | None) -> frozenset[str] | None:
        """The scopes of ``presented`` (None when it matches no key)."""
        if presented is None:
            return None
        candidate = presented.encode()
        found: frozenset[str] | None = None
        for key, scopes in self._keys:  # always every key: constant work whatever matches
            if secrets.compare_digest(candidate, key):
                found = scopes
        return found

    def check_publishable(self, endpoint_takes_it: bool, origin: str | None) -> None:
        """403 unless a publishable key is used where it may be: an endpoint that takes it, called
        from an allowed web page."""
        if not endpoint_takes_it:
            raise HTTPException(403, detail="a publishable 'events' key may only post events")
        if origin is None or normal_origin(origin) not in self.origins:
            raise HTTPException(
                403, detail="a publishable 'events' key is accepted only from the origins in cors_origins"
            )


def require(scope: str, *, publishable: bool = False, cookie: bool = False) -> Callable[..., Awaitable[None]]:
    """A FastAPI dependency: the request's key must carry ``scope`` (or ``admin``); with
    ``publishable``, a publishable ``events`` key from an allowed origin passes too; with
    ``cookie`` (the dashboard's pages), the key may come from the cookie `/dashboard/login` sets."""

    async def check(request: Request, key: str | None = Security(api_key_header)) -> None:
        check_key(request, scope, key, publishable=publishable, cookie=cookie)

    check.__name__ = f"require_{scope}"
    return check


def check_key(
    request: Request, scope: str, key: str | None, *, publishable: bool = False, cookie: bool = False
) -> None:
    """What `require` checks, as a plain call: ``key`` (the API key header's value, None when
    absent) must carry ``scope``; a 401 or 403 otherwise."""
    keys: ApiKeys = request.app.state.api_keys
    if key is None and cookie:
        key = request.cookies.get(DASHBOARD_COOKIE)
    scopes = keys.scopes(key)
    if scopes == PUBLISHABLE:  # checked first: such a key is refused even where no key is needed
        keys.check_publishable(publishable, request.headers.get("origin"))
        return
    if keys.open_to_anyone(scope):
        return
    if not keys.enabled:
        raise HTTPException(401, detail=NO_KEYS, headers={"WWW-Authenticate": "ApiKey"})
    if scopes is None:
        raise HTTPException(401, detail="missing or unknown API key", headers={"WWW-Authenticate": "ApiKey"})
    if scope not in scopes and "admin" not in scopes:
        raise HTTPException(403, detail=f"this API key lacks the {scope!r} scope")


def require_inline(request: Request, scope: str, *, publishable: bool = False) -> None:
    """`require` (no cookie) called by a hot route itself: FastAPI's resolution of a route's
    dependencies cost more than the route's own work. Such a route declares `KEY_SECURITY` in
    its ``openapi_extra``, so that its documentation names the key."""
    check_key(request, scope, request.headers.get(API_KEY_HEADER), publishable=publishable)


# The OpenAPI security requirement a `require` dependency adds to a route (FastAPI names the
# scheme after the header class), for the routes that call `require_inline` instead.
KEY_SECURITY = [{"APIKeyHeader": []}]


async def require_json(request: Request) -> None:
    """A FastAPI dependency: the body must be declared ``application/json`` (415 otherwise), so a
    form or ``text/plain`` post from another web page (no CORS preflight) is never read."""
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise HTTPException(415, detail=f"send the body as application/json, not {media_type or 'nothing'!r}")


class TokenBuckets:
    """Per-client token buckets: ``rate`` requests per second on average, bursts up to ``burst``."""

    def __init__(self, rate: float, burst: int, max_clients: int = 100_000) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.max_clients = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, client: str) -> float:
        """0 when the request may pass, else the seconds to wait before retrying."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(client, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1.0:
                if len(self._buckets) >= self.max_clients and client not in self._buckets:
                    self._buckets.clear()  # bounded memory under an address-spraying client
                self._buckets[client] = (tokens - 1.0, now)
                return 0.0
            self._buckets[client] = (tokens, now)
            return (1.0 - tokens) / self.rate


class LimitsMiddleware:
    """413 for bodies over ``max_body_bytes``; 429 (with Retry-After) past the rate limit."""

    def __init__(
        self, app: ASGIApp, *, max_body_bytes: int, buckets: TokenBuckets | None, keys: ApiKeys
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.buckets = buckets
        self.keys = keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        if self.buckets is not None and scope["path"] not in ("/healthz", "/readyz"):
            wait = self.buckets.allow(self._client(headers, scope))
            if wait > 0:
                await _reply(
                    send,
                    429,
                    "rate limit exceeded; retry later",
                    [(b"retry-after", str(int(wait) + 1).encode())],
                )
                return
        length = headers.get(b"content-length")
        if length is not None:
            try:
                too_big = int(length) > self.max_body_bytes
            except ValueError:
                await _reply(send, 400, "bad Content-Length header")
                return
            if too_big:
                await _reply(send, 413, f"request body larger than {self.max_body_bytes} bytes")
                return
            await self.app(scope, receive, send)
            return
        if scope["method"] in ("GET", "HEAD", "DELETE", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        # No length given (chunked): read the body up to the limit, then replay it.
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await _reply(send, 413, f"request body larger than {self.max_body_bytes} bytes")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _client(self, headers: dict[bytes, bytes], scope: Scope) -> str:
        """Whose bucket a request drains: a configured key's, else the client address's. A key that
        matches nothing counts as no key, so random keys cannot each get a fresh bucket; a
        publishable key is every visitor's, so each visitor keeps their own address's bucket."""
        presented = headers.get(b"x-api-key", b"").decode("latin-1")
        scopes = self.keys.scopes(presented) if presented else None
        if scopes is not None and scopes != PUBLISHABLE:
            return "key:" + presented
        return "address:" + str((scope.get("client") or ("?",))[0])


async def _reply(
    send: Send, status: int, detail: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra or [])})
    await send({"type": "http.response.body", "body": body})
