"""Store backends behind one interface, chosen by a SQLAlchemy-style URL.

``duckdb:///shop.duckdb`` (relative path), ``duckdb:////srv/shop.duckdb`` (absolute),
``duckdb:///:memory:``, or ``postgresql://user@host:5432/db`` (add ``?schema=NAME`` to keep the
tables in their own schema). A bare path ending in ``.duckdb`` also works.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from fusionrec.data.store.base import (
    EventStore,
    StoreError,
    StoreLockedError,
    StoreNotFoundError,
    WriteResult,
)
from fusionrec.data.store.sql import SCHEMA_VERSION

__all__ = [
    "SCHEMA_VERSION",
    "EventStore",
    "StoreError",
    "StoreLockedError",
    "StoreNotFoundError",
    "WriteResult",
    "duckdb_path",
    "open_store",
]

_TRUE = {"1", "true", "yes", "on"}


def duckdb_path(url: str) -> tuple[str, bool]:
    """The file path (or ``:memory:``) and read-only flag of a ``duckdb://`` URL."""
    parts = urlsplit(url)
    if parts.netloc:
        raise StoreError(
            f"bad DuckDB URL {url!r}: use duckdb:///relative/path.duckdb or duckdb:////absolute/path.duckdb"
        )
    path = unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
    options = dict(parse_qsl(parts.query))
    read_only = options.pop("read_only", "false").lower() in _TRUE
    if options:
        raise StoreError(f"unknown DuckDB URL option(s): {', '.join(options)} (known: read_only)")
    return (path or ":memory:"), read_only


def open_store(url: str | Path, *, create: bool = True) -> EventStore:
    """Open the store at ``url``; close it with ``close()`` or a ``with`` block.

    ``create=False`` is for commands that read a store: one that does not exist yet raises
    `StoreNotFoundError` instead of being created empty (a mistyped path must not report zeros).
    """
    text = str(url)
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme == "duckdb" or (not scheme and text.endswith((".duckdb", ".db"))):
        from fusionrec.data.store.duckdb import DuckDBStore

        path, read_only = duckdb_path(text) if scheme else (text, False)
        if not create and path != ":memory:" and not Path(path).expanduser().is_file():
            raise StoreNotFoundError(text, f"{path} does not exist")
        return DuckDBStore(path, read_only=read_only, url=text if scheme else f"duckdb:///{text}")
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        from fusionrec.data.store.postgres import PostgresStore

        return PostgresStore(text, create=create)
    raise StoreError(
        f"unknown store URL {text!r}: expected duckdb:///path.duckdb, duckdb:///:memory: or postgresql://..."
    )
