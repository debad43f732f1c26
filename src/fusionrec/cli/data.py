"""Data commands: `generate` a synthetic shop, `ingest` files into a store, `quarantine` lists what
ingestion rejected, `stats` of a store."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from fusionrec.cli.common import (
    JsonOption,
    StoreOption,
    UserError,
    emit_json,
    err,
    fail,
    open_existing_store,
    print_table,
    project,
    store_url,
    user_errors,
)

if TYPE_CHECKING:
    from fusionrec.data.quarantine import ReasonGroup


def generate(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for events/items/users.parquet.")] = Path(
        "shop"
    ),
    events: Annotated[int, typer.Option("--events", min=1, help="Number of events to generate.")] = 100_000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same shop).")] = 0,
    promotions: Annotated[
        int,
        typer.Option(
            "--promotions",
            min=0,
            max=12,
            help="Promotions to plant, with known effects (promotions.parquet; `fusionrec campaigns` measures them).",
        ),
    ] = 0,
    image_vectors: Annotated[
        int,
        typer.Option(
            "--image-vectors",
            min=0,
            max=1024,
            help="Plant an image_embedding of this many floats per item (a noisy view of its hidden factors); 0: none.",
        ),
    ] = 0,
    attribute_tastes: Annotated[
        float,
        typer.Option(
            "--attribute-tastes",
            min=0.0,
            max=1.0,
            help="Share of users whose age band follows their favourite department (0: independent, the default).",
        ),
    ] = 0.0,
    json_path: JsonOption = None,
) -> None:
    """Generate a synthetic shop (catalogue, customers, sessions) as Parquet.

    Example: `fusionrec generate --events 1000000 --seed 7 --out shop/ --promotions 3 --image-vectors 32`
    """
    from fusionrec.data.synthetic import ShopConfig, generate_shop

    with user_errors():
        config = ShopConfig(
            promotions=promotions, image_vectors=image_vectors, attribute_tastes=attribute_tastes
        )
        summary = generate_shop(out_dir, n_events=events, seed=seed, config=config)
    result = summary.to_dict() if hasattr(summary, "to_dict") else dict(vars(summary))
    print_table(
        f"generated shop in {out_dir}", {k: v for k, v in result.items() if isinstance(v, int | float | str)}
    )
    emit_json(result, json_path)


def parse_mapping(text: str | None, option: str = "--map") -> dict[str, str] | None:
    """``--map 'ts=timestamp,sku=item_id'`` as ``{"ts": "timestamp", "sku": "item_id"}``."""
    if not text:
        return None
    mapping = {}
    for pair in text.split(","):
        if "=" not in pair:
            raise UserError(f"{option} expects source=canonical pairs separated by commas, got {pair!r}")
        source, target = (part.strip() for part in pair.split("=", 1))
        mapping[source] = target
    return mapping


def _map_option(name: str, what: str, example: str) -> Any:
    return typer.Option(
        name,
        help=f"Column mapping of the {what} file: '{example}' (source=canonical, comma-separated).",
        show_default="[ingest] of fusionrec.toml, else the canonical names",
    )


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
            "costs loads campaign costs (date, channel, campaign, cost); promotions loads the "
            "promotions calendar (promotion_id, item_id or category, start, end, discount).",
        ),
    ] = "canonical",
    mapping: Annotated[str | None, _map_option("--map", "events", "ts=timestamp,sku=item_id")] = None,
    items_mapping: Annotated[
        str | None, _map_option("--items-map", "--items", "sku=item_id,name=title")
    ] = None,
    users_mapping: Annotated[str | None, _map_option("--users-map", "--users", "customer=user_id")] = None,
    delimiter: Annotated[
        str | None,
        typer.Option(
            "--delimiter",
            help="CSV field separator of every file: one character, or tab, semicolon, comma, pipe.",
            show_default="[ingest] of fusionrec.toml, else sniffed from each file's header line",
        ),
    ] = None,
    decimal: Annotated[
        str | None,
        typer.Option(
            "--decimal",
            help="Decimal mark of prices and quantities written as text: '.' or ','.",
            show_default="[ingest] of fusionrec.toml, else '.'",
        ),
    ] = None,
    timestamp_format: Annotated[
        str | None,
        typer.Option(
            "--timestamp-format",
            help="strptime format of text timestamps, e.g. '%d.%m.%Y %H:%M'.",
            show_default="[ingest] of fusionrec.toml, else ISO 8601",
        ),
    ] = None,
    epoch_unit: Annotated[
        str | None,
        typer.Option(
            "--epoch-unit",
            help="Unit of timestamps written as epoch numbers: s, ms, us or ns. Without it a "
            "number is refused (quarantined) rather than guessed.",
            show_default="[ingest] of fusionrec.toml, else none",
        ),
    ] = None,
    timezone: Annotated[
        str | None,
        typer.Option(
            "--timezone",
            help="Time zone of timestamps written without one, e.g. Europe/Berlin.",
            show_default="[ingest] of fusionrec.toml, else UTC",
        ),
    ] = None,
    warn_share: Annotated[
        float | None,
        typer.Option(
            "--warn-share",
            min=0.0,
            max=1.0,
            help="Warn when more than this share of rows is quarantined (or a whole event type).",
            show_default="[ingest] of fusionrec.toml, else 0.05",
        ),
    ] = None,
    strict: Annotated[
        bool,
        typer.Option("--strict", help="A quarantine warning fails the command (exit 2).", show_default=True),
    ] = False,
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
    store's quarantine with their row number and reason (listed by `fusionrec quarantine`); good
    rows are always kept. A folder's promotions.parquet (a generated shop has one) is loaded as the
    promotions calendar, as `--format promotions` would. The console groups the reasons, with a sample row each.

    Examples:

        fusionrec ingest shop/ --store duckdb:///shop.duckdb
        fusionrec ingest orders.csv --items catalogue.csv --items-map 'sku=item_id' --delimiter ';' --decimal ',' --timestamp-format '%d.%m.%Y %H:%M' --timezone Europe/Berlin
        fusionrec ingest otto.jsonl --format otto --store postgresql://postgres@127.0.0.1/test --json -
    """
    from fusionrec.data.quarantine import groups_from_counts
    from fusionrec.data.schema import EventTypes
    from fusionrec.data.sources import ingest_source
    from fusionrec.data.store import open_store

    with user_errors():
        if not path.exists():
            raise UserError(f"{path} does not exist")
        url = store_url(store)
        if format_name == "costs":
            _ingest_costs(path, url, json_path)
            return
        if format_name == "promotions":
            _ingest_promotions(path, url, json_path)
            return
        config = project()
        reading = config.ingest.merged(
            map=parse_mapping(mapping, "--map"),
            items_map=parse_mapping(items_mapping, "--items-map"),
            users_map=parse_mapping(users_mapping, "--users-map"),
            delimiter=delimiter,
            decimal=decimal,
            timestamp_format=timestamp_format,
            epoch_unit=epoch_unit,
            timezone=timezone,
            warn_share=warn_share,
            strict=strict or None,
        )
        with open_store(url) as event_store:
            report = ingest_source(
                event_store,
                path,
                format_name=format_name,
                items=items,
                users=users,
                options=reading,
                aliases=config.event_aliases,
                event_types=EventTypes.from_weights(config.event_types),
            )
            calendar = path / "promotions.parquet" if path.is_dir() else None
            if calendar is not None and calendar.is_file():  # a generated shop's promotions come along
                from fusionrec.analytics.promotions import load_promotions

                try:
                    promotions = load_promotions(event_store, calendar).to_dict()
                except ValueError as error:
                    raise UserError(f"{calendar}: {error}") from None
            else:
                promotions = None
    result = report.to_dict()
    if promotions is not None:
        result["promotions"] = promotions
    print_table(
        f"ingested {path}",
        {
            k: result[k]
            for k in ("read", "stored", "duplicates", "quarantined", "items", "users")
            if k in result
        }
        | ({"promotions": len(promotions["promotions"])} if promotions else {}),
    )
    print_reasons("quarantined rows by reason", groups_from_counts(report.reasons, report.samples))
    emit_json(result, json_path)
    if report.failed(max_quarantine):
        err.print(
            f"[bold red]error:[/] {result['quarantined']} of {result['read']} rows quarantined "
            f"(limit {max_quarantine:.0%}); list them with `fusionrec quarantine`"
        )
        raise typer.Exit(1)
    _warn_or_fail(report.warnings(reading.warn_share), strict=reading.strict)


def _warn_or_fail(warnings: list[str], *, strict: bool) -> None:
    """Print each warning; with ``strict``, the first one is the command's error (exit 2)."""
    if strict and warnings:
        fail(f"{'; '.join(warnings)} (--strict)")
    for line in warnings:
        err.print(f"[bold yellow]warning:[/] {escape(line)}", highlight=False, soft_wrap=True)


def print_reasons(title: str, groups: list[ReasonGroup]) -> None:
    """Reasons with their row counts and one sample row each (source:row and the raw row)."""
    if not groups:
        return
    table = Table(title=title)
    table.add_column("reason", style="bold")
    table.add_column("rows", justify="right")
    table.add_column("sample row", overflow="fold")
    for group in groups:
        where = f"{group.sample.get('source', '')}:{group.sample.get('row_number', '')}"
        table.add_row(
            escape(group.reason), f"{group.count:,}", escape(f"{where} {group.sample.get('raw', '')}")
        )
    err.print(table)


def quarantine(
    store: StoreOption = None,
    out_path: Annotated[
        Path | None,
        typer.Option("--out", help="Write every quarantined row to this CSV file.", show_default="no file"),
    ] = None,
    json_path: JsonOption = None,
) -> None:
    """List the rows ingestion rejected, grouped by reason with counts and a sample row each.

    Examples:

        fusionrec quarantine --store duckdb:///shop.duckdb
        fusionrec quarantine --out rejected.csv --json -
    """
    import pyarrow.csv as pacsv

    from fusionrec.data.quarantine import group_by_reason

    with user_errors(), open_existing_store(store) as event_store:
        rows = event_store.quarantine_arrow()
    groups = group_by_reason(rows)
    print_table("quarantine", {"rows": rows.num_rows, "reasons": len(groups)})
    print_reasons("quarantined rows by reason", groups)
    if out_path is not None:
        with user_errors():
            out_path.parent.mkdir(parents=True, exist_ok=True)
            pacsv.write_csv(rows, out_path)
        err.print(f"wrote {out_path}")
    emit_json({"rows": rows.num_rows, "reasons": [g.to_dict() for g in groups]}, json_path)


def _ingest_costs(path: Path, url: str, json_path: str | None) -> None:
    """Campaign costs (date, channel, campaign, cost) for cost per acquisition."""
    from fusionrec.analytics.tables import load_campaign_costs
    from fusionrec.data.store import open_store

    with open_store(url) as event_store:
        try:
            written = load_campaign_costs(event_store, path)
        except ValueError as error:  # a missing column or a bad row: one line, not a traceback
            raise UserError(f"{path}: {error}") from None
    print_table(f"campaign costs from {path}", {"rows written": written})
    emit_json({"source": str(path), "campaign_costs": written}, json_path)


def _ingest_promotions(path: Path, url: str, json_path: str | None) -> None:
    """The promotions calendar (CSV or Parquet); bad rows are quarantined, the rest stored."""
    from fusionrec.analytics.promotions import load_promotions
    from fusionrec.data.store import open_store

    with open_store(url) as event_store:
        try:
            loaded = load_promotions(event_store, path)
        except ValueError as error:  # a missing column, no usable row, an unreadable file
            raise UserError(f"{path}: {error}") from None
    result = {"source": str(path), **loaded.to_dict()}
    print_table(
        f"promotions from {path}",
        {"rows read": loaded.read, "rows stored": loaded.stored, "quarantined": result["quarantined"]},
    )
    for reason, count in loaded.quarantined.items():
        err.print(f"[bold yellow]warning:[/] {count} row(s) quarantined: {escape(reason)}", highlight=False)
    emit_json(result, json_path)


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
