"""S3-Rec sequence data (RUCAIBox/CIKM2020-S3Rec): ``<name>.txt`` and ``<name>_item2attributes.json``.

The sequence file has one user a line, ``user item item ...`` in chronological order, ids from 1.
The JSON maps each item id to a list of attribute ids (Amazon categories and brands, not told
apart); they become the item's ``tags`` as ``"attr:<id>"``. Interactions are ``rating`` events
(weight 1, binary matrix); the data has no times, so they are synthesised in file order
(interaction *i* at `SYNTHETIC_EPOCH` + *i* seconds), which keeps each user's sequence in order for
the leave-one-out protocol (last item test, second-to-last validation).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from fusionrec.data.formats.base import FormatError, SourceData, existing, items_frame
from fusionrec.data.formats.lightgcn import lines_to_events, read_user_item_lines

ATTRIBUTES_SUFFIX = "_item2attributes.json"


def read_s3rec(path: str | Path, *, attributes_path: str | Path | None = None) -> SourceData:
    """Read a sequence file (or a folder with one ``<name>.txt``) and its attribute file if present."""
    p = existing(path)
    file = _sequence_file(p) if p.is_dir() else p
    user, item, line = read_user_item_lines([file])
    events = lines_to_events(user, item, line)

    beside = file.with_name(file.stem + ATTRIBUTES_SUFFIX)
    attrs = Path(attributes_path) if attributes_path is not None else (beside if beside.is_file() else None)
    items = None if attrs is None else _items(existing(attrs))
    return SourceData(events=events, items=items, users=None, protocol="leave_one_out", name=file.stem)


def _sequence_file(folder: Path) -> Path:
    """The ``<name>.txt`` whose ``<name>_item2attributes.json`` is beside it, else the only ``.txt``."""
    paired = [t for t in sorted(folder.glob("*.txt")) if t.with_name(t.stem + ATTRIBUTES_SUFFIX).is_file()]
    texts = sorted(folder.glob("*.txt"))
    if paired:
        return paired[0]
    if len(texts) == 1:
        return texts[0]
    raise FormatError("expected one <name>.txt sequence file (with <name>_item2attributes.json)", path=folder)


def _items(file: Path) -> pd.DataFrame:
    try:
        mapping = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise FormatError(f"invalid JSON ({exc})", path=file) from exc
    if not isinstance(mapping, dict):
        raise FormatError("expected a JSON object mapping item id to attribute ids", path=file)
    ids, tags = [], []
    for item_id, attributes in mapping.items():  # one per catalogue item
        if not isinstance(attributes, list):
            raise FormatError("expected a list of attribute ids", path=file, field=str(item_id))
        ids.append(str(item_id))
        tags.append([f"attr:{a}" for a in attributes])
    return items_frame({"item_id": pd.Series(ids, dtype="str"), "tags": pd.Series(tags, dtype=object)})
