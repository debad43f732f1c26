"""Tianchi mobile recommendation (Alibaba) user behaviour CSV, and its optional item file.

Behaviour columns: user_id, item_id, behavior_type (1 click, 2 favourite, 3 cart, 4 buy),
user_geohash, item_category, time (``YYYY-MM-DD HH``: the clock has hours only, so exact duplicate
rows are real and are all kept). ``event_id`` is a hash of the whole source row, so exact copies
share an id (ingestion counts the 104 in the sample as duplicates) while rows that differ only in the
dropped geohash stay distinct. The source gives no time zone; times are read as ``tz`` (UTC by
default; the shop was in China, pass ``tz="Asia/Shanghai"`` for local time). The user's geohash has
no canonical event column and is not kept.

Items come from the behaviour file's item_category, joined with the item file (item_id,
item_geohash, item_category) when one is found beside it (``*item_info*.csv``) or given as
``items_path``; an item's geohashes (it may have several rows) go into ``attributes``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from fusionrec.data.formats.base import (
    SourceData,
    events_frame,
    existing,
    find_one,
    find_optional,
    id_strings,
    items_frame,
    map_event_types,
    parse_times,
    read_delimited,
    require_columns,
    source_row_ids,
)

EVENT_TYPES = {"1": "click", "2": "favorite", "3": "add_to_cart", "4": "purchase"}
BEHAVIOUR_COLUMNS = ["user_id", "item_id", "behavior_type", "item_category", "time"]
ITEM_INFO_PATTERN = "*item_info*.csv"


def read_tianchi(path: str | Path, *, items_path: str | Path | None = None, tz: str = "UTC") -> SourceData:
    """Read the behaviour file (or a folder holding ``*user_behavior*.csv``) and any item file."""
    p = existing(path)
    if p.is_dir():
        file = find_one(p, ["*user_behavior*.csv", "*behavior*.csv"], "Tianchi user behaviour CSV")
    else:
        file = p
    raw = read_delimited(file, sep=",")
    require_columns(raw.columns, BEHAVIOUR_COLUMNS, path=file)

    events = events_frame(
        {
            "event_id": source_row_ids(raw, "tianchi"),
            "user_id": id_strings(raw["user_id"]),
            "item_id": id_strings(raw["item_id"]),
            "event_type": map_event_types(raw["behavior_type"].str.strip(), EVENT_TYPES),
            "timestamp": parse_times(raw["time"], path=file, field="time", fmt="%Y-%m-%d %H", tz=tz),
        },
        row_number=range(1, len(raw) + 1),
    )

    info_file = Path(items_path) if items_path is not None else _item_file_beside(file)
    items = _items(raw, info_file)
    return SourceData(events=events, items=items, users=None, protocol="temporal", name=file.stem)


def _item_file_beside(file: Path) -> Path | None:
    found = find_optional(file.parent, [ITEM_INFO_PATTERN])
    return found if found is not None and found != file else None


def _items(behaviour: pd.DataFrame, info_file: Path | None) -> pd.DataFrame:
    """One row per item: category from the behaviour rows (else the item file), geohashes."""
    items = behaviour.loc[behaviour["item_id"].notna(), ["item_id", "item_category"]]
    items = items.drop_duplicates("item_id", keep="first").reset_index(drop=True)
    attributes = pd.Series(None, index=items.index, dtype="str")
    if info_file is not None:
        info = read_delimited(existing(info_file), sep=",")
        require_columns(info.columns, ["item_id", "item_category"], path=info_file)
        info = info[info["item_id"].notna()]
        first = info.drop_duplicates("item_id", keep="first")[["item_id", "item_category"]]
        only_info = first[~first["item_id"].isin(items["item_id"])]
        items = pd.concat([items, only_info], ignore_index=True)
        attributes = pd.Series(None, index=items.index, dtype="str")
        if "item_geohash" in info.columns:
            located = info.dropna(subset=["item_geohash"]).groupby("item_id", sort=False)["item_geohash"]
            geo = located.agg(lambda v: json.dumps({"geohashes": sorted(set(v))}))  # one per item
            attributes = items["item_id"].map(geo).astype("str")
    return items_frame(
        {
            "item_id": id_strings(items["item_id"]),
            "category": items["item_category"],
            "attributes": attributes,
        }
    )
