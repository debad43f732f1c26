"""`fusionrec serve` (the HTTP API) and `fusionrec consume` (events from a Redis stream)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from fusionrec.cli.common import StoreOption, UserError, err, project, store_url, user_errors

if TYPE_CHECKING:
    from fusionrec.serving.settings import ServingSettings


def serve(
    store: StoreOption = None,
    models: Annotated[
        Path | None,
        typer.Option("--models", help="Model repository (fusionrec train --out DIR).", show_default="models"),
    ] = None,
    host: Annotated[
        str | None, typer.Option("--host", help="Address to listen on.", show_default="127.0.0.1")
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", help="Port to listen on.", show_default="8000")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Settings file (its \\[serving] section).",
            show_default="fusionrec.toml if present",
        ),
    ] = None,
    redis: Annotated[
        str | None,
        typer.Option(
            "--redis", help="Redis URL for shared online state and caches.", show_default="in-process state"
        ),
    ] = None,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Processes (needs PostgreSQL + Redis).")
    ] = 1,
    dev: Annotated[
        bool,
        typer.Option(
            "--dev",
            help="Local use: every endpoint open without an API key, listening on 127.0.0.1 only.",
        ),
    ] = False,
) -> None:
    """Serve recommendations over HTTP (API docs at /docs).

    The store must exist (`fusionrec ingest` creates one). Settings come from the options, then
    FUSIONREC_SERVING_* environment variables, then fusionrec.toml's \\[serving] section.

    Safe by default: without \\[serving] api_keys, reads are open and writes and admin calls get 401;
    --dev opens everything for local use.

    Example: `fusionrec serve --store duckdb:///shop.duckdb --models models/`
    """
    with user_errors():
        settings = serving_settings(
            config, store=store, models=models, host=host, port=port, redis=redis, dev=dev or None
        )
        if workers > 1 and (settings.store_url.startswith("duckdb") or not settings.redis_url):
            raise UserError(
                "several workers need a PostgreSQL store and --redis (a DuckDB file has one writer)"
            )
        check_backends(settings)
    run_server(settings, workers)


def serving_settings(
    config: Path | None,
    *,
    store: str | None,
    models: Path | None = None,
    host: str | None = None,
    port: int | None = None,
    redis: str | None = None,
    dev: bool | None = None,
) -> ServingSettings:
    """Settings for `serve`: the options over the environment over ``config`` (default: the project
    file when there is one); the store URL falls back to the project file's ``[store] url``."""
    from fusionrec.project import PROJECT_FILE
    from fusionrec.serving.settings import load_settings

    project()  # the whole project file validated, whichever file the settings come from
    if config is None and PROJECT_FILE.is_file():
        config = PROJECT_FILE
    return load_settings(
        config, store_url=store, models_dir=models, host=host, port=port, redis_url=redis, dev=dev
    )


def check_backends(settings: ServingSettings) -> None:
    """Fail before start-up, in one line, when the store does not exist or Redis does not answer."""
    from fusionrec.data.store import open_store
    from fusionrec.serving.redis_client import check_reachable

    open_store(settings.store_url, create=False).close()
    if settings.redis_url:
        check_reachable(settings.redis_url)


def run_server(settings: ServingSettings, workers: int = 1) -> None:
    """Run uvicorn with the service app until stopped; a store held by another writer is one line."""
    import uvicorn

    from fusionrec.data.store import StoreLockedError
    from fusionrec.serving.app import create_app

    err.print(f"fusionrec API on http://{settings.host}:{settings.port}/docs", highlight=False)
    if settings.dev:
        err.print(
            "[bold yellow]dev mode:[/] every endpoint is open without an API key "
            f"(writes, admin, retraining), on {settings.host} only",
            highlight=False,
        )
    elif not settings.api_keys:
        err.print(
            "[bold yellow]no API keys configured:[/] reads are open; writes and admin calls are refused "
            "(401) until \\[serving] api_keys is set",
            highlight=False,
        )
    with user_errors():
        try:
            if workers > 1:
                os.environ.update(_env(settings.model_copy(update={"workers": workers})))
                uvicorn.run(
                    "fusionrec.serving.app:app_from_env",
                    factory=True,
                    host=settings.host,
                    port=settings.port,
                    workers=workers,
                )
            else:
                uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")
        except StoreLockedError as error:
            raise UserError(
                f"{error}. Stop the other writer, or send events to the running service's POST /v1/events."
            ) from error


def _env(settings: ServingSettings) -> dict[str, str]:
    """The settings as FUSIONREC_SERVING_* variables, for the worker processes uvicorn starts."""
    data = settings.model_dump(mode="json")
    if settings.signing_key is not None:  # dumped masked ("**********"): the workers need the key
        data["signing_key"] = settings.signing_key.get_secret_value()
    return {
        f"FUSIONREC_SERVING_{k.upper()}": json.dumps(v) if not isinstance(v, str) else v
        for k, v in data.items()
        if v is not None
    }


def consume(
    stream: Annotated[str, typer.Option("--stream", help="redis://HOST:PORT/STREAM")],
    store: StoreOption = None,
    redis: Annotated[
        str | None,
        typer.Option("--redis", help="Redis URL of the service's online state.", show_default="none"),
    ] = None,
    group: Annotated[str, typer.Option("--group", help="Consumer group.")] = "fusionrec",
    consumer: Annotated[
        str | None, typer.Option("--consumer", help="Consumer name.", show_default="the host name")
    ] = None,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Messages read per call.")] = 1000,
    drain: Annotated[bool, typer.Option("--drain", help="Exit once the stream is read to its end.")] = False,
) -> None:
    """Ingest events from a Redis stream (consumer group, acknowledged after commit).

    Example: `fusionrec consume --stream redis://127.0.0.1:6379/events --store postgresql://...`
    """
    from fusionrec.data.store import StoreLockedError
    from fusionrec.serving.redis_client import check_reachable
    from fusionrec.serving.service import Service
    from fusionrec.serving.settings import load_settings
    from fusionrec.serving.stream import StreamConsumer, parse_stream_url

    with user_errors():
        try:
            address = parse_stream_url(stream)
        except ValueError as error:
            raise UserError(str(error)) from None
        check_reachable(address.redis_url)
        url = store_url(store)
        try:
            config = project()  # the shop's event types and its names for them apply to the stream too
            settings = load_settings(
                None,
                store_url=url,
                redis_url=redis,
                log_exposures=False,
                event_types=config.event_types,
                event_aliases=config.event_aliases,
            )
            service = Service(settings)
        except StoreLockedError:
            raise UserError(
                f"{url} is held by another process (a running `fusionrec serve`?). DuckDB has one writer: "
                "run the service with FUSIONREC_SERVING_STREAM_URL to consume in it, or use a PostgreSQL store."
            ) from None
    reader = StreamConsumer(stream, service.ingest, group=group, consumer=consumer, batch=batch)
    signal.signal(signal.SIGTERM, lambda *_: reader.stop())
    try:
        totals = reader.run(idle_exit=drain)
    except KeyboardInterrupt:
        totals = reader.totals
    finally:
        reader.close()
        service.close()
    out = totals.to_dict()
    err.print(f"stored {out['stored']}, duplicates {out['duplicates']}, quarantined {out['quarantined']}")
