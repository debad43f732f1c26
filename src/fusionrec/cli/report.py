"""`fusionrec report`: the business report as one offline HTML file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from fusionrec.cli.common import (
    EngineOption,
    JsonOption,
    StoreOption,
    UserError,
    emit_json,
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


def campaigns(
    store: StoreOption = None,
    start: Annotated[
        str | None,
        typer.Option(
            "--start", help="First day (YYYY-MM-DD) of the CPA/ROAS period.", show_default="the first cost"
        ),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option(
            "--end", help="Last day (YYYY-MM-DD) of the CPA/ROAS period.", show_default="the last cost"
        ),
    ] = None,
    grain: Annotated[
        str | None,
        typer.Option("--grain", help="CPA and ROAS per day, week or month.", show_default="the whole period"),
    ] = None,
    pre_days: Annotated[
        int | None,
        typer.Option(
            "--pre-days", min=1, help="Days of the pre-period.", show_default="as long as the window"
        ),
    ] = None,
    json_path: JsonOption = None,
) -> None:
    """CPA and ROAS per campaign, and what each promotion and campaign did to conversion and revenue.

    Effects are differences-in-differences against comparable items (promotions) or the other
    channels (campaigns), with 95 % intervals (docs/analytics.md, "Campaigns and promotions").

    Example: `fusionrec campaigns --store duckdb:///shop.duckdb --grain month --json -`
    """
    from fusionrec.analytics.campaigns import campaign_analysis
    from fusionrec.analytics.queries import GRAINS, Filters

    with user_errors():
        if grain is not None and grain not in GRAINS:
            raise UserError(f"--grain must be one of {', '.join(GRAINS)}, not {grain!r}")
        try:
            filters = Filters.of(start, end)
        except ValueError as error:
            raise UserError(str(error)) from None
        with open_existing_store(store) as event_store, err.status("analysing campaigns and promotions"):
            result = campaign_analysis(event_store, filters, grain=grain, pre_days=pre_days)
    _print_campaigns(result)
    emit_json(result, json_path)


def _print_campaigns(result: dict[str, Any]) -> None:
    """CPA/ROAS per campaign, then one line per effect, on standard error."""
    from rich.markup import escape
    from rich.table import Table

    if not result["has"]["campaign_costs"] and not result["has"]["promotions"]:
        err.print(
            "no campaign costs and no promotions in this store: load them with "
            "`fusionrec ingest FILE --format costs` / `--format promotions`"
        )
        return

    def money(value: float | None) -> str:
        return "unknown" if value is None else f"{value:,.2f}"

    if result["kpis"]:
        table = Table(title="campaigns: cost per acquisition and return on ad spend")
        for column in ("period", "campaign", "channel", "cost", "new customers", "revenue", "CPA", "ROAS"):
            table.add_column(
                column, justify="left" if column in ("period", "campaign", "channel") else "right"
            )
        for row in result["kpis"]:
            table.add_row(
                row["period"] or "all",
                row["campaign"],
                row["channel"],
                money(row["cost"]),
                f"{row['acquisitions']:,.1f}",
                money(row["revenue"]),
                money(row["cpa"]),
                "unknown" if row["roas"] is None else f"{row['roas']:.2f}",
            )
        err.print(table)
    for effect in [*result["promotions"], *result["campaigns"]]:
        err.print(
            f"[bold]{effect['kind']} {effect['name']}[/] ({effect['target']}, {effect['start']} to "
            f"{effect['end']}, {effect['treated']} treated vs {effect['controls']} controls): "
            f"{effect['conversion']['verdict']}; {effect['revenue']['verdict']}"
            + "".join(f" ({escape(note)})" for note in effect["notes"]),
            highlight=False,
            soft_wrap=True,
        )
