"""The live dashboard: a FastAPI router the serving app mounts at ``/dashboard``.

``GET /`` the page (the same page and script as the static report), ``GET /plotly.min.js`` the
plotting library from the ``plotly`` package (no CDN), ``GET /api/data?start=&end=&category=`` the
payload computed in the store for those filters (cached per filter set for ``cache_seconds``).

    app.include_router(dashboard_router("duckdb:///shop.duckdb"), prefix="/dashboard")
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from fusionrec.analytics.queries import Filters
from fusionrec.data.store import EventStore, open_store


def dashboard_router(
    store: EventStore | str,
    *,
    leaderboard: Sequence[str | Path] = (),
    cache_seconds: float = 60.0,
    cache_size: int = 16,
    n_boot: int = 500,
    currency: str | None = None,
) -> APIRouter:
    """A router serving the analytics dashboard over ``store`` (an open store or a store URL);
    money is shown in ``currency`` (ISO 4217) when given."""
    from fusionrec.analytics.report import build_payload, plotly_js_path, render_html

    opened = open_store(store) if isinstance(store, str) else store
    router = APIRouter(tags=["dashboard"])
    cache: OrderedDict[tuple[Any, ...], tuple[float, dict[str, Any]]] = OrderedDict()
    lock = threading.Lock()

    @router.get("/", response_class=HTMLResponse, name="dashboard_page")
    def page(request: Request) -> HTMLResponse:
        html = render_html(
            None,
            plotly_src=str(request.url_for("dashboard_plotly")),
            data_url=str(request.url_for("dashboard_data")),
        )
        return HTMLResponse(html)

    @router.get("/plotly.min.js", name="dashboard_plotly")
    def plotly_js() -> FileResponse:
        return FileResponse(plotly_js_path(), media_type="application/javascript")

    @router.get("/api/data", name="dashboard_data")
    def data(
        start: str | None = Query(None, description="first UTC day, YYYY-MM-DD"),
        end: str | None = Query(None, description="last UTC day, YYYY-MM-DD"),
        category: str | None = Query(None, description="category path or prefix"),
    ) -> JSONResponse:
        try:
            filters = Filters.of(start, end, category)
        except ValueError as err:
            raise HTTPException(status_code=422, detail=str(err)) from err
        key = (filters.start, filters.end, filters.category)
        now = time.monotonic()
        with lock:  # also serialises payload builds: they share the store's one connection
            hit = cache.get(key)
            if hit is not None and now - hit[0] < cache_seconds:
                return JSONResponse(hit[1])
            payload = build_payload(
                opened, filters, leaderboard=leaderboard, n_boot=n_boot, currency=currency
            )
            cache[key] = (now, payload)
            while len(cache) > cache_size:
                cache.popitem(last=False)
        return JSONResponse(payload)

    return router
