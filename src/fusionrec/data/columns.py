"""Column-level normalisation for ingestion: any input column onto a canonical Arrow type.

Each parser takes one column as it came (an Arrow array or a pandas Series of whatever type the
source had) and returns the canonical values plus a mask of entries that were present but could
not be understood, so validation can name the row and the reason. All of it is vectorised.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fusionrec.data.schema import normalise_event_type

Column = pa.Array | pa.ChunkedArray | pd.Series


def to_arrow(values: Column) -> pa.Array:
    """One Arrow array from an Arrow or pandas column (mixed-type object columns become strings)."""
    if isinstance(values, pd.Series):
        try:
            array = pa.array(values, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            # Mixed Python objects (e.g. ints and strings in one JSON field): compare them as text,
            # nested values (objects, arrays) as JSON text so that they can still be read.
            text = values.astype(object).where(values.notna(), None)
            array = pa.array([None if v is None else _plain_text(v) for v in text], type=pa.string())
        values = array
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    return values


def _plain_text(value: object) -> str:
    if isinstance(value, dict | list):
        try:
            return json.dumps(value)
        except (TypeError, ValueError):  # not JSON-able (numpy values inside): Python's spelling
            pass
    return str(value)


def _as_text(array: pa.Array) -> pa.Array:
    if pa.types.is_string(array.type):
        return array
    if pa.types.is_null(array.type):
        return pa.nulls(len(array), pa.string())
    if pa.types.is_floating(array.type):
        # Whole floats are ids that pandas widened because of missing values: 12.0 means "12".
        whole = pc.and_(pc.is_finite(array), pc.equal(pc.floor(array), array))
        if pc.all(whole).as_py() is not False:  # every present value is a whole number
            try:
                return array.cast(pa.int64()).cast(pa.string())
            except pa.ArrowInvalid:  # beyond int64: keep the float spelling
                pass
    try:
        return array.cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.array([None if v is None else str(v) for v in array.to_pylist()], type=pa.string())


def _empty_to_null(array: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(array, ""), pa.scalar(None, pa.string()), array)


def ids(values: Column) -> pa.Array:
    """Identifiers as trimmed strings; blank ones become null."""
    return _empty_to_null(pc.utf8_trim_whitespace(_as_text(to_arrow(values))))


def text(values: Column) -> pa.Array:
    """Free text (query, page, channel, ...) as strings; blank ones become null."""
    return _empty_to_null(_as_text(to_arrow(values)))


def event_types(values: Column, aliases: Mapping[str, str] | None = None) -> pa.Array:
    """Event type names normalised (case, spacing, a shop's ``aliases`` then the built-in ones),
    computed once per distinct value."""
    array = pc.utf8_trim_whitespace(_as_text(to_arrow(values)))
    encoded = pc.dictionary_encode(array)
    names = [
        None if v is None or not v.strip() else normalise_event_type(v, aliases)
        for v in encoded.dictionary.to_pylist()
    ]
    return pc.take(pa.array(names, type=pa.string()), encoded.indices)


def numbers(values: Column, decimal: str = ".") -> tuple[np.ndarray, np.ndarray]:
    """Float64 values (NaN where missing) and a mask of entries present but not a finite number.

    ``decimal=","`` reads text such as ``"12,50"``; a text value then holding a "." too (``"1.234,5"``)
    is refused rather than guessed at: thousands separators differ between shops.
    """
    array = to_arrow(values)
    if pa.types.is_null(array.type):
        return np.full(len(array), np.nan), np.zeros(len(array), dtype=bool)
    present = pc.is_valid(array).to_numpy(zero_copy_only=False)
    if pa.types.is_integer(array.type) or pa.types.is_floating(array.type) or pa.types.is_decimal(array.type):
        out = array.cast(pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64, copy=True)
        out[~present] = np.nan
    elif pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        stripped = _empty_to_null(pc.utf8_trim_whitespace(array.cast(pa.string())))
        present = pc.is_valid(stripped).to_numpy(zero_copy_only=False)
        if decimal != ".":
            stripped = _decimal_point(stripped, decimal)
        out = pd.to_numeric(stripped.to_pandas(), errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan, copy=True
        )
    else:  # booleans, dates, nested values: the wrong type for a number
        return np.full(len(array), np.nan), present
    bad = present & ~np.isfinite(out)
    out[bad] = np.nan
    return out, bad


def _decimal_point(text: pa.Array, decimal: str) -> pa.Array:
    """Text numbers written with ``decimal`` as their mark, rewritten with "."; ones that also hold
    a "." become unreadable (so they are reported, not misread)."""
    ambiguous = pc.match_substring(text, ".")
    swapped = pc.replace_substring(text, decimal, ".")
    return pc.if_else(pc.fill_null(ambiguous, False), pa.scalar("not a number"), swapped)


EPOCH_UNITS: dict[str, float] = {"s": 1e6, "ms": 1e3, "us": 1.0, "ns": 1e-3}  # -> microseconds


class Times(NamedTuple):
    """Parsed times: UTC epoch microseconds and per-row masks (``unitless`` is part of ``bad``)."""

    micros: np.ndarray  # int64; 0 where absent or bad
    present: np.ndarray  # a value was given
    bad: np.ndarray  # given but not understood
    unitless: np.ndarray  # a number, read without a configured epoch unit


def timestamps(
    values: Column, fmt: str | None = None, timezone: str = "UTC", epoch_unit: str | None = None
) -> Times:
    """Times as UTC epoch microseconds, with masks of present, bad and unit-less values.

    Accepts Arrow/pandas timestamps and dates and ISO 8601 strings with or without a zone; text in
    another layout is read with the strptime format ``fmt``. Values without a zone are wall-clock
    time in ``timezone`` (a time that does not exist there, or exists twice, is unparseable).
    Numbers (typed, or digits in text) are epoch times only in the configured ``epoch_unit``
    (s, ms, us or ns): guessing the unit from the magnitude once read milliseconds as seconds.
    """
    array = to_arrow(values)
    n = len(array)
    micros = np.zeros(n, dtype=np.int64)
    none = np.zeros(n, dtype=bool)
    if pa.types.is_null(array.type):
        return Times(micros, none, none.copy(), none.copy())
    present = pc.is_valid(array).to_numpy(zero_copy_only=False)
    bad = np.zeros(n, dtype=bool)
    if timezone != "UTC" and _naive_time(array):
        array = _localised(array, timezone)
    if pa.types.is_timestamp(array.type) or pa.types.is_date(array.type):
        target = pa.timestamp("us", tz=getattr(array.type, "tz", None))
        # Tz-aware values are stored as UTC already; naive ones are read as UTC wall-clock time.
        raw = pc.fill_null(array.cast(target, safe=False).cast(pa.int64()), 0)
        return Times(raw.to_numpy(zero_copy_only=False).astype(np.int64), present, bad, none)
    if pa.types.is_integer(array.type) or pa.types.is_floating(array.type):
        # Unsafe: nanoseconds beyond 2**53 lose a few ns, far below the microseconds kept.
        numeric = array.cast(pa.float64(), safe=False).to_numpy(zero_copy_only=False).astype(np.float64)
    elif pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        stripped = _empty_to_null(pc.utf8_trim_whitespace(array.cast(pa.string())))
        present = pc.is_valid(stripped).to_numpy(zero_copy_only=False)
        series = stripped.to_pandas()
        numeric = pd.to_numeric(series, errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan, copy=True
        )
        textual = present & np.isnan(numeric)
        if textual.any():
            parsed = _parse_text_times(series[textual], fmt, timezone)
            ok = parsed.notna().to_numpy()
            rows = np.flatnonzero(textual)
            micros[rows[ok]] = (
                parsed[ok].dt.tz_localize(None).to_numpy(dtype="datetime64[us]").astype(np.int64)
            )
            bad[rows[~ok]] = True
            numeric[textual] = np.nan
    else:  # booleans, nested values: not a time
        return Times(micros, present, present.copy(), none)
    number = present & ~bad & ~np.isnan(numeric)
    if epoch_unit is None:
        return Times(micros, present, bad | number, number)
    finite = number & np.isfinite(numeric)
    bad |= number & ~finite
    converted = np.round(np.where(finite, numeric, 0.0) * EPOCH_UNITS[epoch_unit])
    out_of_range = finite & (np.abs(converted) > 9.2e18)
    bad |= out_of_range
    micros = np.where(finite & ~out_of_range, converted, micros).astype(np.int64)
    return Times(micros, present, bad, none)


def _naive_time(array: pa.Array) -> bool:
    return (pa.types.is_timestamp(array.type) and array.type.tz is None) or pa.types.is_date(array.type)


def _localised(array: pa.Array, timezone: str) -> pa.Array:
    """Naive timestamps or dates read as wall-clock time in ``timezone``, as UTC-aware ones."""
    naive = array.cast(pa.timestamp("us"), safe=False)
    series = pd.Series(naive.to_pandas(), dtype="datetime64[us]")
    local = series.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")
    return pa.array(local, type=pa.timestamp("us", tz="UTC"), from_pandas=True)


def _parse_text_times(series: pd.Series, fmt: str | None, timezone: str) -> pd.Series:
    """Text times as UTC ``Timestamp``s (NaT where unreadable): ``fmt`` or ISO 8601, naive ones in
    ``timezone``."""
    if timezone == "UTC":  # the common case in one vectorised call
        return pd.to_datetime(series, utc=True, errors="coerce", format=fmt or "ISO8601")
    layout = fmt or "ISO8601"
    try:
        parsed = pd.to_datetime(series, errors="coerce", format=layout)
    except ValueError:  # some values name a zone and some do not: one by one (rare)
        times = [_one_time(pd.to_datetime(v, errors="coerce", format=layout), timezone) for v in series]
        return pd.Series(times, index=series.index, dtype="datetime64[ns, UTC]")
    if parsed.dt.tz is not None:  # the text named its zone
        return parsed.dt.tz_convert("UTC")
    return parsed.dt.tz_localize(timezone, ambiguous="NaT", nonexistent="NaT").dt.tz_convert("UTC")


def _one_time(value: object, timezone: str) -> pd.Timestamp:
    if not isinstance(value, pd.Timestamp) or pd.isna(value):
        return pd.NaT
    if value.tzinfo is None:
        try:
            return value.tz_localize(timezone).tz_convert("UTC")
        except (ValueError, TypeError):  # nonexistent or ambiguous local time
            return pd.NaT
    return value.tz_convert("UTC")


JSON_TYPES = "json_types"  # internal column of JSON sources: the text fields given another type


def json_type_faults(frame: pd.DataFrame, fields: Iterable[str]) -> pa.Array:
    """Per row of a frame decoded from JSON, ``field:kind`` for each of ``fields`` whose value is
    a JSON number, boolean, object or array where a string belongs (space-separated; null: none).

    Only JSON says what type a value was written as: a CSV's ``12345`` is text that reading took
    for a number, but ``{"user_id": 12345}`` is a number, which validation refuses as an id.
    """
    faults: list[list[str]] = [[] for _ in range(len(frame))]
    for name in fields:
        if name not in frame.columns:
            continue
        column = frame[name]
        if pd.api.types.infer_dtype(column, skipna=True) in ("string", "empty"):
            continue
        for row, value in enumerate(column.tolist()):
            kind = _json_kind(value)
            if kind is not None:
                faults[row].append(f"{name}:{kind}")
    return pa.array([" ".join(f) if f else None for f in faults], pa.string())


def _json_kind(value: object) -> str | None:
    """The JSON type of a decoded value that is not a string (None: a string or missing)."""
    if value is None or isinstance(value, str):
        return None
    if isinstance(value, bool | np.bool_):
        return "boolean"
    if isinstance(value, int | float | np.integer | np.floating):
        return None if isinstance(value, float | np.floating) and np.isnan(value) else "number"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list | tuple | np.ndarray):
        return "array"
    return "value"


def booleans(values: Column) -> tuple[pa.Array, np.ndarray]:
    """Booleans (true/false, yes/no, 1/0 in text too) and a mask of entries that are none of those."""
    array = to_arrow(values)
    if pa.types.is_boolean(array.type):
        return array, np.zeros(len(array), dtype=bool)
    if pa.types.is_null(array.type):
        return pa.nulls(len(array), pa.bool_()), np.zeros(len(array), dtype=bool)
    lowered = pc.utf8_lower(pc.utf8_trim_whitespace(_as_text(array)))
    truthy = pc.is_in(lowered, pa.array(["true", "t", "yes", "y", "1", "1.0"]))
    falsy = pc.is_in(lowered, pa.array(["false", "f", "no", "n", "0", "0.0"]))
    present = pc.and_(pc.is_valid(lowered), pc.not_equal(lowered, "")).to_numpy(zero_copy_only=False)
    known = pc.or_(truthy, falsy).to_numpy(zero_copy_only=False)
    result = pc.if_else(truthy, True, pc.if_else(falsy, False, pa.scalar(None, pa.bool_())))
    return result, present & ~known


def as_numpy_mask(array: Any) -> np.ndarray:
    """A boolean numpy mask from an Arrow boolean array (nulls count as False)."""
    return pc.fill_null(array, False).to_numpy(zero_copy_only=False)
