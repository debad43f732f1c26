"""User data commands: `erase` a user from a store, `export` everything stored about one, and
`retention`, which deletes everyone's data older than the configured number of days."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from fusionrec.cli.common import JsonOption, StoreOption, emit_json, err, open_existing_store, user_errors

UserArgument = Annotated[str, typer.Argument(help="The user id, as events carry it.", show_default=False)]


def erase(
    user: UserArgument,
    store: StoreOption = None,
    models: Annotated[
        Path | None,
        typer.Option(
            "--models",
            help="Model repository: the user is removed from every version's files too (re-signed "
            "with the signing key when one is configured).",
            show_default="the store only",
        ),
    ] = None,
    json_path: JsonOption = None,
) -> None:
    """Erase a user from a store: their events and those of every session they signed in on,
    profile, rejected rows, exposures and precomputed (batch) lists. Only the id's SHA-256 is
    kept, so that later events of theirs are refused. With --models, every saved version loses
    the user's id and rows (aggregates such as item-item weights keep their share until retrained).

    A running service takes the erasure in within its `erasure_refresh_s` (5 s): the id is
    refused, and its model lookups, live state and cached answers go. `DELETE /v1/users/{id}`
    does all of this at once.

    Example: `fusionrec erase user-42 --store duckdb:///shop.duckdb`
    """
    from fusionrec.serving.erasure import erase_stored

    with user_errors(), open_existing_store(store) as event_store:
        result: dict[str, Any] = {"user_id": user, **erase_stored(event_store, user)}
        if models is not None:
            result["model_versions"] = _erase_from_models(models, user)
    err.print(
        f"erased {user!r}: {result['events_deleted']:,} events, {result['exposures_deleted']:,} exposures, "
        f"{result['batch_rows_deleted']:,} batch list rows, {result['sessions_unlinked']:,} linked sessions",
        highlight=False,
        markup=False,
    )
    for version, outcome in result.get("model_versions", {}).items():
        err.print(f"{version}: {outcome}", highlight=False, markup=False)
    emit_json(result, json_path)


def _erase_from_models(models: Path, user: str) -> dict[str, str]:
    from fusionrec.cli.common import UserError, signing_key
    from fusionrec.fusion.artifacts import ModelRepository

    if not models.is_dir():
        raise UserError(f"--models {models}: no such folder")
    return ModelRepository(models, signing_key=signing_key()).erase_user(user)


def export(
    user: UserArgument,
    store: StoreOption = None,
    json_path: Annotated[
        str, typer.Option("--json", help="Write the JSON object to PATH ('-' = stdout).")
    ] = "-",
) -> None:
    """Everything a store holds about a user, as one JSON object: events (their own and their
    linked sessions'), profile, linked sessions, rejected rows, exposures, batch lists.

    Example: `fusionrec export user-42 --store duckdb:///shop.duckdb > user-42.json`
    """
    from fusionrec.serving.erasure import export_user

    with user_errors(), open_existing_store(store) as event_store:
        result = export_user(event_store, user)
    emit_json(result, json_path)


def retention(
    store: StoreOption = None,
    days: Annotated[
        float | None,
        typer.Option(
            "--days",
            help="Delete what is older than this many days (> 0).",
            show_default="fusionrec.toml's [store] retention_days",
        ),
    ] = None,
    json_path: JsonOption = None,
) -> None:
    """Delete events, rejected rows and exposures older than --days (default: fusionrec.toml's
    \\[store] retention_days); run it daily, e.g. from cron.

    Example: `fusionrec retention --store duckdb:///shop.duckdb --days 365`
    """
    from fusionrec.cli.common import UserError, project
    from fusionrec.serving.erasure import apply_retention

    with user_errors():
        days = days if days is not None else project().store.retention_days
        if days is None:
            raise UserError(
                "no retention period: pass --days N or set [store] retention_days in fusionrec.toml"
            )
        if days <= 0:  # 0 would delete everything
            raise UserError(f"--days must be more than 0, got {days:g}")
        with open_existing_store(store) as event_store:
            result: dict[str, Any] = {"days": days, "deleted": apply_retention(event_store, days)}
    deleted = result["deleted"]
    err.print(
        f"deleted what is older than {days:g} days: {deleted['events']:,} events, "
        f"{deleted['quarantine']:,} rejected rows, {deleted['exposures']:,} exposures",
        highlight=False,
        markup=False,
    )
    emit_json(result, json_path)
