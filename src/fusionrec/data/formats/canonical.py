"""fusionrec's own schema in CSV, Parquet or JSON lines, with an optional column mapping.

A thin whole-file reader (ingestion streams big canonical files itself). The path is an events
file, or a folder as written by ``fusionrec generate`` (``events.*``, and ``items.*`` /
``users.*`` when present). ``mapping`` renames source columns to canonical ones
(``{"visitorid": "user_id", "event": "event_type"}``) in every file read.

Conversions: ids become strings; event type names are normalised (``normalise_event_type``:
"Cart" -> "add_to_cart"); timestamps may be datetimes (naive ones are in ``tz``), ISO 8601 strings
(no offset means UTC) or epoch numbers in ``timestamp_unit``. Item and user columns outside the
schema are folded into ``attributes`` (JSON) when the file has no ``attributes`` column, so no
source column is lost; event columns outside the schema are not kept. Item ``tags`` may be lists,
JSON lists or ``|``-separated strings. Item ``vectors`` may be a mapping (JSON lines, a Parquet
map) or a JSON object (CSV), and columns named ``*_embedding`` / ``*_vector`` holding lists (or
JSON lists) are vectors of that name; a bad vector fails the read (see `item_vectors.read_vectors`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fusionrec.data import item_vectors
from fusionrec.data.formats.base import (
    FormatError,
    SourceData,
    events_frame,
    existing,
    find_optional,
    id_strings,
    items_frame,
    json_objects,
    parse_numbers,
    require_columns,
    users_frame,
)
from fusionrec.data.schema import (
    EVENT_COLUMNS,
    ITEM_COLUMNS,
    OPTIONAL_EVENT_COLUMNS,
    USER_COLUMNS,
    normalise_event_type,
)

SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl",
            ".ndjson": "jsonl", ".json": "jsonl"}  # fmt: skip
_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}


def read_canonical(
    path: str | Path,
    *,
    mapping: Mapping[str, str] | None = None,
    items: str | Path | None = None,
    users: str | Path | None = None,
    tz: str = "UTC",
    timestamp_unit: str = "s",
) -> SourceData:
    """Read canonical events (and items / users) from a file or a ``generate`` folder."""
    p = existing(path)
    if p.is_dir():
        events_file = _table_file(p, "events")
        if events_file is None:
            raise FormatError("no events.parquet / events.csv / events.jsonl", path=p)
        items = items if items is not None else _table_file(p, "items")
        users = users if users is not None else _table_file(p, "users")
    else:
        events_file = p
    rename = dict(mapping or {})
    raw, first = _read_table(events_file, rename)
    events = _events(raw, events_file, first, tz=tz, unit=timestamp_unit)
    item_table = None if items is None else _items(_read_table(existing(items), rename)[0], Path(items), tz)
    user_table = None if users is None else _users(_read_table(existing(users), rename)[0], Path(users))
    return SourceData(
        events=events, items=item_table, users=user_table, protocol="temporal", name=events_file.stem
    )


def _table_file(folder: Path, stem: str) -> Path | None:
    return find_optional(folder, [f"{stem}{suffix}" for suffix in SUFFIXES])


def _read_table(file: Path, rename: dict[str, str]) -> tuple[pd.DataFrame, int]:
    """The file as a frame with columns renamed, and the line number of its first record."""
    kind = SUFFIXES.get(file.suffix.lower())
    try:
        if kind in ("csv", "tsv"):
            frame = pd.read_csv(file, sep="," if kind == "csv" else "\t", dtype="str",
                                keep_default_na=False, na_values=[""])  # fmt: skip
            first = 2
        elif kind == "parquet":
            frame, first = pq.read_table(file).to_pandas(), 1
        elif kind == "jsonl":
            frame = pd.read_json(file, lines=True, dtype=False, convert_dates=False)
            first = 1
        else:
            raise FormatError(f"unknown file type {file.suffix!r} (use {', '.join(SUFFIXES)})", path=file)
    except (pd.errors.ParserError, ValueError, pa.ArrowInvalid, OSError) as exc:
        if isinstance(exc, FormatError):
            raise
        raise FormatError(f"cannot read as {kind} ({exc})", path=file) from exc
    return frame.rename(columns=rename), first


def _events(raw: pd.DataFrame, file: Path, first: int, *, tz: str, unit: str) -> pd.DataFrame:
    required = [c for c in EVENT_COLUMNS if c not in OPTIONAL_EVENT_COLUMNS]
    require_columns(raw.columns, required, path=file)
    columns: dict[str, Any] = {}
    for name in EVENT_COLUMNS:
        if name not in raw.columns:
            continue
        values = raw[name].reset_index(drop=True)
        if name == "timestamp":
            columns[name] = _timestamps(values, file, first, tz=tz, unit=unit, required=True)
        elif name == "event_type":
            names = values.astype("str")
            columns[name] = names.map({n: normalise_event_type(n) for n in names.dropna().unique()}).astype(
                "str"
            )
        elif name in ("quantity", "price"):
            columns[name] = parse_numbers(values, path=file, field=name, first_line=first)
        elif name == "is_bot":
            columns[name] = _booleans(values, file, first, name)
        elif name in ("event_id", "user_id", "item_id", "session_id"):
            columns[name] = id_strings(values)
        else:
            columns[name] = values.astype("str")
    return events_frame(columns, row_number=np.arange(1, len(raw) + 1))


def _items(raw: pd.DataFrame, file: Path, tz: str) -> pd.DataFrame:
    require_columns(raw.columns, ["item_id"], path=file)
    vector_columns = [str(c) for c in raw.columns if item_vectors.is_vector_column(str(c))]
    vectors = _vectors(raw[vector_columns], id_strings(raw["item_id"]), file) if vector_columns else None
    raw = _fold_extra_columns(raw.drop(columns=vector_columns), ITEM_COLUMNS)
    columns: dict[str, Any] = {}
    for name in ITEM_COLUMNS:
        if name == "vectors" and vectors is not None:
            columns[name] = vectors
        if name not in raw.columns:
            continue
        values = raw[name].reset_index(drop=True)
        if name == "item_id":
            columns[name] = id_strings(values)
        elif name == "price":
            columns[name] = parse_numbers(values, path=file, field=name)
        elif name in ("in_stock", "hidden"):
            columns[name] = _booleans(values, file, 2, name)
        elif name == "created_at":
            columns[name] = _timestamps(values, file, 2, tz=tz, unit="s", required=False)
        elif name == "tags":
            columns[name] = pd.Series([_tags(v) for v in values], dtype=object)  # one per item
        elif name == "attributes":
            columns[name] = _attributes(values)
        else:
            columns[name] = values.astype("str")
    return items_frame(columns)


def _vectors(raw: pd.DataFrame, item_ids: pd.Series, file: Path) -> pd.Series:
    """The item vectors of the file's rows (dicts of float lists, or None); a bad one fails the read."""
    ids = [None if pd.isna(v) else str(v) for v in item_ids]
    cells, faults = item_vectors.read_vectors(
        {name: raw[name].tolist() for name in raw.columns}, len(raw), ids
    )
    if faults:
        row = min(faults)
        raise FormatError(
            faults[row],
            path=file,
            line=(2 if file.suffix.lower() in (".csv", ".tsv") else 1) + row,
            field="vectors",
        )
    return pd.Series(cells, dtype=object)


def _users(raw: pd.DataFrame, file: Path) -> pd.DataFrame:
    require_columns(raw.columns, ["user_id"], path=file)
    raw = _fold_extra_columns(raw, USER_COLUMNS)
    columns: dict[str, Any] = {"user_id": id_strings(raw["user_id"].reset_index(drop=True))}
    if "attributes" in raw.columns:
        columns["attributes"] = _attributes(raw["attributes"].reset_index(drop=True))
    return users_frame(columns)


def _fold_extra_columns(raw: pd.DataFrame, schema_columns: list[str]) -> pd.DataFrame:
    """Columns outside the schema become the ``attributes`` JSON (when there is none already)."""
    extra = [c for c in raw.columns if c not in schema_columns]
    if not extra or "attributes" in raw.columns:
        return raw
    return raw.drop(columns=extra).assign(attributes=json_objects(raw, extra))


def _timestamps(
    values: pd.Series, file: Path, first: int, *, tz: str, unit: str, required: bool
) -> pd.Series:
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        parsed = values.dt.tz_convert("UTC")
    elif pd.api.types.is_datetime64_dtype(values.dtype):
        parsed = values.dt.tz_localize(tz).dt.tz_convert("UTC")
    elif pd.api.types.is_numeric_dtype(values.dtype):
        parsed = pd.Series(pd.to_datetime(values, unit=unit, utc=True))
    else:
        text = values.astype("str")
        numeric = text.str.fullmatch(r"-?\d+(\.\d+)?").fillna(False).astype(bool)
        parsed = pd.Series(pd.NaT, index=values.index, dtype="datetime64[us, UTC]")
        if numeric.any():
            parsed[numeric] = pd.to_datetime(text[numeric].astype("float64"), unit=unit, utc=True)
        if (~numeric).any():
            parsed[~numeric] = pd.to_datetime(text[~numeric], utc=True, format="ISO8601", errors="coerce")
            # Other spellings ("2019-10-01 00:00:00 UTC") go through the slower general parser.
            retry = ~numeric & parsed.isna() & text.notna()
            if retry.any():
                parsed[retry] = pd.to_datetime(text[retry], utc=True, format="mixed", errors="coerce")
    bad = parsed.isna() & (values.notna() | required)
    if bad.any():
        pos = int(np.flatnonzero(bad.to_numpy())[0])
        value = values.iloc[pos]
        why = "missing time" if pd.isna(value) else f"cannot parse time {value!r}"
        raise FormatError(why, path=file, line=first + pos, field="timestamp")
    return parsed.dt.as_unit("us")


def _booleans(values: pd.Series, file: Path, first: int, field: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.astype("boolean")
    text = values.astype("str").str.strip().str.lower()
    out = pd.Series(pd.NA, index=values.index, dtype="boolean")
    out[text.isin(_TRUE)] = True
    out[text.isin(_FALSE)] = False
    bad = out.isna() & values.notna()
    if bad.any():
        pos = int(np.flatnonzero(bad.to_numpy())[0])
        raise FormatError(f"{values.iloc[pos]!r} is not true/false", path=file, line=first + pos, field=field)
    return out


def _tags(value: Any) -> list[str] | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, (list, tuple, np.ndarray)):
        return [str(v) for v in value]
    text = str(value).strip()
    if text.startswith("["):
        return [str(v) for v in json.loads(text)]
    return [t.strip() for t in text.split("|") if t.strip()]


def _attributes(values: pd.Series) -> pd.Series:
    """Attributes as JSON text: dicts are dumped, strings kept as they are."""
    if values.map(lambda v: isinstance(v, dict)).any():  # one per catalogue row / user
        return values.map(lambda v: json.dumps(v) if isinstance(v, dict) else v).astype("str")
    return values.astype("str")
