"""What every format reader returns, its error type, and the small helpers the readers share.

A reader maps one public data format onto the canonical columns of `fusionrec.data.schema`:
ids become strings, event types become canonical names, timestamps become
``datetime64[us, UTC]``. It returns *every* row of its source, in file order, with a 1-based
``row_number``; deciding what is a duplicate or a bad value is ingestion's job, not the reader's.
A file whose structure cannot be read (wrong columns, wrong field count, unparseable JSON, a
timestamp or number that does not parse) raises `FormatError` naming the file, line and field.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from fusionrec.data.schema import EVENT_COLUMNS, ITEM_COLUMNS, USER_COLUMNS, normalise_event_type

EvalProtocol = Literal["fixed", "leave_one_out", "temporal", "ratings_kfold", "session_next_item"]

# Synthesised clocks (formats that carry no timestamps) count seconds from this instant.
SYNTHETIC_EPOCH = pd.Timestamp("2020-01-01T00:00:00Z")


class FormatError(ValueError):
    """A source file that does not follow its format; says which file, line and field.

    ``line`` is the line of a text file (1 = its first line, the header where there is one) or
    the 1-based row of a Parquet file; ``reason`` is the message without the location.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = None if path is None else Path(path)
        self.line = line
        self.field = field
        self.reason = message
        where = [str(path)] if path is not None else []
        if line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field {field!r}")
        super().__init__(f"{': '.join(where)}: {message}" if where else message)


@dataclass
class SourceData:
    """One source read into canonical frames.

    ``events`` holds canonical event columns (optional ones may be absent) plus ``row_number``,
    the 1-based record number in the source (header lines not counted; multi-part sources count on
    across their parts as if concatenated; formats with one line per user or session give every
    event of that line the line's number). ``test_events`` is a held-out split shipped with the data,
    ``protocol`` the evaluation protocol the format is normally used with.
    """

    events: pd.DataFrame
    items: pd.DataFrame | None
    users: pd.DataFrame | None
    test_events: pd.DataFrame | None = None
    protocol: EvalProtocol = "temporal"
    name: str = ""

    @property
    def n_events(self) -> int:
        """Events in ``events`` and ``test_events`` together."""
        extra = 0 if self.test_events is None else len(self.test_events)
        return len(self.events) + extra


@dataclass(frozen=True)
class Reader:
    """A registered format: its name (the CLI's ``--format`` value), what it reads, and how."""

    name: str
    read: Callable[..., SourceData]
    description: str
    protocol: EvalProtocol = "temporal"

    def __call__(self, path: str | Path, **options: Any) -> SourceData:
        return self.read(path, **options)


# --- paths ---------------------------------------------------------------------------------


def existing(path: str | Path) -> Path:
    """The path as a `Path`, or a `FormatError` when nothing is there."""
    p = Path(path).expanduser()
    if not p.exists():
        raise FormatError("no such file or folder", path=p)
    return p


def find_one(folder: Path, patterns: Iterable[str], what: str) -> Path:
    """The first file in ``folder`` matching one of ``patterns`` (in order of the patterns)."""
    patterns = list(patterns)
    for pattern in patterns:
        matches = sorted(folder.glob(pattern))
        if matches:
            return matches[0]
    raise FormatError(f"no {what} found (looked for {', '.join(patterns)})", path=folder)


def find_optional(folder: Path, patterns: Iterable[str]) -> Path | None:
    for pattern in patterns:
        matches = sorted(folder.glob(pattern))
        if matches:
            return matches[0]
    return None


def part_files(folder: Path, stem: str, suffix: str) -> list[Path]:
    """``stem.suffix`` alone, or ``stem.part*.suffix`` in part-number order (part2 before part10)."""
    single = folder / f"{stem}{suffix}"
    if single.is_file():
        return [single]
    parts = list(folder.glob(f"{stem}.part*{suffix}"))

    def number(p: Path) -> tuple[int, str]:
        digits = p.name[len(stem) + len(".part") : -len(suffix)]
        return (int(digits), p.name) if digits.isdigit() else (1 << 30, p.name)

    return sorted(parts, key=number)


# --- columns -------------------------------------------------------------------------------


def id_strings(values: pd.Series | np.ndarray) -> pd.Series:
    """Ids as pandas strings; nulls stay null (an integer id 7 becomes "7", never "7.0")."""
    s = values if isinstance(values, pd.Series) else pd.Series(values)
    if pd.api.types.is_float_dtype(s.dtype):
        # Float ids only come from integer columns with nulls: print them without ".0".
        out = pd.Series(pd.NA, index=s.index, dtype="str")
        ok = s.notna()
        out[ok] = s[ok].astype("int64").astype("str")
        return out
    return s.astype("str")


def map_event_types(raw: pd.Series, mapping: Mapping[str, str]) -> pd.Series:
    """Source type names -> canonical names; names outside ``mapping`` are normalised and passed on.

    Passing unknown names on (rather than failing) lets ingestion quarantine those rows with
    their reason while keeping every good row.
    """
    keys = raw.astype("str")
    mapped = keys.map(dict(mapping))
    unknown = mapped.isna() & keys.notna()
    if unknown.any():
        mapped[unknown] = keys[unknown].map(normalise_event_type)
    return mapped.astype("str")


def utc_from_epoch(values: np.ndarray | pd.Series, unit: str) -> pd.Series:
    """Unix epoch numbers in ``unit`` ("s", "ms") -> ``datetime64[us, UTC]``."""
    return pd.Series(pd.to_datetime(np.asarray(values), unit=unit, utc=True)).dt.as_unit("us")


def synthetic_timestamps(n: int, start: int = 0) -> pd.Series:
    """Order-preserving stand-in times: `SYNTHETIC_EPOCH` + (start + position) seconds."""
    seconds = np.arange(start, start + n, dtype=np.int64)
    return pd.Series(SYNTHETIC_EPOCH + pd.to_timedelta(seconds, unit="s")).dt.as_unit("us")


def parse_times(
    raw: pd.Series,
    *,
    path: Path,
    field: str,
    fmt: str | None,
    tz: str = "UTC",
    first_line: int = 2,
    required: bool = True,
) -> pd.Series:
    """Parse time strings (naive ones are in ``tz``) to UTC; the first unparseable one is a `FormatError`.

    ``first_line`` is the file line of ``raw``'s first element (2 after a header line); a missing
    value is an error too unless ``required`` is false (it then stays NaT).
    """
    parsed = pd.to_datetime(raw, format=fmt, errors="coerce", utc=tz == "UTC")
    if tz != "UTC":
        parsed = parsed.dt.tz_localize(tz, ambiguous="NaT", nonexistent="shift_forward").dt.tz_convert("UTC")
    bad = parsed.isna() & raw.notna()
    missing = raw.isna() if required else pd.Series(False, index=raw.index)
    if bad.any() or missing.any():
        pos = int(np.flatnonzero((bad | missing).to_numpy())[0])
        value = raw.iloc[pos]
        why = "missing time" if pd.isna(value) else f"cannot parse time {value!r}"
        if fmt:
            why += f" (expected format {fmt!r})"
        raise FormatError(why, path=path, line=first_line + pos, field=field)
    return parsed.dt.as_unit("us").reset_index(drop=True)


def parse_numbers(
    raw: pd.Series,
    *,
    path: Path,
    field: str,
    first_line: int = 2,
    integer: bool = False,
    required: bool = False,
) -> pd.Series:
    """Numeric strings -> float64 (nulls stay NaN unless ``required``); a non-number is a `FormatError`."""
    parsed = pd.to_numeric(raw, errors="coerce")
    bad = parsed.isna() & raw.notna() & (raw.astype("str").str.strip() != "")
    if integer:
        bad |= parsed.notna() & (parsed != np.floor(parsed))
    if bad.any():
        pos = int(np.flatnonzero(bad.to_numpy())[0])
        kind = "an integer" if integer else "a number"
        raise FormatError(f"{raw.iloc[pos]!r} is not {kind}", path=path, line=first_line + pos, field=field)
    if required and parsed.isna().any():
        pos = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        raise FormatError("missing value", path=path, line=first_line + pos, field=field)
    return parsed.astype("float64")


def require_columns(columns: Iterable[str], needed: Iterable[str], *, path: Path, line: int = 1) -> None:
    have = set(columns)
    missing = [c for c in needed if c not in have]
    if missing:
        raise FormatError(
            f"missing column(s) {', '.join(missing)}; found {', '.join(map(str, columns))}",
            path=path,
            line=line,
        )


def read_delimited(
    path: Path, *, sep: str, names: list[str] | None = None, encoding: str = "utf-8"
) -> pd.DataFrame:
    """A delimited text file with every field as a string (we convert and check types ourselves).

    ``names`` given: the file has no header line. A row with the wrong number of fields is a
    `FormatError` with its line.
    """
    try:
        return pd.read_csv(
            path,
            sep=sep,
            header=None if names is not None else "infer",
            names=names,
            dtype="str",
            keep_default_na=False,
            na_values=[""],
            encoding=encoding,
            engine="c",
        )
    except pd.errors.ParserError as exc:
        line = _line_from_parser_error(str(exc))
        raise FormatError(f"wrong number of fields ({exc})", path=path, line=line) from exc
    except UnicodeDecodeError as exc:
        raise FormatError(f"not {encoding} text ({exc.reason} at byte {exc.start})", path=path) from exc
    except pd.errors.EmptyDataError as exc:
        raise FormatError("empty file", path=path) from exc


def _line_from_parser_error(message: str) -> int | None:
    # pandas says e.g. "Error tokenizing data. C error: Expected 9 fields in line 5, saw 10".
    marker = " in line "
    if marker in message:
        digits = message.split(marker, 1)[1].split(",", 1)[0].strip()
        if digits.isdigit():
            return int(digits)
    return None


def source_row_ids(raw: pd.DataFrame, prefix: str) -> pd.Series:
    """Event ids hashed from every field of the source row (vectorised, 64-bit).

    Used where a reader drops a field that can tell two events apart (Tianchi's user geohash):
    exact copies of a source row share an id, so ingestion counts them as duplicates, while rows
    that differ only in a dropped field stay distinct events.
    """
    hashes = pd.util.hash_pandas_object(raw, index=False).to_numpy()
    return (prefix + ":" + pd.Series(hashes).astype("str")).astype("str")


def json_objects(frame: pd.DataFrame, columns: Iterable[str] | None = None) -> pd.Series:
    """One JSON object per row of ``frame`` (the chosen columns; nulls written as null)."""
    sub = frame[list(frame.columns if columns is None else columns)]
    if sub.empty:
        return pd.Series([], index=frame.index, dtype="str")
    text = sub.to_json(orient="records", lines=True, force_ascii=False, date_format="iso")
    # Split on "\n" only: to_json escapes newlines inside values, not other line separators.
    lines = pd.Series(text.rstrip("\n").split("\n"), index=frame.index, dtype="str")
    # to_json writes "/" as "\/"; both are valid JSON, the plain one is easier to read. A data
    # backslash is always written "\\", so this replacement never touches one.
    return lines.str.replace("\\/", "/", regex=False)


def events_frame(columns: Mapping[str, Any], row_number: np.ndarray | pd.Series) -> pd.DataFrame:
    """Canonical event columns in schema order (those given), then ``row_number`` (int64)."""
    data = {c: _reset(columns[c]) for c in EVENT_COLUMNS if c in columns}
    unknown = set(columns) - set(EVENT_COLUMNS)
    if unknown:
        raise ValueError(f"not event columns: {sorted(unknown)}")
    data["row_number"] = np.asarray(row_number, dtype=np.int64)
    return pd.DataFrame(data)


def items_frame(columns: Mapping[str, Any]) -> pd.DataFrame:
    """Canonical item columns in schema order (those given)."""
    return _frame(columns, ITEM_COLUMNS, "item")


def users_frame(columns: Mapping[str, Any]) -> pd.DataFrame:
    return _frame(columns, USER_COLUMNS, "user")


def _frame(columns: Mapping[str, Any], order: list[str], what: str) -> pd.DataFrame:
    unknown = set(columns) - set(order)
    if unknown:
        raise ValueError(f"not {what} columns: {sorted(unknown)}")
    return pd.DataFrame({c: _reset(columns[c]) for c in order if c in columns})


def _reset(values: Any) -> Any:
    return values.reset_index(drop=True) if isinstance(values, pd.Series) else values


def constant(value: str, n: int) -> pd.Series:
    """A string column of ``n`` copies of ``value``."""
    return pd.Series(value, index=pd.RangeIndex(n), dtype="str")
