"""OTTO session JSON lines (otto-de/recsys-dataset): one session a line.

``{"session": 0, "events": [{"aid": 1517085, "ts": 1659304800025, "type": "clicks"}, ...]}``,
``ts`` in milliseconds, ``type`` one of clicks, carts, orders. OTTO sessions stand for users (the
data has no other user id), so the session id is both ``user_id`` and ``session_id``. Every event
of a line carries that line's number as ``row_number``.

Parsing is vectorised with Arrow's JSON reader; when Arrow rejects the file, a line-by-line pass
finds the first bad line and field for the error message.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NoReturn

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pj

from fusionrec.data.formats.base import (
    FormatError,
    SourceData,
    events_frame,
    existing,
    find_one,
    id_strings,
    map_event_types,
    utc_from_epoch,
)

EVENT_TYPES = {"clicks": "click", "carts": "add_to_cart", "orders": "purchase"}
_EVENT = pa.struct([("aid", pa.int64()), ("ts", pa.int64()), ("type", pa.string())])
_SCHEMA = pa.schema([("session", pa.int64()), ("events", pa.list_(_EVENT))])


def read_otto(path: str | Path) -> SourceData:
    """Read an OTTO ``.jsonl`` file (or the first ``*.jsonl`` in a folder)."""
    p = existing(path)
    file = find_one(p, ["*.jsonl", "*.ndjson"], "OTTO JSON lines file") if p.is_dir() else p
    data = file.read_bytes()
    try:
        table = pj.read_json(
            pa.BufferReader(data),
            parse_options=pj.ParseOptions(explicit_schema=_SCHEMA, unexpected_field_behavior="ignore"),
        )
    except pa.ArrowInvalid as exc:
        _raise_first_bad_line(file, data, str(exc))

    line_of_row = _nonblank_line_numbers(data)
    sessions = table.column("session").combine_chunks()
    lists = table.column("events").combine_chunks()
    for name, column in (("session", sessions), ("events", lists)):
        if column.null_count:
            row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
            raise FormatError("missing", path=file, line=int(line_of_row[row]), field=name)

    parent = pc.list_parent_indices(lists).to_numpy()
    flat = pc.list_flatten(lists)
    ts = flat.field("ts")
    if ts.null_count:
        row = parent[np.flatnonzero(ts.is_null().to_numpy(zero_copy_only=False))[0]]
        raise FormatError("event without a time", path=file, line=int(line_of_row[row]), field="events[].ts")

    session_ids = id_strings(sessions.to_numpy()[parent])
    events = events_frame(
        {
            "user_id": session_ids,
            "item_id": id_strings(flat.field("aid").to_pandas()),
            "event_type": map_event_types(flat.field("type").to_pandas(), EVENT_TYPES),
            "timestamp": utc_from_epoch(ts.to_numpy(), "ms"),
            "session_id": session_ids,
        },
        row_number=line_of_row[parent],
    )
    return SourceData(events=events, items=None, users=None, protocol="session_next_item", name=file.stem)


def _nonblank_line_numbers(data: bytes) -> np.ndarray:
    """1-based numbers of the lines that hold a JSON record (Arrow skips empty lines)."""
    raw = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(raw == ord("\n"))
    starts = np.concatenate([[0], newlines + 1])
    ends = np.concatenate([newlines, [raw.size]])
    lengths = ends - starts
    has_cr = lengths > 0
    has_cr[has_cr] = raw[ends[has_cr] - 1] == ord("\r")
    return np.flatnonzero(lengths - has_cr > 0) + 1


def _raise_first_bad_line(file: Path, data: bytes, arrow_message: str) -> NoReturn:
    """Find the first line that is not a valid OTTO record and raise its `FormatError`."""
    for number, line in enumerate(data.splitlines(), start=1):  # error path only
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise FormatError(f"invalid JSON ({exc})", path=file, line=number) from None
        if not isinstance(record, dict):
            raise FormatError("not a JSON object", path=file, line=number)
        if not isinstance(record.get("session"), int):
            raise FormatError("expected an integer session id", path=file, line=number, field="session")
        events = record.get("events")
        if not isinstance(events, list):
            raise FormatError("expected a list of events", path=file, line=number, field="events")
        for i, event in enumerate(events):
            if not isinstance(event, dict):
                raise FormatError("event is not an object", path=file, line=number, field=f"events[{i}]")
            for key, kind in (("aid", int), ("ts", int), ("type", str)):
                value = event.get(key)
                if value is not None and not isinstance(value, kind):
                    raise FormatError(
                        f"expected {kind.__name__}, got {value!r}",
                        path=file,
                        line=number,
                        field=f"events[{i}].{key}",
                    )
    raise FormatError(f"not OTTO JSON lines ({arrow_message})", path=file)
