"""What every command shares: the consoles, the options, the error handler, JSON output, tables.

Only Typer, Rich and the standard library are imported here: ``fusionrec --help`` must stay light.
Errors a user can cause end in one line on standard error and exit code 2 (`user_errors`).
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
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:
    from fusionrec.configuration import ProjectConfig
    from fusionrec.data.store import EventStore
    from fusionrec.engine import EngineSettings

err = Console(stderr=True)
# Leaderboards are wide: when stdout is a file or a pipe, don't squeeze them into 80 columns.
out = Console() if sys.stdout.isatty() else Console(width=160)
log = logging.getLogger("fusionrec")

JsonOption = Annotated[
    str | None,
    typer.Option(
        "--json", help="Write the result as one JSON object to PATH ('-' = stdout).", show_default="no JSON"
    ),
]
StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        envvar="FUSIONREC_STORE",
        show_default="[store] url of fusionrec.toml, else duckdb:///fusionrec.duckdb",
        help="Event store URL: duckdb:///relative.duckdb, duckdb:////abs/path.duckdb or postgresql://user@host/db.",
    ),
]
EngineOption = Annotated[
    str | None,
    typer.Option(
        "--engine",
        show_default="fusionrec.toml's [engine] section, else in process",
        help="Run the batch work on duckdb or spark (Spark settings from fusionrec.toml's \\[engine]).",
    ),
]


class UserError(Exception):
    """A mistake in what the user asked for; shown as one line, exit code 2."""


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_duration(text: str, option: str) -> float:
    """``"90s"``, ``"30m"``, ``"1h30m"`` or plain seconds (``"45"``) as seconds; anything else is a
    `UserError` naming ``option``."""
    import re

    cleaned = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", cleaned):
        seconds = float(cleaned)
    elif cleaned and re.fullmatch(r"(\d+(\.\d+)?[smh])+", cleaned):
        seconds = sum(
            float(n) * _DURATION_UNITS[u] for n, _, u in re.findall(r"(\d+(\.\d+)?)([smh])", cleaned)
        )
    else:
        raise UserError(f"{option} expects a duration such as 90s, 30m or 1h30m, got {text!r}")
    if seconds <= 0:
        raise UserError(f"{option} must be longer than zero, got {text!r}")
    return seconds


@contextmanager
def work_progress() -> Iterator[Any]:
    """Rich bars with ETA for long work: every `fusionrec.progress.step` reported inside (epochs,
    fused sources, tuning trials, the models of an evaluation) gets a bar of its own. Yields the
    callback `fusionrec.tuning.auto.select_pipeline` takes: a bar per stage of the automatic
    search, what is being tried and the time left of its budget."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from fusionrec.progress import listening

    columns = (
        TextColumn("{task.description:<18}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[what]}  [dim]{task.fields[left]}[/]"),
    )
    with Progress(*columns, console=err, transient=False) as bars:
        tasks: dict[str, Any] = {}
        reached: dict[str, int] = {}

        def bar(name: str, done: int, total: int | None, what: str, left: str = "") -> None:
            if name not in tasks:
                tasks[name] = bars.add_task(name, total=total, what="", left="")
            elif done < reached[name]:  # the same work again (another fit): a fresh clock
                bars.reset(tasks[name], total=total)
            reached[name] = done
            bars.update(tasks[name], completed=done, total=total, what=escape(what), left=left)

        def search(stage: str, done: int, total: int, what: str, seconds_left: float) -> None:
            left = f"{seconds_left:.0f}s of the budget left" if seconds_left > 0 else "budget spent"
            bar(stage, done, total, what, left)

        with listening(bar):
            yield search


def _known_errors() -> tuple[type[BaseException], ...]:
    """The exception types that mean "the input or the set-up is wrong", not "fusionrec is broken".

    Imported only when a command fails, so that starting a command stays cheap.
    """
    from fusionrec.data.dataset import DatasetError
    from fusionrec.data.formats import FormatError
    from fusionrec.data.store import StoreError
    from fusionrec.data.validate import IngestError
    from fusionrec.engine import EngineError, EngineSettingsError
    from fusionrec.evaluation.benchmarks import BenchmarkError
    from fusionrec.extras import MissingExtraError
    from fusionrec.fusion.artifacts import ArtifactError
    from fusionrec.fusion.config import PipelineConfigError
    from fusionrec.models.base import ModelError
    from fusionrec.models.registry import UnknownModelError
    from fusionrec.project import ProjectFileError
    from fusionrec.serving.redis_client import RedisUnavailableError
    from fusionrec.serving.registry import RegistryError
    from fusionrec.serving.settings import SettingsError
    from fusionrec.tuning.search import SearchError

    return (
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
        MissingExtraError,
        ArtifactError,
        PipelineConfigError,
        ProjectFileError,
        RedisUnavailableError,
        RegistryError,
        SettingsError,
        SearchError,
        FileNotFoundError,
        tomllib.TOMLDecodeError,
    )


def fail(message: str) -> None:
    """Print ``error: message`` as one line on standard error and exit with code 2."""
    one_line = " ".join(str(message).split())
    err.print(f"[bold red]error:[/] {escape(one_line)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2) from None


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the errors a user can cause into one line on stderr and exit code 2."""
    from pydantic import ValidationError

    try:
        yield
    except (typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "value"
        fail(f"invalid {where}: {first['msg']}")
    except Exception as error:
        if not isinstance(error, _known_errors()):
            raise
        fail(str(error))


def project() -> ProjectConfig:
    """``fusionrec.toml`` of the working folder, validated (cached while the file is unchanged)."""
    from fusionrec.configuration import load_project

    return load_project()


def store_url(option: str | None) -> str:
    """``--store`` (or ``FUSIONREC_STORE``), else ``fusionrec.toml``'s ``[store] url``, else the default.

    The whole project file is validated even when ``--store`` makes its URL moot: a typo is an error.
    """
    configured = project().store.url
    return option or configured


def engine_settings(engine: str | None) -> EngineSettings | None:
    """The batch engine a command runs on: ``--engine`` over the project file's ``[engine]``; None
    when neither asks for one (in process)."""
    from fusionrec.engine.settings import command_settings

    return command_settings(engine, project().engine)


def signing_key() -> str | None:
    """The key that signs model versions: the service's ``signing_key`` setting (the environment's
    ``FUSIONREC_SERVING_SIGNING_KEY``, else fusionrec.toml's ``[serving] signing_key``); None when unset."""
    from fusionrec.project import PROJECT_FILE
    from fusionrec.serving.settings import load_settings

    project()  # the whole project file validated first
    key = load_settings(PROJECT_FILE if PROJECT_FILE.is_file() else None).signing_key
    return key.get_secret_value() if key is not None else None


def open_existing_store(option: str | None) -> EventStore:
    """The store a reading command works on; one that does not exist is an error, never created."""
    from fusionrec.data.store import open_store

    return open_store(store_url(option), create=False)


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


def print_table(title: str, rows: dict[str, Any]) -> None:
    """A two-column table of ``rows`` on standard error (integers with thousands separators)."""
    table = Table(title=title, show_header=False)
    table.add_column("", style="bold")
    table.add_column("", justify="right")
    for key, value in rows.items():
        table.add_row(key, f"{value:,}" if isinstance(value, int) else str(value))
    err.print(table)
