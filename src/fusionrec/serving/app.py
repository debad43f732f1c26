"""The FastAPI app factory and its lifespan.

``create_app(settings)`` builds the app; the lifespan opens the store (the one writer of a DuckDB
file), loads the catalogue and the newest model version that passes the gate, and runs the
background loops: exposure flushing, trending refresh, alert rules, and (with Redis) the replay of
events the live state missed and the stream consumer. ``uvicorn --factory fusionrec.serving.app:app_from_env`` also works.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from fusionrec import __version__
from fusionrec.monitoring.alerts import AlertLoop
from fusionrec.serving.logs import guard_server_logs, printable, without_paths
from fusionrec.serving.routes import (
    admin,
    dashboard_login,
    events,
    exposure_events,
    health,
    recommendations,
    web,
)
from fusionrec.serving.security import (
    API_KEY_HEADER,
    LimitsMiddleware,
    Receive,
    Scope,
    Send,
    TokenBuckets,
    require,
)
from fusionrec.serving.service import Service
from fusionrec.serving.settings import ServingSettings, load_settings

logger = logging.getLogger("fusionrec.serving")
SHUTDOWN_WAIT_S = 30.0  # for background chores to end at shutdown

DESCRIPTION = """Real-time recommendations for an online shop: personalised and guest recommendations,
similar and bought-together items, trending, event ingestion, catalogue updates, erasure and model
versions. See docs/api.md."""


class CrashGuard:
    """An error that escaped the routes: a 500 with an error id, and one log line (no traceback,
    the path's client-chosen ids made printable). The traceback is logged at DEBUG only.

    Starlette's own last-resort handler would answer the same but then re-raise, and the server
    would log the full traceback: this middleware sits inside it, so nothing reaches it.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_wrapper(message: Any) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception as error:
            error_id = uuid.uuid4().hex[:12]
            logger.error(
                "error %s on %s %s: %s",
                error_id,
                scope["method"],
                printable(scope["path"]),
                type(error).__name__,
            )
            logger.debug("traceback of error %s", error_id, exc_info=error)
            if not started:
                answer = JSONResponse({"detail": "internal error", "error_id": error_id}, status_code=500)
                await answer(scope, receive, send)


class MetricsMiddleware:
    """Times every request and counts it by route template and status (pure ASGI: cheap)."""

    def __init__(self, app: Any, service_of: Any) -> None:
        self.app = app
        self.service_of = service_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            svc = self.service_of()
            if svc is not None:
                svc.metrics.observe(endpoint, scope["method"], status, time.perf_counter() - started)


def create_app(settings: ServingSettings | None = None, *, service: Service | None = None) -> FastAPI:
    """The service app. ``service`` (already built) is for tests; otherwise the lifespan builds one."""
    settings = settings or (service.settings if service is not None else load_settings())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        guard_server_logs()
        svc = service or await run_in_threadpool(Service, settings)
        app.state.service = svc
        await run_in_threadpool(svc.start)
        _mount_dashboard(app, svc)
        stopping = asyncio.Event()

        def every(seconds: float, fn: Any) -> asyncio.Task[None]:
            return asyncio.create_task(_every(seconds, fn, stopping), name=getattr(fn, "__name__", "chore"))

        chores = [
            every(settings.exposure_flush_s, svc.flush_exposures),
            every(settings.trending_refresh_s, svc.preparation.refresh_trending),
            every(settings.erasure_refresh_s, svc.refresh_erased),
            every(settings.catalogue_refresh_s, svc.refresh_catalogue),
        ]
        if settings.redis_url:  # events stored while Redis was down reach the live state when it returns
            chores.append(every(max(settings.redis_retry_s, 1.0), svc.replay_missed))
        if settings.retrain_every_s is not None:  # the new version passes the gate before the swap
            chores.append(every(settings.retrain_every_s, svc.retrainer.scheduled))
        svc.alert_loop = AlertLoop(svc.metrics, settings.alerts)  # type: ignore[attr-defined]
        alerts = asyncio.create_task(svc.alert_loop.run(), name="alerts")  # type: ignore[attr-defined]
        consumer = _start_consumer(svc) if settings.stream_url else None
        try:
            yield
        finally:
            # Chores are told to stop and finish the run they are in (not cancelled: a cancelled
            # flush would drop the exposures it has taken); then the store closes.
            stopping.set()
            alerts.cancel()
            await asyncio.wait([*chores, alerts], timeout=SHUTDOWN_WAIT_S)
            if consumer is not None:
                consumer.stop()
            await run_in_threadpool(svc.close)

    app = FastAPI(
        title="fusionrec",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        default_response_class=JSONResponse,
    )
    app.state.service = service
    app.state.api_keys = (service.api_keys if service is not None else None) or _keys(settings)
    for router in (
        recommendations.router,
        events.router,
        exposure_events.router,
        admin.router,
        health.router,
        dashboard_login.router,
        web.router,
    ):
        app.include_router(router)
    _docs(app)
    _errors(app)
    buckets = (
        TokenBuckets(
            settings.rate_limit_per_s / settings.workers, max(1, settings.rate_burst // settings.workers)
        )
        if settings.rate_limit_per_s > 0
        else None
    )
    app.add_middleware(
        LimitsMiddleware, max_body_bytes=settings.max_body_bytes, buckets=buckets, keys=app.state.api_keys
    )
    app.add_middleware(MetricsMiddleware, service_of=lambda: app.state.service)
    if settings.cors_origins:  # off unless configured; outside the limits, so a 429 is readable too
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", API_KEY_HEADER],
            max_age=600,
        )
    app.add_middleware(CrashGuard)  # outermost of ours: nothing escapes to the server's traceback log
    return app


def _mount_dashboard(app: FastAPI, svc: Service) -> None:
    """The analytics dashboard at /dashboard over the service's own store (admin scope when keys are on).

    Mounted in the lifespan because it needs the store the service opened: with DuckDB the
    service is the file's one writer, so the dashboard must share its connection.
    """
    from fusionrec.analytics.dashboard import dashboard_router
    from fusionrec.serving.dashboard_panels import preview, training_status

    app.include_router(
        dashboard_router(
            svc.store,
            leaderboard=[svc.settings.models_dir],
            currency=svc.settings.currency,
            preview=lambda user_id, k: preview(svc, user_id, k),
            training=lambda: training_status(svc),
        ),
        prefix="/dashboard",
        dependencies=[Depends(require("admin", cookie=True))],
        include_in_schema=False,
    )


def _keys(settings: ServingSettings) -> Any:
    from fusionrec.serving.security import ApiKeys

    return ApiKeys(
        settings.api_keys, dev=settings.dev, public_read=settings.public_read, origins=settings.cors_origins
    )


def _docs(app: FastAPI) -> None:
    """OpenAPI schema and Swagger UI, behind the admin scope when keys are on."""

    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(require("admin"))])
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    # Swagger UI 5 (it reads OpenAPI 3.1) from the static folder that ships inside the
    # fastapi-offline package, not a CDN: /docs works offline. Every URL is passed explicitly,
    # because get_swagger_ui_html's defaults point at a CDN.
    from importlib.resources import files

    from fastapi.staticfiles import StaticFiles

    static = files("fastapi_offline") / "static"
    app.mount("/docs-static", StaticFiles(directory=str(static)), name="docs-static")

    @app.get("/docs", include_in_schema=False, dependencies=[Depends(require("admin"))])
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="fusionrec API",
            swagger_js_url="/docs-static/swagger-ui-bundle.js",
            swagger_css_url="/docs-static/swagger-ui.css",
            swagger_favicon_url="/docs-static/favicon.png",
            # Swagger UI's default validator is validator.swagger.io: off, nothing leaves the host.
            swagger_ui_parameters={"validatorUrl": None},
        )


def _errors(app: FastAPI) -> None:
    """422 names the field; an HTTP error's message carries no server file path (`CrashGuard`
    answers the 500s: no stack trace or internals, an error id to grep)."""

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Any:
        if error.status_code == 401 and _browser_on_dashboard(request):  # the sign-in form instead
            return HTMLResponse(dashboard_login.signed_out_page(str(error.detail)), status_code=401)
        cleaned = StarletteHTTPException(error.status_code, without_paths(error.detail), error.headers)
        return await http_exception_handler(request, cleaned)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        details = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", "invalid"), "type": e.get("type", "")}
            for e in error.errors()
        ]
        return JSONResponse({"detail": details}, status_code=422)


def _browser_on_dashboard(request: Request) -> bool:
    return request.url.path.startswith("/dashboard") and "text/html" in request.headers.get("accept", "")


async def _every(seconds: float, fn: Any, stopping: asyncio.Event) -> None:
    """Run ``fn`` in a thread every ``seconds`` until ``stopping`` is set (a run under way ends first)."""
    while True:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), seconds)
        if stopping.is_set():
            return
        try:
            await run_in_threadpool(fn)
        except Exception as error:  # a background chore must never stop the service
            logger.error(
                "%s failed: %s: %s", getattr(fn, "__name__", fn), type(error).__name__, printable(error)
            )


def _start_consumer(svc: Service) -> Any:
    from fusionrec.serving.stream import StreamConsumer

    consumer = StreamConsumer(str(svc.settings.stream_url), svc.ingest)

    def run() -> None:
        while not consumer.stop_event.is_set():
            try:
                consumer.run()
            except Exception as error:  # Redis down: retry, the service keeps serving
                logger.warning("stream consumer: %s; retrying in 2 s", type(error).__name__)
                consumer.stop_event.wait(2.0)

    threading.Thread(target=run, name="fusionrec-stream", daemon=True).start()
    return consumer


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory``: settings from the environment (FUSIONREC_SERVING_*)."""
    return create_app(load_settings())
