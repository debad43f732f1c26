"""Ingest any supported source: a canonical file or folder (streamed), or a public format.

The CLI's ``ingest`` and ``demo`` call `ingest_source`; canonical files stream in bounded memory
through `fusionrec.data.ingest.ingest_path`, public formats are read by their reader
(`fusionrec.data.formats`) and then go through the same validation and storage path.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from fusionrec.data.formats import DEFAULT_FORMAT, read_format
from fusionrec.data.import_options import ImportOptions
from fusionrec.data.ingest import IngestReport, ingest_frame, ingest_items, ingest_path, ingest_users
from fusionrec.data.schema import EventTypes
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
    options: ImportOptions | None = None,
    aliases: Mapping[str, str] | None = None,
    event_types: EventTypes | None = None,
) -> IngestReport:
    """Ingest ``path`` in format ``format_name`` into ``store``; returns the combined report.

    ``options`` (column maps, delimiter, decimal mark, timestamp format and zone) apply to
    canonical files; a public format's reader knows its own layout. ``aliases`` map event type
    names in either case; ``event_types`` are the accepted ones (default: the canonical types).
    """
    if format_name == DEFAULT_FORMAT:
        return ingest_path(
            store,
            path,
            items=items,
            users=users,
            column_map=column_map,
            progress=progress,
            options=options,
            aliases=aliases,
            event_types=event_types,
        )
    source = read_format(format_name, path)
    report = IngestReport(source=f"{format_name}:{path}")
    if source.items is not None and len(source.items):
        report.merge(ingest_items(store, source.items))
    if source.users is not None and len(source.users):
        report.merge(ingest_users(store, source.users))
    name = f"{format_name}:{path}"
    checks = {"aliases": aliases, "event_types": event_types}
    report.merge(ingest_frame(store, source.events, source=name, **checks))
    if source.test_events is not None and len(source.test_events):
        # A shipped test split is part of the data too; its rows are numbered in its own file.
        report.merge(ingest_frame(store, source.test_events, source=f"{name} (test)", **checks))
    report.bot_events = store.flag_bots()  # even with 0 new rows: a crashed run left them unflagged
    return report
