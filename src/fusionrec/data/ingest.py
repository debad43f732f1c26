"""Ingest canonical events, items and users into an `EventStore`.

Each batch is validated (bad rows go to the quarantine with their row number and reason), given
content-derived event ids where the source has none, freed of repeats, and written in one
transaction together with its rejected rows. So a kill mid-file leaves whole batches only, and a
re-run of the same file stores exactly the rest: ids are deterministic, known ids are skipped.

    from fusionrec.data.store import open_store
    from fusionrec.data.ingest import ingest_path

    with open_store("duckdb:///shop.duckdb") as store:
        report = ingest_path(store, "shop/")           # events/items/users.parquet from `generate`
        print(report.to_dict())
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from fusionrec.data import item_vectors
from fusionrec.data.batches import count_rows, file_kind, iter_arrow_batches, iter_canonical_batches
from fusionrec.data.import_options import ImportOptions
from fusionrec.data.quarantine import first_row_per_reason
from fusionrec.data.schema import EventType, EventTypes, normalise_event_type
from fusionrec.data.store.base import EventStore
from fusionrec.data.validate import Batch, CheckedBatch, IngestError, check_events, check_items, check_users

__all__ = [
    "IngestError",
    "IngestReport",
    "ingest_batches",
    "ingest_frame",
    "ingest_items",
    "ingest_path",
    "ingest_users",
    "iter_canonical_batches",
]

MAX_EXAMPLES = 5
DEFAULT_BATCH_ROWS = 200_000
DEFAULT_MAX_FUTURE = timedelta(days=1)
DEFAULT_MAX_EVENTS_PER_MINUTE = 30

Progress = Callable[[int], None]  # called with the rows of each finished batch


@dataclass
class IngestReport:
    """What an ingestion did. ``read`` counts every source row (events, items and users)."""

    source: str = ""
    read: int = 0
    stored: int = 0  # events newly stored
    duplicates: int = 0  # events already stored, or repeated within the input
    quarantined: int = 0  # rows rejected (see ``reasons``)
    erased_skipped: int = 0  # events of erased users, dropped
    items: int = 0  # catalogue rows written (inserted or updated)
    users: int = 0  # user rows written (inserted or updated)
    bot_events: int = 0  # events newly flagged as bot traffic
    seconds: float = 0.0
    reasons: Counter[str] = field(default_factory=Counter)
    examples: list[dict[str, Any]] = field(default_factory=list)  # a few rejected rows
    samples: dict[str, dict[str, Any]] = field(default_factory=dict)  # reason -> its first rejected row
    types_read: Counter[str] = field(default_factory=Counter)  # events per event type
    types_rejected: Counter[str] = field(default_factory=Counter)  # of those, quarantined
    types_unknown: Counter[str] = field(default_factory=Counter)  # of those, not a configured type

    @property
    def valid(self) -> int:
        """Rows that passed validation (stored now, stored before, or dropped by an erasure)."""
        return self.stored + self.duplicates + self.erased_skipped + self.items + self.users

    def failed(self, max_quarantine_share: float | None = None) -> bool:
        """True when nothing valid was read, or more than ``max_quarantine_share`` of rows were rejected."""
        if self.valid == 0:
            return True
        return max_quarantine_share is not None and self.quarantined > max_quarantine_share * self.read

    def add_batch(self, checked: CheckedBatch, stored: int, duplicates: int, erased: int) -> None:
        self.read += checked.read
        self.stored += stored
        self.duplicates += checked.duplicates + duplicates
        self.erased_skipped += erased
        self.quarantined += checked.quarantine.num_rows
        self.reasons.update(checked.reasons)
        self.types_read.update(checked.types_read)
        self.types_rejected.update(checked.types_rejected)
        self.types_unknown.update(checked.types_unknown)
        room = MAX_EXAMPLES - len(self.examples)
        if room > 0 and checked.quarantine.num_rows:
            for row in checked.quarantine.slice(0, room).to_pylist():
                self.examples.append({k: row[k] for k in ("source", "row_number", "reason", "raw")})
        for reason, row in first_row_per_reason(checked.quarantine).items():
            self.samples.setdefault(reason, row)

    def merge(self, other: IngestReport) -> None:
        """Add another report's counts (e.g. the catalogue's) into this one."""
        for name in (
            "read",
            "stored",
            "duplicates",
            "quarantined",
            "erased_skipped",
            "items",
            "users",
            "bot_events",
            "seconds",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.reasons.update(other.reasons)
        self.types_read.update(other.types_read)
        self.types_rejected.update(other.types_rejected)
        self.types_unknown.update(other.types_unknown)
        self.examples.extend(other.examples[: max(MAX_EXAMPLES - len(self.examples), 0)])
        for reason, row in other.samples.items():
            self.samples.setdefault(reason, row)

    def refused_types(self) -> list[str]:
        """Event types of which every row read was quarantined (e.g. a name no alias maps)."""
        return sorted(t for t, n in self.types_read.items() if n and self.types_rejected[t] == n)

    def warnings(self, share: float) -> list[str]:
        """One line per problem worth stopping for: a whole event type refused, or more than
        ``share`` of the rows read quarantined."""
        lines = []
        for name in self.refused_types():
            line = f"every {name!r} event was rejected ({self.types_rejected[name]:,} rows)"
            if self.types_unknown[name]:
                line += (
                    "; an unknown event type: map it onto a known one in [event_aliases] of "
                    f'fusionrec.toml, e.g. {name} = "add_to_cart"'
                )
            lines.append(line)
        if self.read and self.quarantined > share * self.read:
            lines.append(
                f"{self.quarantined:,} of {self.read:,} rows ({self.quarantined / self.read:.1%}) were "
                f"quarantined, above the {share:.0%} warning share"
            )
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "read": self.read,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "quarantined": self.quarantined,
            "erased_skipped": self.erased_skipped,
            "items": self.items,
            "users": self.users,
            "bot_events": self.bot_events,
            "seconds": round(self.seconds, 3),
            "events_per_second": round(self.read / self.seconds) if self.seconds > 0 else None,
            "reasons": dict(self.reasons.most_common()),
            "examples": list(self.examples),
            "samples": dict(self.samples),
            "refused_event_types": self.refused_types(),
        }


def _event_types(event_types: EventTypes | Iterable[str] | None) -> EventTypes:
    """The accepted event types: an `EventTypes`, or names (canonical ones keep their weights)."""
    if event_types is None:
        return EventTypes()
    if isinstance(event_types, EventTypes):
        return event_types
    names = {normalise_event_type(n) for n in event_types}
    canonical = EventTypes()
    kept = [t for t in canonical.types if t.name in names]
    kept += [EventType(name=n, weight=1.0) for n in sorted(names - set(canonical.names))]
    return EventTypes(types=tuple(kept))


def ingest_batches(
    store: EventStore,
    batches: Iterable[Batch],
    *,
    source: str = "batches",
    event_types: EventTypes | Iterable[str] | None = None,
    max_future: timedelta = DEFAULT_MAX_FUTURE,
    now: datetime | None = None,
    progress: Progress | None = None,
    options: ImportOptions | None = None,
    aliases: Mapping[str, str] | None = None,
) -> IngestReport:
    """Validate and store batches of canonical events (pandas or Arrow, with ``row_number``).

    Each batch is one transaction (its events and its rejected rows together). ``options`` say how
    text numbers and times are written, ``aliases`` map a shop's event type names (see `check_events`).
    """
    types = _event_types(event_types)
    report = IngestReport(source=source)
    hasher = duckdb.connect()  # in-memory, for vectorised md5 of event ids
    started = time.perf_counter()
    try:
        for batch in batches:
            checked = check_events(
                batch,
                source=source,
                event_types=types,
                max_future=max_future,
                now=now,
                hasher=hasher,
                options=options,
                aliases=aliases,
            )
            result = store.write_batch(checked.valid, checked.quarantine)
            report.add_batch(checked, result.stored, result.duplicates, result.erased_skipped)
            if progress is not None:
                progress(checked.read)
    finally:
        hasher.close()
        report.seconds = time.perf_counter() - started
    return report


def _frame_batches(data: Batch, batch_rows: int) -> Iterable[pa.Table | pd.DataFrame]:
    if isinstance(data, pa.RecordBatch):
        data = pa.Table.from_batches([data])
    n = len(data) if isinstance(data, pd.DataFrame) else data.num_rows
    numbered = "row_number" in (data.columns if isinstance(data, pd.DataFrame) else data.column_names)
    for start in range(0, n, batch_rows):
        if isinstance(data, pd.DataFrame):
            part = data.iloc[start : start + batch_rows].reset_index(drop=True)
            if not numbered:
                part = part.assign(row_number=range(start + 1, start + len(part) + 1))
        else:
            part = data.slice(start, batch_rows)
            if not numbered:
                part = part.append_column("row_number", pa.array(range(start + 1, start + part.num_rows + 1)))
        yield part


def ingest_frame(
    store: EventStore,
    data: pd.DataFrame | pa.Table | pa.RecordBatch,
    *,
    source: str = "frame",
    batch_rows: int = DEFAULT_BATCH_ROWS,
    **options: Any,
) -> IngestReport:
    """Ingest events held in memory; rows are numbered from 1 unless ``row_number`` is given."""
    return ingest_batches(store, _frame_batches(data, batch_rows), source=source, **options)


def _ingest_table_rows(
    store: EventStore,
    batches: Iterable[Batch],
    *,
    source: str,
    check: Callable[..., CheckedBatch],
    upsert: Callable[[pa.Table], int],
    counter: str,
    options: ImportOptions | None,
) -> IngestReport:
    report = IngestReport(source=source)
    for batch in batches:
        checked = check(batch, source=source, options=options)
        written = upsert(checked.valid)
        if checked.quarantine.num_rows:
            store.add_quarantine(checked.quarantine)
        report.add_batch(checked, 0, 0, 0)
        setattr(report, counter, getattr(report, counter) + written)
    return report


def ingest_items(
    store: EventStore,
    data: str | Path | Batch,
    *,
    column_map: Mapping[str, str] | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    options: ImportOptions | None = None,
) -> IngestReport:
    """Upsert catalogue rows (a file or a frame); rows without item_id, with a bad price or bad
    vectors (see `validate.check_items`) are quarantined.

    ``column_map`` renames columns (default: ``options.items_map``); ``options`` also say how the
    file is read (delimiter, decimal mark, timestamp format and zone).
    """
    options = options or ImportOptions()
    mapping = column_map if column_map is not None else options.items_map
    source, batches = _source_batches(data, mapping, batch_rows, "items", options.delimiter)
    # Each vector name keeps one length: the stored catalogue's, then the first batch's.
    dims = store.item_vector_dims()

    def check(batch: Batch, **kwargs: Any) -> CheckedBatch:
        checked = check_items(batch, vector_dims=dims, **kwargs)
        for name, dim in item_vectors.dims_of(checked.valid.column("vectors")).items():
            dims.setdefault(name, dim)
        return checked

    return _ingest_table_rows(
        store,
        batches,
        source=source,
        check=check,
        upsert=store.upsert_items,
        counter="items",
        options=options,
    )


def ingest_users(
    store: EventStore,
    data: str | Path | Batch,
    *,
    column_map: Mapping[str, str] | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    options: ImportOptions | None = None,
) -> IngestReport:
    """Upsert user rows (a file or a frame); rows without user_id are quarantined.

    ``column_map`` renames columns (default: ``options.users_map``).
    """
    options = options or ImportOptions()
    mapping = column_map if column_map is not None else options.users_map
    source, batches = _source_batches(data, mapping, batch_rows, "users", options.delimiter)
    return _ingest_table_rows(
        store,
        batches,
        source=source,
        check=check_users,
        upsert=store.upsert_users,
        counter="users",
        options=options,
    )


def _source_batches(
    data: str | Path | Batch,
    column_map: Mapping[str, str] | None,
    batch_rows: int,
    name: str,
    delimiter: str | None = None,
) -> tuple[str, Iterable[Batch]]:
    if isinstance(data, str | Path):
        path = Path(data)
        batches = iter_arrow_batches(path, column_map=column_map, batch_rows=batch_rows, delimiter=delimiter)
        return str(path), batches
    if column_map:
        data = (
            data.rename(columns=dict(column_map))
            if isinstance(data, pd.DataFrame)
            else data.rename_columns([column_map.get(c, c) for c in data.column_names])
        )
    return name, _frame_batches(data, batch_rows)


_FOLDER_NAMES = ("events", "items", "users")


def _find(folder: Path, stem: str) -> Path | None:
    for candidate in sorted(folder.iterdir()):
        if candidate.is_file() and candidate.name.split(".")[0] == stem:
            try:
                file_kind(candidate)
            except IngestError:
                continue
            return candidate
    return None


def ingest_path(
    store: EventStore,
    path: str | Path,
    *,
    items: str | Path | None = None,
    users: str | Path | None = None,
    column_map: Mapping[str, str] | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    event_types: EventTypes | Iterable[str] | None = None,
    max_future: timedelta = DEFAULT_MAX_FUTURE,
    flag_bots: bool = True,
    max_events_per_minute: int = DEFAULT_MAX_EVENTS_PER_MINUTE,
    progress: bool = True,
    options: ImportOptions | None = None,
    aliases: Mapping[str, str] | None = None,
) -> IngestReport:
    """Ingest a canonical events file (CSV, Parquet, JSONL), or a folder written by ``fusionrec generate``.

    A folder's ``events.*``, ``items.*`` and ``users.*`` are all ingested (items and users first);
    ``items``/``users`` name catalogue and user files explicitly. ``options`` (`ImportOptions`)
    hold the column maps of the three files and how every file is written (delimiter, decimal mark,
    timestamp format and zone); ``column_map``, when given, replaces the events' map. ``aliases``
    map a shop's event type names onto known ones. After the events, users (or anonymous
    sessions) above ``max_events_per_minute`` are flagged as bots unless ``flag_bots`` is false,
    even when every row was already stored (a re-run after a crash finishes the flagging).
    A Rich progress bar goes to standard error when ``progress`` is true.
    """
    started = time.perf_counter()
    path = Path(path)
    if path.is_dir():
        events_file = _find(path, "events")
        items = items if items is not None else _find(path, "items")
        users = users if users is not None else _find(path, "users")
        if events_file is None and items is None and users is None:
            raise IngestError(f"{path}: no events.*, items.* or users.* file in this folder")
    elif path.is_file():
        events_file = path
    else:
        raise IngestError(f"{path}: no such file or folder")

    reading = options or ImportOptions()
    report = IngestReport(source=str(path))
    if items is not None:
        report.merge(ingest_items(store, items, batch_rows=batch_rows, options=reading))
    if users is not None:
        report.merge(ingest_users(store, users, batch_rows=batch_rows, options=reading))
    if events_file is not None:
        batches = iter_arrow_batches(
            events_file,
            column_map=column_map if column_map is not None else reading.map,
            batch_rows=batch_rows,
            delimiter=reading.delimiter,
        )
        settings: dict[str, Any] = {
            "source": str(events_file),
            "event_types": event_types,
            "max_future": max_future,
            "options": reading,
            "aliases": aliases,
        }
        if progress:
            events_report = _with_progress(
                store, batches, count_rows(events_file), events_file.name, settings
            )
        else:
            events_report = ingest_batches(store, batches, **settings)
        report.merge(events_report)
        if flag_bots:
            # Always, not only when rows were stored: a kill between the last batch commit and this
            # step leaves bots unflagged, and the re-run then stores nothing. Flagging only touches
            # unflagged events, so a run with nothing to flag changes nothing.
            report.bot_events = store.flag_bots(max_events_per_minute)
    report.seconds = time.perf_counter() - started
    return report


def _with_progress(
    store: EventStore, batches: Iterable[Batch], total: int | None, label: str, options: dict[str, Any]
) -> IngestReport:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [
        TextColumn("[bold]ingest[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(label, total=total)
        return ingest_batches(store, batches, progress=lambda rows: bar.advance(task, rows), **options)
