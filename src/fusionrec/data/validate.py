"""Validate one batch of canonical rows: normalise, reject bad rows with reasons, derive event ids.

Everything is vectorised over the batch; only the (usually few) rejected rows are turned into
JSON for the quarantine.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fusionrec.data import columns as col
from fusionrec.data import item_vectors
from fusionrec.data.import_options import ImportOptions
from fusionrec.data.schema import EVENT_SCHEMA, ITEM_SCHEMA, USER_SCHEMA, EventTypes
from fusionrec.data.store.sql import QUARANTINE_SCHEMA

Batch = pa.Table | pa.RecordBatch | pd.DataFrame


class IngestError(ValueError):
    """The input cannot be ingested at all (e.g. a required column is missing)."""


# event_id = md5 of these fields joined by U+001F (nulls as ""), the timestamp as UTC epoch
# microseconds and numbers printed with 17 significant digits: stable across runs and machines.
EVENT_ID_SQL = (
    "SELECT md5(concat_ws(chr(31), coalesce(user_id, ''), coalesce(item_id, ''), event_type, "
    "CAST(ts AS VARCHAR), coalesce(session_id, ''), coalesce(printf('%.17g', quantity), ''), "
    "coalesce(printf('%.17g', price), ''))) AS event_id FROM keys"
)


MAX_ID_LENGTH = 256  # longer ids are refused: path and query ids are capped at this length too
EARLIEST_TIMESTAMP = datetime(1990, 1, 1, tzinfo=UTC)  # before e-commerce: a unit or parsing mistake
MAX_QUANTITY = 1_000_000.0
MAX_PRICE = 1_000_000_000.0
_CONTROL_CHARACTERS = r"[\x00-\x1f\x7f]"


@dataclass
class CheckedBatch:
    """A validated batch: rows to store, rows to quarantine, and what happened."""

    valid: pa.Table  # canonical schema; ids may repeat (the store keeps the first)
    quarantine: pa.Table  # sql.QUARANTINE_SCHEMA
    read: int
    duplicates: int = 0  # rows repeating an id earlier in the same batch
    reasons: Counter[str] = field(default_factory=Counter)
    types_read: Counter[str] = field(default_factory=Counter)  # events per (normalised) event type
    types_rejected: Counter[str] = field(default_factory=Counter)  # of those, quarantined
    types_unknown: Counter[str] = field(default_factory=Counter)  # of those, not a configured type
    # Per source row, so that `part` can tell one slice of rows apart (empty when not kept):
    rejected: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # quarantined
    row_types: pa.Array = field(default_factory=lambda: pa.array([], pa.string()))  # normalised type
    unknown: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))  # type not configured
    reason_rows: dict[str, np.ndarray] = field(default_factory=dict)  # reason -> the rows it names

    def part(self, start: int, stop: int) -> CheckedBatch:
        """What checking only the source rows ``start:stop`` would have given (every check is one
        row's own, so a batch of several requests' rows is checked once, then told apart)."""
        if len(self.rejected) != self.read:
            raise ValueError("part: this batch was checked without its per-row outcomes")
        rejected = self.rejected[start:stop]
        valid_before = int((~self.rejected[:start]).sum())
        bad_before = int(self.rejected[:start].sum())
        kept, bad = int((~rejected).sum()), int(rejected.sum())
        types = self.row_types.slice(start, stop - start)
        reasons = Counter({reason: int(rows[start:stop].sum()) for reason, rows in self.reason_rows.items()})
        return CheckedBatch(
            valid=self.valid.slice(valid_before, kept),
            quarantine=self.quarantine.slice(bad_before, bad),
            read=stop - start,
            reasons=+reasons,  # unary plus drops the reasons of other rows (count 0)
            types_read=_value_counts(types),
            types_rejected=_value_counts(types.filter(pa.array(rejected))),
            types_unknown=_value_counts(types.filter(pa.array(self.unknown[start:stop]))),
            rejected=rejected,
            row_types=types,
            unknown=self.unknown[start:stop],
            reason_rows={reason: rows[start:stop] for reason, rows in self.reason_rows.items()},
        )


# Columns that reading adds to a source's own: its row numbers, and the JSON types of text fields.
INTERNAL_COLUMNS = ("row_number", col.JSON_TYPES)
ID_FIELDS = ("event_id", "user_id", "session_id", "item_id")
_JSON_KINDS = ("number", "boolean", "object", "array", "value")


def check_json_types(problems: _Problems, batch: Batch, fields: Iterable[str]) -> None:
    """Refuse ids that a JSON source gave as numbers, booleans, objects or arrays (see
    `columns.json_type_faults`): coercing them to text made ``true`` and ``"True"`` two users."""
    faults = _get(batch, col.JSON_TYPES)
    if faults is None:
        return
    faults = col.to_arrow(faults)
    if faults.null_count == len(faults):  # every id was a string: no scans per field and kind
        return
    for name in fields:
        for kind in _JSON_KINDS:
            hit = _mask(pc.match_substring(faults, f"{name}:{kind}"))
            article = "an" if kind[0] in "aeiou" else "a"
            problems.add(f"{name} is {article} JSON {kind}, not a string", hit)


def timestamp_problems(problems: _Problems, name: str, times: col.Times) -> None:
    """The reasons for times that did not parse, numbers without a unit named apart."""
    problems.add(
        f"{name} is an epoch number but no epoch unit is configured "
        "(--epoch-unit s|ms|us|ns or [ingest] epoch_unit)",
        times.unitless,
    )
    problems.add(f"unparseable {name}", times.bad & ~times.unitless)


def row_count(batch: Batch) -> int:
    return len(batch) if isinstance(batch, pd.DataFrame) else batch.num_rows


def _get(batch: Batch, name: str) -> col.Column | None:
    if isinstance(batch, pd.DataFrame):
        return batch[name] if name in batch.columns else None
    return batch.column(name) if name in batch.column_names else None


def _names(batch: Batch) -> list[str]:
    return [str(c) for c in batch.columns] if isinstance(batch, pd.DataFrame) else list(batch.column_names)


def missing_columns_error(source: str, missing: list[str], batch: Batch) -> IngestError:
    """ "missing column(s) ...; found: ..." naming only the source's own columns (not ``row_number``,
    which reading adds), with the way to rename one."""
    found = [name for name in _names(batch) if name not in INTERNAL_COLUMNS]
    return IngestError(
        f"{source}: missing column(s) {', '.join(missing)}; found: {', '.join(found) or 'none'} "
        "(rename a column with a column map, e.g. --map, --items-map, --users-map or [ingest] in fusionrec.toml)"
    )


def row_numbers(batch: Batch) -> np.ndarray:
    values = _get(batch, "row_number")
    if values is None:
        return np.arange(1, row_count(batch) + 1, dtype=np.int64)
    return np.asarray(col.to_arrow(values).cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64)


def raw_json(batch: Batch, rows: np.ndarray) -> list[str]:
    """The given rows of the source batch as JSON objects (the columns reading adds left out)."""
    if not len(rows):
        return []
    frame = batch.iloc[rows] if isinstance(batch, pd.DataFrame) else batch.take(pa.array(rows)).to_pandas()
    frame = frame.drop(columns=[c for c in frame.columns if c in INTERNAL_COLUMNS])
    text = frame.to_json(orient="records", lines=True, date_format="iso", default_handler=str)
    # Newlines inside values are escaped by JSON, so each line is one row.
    return [line for line in text.split("\n") if line]


class _Problems:
    """Accumulates (reason, mask) checks into per-row reason strings and a counter."""

    def __init__(self, n: int) -> None:
        self.bad = np.zeros(n, dtype=bool)
        self.reason = np.full(n, "", dtype=object)
        self.counts: Counter[str] = Counter()
        self.rows: dict[str, np.ndarray] = {}  # reason -> mask of the rows it names

    def add(self, message: str, mask: np.ndarray) -> None:
        mask = np.asarray(mask, dtype=bool)
        hits = int(mask.sum())
        if not hits:
            return
        self.counts[message] += hits
        self.rows[message] = self.rows[message] | mask if message in self.rows else mask.copy()
        current = self.reason[mask]
        self.reason[mask] = np.where(current == "", message, current + "; " + message)
        self.bad |= mask

    def add_each(self, messages: Mapping[int, str]) -> None:
        """A reason of its own per row (e.g. naming the row's item), counted per message."""
        for row, message in messages.items():
            self.counts[message] += 1
            self.rows.setdefault(message, np.zeros(len(self.bad), dtype=bool))[row] = True
            current = self.reason[row]
            self.reason[row] = message if current == "" else current + "; " + message
            self.bad[row] = True

    def quarantine(
        self, batch: Batch, source: str, numbers: np.ndarray, user_ids: pa.Array | None
    ) -> pa.Table:
        rows = np.flatnonzero(self.bad)
        users = user_ids.take(pa.array(rows)) if user_ids is not None else pa.nulls(len(rows), pa.string())
        return pa.table(
            {
                "source": pa.array([source] * len(rows), pa.string()),
                "row_number": pa.array(numbers[rows], pa.int64()),
                "reason": pa.array(self.reason[rows].tolist(), pa.string()),
                "user_id": users,
                "raw": pa.array(raw_json(batch, rows), pa.string()),
            },
            schema=QUARANTINE_SCHEMA,
        )


def _mask(array: pa.Array) -> np.ndarray:
    return col.as_numpy_mask(array)


def _null(array: pa.Array) -> np.ndarray:
    return pc.is_null(array).to_numpy(zero_copy_only=False)


def derive_event_ids(table: pa.Table, hasher: duckdb.DuckDBPyConnection | None = None) -> pa.Array:
    """Content-derived event ids (see `EVENT_ID_SQL`) for canonical events."""
    keys = pa.table(
        {
            "user_id": table.column("user_id"),
            "item_id": table.column("item_id"),
            "event_type": table.column("event_type"),
            "ts": table.column("timestamp").cast(pa.int64()),
            "session_id": table.column("session_id"),
            "quantity": table.column("quantity"),
            "price": table.column("price"),
        }
    )
    con = hasher if hasher is not None else duckdb.connect()
    con.register("keys", keys)
    try:
        ids = con.sql(EVENT_ID_SQL).to_arrow_table().column(0)
    finally:
        con.unregister("keys")
    return ids.combine_chunks().cast(pa.string())


def check_events(
    batch: Batch,
    *,
    source: str,
    event_types: EventTypes,
    max_future: timedelta = timedelta(days=1),
    now: datetime | None = None,
    hasher: duckdb.DuckDBPyConnection | None = None,
    options: ImportOptions | None = None,
    aliases: Mapping[str, str] | None = None,
) -> CheckedBatch:
    """Normalise and validate canonical events; bad rows go to the quarantine with their reasons.

    ``options`` say how text numbers and times are written; ``aliases`` map a shop's event type
    names onto known ones (see `fusionrec.data.import_options.event_aliases`).
    """
    options = options or ImportOptions()
    names = _names(batch)
    missing = [c for c in ("event_type", "timestamp") if c not in names]
    if "user_id" not in names and "session_id" not in names:
        missing.append("user_id (or session_id)")
    if "item_id" not in names:
        missing.append("item_id")
    if missing:
        raise missing_columns_error(source, missing, batch)
    n = row_count(batch)
    numbers = row_numbers(batch)
    problems = _Problems(n)

    def optional(name: str, parse: Callable[[col.Column], pa.Array]) -> pa.Array:
        values = _get(batch, name)
        return parse(values) if values is not None else pa.nulls(n, pa.string())

    user = optional("user_id", col.ids)
    session = optional("session_id", col.ids)
    item = col.ids(_get(batch, "item_id"))
    given_id = optional("event_id", col.ids)
    etype = col.event_types(_get(batch, "event_type"), aliases)
    times = col.timestamps(
        _get(batch, "timestamp"), options.timestamp_format, options.timezone, options.epoch_unit
    )
    micros, ts_present, ts_bad = times.micros, times.present, times.bad

    check_json_types(problems, batch, ID_FIELDS)
    for name, values in (
        ("event_id", given_id),
        ("user_id", user),
        ("session_id", session),
        ("item_id", item),
    ):
        check_id(problems, name, values)
    problems.add("missing user_id and session_id", _null(user) & _null(session))
    etype_missing = _null(etype)
    problems.add("missing event_type", etype_missing)
    known = _mask(pc.is_in(etype, pa.array(event_types.names, pa.string())))
    unknown = ~etype_missing & ~known
    problems.add("unknown event_type", unknown)
    is_search = _mask(pc.equal(etype, "search"))
    problems.add("missing item_id", _null(item) & ~is_search)
    problems.add("missing timestamp", ~ts_present)
    timestamp_problems(problems, "timestamp", times)
    now_us = int((now or datetime.now(UTC)).timestamp() * 1_000_000)
    limit = now_us + int(max_future.total_seconds() * 1_000_000)
    problems.add("timestamp in the future", ts_present & ~ts_bad & (micros > limit))
    earliest = int(EARLIEST_TIMESTAMP.timestamp() * 1_000_000)
    problems.add("timestamp before 1990", ts_present & ~ts_bad & (micros < earliest))

    numeric: dict[str, np.ndarray] = {}
    for name in ("quantity", "price"):
        values = _get(batch, name)
        if values is None:
            numeric[name] = np.full(n, np.nan)
            continue
        numeric[name], wrong = col.numbers(values, options.decimal)
        problems.add(f"{name} is not a number", wrong)
        problems.add(f"negative {name}", numeric[name] < 0)  # NaN compares False
        bound = MAX_QUANTITY if name == "quantity" else MAX_PRICE
        problems.add(f"{name} above {bound:,.0f}", numeric[name] > bound)  # +inf included

    is_bot = pa.nulls(n, pa.bool_())
    if _get(batch, "is_bot") is not None:
        is_bot, wrong = col.booleans(_get(batch, "is_bot"))
        problems.add("is_bot is not a boolean", wrong)

    good = ~problems.bad
    keep = pa.array(good)
    table = pa.table(
        {
            "event_id": given_id,
            "user_id": user,
            "item_id": item,
            "event_type": etype,
            "timestamp": pa.array(micros, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
            "session_id": session,
            "quantity": pa.array(numeric["quantity"], pa.float64(), from_pandas=True),
            "price": pa.array(numeric["price"], pa.float64(), from_pandas=True),
            "channel": optional("channel", col.text),
            "device": optional("device", col.text),
            "query": optional("query", col.text),
            "page": optional("page", col.text),
            "is_bot": pc.fill_null(is_bot, False),
        }
    )
    valid = table.filter(keep).cast(EVENT_SCHEMA.set(0, pa.field("event_id", pa.string())))
    event_id = valid.column("event_id").combine_chunks()
    if event_id.null_count:
        derived = derive_event_ids(valid, hasher)
        event_id = pc.if_else(pc.is_null(event_id), derived, event_id)
    valid = valid.set_column(0, "event_id", event_id)
    # Repeats within the batch are left to the store: ON CONFLICT DO NOTHING keeps the first and
    # counts the rest as duplicates, which saves hashing every id twice.
    return CheckedBatch(
        valid=valid.cast(EVENT_SCHEMA),
        quarantine=problems.quarantine(batch, source, numbers, storable_ids(user)),
        read=n,
        reasons=problems.counts,
        types_read=_value_counts(etype),
        types_rejected=_value_counts(etype.filter(pa.array(problems.bad))),
        types_unknown=_value_counts(etype.filter(pa.array(unknown))),
        rejected=problems.bad,
        row_types=etype,
        unknown=unknown,
        reason_rows=problems.rows,
    )


def _value_counts(values: pa.Array) -> Counter[str]:
    """How often each non-null value occurs (so a warning can say a whole event type was refused)."""
    counts = pc.value_counts(values.drop_null())
    return Counter(
        dict(zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True))
    )


def storable_ids(values: pa.Array) -> pa.Array:
    """``values`` with the ids `check_id` refuses set to null: the quarantine row keeps the raw
    value in its JSON, and its ``user_id`` column stays something every backend can store."""
    too_long, control = _id_faults(values)
    return pc.if_else(pa.array(too_long | control), pa.scalar(None, pa.string()), values)


def check_id(problems: _Problems, name: str, values: pa.Array) -> None:
    """Ids are at most `MAX_ID_LENGTH` characters and hold no control characters (NUL included,
    which PostgreSQL refuses and which would fail a whole batch there)."""
    too_long, control = _id_faults(values)
    problems.add(f"{name} longer than {MAX_ID_LENGTH} characters", too_long)
    problems.add(f"{name} holds control characters", control)


def _id_faults(values: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the id is longer than `MAX_ID_LENGTH`; it holds a control character (null: neither)."""
    too_long = _mask(pc.greater(pc.utf8_length(values), MAX_ID_LENGTH))
    control = _mask(pc.match_substring_regex(values, _CONTROL_CHARACTERS))
    return too_long, control


def _tags(values: col.Column) -> tuple[pa.Array, np.ndarray]:
    """Tags as list<string>: lists as given, text split on "|" (or a JSON array of strings)."""
    array = col.to_arrow(values)
    n = len(array)
    if pa.types.is_list(array.type) or pa.types.is_large_list(array.type):
        try:
            return array.cast(pa.list_(pa.string())), np.zeros(n, dtype=bool)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return pa.nulls(n, pa.list_(pa.string())), pc.is_valid(array).to_numpy(zero_copy_only=False)
    if pa.types.is_null(array.type):
        return pa.nulls(n, pa.list_(pa.string())), np.zeros(n, dtype=bool)
    textual = col.text(array)
    series = textual.to_pandas()
    as_json = series.str.startswith("[").fillna(False).to_numpy(dtype=bool)
    split = pc.split_pattern(pc.utf8_trim_whitespace(textual), "|")
    result = split.to_pylist()
    bad = np.zeros(n, dtype=bool)
    for i in np.flatnonzero(as_json):  # JSON arrays: rare, and catalogue-sized, so row by row is fine
        try:
            parsed = json.loads(series.iloc[i])
            result[i] = [str(v) for v in parsed]
        except (ValueError, TypeError):
            bad[i] = True
    cleaned = [None if r is None else [t.strip() for t in r if t and t.strip()] for r in result]
    return pa.array(cleaned, pa.list_(pa.string())), bad


def _json_text(values: col.Column) -> pa.Array:
    """Free-form attributes as JSON text (mappings and structs are serialised)."""
    array = col.to_arrow(values)
    if pa.types.is_struct(array.type) or pa.types.is_map(array.type):
        return pa.array([None if v is None else json.dumps(dict(v), default=str) for v in array.to_pylist()])
    return col.text(array)


def check_items(
    batch: Batch,
    *,
    source: str,
    options: ImportOptions | None = None,
    vector_dims: Mapping[str, int] | None = None,
) -> CheckedBatch:
    """Validate catalogue rows: an item_id is required, prices must be non-negative numbers.

    Item vectors (the ``vectors`` column and ``*_embedding`` / ``*_vector`` columns, see
    `item_vectors.read_vectors`) must be non-empty lists of finite numbers, each name with one
    length: ``vector_dims`` (the stored catalogue's) where known, else the batch's most common.
    """
    options = options or ImportOptions()
    if _get(batch, "item_id") is None:
        raise missing_columns_error(source, ["item_id"], batch)
    n = row_count(batch)
    problems = _Problems(n)
    item = col.ids(_get(batch, "item_id"))
    check_json_types(problems, batch, ["item_id"])
    problems.add("missing item_id", _null(item))
    out: dict[str, pa.Array] = {"item_id": item}
    for name in ("title", "description", "category", "brand"):
        values = _get(batch, name)
        out[name] = col.text(values) if values is not None else pa.nulls(n, pa.string())
    price = _get(batch, "price")
    if price is not None:
        values, wrong = col.numbers(price, options.decimal)
        problems.add("price is not a number", wrong)
        problems.add("negative price", values < 0)
        out["price"] = pa.array(values, pa.float64(), from_pandas=True)
    else:
        out["price"] = pa.nulls(n, pa.float64())
    if _get(batch, "tags") is not None:
        out["tags"], wrong = _tags(_get(batch, "tags"))
        problems.add("tags are not a list of strings", wrong)
    else:
        out["tags"] = pa.nulls(n, pa.list_(pa.string()))
    for name in ("in_stock", "hidden"):
        if _get(batch, name) is not None:
            out[name], wrong = col.booleans(_get(batch, name))
            problems.add(f"{name} is not a boolean", wrong)
        else:
            out[name] = pa.nulls(n, pa.bool_())
    if _get(batch, "created_at") is not None:
        times = col.timestamps(
            _get(batch, "created_at"), options.timestamp_format, options.timezone, options.epoch_unit
        )
        timestamp_problems(problems, "created_at", times)
        out["created_at"] = pa.array(times.micros, pa.int64(), mask=~times.present | times.bad).cast(
            pa.timestamp("us", tz="UTC")
        )
    else:
        out["created_at"] = pa.nulls(n, pa.timestamp("us", tz="UTC"))
    attributes = _get(batch, "attributes")
    out["attributes"] = _json_text(attributes) if attributes is not None else pa.nulls(n, pa.string())
    given = {
        name: _python_values(values)
        for name in _names(batch)
        if item_vectors.is_vector_column(name) and (values := _get(batch, name)) is not None
    }
    cells, faults = item_vectors.read_vectors(given, n, item.to_pylist(), vector_dims)
    problems.add_each(faults)
    out["vectors"] = item_vectors.to_arrow(cells)
    table = pa.table(out).filter(pa.array(~problems.bad)).cast(ITEM_SCHEMA)
    return CheckedBatch(
        valid=table,
        quarantine=problems.quarantine(batch, source, row_numbers(batch), None),
        read=n,
        reasons=problems.counts,
    )


def _python_values(values: col.Column) -> list[object]:
    """A column as Python values, nested ones kept as they are (not coerced to text)."""
    if isinstance(values, pd.Series):
        return values.tolist()
    return values.to_pylist()


def check_users(batch: Batch, *, source: str, options: ImportOptions | None = None) -> CheckedBatch:
    """Validate user rows: a user_id is required (``options`` are accepted for symmetry: users
    have no numbers or times to read)."""
    if _get(batch, "user_id") is None:
        raise missing_columns_error(source, ["user_id"], batch)
    n = row_count(batch)
    problems = _Problems(n)
    user = col.ids(_get(batch, "user_id"))
    check_json_types(problems, batch, ["user_id"])
    problems.add("missing user_id", _null(user))
    attributes = _get(batch, "attributes")
    table = pa.table(
        {
            "user_id": user,
            "attributes": _json_text(attributes) if attributes is not None else pa.nulls(n, pa.string()),
        }
    )
    return CheckedBatch(
        valid=table.filter(pa.array(~problems.bad)).cast(USER_SCHEMA),
        quarantine=problems.quarantine(batch, source, row_numbers(batch), user),
        read=n,
        reasons=problems.counts,
    )
