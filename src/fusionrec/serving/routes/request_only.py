"""Routes whose endpoint takes the request alone and returns a ready response: called directly.

FastAPI's route handler resolves an endpoint's parameters and dependencies, reads the body, keeps
its telemetry and validates the response model on every request. For an endpoint that takes only
the `Request` and returns a `Response`, none of that does anything, yet it cost a known user's
pre-scored answer about a fifth of its CPU. Such an endpoint checks its request itself
(`require_inline`, `only_declared_query`, `parse_query`, in the order the dependencies ran) and
documents its parameters in ``openapi_extra``; its OpenAPI entry is built from the route's
declaration as for any other route.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, get_type_hints

from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute

Endpoint = Callable[[Request], Awaitable[Response]]


class RequestOnlyRoute(APIRoute):
    """An `APIRoute` whose handler awaits ``endpoint(request)`` and nothing else."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint = self.endpoint
        hints = get_type_hints(endpoint)
        params = list(inspect.signature(endpoint).parameters)
        if (
            not inspect.iscoroutinefunction(endpoint)
            or len(params) != 1
            or hints.get(params[0]) is not Request
        ):
            raise TypeError(
                f"{endpoint.__name__} must be `async def f(request: Request)` to be a RequestOnlyRoute"
            )

        async def handler(request: Request) -> Response:
            return await endpoint(request)

        return handler


def request_only(router: APIRouter, method: str, path: str, **options: Any) -> Callable[[Endpoint], Endpoint]:
    """``@router.api_route(path, methods=[method], **options)`` for an endpoint that takes the
    request alone (see the module docstring); one that reads a body documents it in
    ``openapi_extra``'s ``requestBody``."""

    def register(endpoint: Endpoint) -> Endpoint:
        router.add_api_route(
            path, endpoint, methods=[method], route_class_override=RequestOnlyRoute, **options
        )
        return endpoint

    return register


def request_only_get(router: APIRouter, path: str, **options: Any) -> Callable[[Endpoint], Endpoint]:
    """`request_only` for GET."""
    return request_only(router, "GET", path, **options)
