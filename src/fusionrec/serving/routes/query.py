"""Query parameters an endpoint does not take are refused, not ignored.

A mistyped or unsupported parameter (``devise=mobile``, ``limit=5``) would otherwise be dropped
silently and the caller would never learn that the answer ignored it. `only_declared_query` is a
route dependency: the allowed names are read from the route's own declaration (its parameters
and those of its dependencies), so a parameter added to an endpoint is allowed with no list to
keep in step.
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException, Request
from fastapi.dependencies.models import Dependant

_allowed: dict[int, frozenset[str]] = {}  # id(route) -> its query parameter names


def declared_query(dependant: Dependant) -> frozenset[str]:
    """The query parameter names (aliases) of ``dependant`` and its sub-dependencies."""
    names = {param.alias for param in dependant.query_params}
    for sub in dependant.dependencies:
        names |= declared_query(sub)
    return frozenset(names)


async def only_declared_query(request: Request) -> None:
    """422 naming the unknown query parameters and the allowed ones."""
    route: Any = request.scope.get("route")
    if route is None or not request.query_params:
        return
    allowed = _allowed.get(id(route))
    if allowed is None:
        allowed = _allowed[id(route)] = declared_query(route.dependant)
    unknown = sorted(set(request.query_params) - allowed)
    if unknown:
        names = ", ".join(sorted(allowed))
        raise HTTPException(
            422,
            detail=[
                {
                    "loc": ["query", name],
                    "msg": f"unknown query parameter {name!r}; allowed: {names}",
                    "type": "extra_forbidden",
                }
                for name in unknown
            ],
        )
