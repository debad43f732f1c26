"""The store's SQL, written once for both backends.

DuckDB and PostgreSQL share almost all of it; the few differences (column types, parameter style)
are filled in per dialect here, so the backends only move data in and out.
"""

from __future__ import annotations

import re
from typing import Any

import pyarrow as pa

from fusionrec.data.schema import EVENT_SCHEMA, ITEM_SCHEMA, USER_SCHEMA, UTC_TIMESTAMP

SCHEMA_VERSION = 3  # 2: erased ids kept as SHA-256 only (erased_ids), session_links; 3: item vectors

Dialect = str  # "duckdb" or "postgresql"

_TYPES: dict[str, dict[str, str]] = {
    "duckdb": {
        "text": "VARCHAR",
        "float": "DOUBLE",
        "int": "BIGINT",
        "bool": "BOOLEAN",
        "ts": "TIMESTAMPTZ",
        "date": "DATE",
        "text_list": "VARCHAR[]",
    },
    "postgresql": {
        "text": "TEXT",
        "float": "DOUBLE PRECISION",
        "int": "BIGINT",
        "bool": "BOOLEAN",
        "ts": "TIMESTAMPTZ",
        "date": "DATE",
        "text_list": "TEXT[]",
    },
}

# Stored columns beyond the canonical schemas.
QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string()),
        pa.field("row_number", pa.int64()),
        pa.field("reason", pa.string()),
        pa.field("user_id", pa.string()),  # kept so that erasing a user also purges their rejected rows
        pa.field("raw", pa.string()),  # the source row as a JSON object
    ]
)
STORED_EVENT_SCHEMA = EVENT_SCHEMA.append(pa.field("ingested_at", UTC_TIMESTAMP))
# Item vectors are kept as JSON text: both backends store and return it as it is, where their
# array and map types differ (and PostgreSQL's COPY would spell a float array differently).
STORED_ITEM_SCHEMA = ITEM_SCHEMA.set(ITEM_SCHEMA.get_field_index("vectors"), pa.field("vectors", pa.string()))


def q(name: str) -> str:
    """Quote an identifier (``timestamp`` and ``query`` are keywords in one dialect or the other)."""
    return '"' + name.replace('"', '""') + '"'


def cols(names: list[str], prefix: str = "") -> str:
    return ", ".join(prefix + q(n) for n in names)


def sql_type(arrow_type: pa.DataType, dialect: Dialect) -> str:
    types = _TYPES[dialect]
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return types["text"]
    if pa.types.is_floating(arrow_type):
        return types["float"]
    if pa.types.is_integer(arrow_type):
        return types["int"]
    if pa.types.is_boolean(arrow_type):
        return types["bool"]
    if pa.types.is_timestamp(arrow_type):
        return types["ts"]
    if pa.types.is_date32(arrow_type):
        return types["date"]
    if pa.types.is_list(arrow_type) and pa.types.is_string(arrow_type.value_type):
        return types["text_list"]
    raise TypeError(f"no SQL type for {arrow_type}")


def _create_table(
    name: str, schema: pa.Schema, dialect: Dialect, key: str, extra: list[str], *, primary_key: bool = True
) -> str:
    lines = []
    for field in schema:
        not_null = " NOT NULL" if not field.nullable or field.name == key else ""
        lines.append(f"{q(field.name)} {sql_type(field.type, dialect)}{not_null}")
    lines.extend(extra)
    if primary_key:
        lines.append(f"PRIMARY KEY ({q(key)})")
    return f"CREATE TABLE IF NOT EXISTS {name} (\n  " + ",\n  ".join(lines) + "\n)"


def create_statements(dialect: Dialect) -> list[str]:
    """DDL for every table of the current schema version (idempotent)."""
    t = _TYPES[dialect]
    events = _create_table(
        "events",
        EVENT_SCHEMA,
        dialect,
        "event_id",
        [f"ingested_at {t['ts']} DEFAULT now()"],
        # DuckDB: no index on event_id. Maintaining an ART index on random hash keys made bulk
        # loads ~4x slower; uniqueness holds because DuckDB has one writer, and `insert_events`
        # skips known ids with an anti-join (a hash join on the staged batch, a scan of the ids).
        primary_key=dialect != "duckdb",
    ).replace(f'"is_bot" {t["bool"]}', f'"is_bot" {t["bool"]} DEFAULT FALSE')
    quarantine = _create_table(
        "quarantine",
        pa.schema([pa.field("quarantine_id", pa.string()), *QUARANTINE_SCHEMA]),
        dialect,
        "quarantine_id",
        [f"quarantined_at {t['ts']} DEFAULT now()"],
    )
    return [
        f"CREATE TABLE IF NOT EXISTS meta (key {t['text']} PRIMARY KEY, value {t['text']})",
        events,
        _create_table(
            "items", STORED_ITEM_SCHEMA, dialect, "item_id", [f"updated_at {t['ts']} DEFAULT now()"]
        ),
        _create_table("users", USER_SCHEMA, dialect, "user_id", [f"updated_at {t['ts']} DEFAULT now()"]),
        quarantine,
        # Erased users by the SHA-256 of their id: later writes are refused without keeping the id.
        f"CREATE TABLE IF NOT EXISTS erased_ids (user_sha256 {t['text']} PRIMARY KEY, "
        f"erased_at {t['ts']} DEFAULT now())",
        # Every session a user signed in on (identify): erasure follows them to the guest events.
        f"CREATE TABLE IF NOT EXISTS session_links (session_id {t['text']} PRIMARY KEY, "
        f"user_id {t['text']} NOT NULL, linked_at {t['ts']} DEFAULT now())",
    ]


def migrations(dialect: Dialect) -> dict[int, list[str]]:
    """Upgrades from version v to v + 1, applied in order on open (after `create_statements`)."""
    return {
        1: [  # erased ids: from the id itself to its SHA-256
            f"INSERT INTO erased_ids (user_sha256, erased_at) SELECT {sha256_hex('user_id', dialect)}, "
            "erased_at FROM erased_users ON CONFLICT (user_sha256) DO NOTHING",
            "DROP TABLE erased_users",
        ],
        2: [f"ALTER TABLE items ADD COLUMN IF NOT EXISTS vectors {_TYPES[dialect]['text']}"],  # item vectors
    }


def sha256_hex(expression: str, dialect: Dialect) -> str:
    """SQL for the lowercase hex SHA-256 of a text expression's UTF-8 bytes (`id_sha256` in SQL)."""
    if dialect == "duckdb":
        return f"sha256({expression})"
    return f"encode(sha256(convert_to({expression}, 'UTF8')), 'hex')"


def is_erased(column: str, dialect: Dialect) -> str:
    """SQL condition: the user id in ``column`` was erased."""
    return f"EXISTS (SELECT 1 FROM erased_ids e WHERE e.user_sha256 = {sha256_hex(column, dialect)})"


_NAMED_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def render_params(sql: str, dialect: Dialect) -> str:
    """Turn ``:name`` parameters into the dialect's style (``$name`` or ``%(name)s``).

    ``::`` casts are left alone. With PostgreSQL, literal ``%`` must then be written ``%%``.
    """
    if dialect == "duckdb":
        return _NAMED_PARAM.sub(r"$\1", sql)
    return _NAMED_PARAM.sub(r"%(\1)s", sql)


def insert_events(source: str, names: list[str], dialect: Dialect) -> str:
    """Copy staged events into ``events``, skipping known ids, repeats in the batch and erased users."""
    not_erased = f"(s.user_id IS NULL OR NOT {is_erased('s.user_id', dialect)})"
    if dialect == "duckdb":  # no primary key there (see create_statements): an anti-join instead
        return (
            f"INSERT INTO events ({cols(names)}) SELECT {cols(names, 's.')} FROM {source} s "
            f"WHERE {not_erased} AND NOT EXISTS (SELECT 1 FROM events k WHERE k.event_id = s.event_id) "
            "QUALIFY row_number() OVER (PARTITION BY s.event_id) = 1"
        )
    return (
        f"INSERT INTO events ({cols(names)}) SELECT {cols(names, 's.')} FROM {source} s "
        f"WHERE {not_erased} ON CONFLICT (event_id) DO NOTHING"
    )


def array_source(schema: pa.Schema, dialect: Dialect) -> str:
    """A relation of ``schema``'s columns given as one array parameter each (``:c0``, ``:c1``, ...),
    zipped row by row by ``unnest``: a small batch goes in as parameters, without staging a table."""
    columns = ", ".join(
        f"unnest(CAST(:c{i} AS {sql_type(f.type, dialect)}[])) AS {q(f.name)}" for i, f in enumerate(schema)
    )
    return f"(SELECT {columns})"


def _among(column: str, parameter: str, dialect: Dialect) -> str:
    """``column`` is one of the list of text ``:parameter``: one bound value whatever its length."""
    if dialect == "duckdb":
        return f"{column} IN (SELECT unnest(CAST(:{parameter} AS VARCHAR[])))"
    return f"{column} = ANY(CAST(:{parameter} AS TEXT[]))"  # keeps the primary-key index in use


def known_events_and_erased(dialect: Dialect) -> str:
    """Rows ``(kind, key)``: the ids of ``:ids`` stored in ``events`` (kind ``event``) and the hashes of
    ``:hashes`` in ``erased_ids`` (kind ``erased``); both parameters are lists of text."""
    # DuckDB has no index on event_id: a scan, pruned by the ids' min and max.
    return (
        f"SELECT 'event' AS kind, event_id AS key FROM events WHERE {_among('event_id', 'ids', dialect)} "
        "UNION ALL SELECT 'erased' AS kind, user_sha256 AS key FROM erased_ids "
        f"WHERE {_among('user_sha256', 'hashes', dialect)}"
    )


def erased_hashes(dialect: Dialect) -> str:
    """The hashes of ``:hashes`` (a list of text) in ``erased_ids``, as ``key``."""
    return f"SELECT user_sha256 AS key FROM erased_ids WHERE {_among('user_sha256', 'hashes', dialect)}"


def insert_new_events(source: str, names: list[str], dialect: Dialect) -> str:
    """Copy rows that a look-up in the same transaction found new (`known_events_and_erased`) into
    ``events``, returning the ids stored.

    DuckDB has one writer, so the look-up still holds: a plain insert (checking erased users again
    there cost more than the rest of the statement). PostgreSQL has many: an id stored, or a user
    erased, by another writer since the look-up is skipped here.
    """
    insert = f"INSERT INTO events ({cols(names)}) SELECT {cols(names, 's.')} FROM {source} s"
    if dialect == "duckdb":
        return f"{insert} RETURNING event_id"
    not_erased = f"(s.user_id IS NULL OR NOT {is_erased('s.user_id', dialect)})"
    return f"{insert} WHERE {not_erased} ON CONFLICT (event_id) DO NOTHING RETURNING event_id"


VALUES_MAX_ROWS = 4  # DuckDB plans INSERT ... VALUES of this many rows faster than unnesting arrays


def insert_new_rows(rows: pa.Table, dialect: Dialect) -> tuple[str, dict[str, Any]]:
    """`insert_new_events` for a few rows given as parameters: the statement and its parameters.

    The rows go in as one array per column (`array_source`), or on DuckDB, up to `VALUES_MAX_ROWS`
    of them, as a VALUES list: 1.6 ms against 2.5 ms per statement for one row (measured at 2M
    stored events, `docs/benchmarks.md`).
    """
    names = rows.column_names
    columns = [column.to_pylist() for column in rows.columns]
    if dialect == "duckdb" and rows.num_rows <= VALUES_MAX_ROWS:
        values = ", ".join(
            "(" + ", ".join(f":v{r}_{c}" for c in range(len(names))) + ")" for r in range(rows.num_rows)
        )
        params = {f"v{r}_{c}": column[r] for c, column in enumerate(columns) for r in range(rows.num_rows)}
        return f"INSERT INTO events ({cols(names)}) VALUES {values} RETURNING event_id", params
    params = {f"c{i}": column for i, column in enumerate(columns)}
    return insert_new_events(array_source(rows.schema, dialect), names, dialect), params


def count_erased(source: str, dialect: Dialect) -> str:
    return (
        f"SELECT count(*) FROM {source} s WHERE s.user_id IS NOT NULL AND {is_erased('s.user_id', dialect)}"
    )


def insert_select(
    table: str,
    source: str,
    names: list[str],
    keys: list[str] | None = None,
    *,
    replace: bool = False,
    also_set: tuple[str, ...] = (),
) -> str:
    """Copy ``names`` from ``source`` into ``table``.

    With ``keys``, a row whose key is stored already is skipped, or with ``replace`` overwrites the
    stored row's other columns (plus the ``also_set`` assignments).
    """
    statement = f"INSERT INTO {table} ({cols(names)}) SELECT {cols(names)} FROM {source}"
    if not keys:
        return statement
    if not replace:
        return f"{statement} ON CONFLICT ({cols(keys)}) DO NOTHING"
    updates = [f"{q(n)} = excluded.{q(n)}" for n in names if n not in keys] + list(also_set)
    if not updates:  # every column is part of the key: nothing to overwrite
        return f"{statement} ON CONFLICT ({cols(keys)}) DO NOTHING"
    return f"{statement} ON CONFLICT ({cols(keys)}) DO UPDATE SET {', '.join(updates)}"


def upsert(table: str, key: str, source: str, names: list[str]) -> str:
    """Insert rows, replacing the stored row with the same key (last write wins)."""
    return insert_select(table, source, names, [key], replace=True, also_set=("updated_at = now()",))


def insert_quarantine(source: str) -> str:
    """Rejected rows; the id is a hash of the row, so re-ingesting a file does not repeat them."""
    names = QUARANTINE_SCHEMA.names
    key = "md5(concat_ws(chr(31), coalesce(source, ''), CAST(row_number AS VARCHAR), reason, raw))"
    return (
        f"INSERT INTO quarantine (quarantine_id, {cols(names)}) SELECT {key}, {cols(names)} FROM {source} "
        "ON CONFLICT (quarantine_id) DO NOTHING"
    )


def flag_bot_users(limit_param: str = ":limit") -> str:
    """Mark every event of an inhuman-rate user (or anonymous session) as bot traffic."""
    return (
        "UPDATE events SET is_bot = TRUE WHERE NOT coalesce(is_bot, FALSE) AND ("
        "  user_id IN (SELECT user_id FROM events WHERE user_id IS NOT NULL "
        "    GROUP BY user_id, date_trunc('minute', \"timestamp\") "
        f'    HAVING count(*) > {limit_param} AND count(DISTINCT "timestamp") > 1)'
        "  OR (user_id IS NULL AND session_id IN (SELECT session_id FROM events "
        "    WHERE user_id IS NULL AND session_id IS NOT NULL "
        "    GROUP BY session_id, date_trunc('minute', \"timestamp\") "
        f'    HAVING count(*) > {limit_param} AND count(DISTINCT "timestamp") > 1)))'
    )


# Per item: events (no bots) in the last :recent before the newest event, and in the :recent before.
WINDOWED_ITEM_COUNTS = """
WITH last AS (SELECT max("timestamp") AS t FROM events)
SELECT e.item_id AS item_id,
       CAST(count(*) FILTER (WHERE e."timestamp" > last.t - CAST(:recent AS INTERVAL)) AS DOUBLE PRECISION) AS recent,
       CAST(count(*) FILTER (WHERE e."timestamp" <= last.t - CAST(:recent AS INTERVAL)) AS DOUBLE PRECISION) AS previous
FROM events AS e, last
WHERE e.item_id IS NOT NULL AND e."timestamp" > last.t - CAST(:both AS INTERVAL) AND NOT coalesce(e.is_bot, FALSE)
GROUP BY e.item_id
"""

# Each (user, basket, item) bought, with the epoch seconds of its last purchase.
PURCHASES = """
SELECT user_id, coalesce(session_id, user_id) AS basket, item_id,
       CAST(EXTRACT(EPOCH FROM max("timestamp")) AS DOUBLE PRECISION) AS ts
FROM events WHERE event_type = 'purchase' AND item_id IS NOT NULL AND NOT coalesce(is_bot, FALSE)
GROUP BY user_id, coalesce(session_id, user_id), item_id
"""
