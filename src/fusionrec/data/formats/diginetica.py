"""DIGINETICA (CIKM Cup 2016) item views, as in ``train-item-views.csv`` and SR-GNN's sample.

``;``-separated with a header: sessionId (or session_id), userId, itemId, timeframe, eventdate.
``userId`` is ``NA`` for anonymous sessions: those events get a null ``user_id`` and keep their
``session_id``. The time of an event is its ``eventdate`` (a day, taken as UTC midnight) plus
``timeframe``, the milliseconds since the session started, which keeps the order within a session.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fusionrec.data.formats.base import (
    SourceData,
    constant,
    events_frame,
    existing,
    find_one,
    id_strings,
    parse_numbers,
    parse_times,
    read_delimited,
    require_columns,
)

# Header spellings of the original file and of SR-GNN's sample, reduced to one key.
_KEYS = {"sessionid": "session_id", "userid": "user_id", "itemid": "item_id"}
COLUMNS = ["session_id", "user_id", "item_id", "timeframe", "eventdate"]


def read_diginetica(path: str | Path) -> SourceData:
    """Read a DIGINETICA item-views file (or the first ``*item-views*.csv`` in a folder)."""
    p = existing(path)
    file = find_one(p, ["*item-views*.csv", "*.csv"], "DIGINETICA item views CSV") if p.is_dir() else p
    raw = read_delimited(file, sep=";")
    raw.columns = [_KEYS.get(str(c).replace("_", "").strip().lower(), str(c).strip()) for c in raw.columns]
    require_columns(raw.columns, COLUMNS, path=file)

    day = parse_times(raw["eventdate"], path=file, field="eventdate", fmt="%Y-%m-%d")
    offset = parse_numbers(raw["timeframe"], path=file, field="timeframe", integer=True, required=True)
    timestamp = day + pd.to_timedelta(offset.to_numpy(dtype="int64"), unit="ms")
    user = raw["user_id"].where(raw["user_id"].str.strip().str.upper() != "NA")

    events = events_frame(
        {
            "user_id": id_strings(user),
            "item_id": id_strings(raw["item_id"]),
            "event_type": constant("view", len(raw)),
            "timestamp": timestamp,
            "session_id": id_strings(raw["session_id"]),
        },
        row_number=range(1, len(raw) + 1),
    )
    return SourceData(events=events, items=None, users=None, protocol="session_next_item", name=file.stem)
