"""`fusionrec report`: the business report as one offline HTML file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fusionrec.cli.common import (
    EngineOption,
    StoreOption,
    engine_settings,
    err,
    open_existing_store,
    project,
    user_errors,
)


def report(
    out_file: Annotated[Path, typer.Option("--out", help="The HTML file to write.")] = Path("report.html"),
    store: StoreOption = None,
    start: Annotated[
        str | None, typer.Option("--start", help="First day (YYYY-MM-DD).", show_default="the first event")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--end", help="Last day (YYYY-MM-DD).", show_default="the last event")
    ] = None,
    category: Annotated[
        str | None, typer.Option("--category", help="Only this category (path prefix).", show_default="all")
    ] = None,
    leaderboard: Annotated[
        list[Path] | None,
        typer.Option(
            "--leaderboard", help="`fusionrec evaluate --json` files to include.", show_default="none"
        ),
    ] = None,
    models: Annotated[
        Path | None,
        typer.Option(
            "--models", help="Model repository: each version's offline metrics.", show_default="none"
        ),
    ] = None,
    engine: EngineOption = None,
) -> None:
    """Write the business report as one offline HTML file.

    Funnel, KPI series with forecasts, cohorts, segments, association rules, A/B results and the
    model leaderboard, with date and category filters that work offline.

    With --engine spark the same queries run on Spark (over the store's events, or the Parquet
    that fusionrec.toml's \\[engine] events names).

    Example: `fusionrec report --store duckdb:///shop.duckdb --out report.html --start 2026-02-01`
    """
    from fusionrec.analytics.report import build_report
    from fusionrec.engine import get_engine
    from fusionrec.engine.sql_source import EngineSource

    with user_errors(), err.status("building the report"):
        boards = [*(leaderboard or []), *([models] if models else [])]
        settings = engine_settings(engine)
        # Money in the shop's currency: fusionrec.toml's [serving] currency, as the dashboard shows it.
        currency = project().serving.get("currency")
        options = {
            "start": start,
            "end": end,
            "category": category,
            "leaderboard": boards,
            "currency": currency,
        }
        with open_existing_store(store) as event_store:
            if settings is None:
                written = build_report(event_store, out_file, **options)
            else:
                with get_engine(settings, event_store) as batch_engine:
                    written = build_report(EngineSource(batch_engine), out_file, **options)  # type: ignore[arg-type]
    err.print(f"wrote {written}")
