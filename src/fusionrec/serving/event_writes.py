"""Live events into the store, with group commit.

One event costs little to check and store; a statement, a transaction and a validation pass cost
milliseconds each, whatever their size. So the requests whose events arrive while the store's
writer thread is busy wait in a queue, and the writer takes them all at once: one validation pass
over their rows, one transaction (`EventStore.write_rows`), then each request gets its own report
once that transaction committed. Under load the fixed costs are shared by the group; alone, a
request is a group of one.

A request joins a group only when checking its rows beside others' gives each row the outcome it
would get alone: every value is text or null (quantity and price: a JSON number or null), as JSON
clients send them. Validation reads a column's type from all its rows (text mixed with numbers is
read as text), so any other request, and one of many rows, is written in a transaction of its
own, from the same pandas frame as before. A group's rows go to validation as Arrow columns of
the types the frame would give them (building the frame cost more than checking the rows); a
rejected row's JSON is still read from its request's own frame, so quarantine rows and reports
are those of the request written alone.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import numpy as np
import pandas as pd
import pyarrow as pa

from fusionrec.data.columns import JSON_TYPES, json_type_faults
from fusionrec.data.ingest import IngestReport
from fusionrec.data.schema import EVENT_COLUMNS
from fusionrec.data.store.base import RowOutcomes
from fusionrec.data.validate import ID_FIELDS, Batch, CheckedBatch, raw_json

GROUP_MAX_ROWS = 64  # a request with more rows is written alone: its fixed costs are shared already
SMALL_BATCH_ROWS = 256  # up to this many rows, `write_rows` (no staged table); above, `write_batch`
_NUMBERS = frozenset({"quantity", "price"})
_EXACT_INT = 2**53
_REQUIRED = ("event_id", "user_id", "session_id", "item_id", "event_type", "timestamp")

Item = TypeVar("Item")
Result = TypeVar("Result")


class GroupCommit(Generic[Item, Result]):
    """Hands the items that queue while ``writer`` (one thread) is busy to ``process`` together.

    ``submit`` blocks until its item's result is ready. Items are grouped by ``key`` (``None``:
    alone), in arrival order, at most ``max_items`` per group; ``process`` gets a group and returns
    one result per item. If it raises for a group of several, each item is processed again alone,
    so one bad request fails only itself.
    """

    def __init__(
        self,
        writer: Executor,
        process: Callable[[list[Item]], list[Result]],
        key: Callable[[Item], Hashable | None],
        max_items: int = 64,
    ) -> None:
        self._writer = writer
        self._process = process
        self._key = key
        self._max_items = max_items
        self._lock = threading.Lock()
        self._queue: list[tuple[Item, Future[Result]]] = []
        self._scheduled = False  # a drain is queued on the writer and has not taken the queue yet

    def submit(self, item: Item) -> Result:
        future: Future[Result] = Future()
        with self._lock:
            self._queue.append((item, future))
            if not self._scheduled:
                try:
                    self._writer.submit(self._drain)
                except BaseException:  # the writer is shut down: nothing will drain this item
                    self._queue.pop()
                    raise
                self._scheduled = True
        return future.result()

    def _drain(self) -> None:
        with self._lock:
            queued, self._queue = self._queue, []
            self._scheduled = False  # what arrives from now on waits for the next drain
        try:
            groups = self._groups(queued)
        except BaseException as error:  # no request may wait forever
            for _, future in queued:
                future.set_exception(error)
            return
        for group in groups:
            self._run(group)

    def _groups(self, queued: list[tuple[Item, Future[Result]]]) -> list[list[tuple[Item, Future[Result]]]]:
        groups: list[list[tuple[Item, Future[Result]]]] = []
        open_groups: dict[Hashable, list[tuple[Item, Future[Result]]]] = {}
        for entry in queued:
            key = self._key(entry[0])
            group = open_groups.get(key) if key is not None else None
            if group is None or len(group) >= self._max_items:
                group = []
                groups.append(group)
                if key is not None:
                    open_groups[key] = group
            group.append(entry)
        return groups

    def _run(self, group: list[tuple[Item, Future[Result]]]) -> None:
        try:
            results = self._process([item for item, _ in group])
        except BaseException as error:
            if len(group) > 1:
                for entry in group:
                    self._run([entry])
                return
            group[0][1].set_exception(error)
            return
        for (_, future), result in zip(group, results, strict=True):
            future.set_result(result)


def _unstamped(value: Any) -> bool:
    """No time given (what the server's clock then stamps): missing, null, NaN or blank text."""
    return value is None or (isinstance(value, float) and math.isnan(value)) or not str(value).strip()


def stamped(rows: list[dict[str, Any]], now: str) -> list[dict[str, Any]]:
    """``rows`` with a time of ``now`` where they give none (the rows given are not changed)."""
    return [{**row, "timestamp": now} if _unstamped(row.get("timestamp")) else row for row in rows]


def groupable(rows: list[dict[str, Any]]) -> bool:
    """Whether a request's rows may be checked beside other requests' (see the module's doc)."""
    if len(rows) > GROUP_MAX_ROWS:
        return False
    for row in rows:
        for key, value in row.items():
            kind = type(value)
            if value is None:
                continue
            if key not in _NUMBERS:
                if kind is not str:
                    return False
            elif not (kind is float or (kind is int and abs(value) <= _EXACT_INT)):
                return False  # text numbers are read as text; a float64 holds such an int exactly
    return True


def arrow_rows(rows: list[dict[str, Any]], row_numbers: np.ndarray | None) -> pa.Table:
    """`groupable` rows as validation would read them from `event_frame`: text columns as strings,
    quantity and price as float64 (NaN as null), the required columns always there."""
    present = {key for row in rows for key in row}.union(_REQUIRED)
    columns = {
        name: pa.array(
            [row.get(name) for row in rows],
            pa.float64() if name in _NUMBERS else pa.string(),
            from_pandas=True,
        )
        for name in EVENT_COLUMNS
        if name in present
    }
    numbers = row_numbers if row_numbers is not None else np.arange(1, len(rows) + 1)
    columns["row_number"] = pa.array(numbers, pa.int64())
    return pa.table(columns)


def event_frame(rows: list[dict[str, Any]], row_numbers: np.ndarray | None = None) -> pd.DataFrame:
    """The rows as validation reads them: every required column present, numbered (from 1 unless
    ``row_numbers``), with the JSON types of their id fields."""
    frame = pd.DataFrame.from_records(rows) if rows else pd.DataFrame(columns=EVENT_COLUMNS)
    for column in _REQUIRED:
        if column not in frame.columns:
            frame[column] = None
    frame["row_number"] = row_numbers if row_numbers is not None else np.arange(1, len(frame) + 1)
    frame[JSON_TYPES] = json_type_faults(frame, ID_FIELDS).to_pandas()
    return frame


@dataclass
class EventRequest:
    """One request's events (stamped already), as queued for the writer."""

    rows: list[dict[str, Any]]
    channel: str
    groupable: bool

    @property
    def group_key(self) -> str | None:
        return self.channel if self.groupable else None


@dataclass
class WrittenGroup:
    """The events of one transaction, for the online state: the first request applies them once
    (`leader`), the others wait for it so that each answers only once its events are live."""

    valid: pa.Table  # every checked row of the group, stored or not (as ``ingest`` applied them)
    stored_since: datetime  # before the transaction: what a replay after a Redis outage reads from
    applied: threading.Event = field(default_factory=threading.Event)


@dataclass
class Written:
    """One request's share of a group: its report, and the group."""

    report: IngestReport
    group: WrittenGroup
    leader: bool


def write_group(
    requests: Sequence[EventRequest],
    check: Callable[[Batch, str], CheckedBatch],
    write_rows: Callable[[pa.Table, pa.Table], RowOutcomes],
    write_batch: Callable[[pa.Table, pa.Table], Any],
) -> list[Written]:
    """Check the requests' rows in one pass, store them in one transaction, report per request.

    ``check(batch, source)`` validates; ``write_rows`` / ``write_batch`` are the store's (the
    latter for one large request). Rows keep their request's own numbering, and a rejected row's
    JSON is read from its request's own frame, so reports and quarantine rows are those of the
    request written alone.
    """
    channel = requests[0].channel
    sizes = [len(request.rows) for request in requests]
    rows = [row for request in requests for row in request.rows]
    numbers = np.concatenate([np.arange(1, n + 1) for n in sizes]) if rows else None
    as_arrow = all(request.groupable for request in requests)
    checked = check(arrow_rows(rows, numbers) if as_arrow else event_frame(rows, numbers), channel)
    bounds = np.cumsum([0, *sizes])
    parts = (
        [checked]
        if len(requests) == 1
        else [checked.part(int(a), int(b)) for a, b in itertools.pairwise(bounds)]
    )
    if as_arrow:
        for request, part in zip(requests, parts, strict=True):
            if part.quarantine.num_rows:
                raw = raw_json(event_frame(request.rows), np.flatnonzero(part.rejected))
                index = part.quarantine.schema.get_field_index("raw")
                part.quarantine = part.quarantine.set_column(index, "raw", pa.array(raw, pa.string()))
        checked.quarantine = pa.concat_tables([part.quarantine for part in parts])
    stored_since = datetime.now(UTC)  # the rows' ingested_at is at or after this
    group = WrittenGroup(checked.valid, stored_since)
    if len(requests) == 1 and checked.valid.num_rows > SMALL_BATCH_ROWS:
        result = write_batch(checked.valid, checked.quarantine)
        report = IngestReport(source=channel)
        report.add_batch(checked, result.stored, result.duplicates, result.erased_skipped)
        return [Written(report, group, leader=True)]
    outcomes = write_rows(checked.valid, checked.quarantine)
    written, start = [], 0
    for number, part in enumerate(parts):
        result = outcomes.result(start, start + part.valid.num_rows)
        start += part.valid.num_rows
        report = IngestReport(source=channel)
        report.add_batch(part, result.stored, result.duplicates, result.erased_skipped)
        written.append(Written(report, group, leader=number == 0))
    return written
