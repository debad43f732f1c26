"""Data commands: `generate` a synthetic shop, `ingest` files into a store, `stats` of a store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from fusionrec.cli.common import (
    JsonOption,
    StoreOption,
    UserError,
    emit_json,
    err,
    open_existing_store,
    print_table,
    store_url,
    user_errors,
)


def generate(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for events/items/users.parquet.")] = Path(
        "shop"
    ),
    events: Annotated[int, typer.Option("--events", min=1, help="Number of events to generate.")] = 100_000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same shop).")] = 0,
    json_path: JsonOption = None,
) -> None:
    """Generate a synthetic shop (catalogue, customers, sessions) as Parquet.

    Example: `fusionrec generate --events 1000000 --seed 7 --out shop/`
    """
    from fusionrec.data.synthetic import generate_shop

    with user_errors():
        summary = generate_shop(out_dir, n_events=events, seed=seed)
    result = summary.to_dict() if hasattr(summary, "to_dict") else dict(vars(summary))
    print_table(
        f"generated shop in {out_dir}", {k: v for k, v in result.items() if isinstance(v, int | float | str)}
    )
    emit_json(result, json_path)


def parse_mapping(text: str | None) -> dict[str, str] | None:
    """``--map 'ts=timestamp,sku=item_id'`` as ``{"ts": "timestamp", "sku": "item_id"}``."""
    if not text:
        return None
    mapping = {}
    for pair in text.split(","):
        if "=" not in pair:
            raise UserError(f"--map expects source=canonical pairs separated by commas, got {pair!r}")
        source, target = (part.strip() for part in pair.split("=", 1))
        mapping[source] = target
    return mapping


def ingest(
    path: Annotated[Path, typer.Argument(help="Events file (CSV, Parquet, JSON lines) or a folder.")],
    store: StoreOption = None,
    items: Annotated[
        Path | None,
        typer.Option("--items", help="Item catalogue file.", show_default="items.parquet of a folder"),
    ] = None,
    users: Annotated[
        Path | None,
        typer.Option("--users", help="User attributes file.", show_default="users.parquet of a folder"),
    ] = None,
    format_name: Annotated[
        str,
        typer.Option(
            "--format",
            help="canonical, rees46, otto, tianchi, diginetica, lightgcn, s3rec, movielens, dunnhumby; "
            "costs loads campaign costs (date, channel, campaign, cost).",
        ),
    ] = "canonical",
    mapping: Annotated[
        str | None,
        typer.Option(
            "--map",
            help="Column mapping for canonical files: 'ts=timestamp,sku=item_id'.",
            show_default="the canonical names",
        ),
    ] = None,
    max_quarantine: Annotated[
        float,
        typer.Option(
            "--max-quarantine", min=0.0, max=1.0, help="Fail when more than this share is rejected."
        ),
    ] = 0.5,
    json_path: JsonOption = None,
) -> None:
    """Validate, clean and store events (and items, users); creates the store if needed.

    Idempotent: ingesting the same file twice stores each event once. Rejected rows go to the
    store's quarantine with their row number and reason; good rows are always kept.

    Examples:

        fusionrec ingest shop/ --store duckdb:///shop.duckdb
        fusionrec ingest otto.jsonl --format otto --store postgresql://postgres@127.0.0.1/test --json -
    """
    from fusionrec.data.sources import ingest_source
    from fusionrec.data.store import open_store

    with user_errors():
        if not path.exists():
            raise UserError(f"{path} does not exist")
        url = store_url(store)
        if format_name == "costs":
            _ingest_costs(path, url, json_path)
            return
        with open_store(url) as event_store:
            report = ingest_source(
                event_store,
                path,
                format_name=format_name,
                items=items,
                users=users,
                column_map=parse_mapping(mapping),
            )
    result = report.to_dict()
    print_table(
        f"ingested {path}",
        {
            k: result[k]
            for k in ("read", "stored", "duplicates", "quarantined", "items", "users")
            if k in result
        },
    )
    emit_json(result, json_path)
    if report.failed(max_quarantine):
        err.print(
            f"[bold red]error:[/] {result['quarantined']} of {result['read']} rows quarantined "
            f"(limit {max_quarantine:.0%}); see the quarantine table for reasons"
        )
        raise typer.Exit(1)


def _ingest_costs(path: Path, url: str, json_path: str | None) -> None:
    """Campaign costs (date, channel, campaign, cost) for cost per acquisition."""
    from fusionrec.analytics.tables import load_campaign_costs
    from fusionrec.data.store import open_store

    with open_store(url) as event_store:
        written = load_campaign_costs(event_store, path)
    print_table(f"campaign costs from {path}", {"rows written": written})
    emit_json({"source": str(path), "campaign_costs": written}, json_path)


def stats(store: StoreOption = None, json_path: JsonOption = None) -> None:
    """Counts, event-type mix, sparsity and long-tail shape of a store.

    Example: `fusionrec stats --store duckdb:///shop.duckdb --json -`
    """
    from fusionrec.data.stats import store_stats

    with user_errors(), open_existing_store(store) as event_store:
        result = store_stats(event_store)
    print_stats(result)
    emit_json(result, json_path)


def print_stats(result: dict[str, Any]) -> None:
    """The store's headline numbers and its event-type mix, as two tables."""
    print_table(
        "store",
        {
            "events": result["events"],
            "users": result["users"],
            "items": result["items"],
            "sessions": result["sessions"],
            "bot events": result["bot_events"],
            "period": f"{result['first_event']} → {result['last_event']}",
            "density": f"{result['density']:.5f}",
            "top 10% items' share": result["long_tail"]["top_10pct_items_share"],
            "item popularity Gini": result["long_tail"]["item_popularity_gini"],
        },
    )
    print_table("event types", result["event_types"])
