"""Read endpoints: recommendations, identify, similar, bought together, popular."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from fusionrec.serving.item_fields import UnknownFieldsError, parse_fields, with_item_fields
from fusionrec.serving.recommend import (
    RecQuery,
    UnknownIdError,
    cached_popular,
    explain_one,
    popular,
    recommend,
    recommend_inline,
    related,
    related_inline,
)
from fusionrec.serving.redis_client import RedisUnavailableError
from fusionrec.serving.routes.query import only_declared_query, parse_query, query_parameters
from fusionrec.serving.routes.request_only import request_only_get
from fusionrec.serving.routes.schemas import (
    FIELDS_DESCRIPTION,
    FIELDS_EXAMPLES,
    ExplainOut,
    FastJSON,
    FieldsQuery,
    IdentifyIn,
    ItemPath,
    RecommendationsOut,
    RecommendationsQuery,
    RelatedOut,
    RelatedQuery,
)
from fusionrec.serving.security import KEY_SECURITY, require, require_inline, require_json
from fusionrec.serving.service import Service

router = APIRouter(prefix="/v1", tags=["recommendations"])
Fields = Annotated[
    str | None,
    Query(max_length=256, description=FIELDS_DESCRIPTION, examples=FIELDS_EXAMPLES),
]


async def service(request: Request) -> Service:
    """The app's `Service` (async: FastAPI would run a plain function in a worker thread, one
    thread hop on every request of every endpoint for an attribute read)."""
    return request.app.state.service


async def wanted_fields(fields: Fields = None) -> tuple[str, ...]:
    """The ``fields`` query as a tuple of item fields; 422 naming the allowed ones otherwise.

    Async, as `service`: a plain function would cost every request a worker-thread hop."""
    try:
        return parse_fields(fields)
    except UnknownFieldsError as error:
        raise HTTPException(422, detail=[{"loc": ["query", "fields"], "msg": str(error)}]) from None


ItemFields = Annotated[tuple[str, ...], Depends(wanted_fields)]


@request_only_get(
    router,
    "/recommendations",
    response_model=RecommendationsOut,
    openapi_extra={"parameters": query_parameters(RecommendationsQuery), "security": KEY_SECURITY},
)
async def get_recommendations(request: Request) -> FastJSON:
    """Top-``k`` items for a user (``user_id``) or a guest (``session_id``).

    ``placement``, ``device`` and ``channel`` describe where the list is shown; an unknown query
    parameter is a 422 that lists the allowed ones. ``explain=true`` adds why each item is there.
    """
    # The hot path: no FastAPI dependencies (resolving two took a quarter of a known user's
    # answer); the key, then the declared parameters, are checked here in the order the
    # dependencies ran, and the parameters are one model validated in one call.
    require_inline(request, "read")
    await only_declared_query(request)
    svc: Service = request.app.state.service
    params = parse_query(RecommendationsQuery, request.query_params)
    fields = await wanted_fields(params.fields)  # first, as when it was a dependency
    if params.user_id is None and params.session_id is None:
        raise HTTPException(422, detail=[{"loc": ["query", "user_id"], "msg": "give user_id or session_id"}])
    if params.k > svc.settings.max_k:
        raise HTTPException(
            422, detail=[{"loc": ["query", "k"], "msg": f"k must be at most {svc.settings.max_k}"}]
        )
    if params.offset > svc.settings.max_offset:
        raise HTTPException(
            422,
            detail=[{"loc": ["query", "offset"], "msg": f"offset must be at most {svc.settings.max_offset}"}],
        )
    excluded = [part for value in params.exclude for part in value.split(",") if part]
    query = RecQuery(
        params.user_id,
        params.session_id,
        params.k,
        params.offset,
        params.category,
        excluded,
        params.placement,
        params.context,
        params.min_price,
        params.max_price,
        device=params.device,
        channel=params.channel,
        explain=params.explain,
    )
    # A pre-scored list is answered on the event loop; scoring takes a worker thread.
    answer = recommend_inline(svc, query) or await run_in_threadpool(recommend, svc, query)
    return FastJSON(with_item_fields(answer, svc.catalogue, fields))


@router.get(
    "/recommendations/explain",
    response_model=ExplainOut,
    dependencies=[Depends(require("read")), Depends(only_declared_query)],
    responses={404: {"description": "unknown item, or a visitor without any history"}},
)
async def explain_recommendation(
    svc: Annotated[Service, Depends(service)],
    item_id: Annotated[str, Query(min_length=1, max_length=256, description="the item to explain")],
    user_id: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
    session_id: Annotated[str | None, Query(min_length=1, max_length=256, description="for guests")] = None,
) -> FastJSON:
    """Why ``item_id`` ranks where it does for a user or guest, whether it was recommended or not.

    The same trace as ``explain=true`` on recommendations, with the visitor's live history.
    """
    if user_id is None and session_id is None:
        raise HTTPException(422, detail=[{"loc": ["query", "user_id"], "msg": "give user_id or session_id"}])
    try:
        return FastJSON(await run_in_threadpool(explain_one, svc, user_id, session_id, item_id))
    except UnknownIdError as error:
        raise HTTPException(404, detail=str(error)) from None


@router.post("/identify", dependencies=[Depends(require("write")), Depends(require_json)])
async def identify(body: IdentifyIn, svc: Annotated[Service, Depends(service)]) -> FastJSON:
    """A guest logged in: link the session to the user; the session's history becomes the user's."""
    try:
        return FastJSON(await run_in_threadpool(svc.identify, body.session_id, body.user_id))
    except PermissionError as error:
        raise HTTPException(409, detail=str(error)) from None
    except RedisUnavailableError:
        raise HTTPException(503, detail="online state unavailable; retry") from None


# Similar and bought-together items are hot read paths: a route with FastAPI parameters and
# dependencies (key, service, fields) spent most of its time resolving them. These take the
# request alone and check in the order FastAPI did: the key (401/403), the ``fields``
# (a dependency of their own: its 422 first), then the path and ``k`` in one 422. The
# parameters are documented through ``openapi_extra``.
_ITEM_PATH = {
    "name": "item_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "minLength": 1, "maxLength": 256},
}
_RELATED_DOCS = {
    "parameters": [_ITEM_PATH, *query_parameters(RelatedQuery), *query_parameters(FieldsQuery)],
    "security": KEY_SECURITY,
}


async def _related_request(request: Request) -> tuple[str, int, tuple[str, ...]]:
    """The item id, ``k`` and fields of a similar or bought-together request; a 422 otherwise."""
    errors: list[Any] = []
    fields: tuple[str, ...] = ()
    try:
        raw = parse_query(FieldsQuery, request.query_params).fields
    except RequestValidationError as error:
        errors += list(error.errors())
    else:
        fields = await wanted_fields(raw)
    item_id = request.path_params["item_id"]
    try:
        ItemPath(item_id=item_id)
    except ValidationError as error:
        errors += [{**e, "loc": ("path", *e["loc"])} for e in error.errors(include_url=False)]
    k = 0
    try:
        k = parse_query(RelatedQuery, request.query_params).k
    except RequestValidationError as error:
        errors += list(error.errors())
    if errors:
        raise RequestValidationError(errors)
    return item_id, k, fields


async def _related_answer(request: Request, kind: str) -> FastJSON:
    require_inline(request, "read")
    svc: Service = request.app.state.service
    item_id, k, fields = await _related_request(request)
    # A cached or cheap answer on the event loop (`related_inline`), else in a worker thread.
    answer = related_inline(svc, item_id, k, kind) or await run_in_threadpool(related, svc, item_id, k, kind)
    if answer is None:
        raise HTTPException(404, detail=f"unknown item {item_id!r}")
    return FastJSON(with_item_fields(answer, svc.catalogue, fields))


@request_only_get(router, "/items/{item_id}/similar", response_model=RelatedOut, openapi_extra=_RELATED_DOCS)
async def similar(request: Request) -> FastJSON:
    """Items like ``item_id`` (new items: popular in their category)."""
    return await _related_answer(request, "similar")


@request_only_get(
    router, "/items/{item_id}/bought-together", response_model=RelatedOut, openapi_extra=_RELATED_DOCS
)
async def bought_together(request: Request) -> FastJSON:
    """Items bought in the same baskets as ``item_id`` (fallback: similar items)."""
    return await _related_answer(request, "bought_together")


@router.get("/popular", response_model=RelatedOut, dependencies=[Depends(require("read"))])
async def get_popular(
    svc: Annotated[Service, Depends(service)],
    category: Annotated[str | None, Query(max_length=512)] = None,
    k: Annotated[int, Query(ge=1, le=200)] = 10,
    fields: ItemFields = (),
) -> FastJSON:
    """Trending items, optionally within a category (cached)."""
    # A cached answer is a dict lookup: answered on the event loop, without a thread hop.
    answer = cached_popular(svc, category, k) or await run_in_threadpool(popular, svc, category, k)
    return FastJSON(with_item_fields(answer, svc.catalogue, fields))
