"""Column-level normalisation for ingestion: any input column onto a canonical Arrow type.

Each parser takes one column as it came (an Arrow array or a pandas Series of whatever type the
source had) and returns the canonical values plus a mask of entries that were present but could
not be understood, so validation can name the row and the reason. All of it is vectorised.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
            # Mixed Python objects (e.g. ints and strings in one JSON field): compare them as text.
            text = values.astype(object).where(values.notna(), None)
            array = pa.array([None if v is None else str(v) for v in text], type=pa.string())
        values = array
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    if pa.types.is_dictionary(values.type):
        values = values.dictionary_decode()
    return values


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


# Epoch numbers: below 1e11 they are seconds (1e11 s is the year 5138), then milliseconds,
# microseconds and nanoseconds by magnitude.
_EPOCH_SCALES = ((1e11, 1e6), (1e14, 1e3), (1e17, 1.0))


def _epoch_to_micros(values: np.ndarray) -> np.ndarray:
    magnitude = np.abs(values)
    scale = np.full(values.shape, 1e-3)  # nanoseconds
    for limit, factor in reversed(_EPOCH_SCALES):
        scale = np.where(magnitude < limit, factor, scale)
    return np.round(values * scale)


def timestamps(
    values: Column, fmt: str | None = None, timezone: str = "UTC"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """UTC epoch microseconds (int64), a mask of present values, and a mask of unparseable ones.

    Accepts Arrow/pandas timestamps and dates, epoch seconds, milliseconds, microseconds or
    nanoseconds (told apart by magnitude), and ISO 8601 strings with or without a zone; text in
    another layout is read with the strptime format ``fmt``. Values without a zone are wall-clock
    time in ``timezone`` (a time that does not exist there, or exists twice, is unparseable).
    """
    array = to_arrow(values)
    n = len(array)
    micros = np.zeros(n, dtype=np.int64)
    if pa.types.is_null(array.type):
        return micros, np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
    present = pc.is_valid(array).to_numpy(zero_copy_only=False)
    bad = np.zeros(n, dtype=bool)
    if timezone != "UTC" and _naive_time(array):
        array = _localised(array, timezone)
    if pa.types.is_timestamp(array.type) or pa.types.is_date(array.type):
        target = pa.timestamp("us", tz=getattr(array.type, "tz", None))
        # Tz-aware values are stored as UTC already; naive ones are read as UTC wall-clock time.
        raw = pc.fill_null(array.cast(target, safe=False).cast(pa.int64()), 0)
        return raw.to_numpy(zero_copy_only=False).astype(np.int64), present, bad
    if pa.types.is_integer(array.type) or pa.types.is_floating(array.type):
        numeric = array.cast(pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)
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
    else:
        return micros, present, present.copy()
    number = present & ~bad & ~np.isnan(numeric)
    finite = number & np.isfinite(numeric)
    bad |= number & ~finite
    converted = _epoch_to_micros(np.where(finite, numeric, 0.0))
    out_of_range = finite & (np.abs(converted) > 9.2e18)
    bad |= out_of_range
    micros = np.where(finite & ~out_of_range, converted, micros).astype(np.int64)
    return micros, present, bad


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
