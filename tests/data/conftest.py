"""Fixtures for the store and ingestion tests: a DuckDB file, and a fresh PostgreSQL schema per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from fusionrec.data.store import EventStore, open_store


def fresh_postgres_url(base: str) -> tuple[str, str]:
    """A URL whose tables live in a new, unique schema (so parallel test runs never meet)."""
    schema = f"fr_test_{uuid.uuid4().hex[:12]}"
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}schema={schema}", schema


def drop_schema(base: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(base, autocommit=True) as con:
        con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    if request.param == "duckdb":
        yield f"duckdb:///{tmp_path / 'store.duckdb'}"
        return
    base = request.getfixturevalue("postgres_url")
    url, schema = fresh_postgres_url(base)
    try:
        yield url
    finally:
        drop_schema(base, schema)


@pytest.fixture
def store(store_url: str) -> Iterator[EventStore]:
    with open_store(store_url) as opened:
        yield opened
