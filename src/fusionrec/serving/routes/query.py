"""Query parameters an endpoint does not take are refused, not ignored.

A mistyped or unsupported parameter (``devise=mobile``, ``limit=5``) would otherwise be dropped
silently and the caller would never learn that the answer ignored it. `only_declared_query` is a
route dependency: the allowed names are read from the route's own declaration (its parameters
and those of its dependencies), so a parameter added to an endpoint is allowed with no list to
keep in step.

`parse_query` is the cheap way to take many parameters on a hot endpoint: one pydantic model
validated in one call (FastAPI spends several microseconds of Python per declared parameter on
every request), documented through `query_parameters` in the route's ``openapi_extra``, which
`only_declared_query` reads as declared too.
"""

from __future__ import annotations

from typing import Any, TypeVar, get_origin

from fastapi import HTTPException, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.datastructures import QueryParams

_allowed: dict[int, frozenset[str]] = {}  # id(route) -> its query parameter names
_list_fields: dict[type[BaseModel], frozenset[str]] = {}  # model -> its repeatable parameters
M = TypeVar("M", bound=BaseModel)


def query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """OpenAPI parameter objects (``in: query``, optional) for the fields of ``model``, for a
    route's ``openapi_extra={"parameters": ...}``."""
    schema = model.model_json_schema()
    parameters = []
    for name, field in model.model_fields.items():
        prop = dict(schema["properties"][field.alias or name])
        description = prop.pop("description", None)
        parameter: dict[str, Any] = {"name": field.alias or name, "in": "query", "required": False}
        if description:
            parameter["description"] = description
        parameters.append({**parameter, "schema": prop})
    return parameters


def parse_query(model: type[M], params: QueryParams) -> M:
    """``model`` from the query parameters in one validation; a 422 like FastAPI's otherwise.

    A list field takes every value of a repeated parameter, any other field the last one (as
    FastAPI does); parameters the model does not name are left to `only_declared_query`.
    """
    many = _list_fields.get(model)
    if many is None:
        fields = model.model_fields
        many = _list_fields[model] = frozenset(
            n for n, f in fields.items() if get_origin(f.annotation) is list
        )
    data: dict[str, Any] = {}
    for name, value in params.multi_items():
        if name in many:
            data.setdefault(name, []).append(value)
        else:
            data[name] = value
    try:
        return model.model_validate(data)
    except ValidationError as error:
        errors = [{**e, "loc": ("query", *e["loc"])} for e in error.errors(include_url=False)]
        raise RequestValidationError(errors) from None


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
        documented = (getattr(route, "openapi_extra", None) or {}).get("parameters", [])
        extra = {p["name"] for p in documented if p.get("in") == "query"}  # `query_parameters`
        allowed = _allowed[id(route)] = declared_query(route.dependant) | extra
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
