"""`fusionrec demo`: the main job, from a generated (or your own) shop to a served fused model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from fusionrec.cli.common import JsonOption, emit_json, err, print_table, user_errors
from fusionrec.cli.train import BudgetOption, budget_seconds


def demo(
    workdir: Annotated[
        Path, typer.Option("--dir", help="Working folder: DIR/shop.duckdb (store) and DIR/models.")
    ] = Path("demo-data"),
    events: Annotated[int, typer.Option("--events", min=1000, help="Events to generate.")] = 200_000,
    seed: Annotated[
        int, typer.Option("--seed", help="Random seed: the same seed gives the same shop and metrics.")
    ] = 0,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="Use your own canonical events file or folder instead.",
            show_default="generate one",
        ),
    ] = None,
    serve_api: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Serve the trained model until stopped (Ctrl-C).")
    ] = True,
    host: Annotated[
        str, typer.Option("--host", help="Address to serve on (dev mode: a loopback address only).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to serve on.")] = 8000,
    budget: BudgetOption = None,
    json_path: JsonOption = None,
) -> None:
    """The main job: generate (or read) a shop, ingest it, train the fused recommender, serve it.

    Training is `fusionrec train`'s automatic search: it profiles the shop, screens a portfolio of
    sources on validation windows, grows a fused ranker and ships the best of the fused ranker, the
    blend and every single source (a fused model that loses to one of its sources is never
    shipped); the shipped model's metrics on the last 7 days print beside a popularity baseline.
    Then it serves the API, its docs and the dashboard for local use (every endpoint open,
    127.0.0.1 only) until Ctrl-C.

    Examples:

        fusionrec demo                              # 200k events, then /docs
        fusionrec demo --data my-shop/ --port 9000  # your own events
        fusionrec demo --events 50000 --no-serve    # train only
    """
    from fusionrec.cli.data import print_stats
    from fusionrec.cli.serve import check_backends, run_server, serving_settings
    from fusionrec.cli.train import print_metrics, train_from_store
    from fusionrec.data.sources import ingest_source
    from fusionrec.data.stats import store_stats
    from fusionrec.data.store import open_store
    from fusionrec.data.synthetic import generate_shop

    with user_errors():
        workdir.mkdir(parents=True, exist_ok=True)
        source = data
        if source is None:
            source = workdir / "shop"
            err.rule(f"1. generating a shop of {events:,} events in {source}")
            generate_shop(source, n_events=events, seed=seed)
        store_url = f"duckdb:///{(workdir / 'shop.duckdb').resolve()}"
        err.rule(f"2. ingesting {source} into {store_url}")
        with open_store(store_url) as event_store:
            report = ingest_source(event_store, source)
            result: dict[str, Any] = {"ingest": report.to_dict(), "stats": store_stats(event_store)}
        print_table(
            "ingest", {k: result["ingest"][k] for k in ("read", "stored", "duplicates", "quarantined")}
        )
        print_stats(result["stats"])
        models_dir = workdir / "models"
        err.rule(f"3. choosing and training the pipeline (the automatic search) into {models_dir}")
        _, result["train"] = train_from_store(
            store_url,
            models_dir,
            trained_by="fusionrec demo",
            budget_seconds=budget_seconds(budget),
        )
        print_metrics(result["train"])
    emit_json(result, json_path)
    if not serve_api:
        return
    with user_errors():
        settings = serving_settings(None, store=store_url, models=models_dir, host=host, port=port, dev=True)
        # The widget on a page at /demo-shop; money in euros, as that page shows it, unless configured.
        settings = settings.model_copy(update={"demo_shop": True, "currency": settings.currency or "EUR"})
        check_backends(settings)
    err.rule("4. serving in dev mode (every endpoint open, 127.0.0.1 only)")
    err.print(f"API docs:   http://{host}:{port}/docs", highlight=False)
    err.print(f"dashboard:  http://{host}:{port}/dashboard/", highlight=False)
    err.print(
        f"demo shop:  http://{host}:{port}/demo-shop (the widget of /sdk/fusionrec.js)", highlight=False
    )
    err.print(f"try:        curl 'http://{host}:{port}/v1/recommendations?user_id=u0&k=5'", highlight=False)
    run_server(settings)
