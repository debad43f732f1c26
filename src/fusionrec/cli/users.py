"""User data commands: `erase` a user from a store, `export` everything stored about one."""

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

    A running service keeps the user in its live state and caches until it restarts: while one
    runs, erase through its `DELETE /v1/users/{id}` instead, which does all of this and those too.

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
