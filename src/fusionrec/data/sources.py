"""Ingest any supported source: a canonical file or folder (streamed), or a public format.

The CLI's ``ingest`` and ``demo`` call `ingest_source`; canonical files stream in bounded memory
through `fusionrec.data.ingest.ingest_path`, public formats are read by their reader
(`fusionrec.data.formats`) and then go through the same validation and storage path.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from fusionrec.data.formats import DEFAULT_FORMAT, read_format
from fusionrec.data.ingest import IngestReport, ingest_frame, ingest_items, ingest_path, ingest_users
from fusionrec.data.store.base import EventStore


def ingest_source(
    store: EventStore,
    path: str | Path,
    *,
    format_name: str = DEFAULT_FORMAT,
    items: str | Path | None = None,
    users: str | Path | None = None,
    column_map: Mapping[str, str] | None = None,
    progress: bool = True,
) -> IngestReport:
    """Ingest ``path`` in format ``format_name`` into ``store``; returns the combined report."""
    if format_name == DEFAULT_FORMAT:
        return ingest_path(store, path, items=items, users=users, column_map=column_map, progress=progress)
    source = read_format(format_name, path)
    report = IngestReport(source=f"{format_name}:{path}")
    if source.items is not None and len(source.items):
        report.merge(ingest_items(store, source.items))
    if source.users is not None and len(source.users):
        report.merge(ingest_users(store, source.users))
    report.merge(ingest_frame(store, source.events, source=f"{format_name}:{path}"))
    if source.test_events is not None and len(source.test_events):
        # A shipped test split is part of the data too; its rows are numbered in its own file.
        report.merge(ingest_frame(store, source.test_events, source=f"{format_name}:{path} (test)"))
    report.bot_events = store.flag_bots()  # even with 0 new rows: a crashed run left them unflagged
    return report
