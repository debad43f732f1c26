"""The `fusionrec` command line: one Typer app, one small function per command.

Every command that reports takes ``--json PATH`` (``-`` for standard output) and writes one JSON
object there; progress and logs go to standard error. Bad user input ends in one clear line and a
non-zero exit, never a traceback.
"""

from __future__ import annotations

import json
import logging
import sys
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

if TYPE_CHECKING:
    from fusionrec.data.dataset import Dataset
    from fusionrec.engine import EngineSettings

app = typer.Typer(
    name="fusionrec",
    help=(
        "Recommender system for online shops.\n\n"
        "Quick start:\n\n"
        "  fusionrec demo                                   # generate a shop, ingest it, show its stats\n\n"
        "  fusionrec generate --events 1000000 --out shop/  # write a synthetic shop as Parquet\n\n"
        "  fusionrec ingest shop/ --store duckdb:///shop.duckdb\n\n"
        "  fusionrec stats --store duckdb:///shop.duckdb --json -\n\n"
        "  fusionrec evaluate --dataset amazon-beauty --models most_popular,item_knn,ease"
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)
# Leaderboards are wide: when stdout is a file or a pipe, don't squeeze them into 80 columns.
out = Console() if sys.stdout.isatty() else Console(width=160)
log = logging.getLogger("fusionrec")

DEFAULT_STORE = "duckdb:///fusionrec.duckdb"
JsonOption = Annotated[
    str | None, typer.Option("--json", help="Write the result as one JSON object to PATH ('-' = stdout).")
]
StoreOption = Annotated[
    str,
    typer.Option(
        "--store",
        envvar="FUSIONREC_STORE",
        help="Event store URL: duckdb:///relative.duckdb, duckdb:////abs/path.duckdb or postgresql://user@host/db.",
    ),
]


EngineOption = Annotated[
    str | None,
    typer.Option(
        "--engine",
        help="Run the batch work on duckdb or spark (Spark settings from fusionrec.toml's [engine]); "
        "default: the [engine] section when there is one, else in process.",
    ),
]


class UserError(Exception):
    """A mistake in what the user asked for; shown as one line, exit code 2."""


@app.callback()
def _main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging.")] = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=err, show_path=False, rich_tracebacks=False)],
        force=True,
    )


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the errors a user can cause into one line on stderr and a non-zero exit."""
    from fusionrec.data.dataset import DatasetError
    from fusionrec.data.formats import FormatError
    from fusionrec.data.store import StoreError
    from fusionrec.data.validate import IngestError
    from fusionrec.engine import EngineError, EngineSettingsError
    from fusionrec.evaluation.benchmarks import BenchmarkError
    from fusionrec.models.base import ModelError
    from fusionrec.models.registry import UnknownModelError

    known = (
        UserError,
        FormatError,
        IngestError,
        StoreError,
        DatasetError,
        BenchmarkError,
        ModelError,
        UnknownModelError,
        EngineError,
        EngineSettingsError,
        FileNotFoundError,
        tomllib.TOMLDecodeError,
    )
    try:
        yield
    except known as error:
        err.print(f"[bold red]error:[/] {error}", highlight=False)
        raise typer.Exit(2) from None
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "value"
        err.print(f"[bold red]error:[/] invalid {where}: {first['msg']}", highlight=False)
        raise typer.Exit(2) from None


def emit_json(result: dict[str, Any], path: str | None) -> None:
    """Write ``result`` to ``path`` ('-' = stdout) as one JSON object."""
    if not path:
        return
    text = json.dumps(result, indent=2, default=str)
    if path == "-":
        sys.stdout.write(text + "\n")
    else:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text + "\n")
        err.print(f"wrote {path}")


def _print_table(title: str, rows: dict[str, Any]) -> None:
    table = Table(title=title, show_header=False)
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    for key, value in rows.items():
        table.add_row(key, f"{value:,}" if isinstance(value, int) else str(value))
    err.print(table)


# --- generate ------------------------------------------------------------------------------------


@app.command()
def generate(
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for events/items/users.parquet.")] = Path(
        "shop"
    ),
    events: Annotated[int, typer.Option("--events", min=1, help="Number of events to generate.")] = 100_000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same shop).")] = 0,
    json_path: JsonOption = None,
) -> None:
    """Generate a synthetic shop (catalogue, customers, sessions) as Parquet.

    Example: [bold]fusionrec generate --events 1000000 --seed 7 --out shop/[/]
    """
    from fusionrec.data.synthetic import generate_shop

    with user_errors():
        summary = generate_shop(out_dir, n_events=events, seed=seed)
    result = summary.to_dict() if hasattr(summary, "to_dict") else dict(vars(summary))
    _print_table(
        f"generated shop in {out_dir}", {k: v for k, v in result.items() if isinstance(v, int | float | str)}
    )
    emit_json(result, json_path)


# --- ingest --------------------------------------------------------------------------------------


def _parse_mapping(text: str | None) -> dict[str, str] | None:
    if not text:
        return None
    mapping = {}
    for pair in text.split(","):
        if "=" not in pair:
            raise UserError(f"--map expects source=canonical pairs separated by commas, got {pair!r}")
        source, target = (part.strip() for part in pair.split("=", 1))
        mapping[source] = target
    return mapping


@app.command()
def ingest(
    path: Annotated[Path, typer.Argument(help="Events file (CSV, Parquet, JSON lines) or a folder.")],
    store: StoreOption = DEFAULT_STORE,
    items: Annotated[Path | None, typer.Option("--items", help="Item catalogue file.")] = None,
    users: Annotated[Path | None, typer.Option("--users", help="User attributes file.")] = None,
    format_name: Annotated[
        str,
        typer.Option(
            "--format",
            help="canonical (default), rees46, otto, tianchi, diginetica, lightgcn, s3rec, movielens, dunnhumby; "
            "costs loads campaign costs (date, channel, campaign, cost).",
        ),
    ] = "canonical",
    mapping: Annotated[
        str | None,
        typer.Option("--map", help="Column mapping for canonical files: 'ts=timestamp,sku=item_id'."),
    ] = None,
    max_quarantine: Annotated[
        float,
        typer.Option(
            "--max-quarantine", min=0.0, max=1.0, help="Fail when more than this share is rejected."
        ),
    ] = 0.5,
    json_path: JsonOption = None,
) -> None:
    """Validate, clean and store events (and items, users).

    Idempotent: ingesting the same file twice stores each event once. Rejected rows go to the
    store's quarantine with their row number and reason; good rows are always kept.

    Examples:

      [bold]fusionrec ingest shop/ --store duckdb:///shop.duckdb[/]

      [bold]fusionrec ingest otto.jsonl --format otto --store postgresql://postgres@127.0.0.1/test --json -[/]
    """
    from fusionrec.data.sources import ingest_source
    from fusionrec.data.store import open_store

    with user_errors():
        if not path.exists():
            raise UserError(f"{path} does not exist")
        if format_name == "costs":
            _ingest_costs(path, store, json_path)
            return
        with open_store(store) as event_store:
            report = ingest_source(
                event_store,
                path,
                format_name=format_name,
                items=items,
                users=users,
                column_map=_parse_mapping(mapping),
            )
    result = report.to_dict()
    _print_table(
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


def _ingest_costs(path: Path, store: str, json_path: str | None) -> None:
    """Campaign costs (date, channel, campaign, cost) for cost per acquisition."""
    from fusionrec.analytics.tables import load_campaign_costs
    from fusionrec.data.store import open_store

    with open_store(store) as event_store:
        written = load_campaign_costs(event_store, path)
    _print_table(f"campaign costs from {path}", {"rows written": written})
    emit_json({"source": str(path), "campaign_costs": written}, json_path)


# --- stats ---------------------------------------------------------------------------------------


@app.command()
def stats(store: StoreOption = DEFAULT_STORE, json_path: JsonOption = None) -> None:
    """Counts, event-type mix, sparsity and long-tail shape of a store.

    Example: [bold]fusionrec stats --store duckdb:///shop.duckdb --json -[/]
    """
    from fusionrec.data.stats import store_stats
    from fusionrec.data.store import open_store

    with user_errors(), open_store(store) as event_store:
        result = store_stats(event_store)
    _print_stats(result)
    emit_json(result, json_path)


def _print_stats(result: dict[str, Any]) -> None:
    _print_table(
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
    _print_table("event types", result["event_types"])


# --- report --------------------------------------------------------------------------------------


@app.command()
def report(
    out_file: Annotated[Path, typer.Option("--out", help="The HTML file to write.")] = Path("report.html"),
    store: StoreOption = DEFAULT_STORE,
    start: Annotated[str | None, typer.Option("--start", help="First day (YYYY-MM-DD).")] = None,
    end: Annotated[str | None, typer.Option("--end", help="Last day (YYYY-MM-DD).")] = None,
    category: Annotated[
        str | None, typer.Option("--category", help="Only this category (path prefix).")
    ] = None,
    leaderboard: Annotated[
        list[Path] | None, typer.Option("--leaderboard", help="`fusionrec evaluate --json` files to include.")
    ] = None,
    models: Annotated[
        Path | None, typer.Option("--models", help="Model repository: each version's offline metrics.")
    ] = None,
    engine: EngineOption = None,
) -> None:
    """Write the business report as one offline HTML file.

    Funnel, KPI series with forecasts, cohorts, segments, association rules, A/B results and the
    model leaderboard, with date and category filters that work offline.

    With --engine spark the same queries run on Spark (over the store's events, or the Parquet
    that fusionrec.toml's [engine] events names).

    Example: [bold]fusionrec report --store duckdb:///shop.duckdb --out report.html --start 2026-02-01[/]
    """
    from fusionrec.analytics.report import build_report
    from fusionrec.data.store import open_store
    from fusionrec.engine import get_engine
    from fusionrec.engine.settings import command_settings
    from fusionrec.engine.sql_source import EngineSource

    with user_errors(), err.status("building the report"):
        boards = [*(leaderboard or []), *([models] if models else [])]
        settings = command_settings(engine)
        options = {"start": start, "end": end, "category": category, "leaderboard": boards}
        if settings is None:
            written = build_report(store, out_file, **options)
        else:
            with open_store(store) as event_store, get_engine(settings, event_store) as batch_engine:
                written = build_report(EngineSource(batch_engine), out_file, **options)  # type: ignore[arg-type]
    err.print(f"wrote {written}")


# --- evaluate ------------------------------------------------------------------------------------


def _load_params(path: Path | None, overrides: list[str]) -> dict[str, dict[str, Any]]:
    """Hyperparameters per model from a TOML file (``[ease] l2 = 500``) and ``--set ease.l2=500``."""
    params: dict[str, dict[str, Any]] = {}
    if path is not None:
        params = {k: dict(v) for k, v in tomllib.loads(path.read_text()).items()}
    for item in overrides:
        key, sep, raw = item.partition("=")
        model, dot, name = key.partition(".")
        if not sep or not dot:
            raise UserError(f"--set expects model.param=value, got {item!r}")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        params.setdefault(model, {})[name] = value
    return params


@app.command()
def evaluate(
    dataset: Annotated[
        str,
        typer.Option(
            "--dataset",
            help="gowalla, amazon-beauty, movielens-100k, dunnhumby, diginetica-sample, synthetic, or FORMAT:PATH.",
        ),
    ],
    models: Annotated[str, typer.Option("--models", help="Comma-separated model names.")] = "most_popular",
    k: Annotated[str, typer.Option("--k", help="Cut-offs, comma-separated.")] = "10,20",
    params_file: Annotated[
        Path | None, typer.Option("--params", help="TOML file: [model] param = value.")
    ] = None,
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="model.param=value (repeatable).")
    ] = None,
    sampled: Annotated[
        int | None, typer.Option("--sampled", help="Rank against N sampled negatives (labelled as such).")
    ] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    markdown_path: Annotated[
        Path | None, typer.Option("--markdown", help="Write the table as Markdown.")
    ] = None,
    plot_path: Annotated[
        Path | None, typer.Option("--plot", help="Bar chart PNG of the headline metric.")
    ] = None,
    json_path: JsonOption = None,
    engine: EngineOption = None,
    refit: Annotated[
        bool,
        typer.Option(
            "--refit",
            help="Fit every model on train + validation before the test (early-stopped models are "
            "refit for the epochs they chose on validation), as the sequential benchmarks do.",
        ),
    ] = False,
) -> None:
    """Train each model and print a leaderboard beside the published numbers.

    Full ranking over all items with each user's training items masked (not for dunnhumby, where
    buying again is the point). Every result carries its protocol.

    Examples:

      [bold]fusionrec evaluate --dataset amazon-beauty --models most_popular,item_knn,ease[/]

      [bold]fusionrec evaluate --dataset gowalla --models ease --set ease.l2=500 --json results.json[/]

      [bold]fusionrec evaluate --dataset s3rec:/data/Toys_and_Games.txt --models ease --plot toys.png[/]

    With --engine duckdb|spark the training matrix is built by that engine's interactions job from
    the split's events (models that read the event log itself, such as sasrec, keep the in-memory
    data); the leaderboard's protocol names the engine.
    """
    from fusionrec.engine.dataset import EVENT_LOG_MODELS
    from fusionrec.engine.settings import command_settings
    from fusionrec.evaluation.benchmarks import load_benchmark, resolve_benchmark
    from fusionrec.evaluation.leaderboard import Leaderboard
    from fusionrec.evaluation.protocol import evaluate_model, full_protocol
    from fusionrec.models.registry import model_class

    with user_errors():
        cutoffs = _parse_ints(k, "--k")
        names = [m.strip() for m in models.split(",") if m.strip()]
        for name in names:
            model_class(name)  # fail fast on a typo, before loading data
        params = _load_params(params_file, overrides or [])
        benchmark = resolve_benchmark(dataset)
        with err.status(f"loading {benchmark.name}"):
            split, description = load_benchmark(benchmark, seed=seed)
        settings = command_settings(engine)
        protocol = full_protocol(description, cutoffs, seed, sampled)
        if refit:
            protocol["refit"] = "every model fit on train + validation before the test"
        engine_data = None
        if settings is not None:
            with err.status(f"building the training matrix on {settings.engine}"):
                engine_data = _engine_training_data(settings, split.train_full)
            protocol["engine"] = f"{settings.engine}: training matrix from the engine's interactions job"
        board = Leaderboard(benchmark, protocol)
        for name in names:
            log.info("fitting %s on %s", name, benchmark.name)
            result = evaluate_model(
                name,
                split,
                params=params.get(name),
                ks=cutoffs,
                mask_seen=benchmark.mask_seen,
                sampled=sampled,
                seed=seed,
                fit_data=None if name in EVENT_LOG_MODELS else engine_data,
                refit=refit,
            )
            board.results.append(result)
    out.print(board.rich_table())
    if markdown_path:
        markdown_path.write_text(board.markdown() + "\n")
    if plot_path:
        board.plot(plot_path)
        err.print(f"wrote {plot_path}")
    emit_json(board.to_dict(), json_path)


def _engine_training_data(settings: EngineSettings, dataset: Dataset) -> Dataset:
    """``dataset``'s matrix rebuilt by the engine the settings name (its events handed over as Arrow)."""
    from fusionrec.engine import get_engine
    from fusionrec.engine.dataset import engine_interactions

    with get_engine(settings, load=False) as batch_engine:
        return engine_interactions(batch_engine, dataset)


def _parse_ints(text: str, option: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserError(f"{option} expects comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise UserError(f"{option} expects positive integers, got {text!r}")
    return values


# --- demo ----------------------------------------------------------------------------------------


@app.command()
def demo(
    workdir: Annotated[Path, typer.Option("--dir", help="Working folder for data, store and models.")] = Path(
        "demo-data"
    ),
    events: Annotated[int, typer.Option("--events", min=1000, help="Events to generate.")] = 200_000,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    data: Annotated[
        Path | None, typer.Option("--data", help="Use your own canonical events file or folder instead.")
    ] = None,
    serve_api: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Serve the trained model until stopped (Ctrl-C).")
    ] = True,
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port")] = 8000,
    json_path: JsonOption = None,
) -> None:
    """The main job: generate (or read) a shop, ingest it, train the fused recommender, serve it.

    Examples:

      [bold]fusionrec demo[/]                              # 200k generated events, then http://127.0.0.1:8000/docs

      [bold]fusionrec demo --data my-shop/ --port 9000[/]  # your own events.parquet / items / users

      [bold]fusionrec demo --events 50000 --no-serve[/]    # train only (CI, scripts)
    """
    from fusionrec.commands_fusion import train
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
        _print_table(
            "ingest", {k: result["ingest"][k] for k in ("read", "stored", "duplicates", "quarantined")}
        )
        _print_stats(result["stats"])
        models_dir = workdir / "models"
        err.rule(f"3. training the default fused pipeline into {models_dir}")
        train_json = workdir / "train.json"
        train(store=store_url, out=models_dir, config=None, valid_days=7.0, json_path=str(train_json))
        result["train"] = json.loads(train_json.read_text())
        _print_table(
            f"model {result['train']['version']} (last 7 days held out)",
            {
                k: f"{v:.4f}"
                for k, v in result["train"].get("offline_metrics", {}).items()
                if k.endswith("@20")
            },
        )
    emit_json(result, json_path)
    if serve_api:
        err.rule("4. serving")
        err.print(f"API docs:   http://{host}:{port}/docs")
        err.print(f"dashboard:  http://{host}:{port}/dashboard/")
        err.print(f"try:        curl 'http://{host}:{port}/v1/recommendations?user_id=u0&k=5'")
        from fusionrec.commands_serving import serve

        serve(store=store_url, models=models_dir, host=host, port=port, config=None, redis=None, workers=1)


def _register_commands() -> None:
    """Commands that live beside their subsystem (serving, fusion), registered on this one app."""
    from fusionrec.commands_fusion import train, tune
    from fusionrec.commands_serving import consume, serve

    app.command()(train)
    app.command()(tune)
    app.command()(serve)
    app.command()(consume)


_register_commands()

if __name__ == "__main__":  # pragma: no cover
    app()
