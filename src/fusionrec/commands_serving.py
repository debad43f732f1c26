"""Typer command functions `serve` and `consume` (registered in `fusionrec.cli` by the lead)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated

import typer


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(2)


def serve(
    store: Annotated[
        str | None, typer.Option("--store", help="Store URL (duckdb:///shop.duckdb, postgresql://...).")
    ] = None,
    models: Annotated[
        Path | None, typer.Option("--models", help="Model repository (fusionrec train --out DIR).")
    ] = None,
    host: Annotated[str | None, typer.Option("--host")] = None,
    port: Annotated[int | None, typer.Option("--port")] = None,
    config: Annotated[
        Path | None, typer.Option("--config", help="fusionrec.toml ([serving] section).")
    ] = None,
    redis: Annotated[
        str | None, typer.Option("--redis", help="Redis URL for shared online state and caches.")
    ] = None,
    workers: Annotated[
        int, typer.Option("--workers", min=1, help="Processes (needs PostgreSQL + Redis).")
    ] = 1,
) -> None:
    """Serve recommendations over HTTP (API docs at /docs).

    Example: [bold]fusionrec serve --store duckdb:///shop.duckdb --models models/[/]
    """
    import uvicorn

    from fusionrec.data.store import StoreLockedError
    from fusionrec.serving.app import create_app
    from fusionrec.serving.settings import SettingsError, load_settings

    if config is None and Path("fusionrec.toml").is_file():
        config = Path("fusionrec.toml")
    try:
        settings = load_settings(
            config, store_url=store, models_dir=models, host=host, port=port, redis_url=redis
        )
    except SettingsError as error:
        _fail(str(error))
    if workers > 1 and (settings.store_url.startswith("duckdb") or not settings.redis_url):
        _fail("several workers need a PostgreSQL store and --redis (a DuckDB file has one writer)")
    typer.secho(f"fusionrec API on http://{settings.host}:{settings.port}/docs", err=True)
    try:
        if workers > 1:
            import os

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
        _fail(f"{error}. Stop the other writer, or send events to the running service's POST /v1/events.")


def _env(settings: object) -> dict[str, str]:
    import json

    from fusionrec.serving.settings import ServingSettings

    assert isinstance(settings, ServingSettings)
    data = settings.model_dump(mode="json")
    return {
        f"FUSIONREC_SERVING_{k.upper()}": json.dumps(v) if not isinstance(v, str) else v
        for k, v in data.items()
        if v is not None
    }


def consume(
    stream: Annotated[str, typer.Option("--stream", help="redis://HOST:PORT/STREAM")],
    store: Annotated[str, typer.Option("--store", help="Store URL the events go to.")],
    redis: Annotated[
        str | None, typer.Option("--redis", help="Redis URL of the service's online state.")
    ] = None,
    group: Annotated[str, typer.Option("--group")] = "fusionrec",
    consumer: Annotated[
        str | None, typer.Option("--consumer", help="Consumer name (default: host name).")
    ] = None,
    batch: Annotated[int, typer.Option("--batch", min=1)] = 1000,
    drain: Annotated[bool, typer.Option("--drain", help="Exit once the stream is read to its end.")] = False,
) -> None:
    """Ingest events from a Redis stream (consumer group, acknowledged after commit).

    Example: [bold]fusionrec consume --stream redis://127.0.0.1:6379/events --store postgresql://...[/]
    """
    from fusionrec.data.store import StoreLockedError
    from fusionrec.serving.service import Service
    from fusionrec.serving.settings import load_settings
    from fusionrec.serving.stream import StreamConsumer

    try:
        settings = load_settings(None, store_url=store, redis_url=redis, log_exposures=False)
        service = Service(settings)
    except StoreLockedError:
        _fail(
            f"{store} is held by another process (a running `fusionrec serve`?). DuckDB has one writer: "
            "run the service with FUSIONREC_SERVING_STREAM_URL to consume in it, or use a PostgreSQL store."
        )
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
    typer.echo(
        f"stored {out['stored']}, duplicates {out['duplicates']}, quarantined {out['quarantined']}",
        file=sys.stderr,
    )
