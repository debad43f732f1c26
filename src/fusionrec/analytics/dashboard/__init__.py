"""The live dashboard: a FastAPI router the serving app mounts at ``/dashboard``.

``GET /`` the page (the same page and script as the static report, with its campaigns and
promotions section over every date), ``GET /plotly.min.js`` the
plotting library from the ``plotly`` package (no CDN), ``GET /api/data?start=&end=&category=`` the
payload for those filters (`DashboardData`: heavy queries once per version of the data, filters
served from them), ``GET /api/user?user_id=`` a user's recent events and (with ``preview``, which
the serving app passes) what the service would recommend them, with the proposing sources, and
``GET /api/training`` (with ``training``) the retrainer's state and progress beside the model
versions. Both callables come from `fusionrec.serving.dashboard_panels` (analytics sits below
serving and never imports it).

    app.include_router(dashboard_router("duckdb:///shop.duckdb"), prefix="/dashboard")
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, HTMLResponse, Response

from fusionrec.analytics.dashboard.data import DashboardData
from fusionrec.analytics.queries import Filters
from fusionrec.data.store import EventStore, open_store

__all__ = ["DashboardData", "dashboard_router"]

CAMPAIGN_SCOPE = "Every date and category, whatever the filters above; as of the page's load."


def _json(value: Any) -> Response:
    import orjson

    return Response(orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")


def dashboard_router(
    store: EventStore | str,
    *,
    leaderboard: Sequence[str | Path] = (),
    cache_seconds: float = 30.0,
    cache_size: int = 32,
    n_boot: int = 500,
    currency: str | None = None,
    preview: Callable[[str, int], dict[str, Any]] | None = None,
    training: Callable[[], dict[str, Any]] | None = None,
    check_s: float = 1.0,
) -> APIRouter:
    """A router serving the analytics dashboard over ``store`` (an open store or a store URL);
    money is shown in ``currency`` (ISO 4217) when given. A page load (``fresh=1``) gets the data
    as it is; a filter change is served from the last snapshot, rebuilt in the background when the
    data changed, at most every ``cache_seconds`` (`DashboardData.refresh_s`); changes are looked
    for every ``check_s``.
    ``preview(user_id, k)``: what the service would recommend the user (read-only);
    ``training()``: the retrainer's state and the model versions."""
    from fusionrec.analytics.campaign_section import with_campaign_section
    from fusionrec.analytics.report import plotly_js_path, render_html

    opened = open_store(store) if isinstance(store, str) else store
    data_source = DashboardData(
        opened,
        leaderboard=leaderboard,
        n_boot=n_boot,
        currency=currency,
        check_s=check_s,
        refresh_s=cache_seconds,
        cache_size=cache_size,
    )
    router = APIRouter(tags=["dashboard"])

    @router.get("/", response_class=HTMLResponse, name="dashboard_page")
    def page(request: Request) -> HTMLResponse:
        html = render_html(
            None,
            plotly_src=str(request.url_for("dashboard_plotly")),
            data_url=str(request.url_for("dashboard_data")),
        )
        # The campaigns section is static HTML (as in the report), from the snapshot of the data as
        # it is now; the script's own first request then finds that snapshot built.
        campaigns = data_source.payload(Filters(), fresh=True).get("campaigns")
        return HTMLResponse(with_campaign_section(html, campaigns, CAMPAIGN_SCOPE))

    @router.get("/plotly.min.js", name="dashboard_plotly")
    def plotly_js() -> FileResponse:
        return FileResponse(plotly_js_path(), media_type="application/javascript")

    @router.get("/api/data", name="dashboard_data")
    def data(
        start: str | None = Query(None, description="first UTC day, YYYY-MM-DD"),
        end: str | None = Query(None, description="last UTC day, YYYY-MM-DD"),
        category: str | None = Query(None, description="category path or prefix"),
        fresh: bool = Query(False, description="the data as it is now (a page load waits for it)"),
    ) -> Response:
        try:
            filters = Filters.of(start, end, category)
        except ValueError as err:
            raise HTTPException(status_code=422, detail=str(err)) from err
        return _json(data_source.payload(filters, fresh=fresh))

    @router.get("/api/user", name="dashboard_user")
    async def user(
        user_id: str = Query(..., min_length=1, max_length=256), k: int = Query(10, ge=1, le=50)
    ) -> Response:
        events = await run_in_threadpool(data_source.user_events, user_id)
        answer = await run_in_threadpool(preview, user_id, k) if preview is not None else None
        return _json({"user_id": user_id, "events": events, "recommendations": answer})

    @router.get("/api/training", name="dashboard_training")
    async def training_status() -> Response:
        if training is None:
            return _json({"training": None, "history": [], "versions": [], "active": None})
        return _json(await run_in_threadpool(training))

    return router
