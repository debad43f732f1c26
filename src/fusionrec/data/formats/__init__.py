"""Readers for public data formats, each mapping its source onto the canonical schema.

``FORMATS`` maps a format name (the CLI's ``--format`` value and the ``FORMAT`` of
``FORMAT:PATH``) to its `Reader`; `read_format` reads any copy of a format from any path::

    data = read_format("lightgcn", "data/gowalla")       # SourceData
    data.events, data.test_events, data.protocol           # frames and "fixed"

Every reader returns every row of its source in file order (no deduplication), maps the
source's event type names onto the canonical ones, returns UTC timestamps, and raises
`FormatError` naming the file, line and field when the file does not follow its format.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fusionrec.data.formats.base import SYNTHETIC_EPOCH, FormatError, Reader, SourceData
from fusionrec.data.formats.canonical import read_canonical
from fusionrec.data.formats.diginetica import read_diginetica
from fusionrec.data.formats.dunnhumby import read_dunnhumby
from fusionrec.data.formats.lightgcn import read_lightgcn
from fusionrec.data.formats.movielens import read_movielens
from fusionrec.data.formats.otto import read_otto
from fusionrec.data.formats.rees46 import read_rees46
from fusionrec.data.formats.s3rec import read_s3rec
from fusionrec.data.formats.tianchi import read_tianchi

DEFAULT_FORMAT = "canonical"

FORMATS: dict[str, Reader] = {
    r.name: r
    for r in (
        Reader(
            "canonical",
            read_canonical,
            "fusionrec schema in CSV / Parquet / JSON lines, or a generate folder",
        ),
        Reader("rees46", read_rees46, "REES46 e-commerce CSV (view / cart / remove_from_cart / purchase)"),
        Reader("otto", read_otto, "OTTO sessions, JSON lines (clicks / carts / orders)", "session_next_item"),
        Reader(
            "tianchi", read_tianchi, "Tianchi mobile behaviour CSV (1 click .. 4 buy), item file beside it"
        ),
        Reader("diginetica", read_diginetica, "DIGINETICA item views (';'-separated)", "session_next_item"),
        Reader(
            "lightgcn", read_lightgcn, "LightGCN folder: train(.part*).txt + test.txt (Gowalla ...)", "fixed"
        ),
        Reader(
            "s3rec", read_s3rec, "S3-Rec sequences <name>.txt + <name>_item2attributes.json", "leave_one_out"
        ),
        Reader(
            "movielens", read_movielens, "MovieLens 100K folder (u.data, u.item, u.user)", "ratings_kfold"
        ),
        Reader("dunnhumby", read_dunnhumby, "Dunnhumby Complete Journey parquet folder"),
    )
}


def read_format(name: str, path: str | Path, **options: Any) -> SourceData:
    """Read ``path`` with the reader registered as ``name``; ``options`` go to that reader."""
    reader = FORMATS.get(name.strip().lower())
    if reader is None:
        raise FormatError(f"unknown format {name!r}; known formats: {', '.join(FORMATS)}")
    try:
        return reader(path, **options)
    except TypeError as exc:
        # A misspelt option should read as a user error, not a traceback from deep inside.
        if "unexpected keyword argument" in str(exc):
            raise FormatError(f"format {name!r} does not take that option ({exc})", path=path) from exc
        raise


def split_spec(spec: str, default: str = DEFAULT_FORMAT) -> tuple[str, Path]:
    """``"lightgcn:data/gowalla"`` -> ``("lightgcn", Path("data/gowalla"))``; a plain path gets ``default``.

    Only a registered format name counts as a prefix, so paths that contain ":" still work.
    """
    head, sep, tail = spec.partition(":")
    if sep and head.strip().lower() in FORMATS:
        return head.strip().lower(), Path(tail)
    return default, Path(spec)


__all__ = [
    "DEFAULT_FORMAT",
    "FORMATS",
    "SYNTHETIC_EPOCH",
    "FormatError",
    "Reader",
    "SourceData",
    "read_format",
    "split_spec",
]
