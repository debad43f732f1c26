"""Item fields in answers: ``fields=title,price,image_url,url`` adds those catalogue values to each item.

A web page showing recommendations needs more than ids; the store's catalogue has the rest.
``title``, ``description``, ``category``, ``brand``, ``price`` and ``in_stock`` are catalogue
columns; ``image_url`` and ``url`` are read from the item's ``attributes`` JSON object (where a
shop's catalogue keeps them), or from a column of that name when an item update added one. An item
without a value for a field gets ``null``. Answers are copied, never changed in place: the service
caches them.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd

from fusionrec.serving.catalogue import Catalogue

COLUMN_FIELDS = ("title", "description", "category", "brand", "price", "in_stock")
ATTRIBUTE_FIELDS = ("image_url", "url")
ITEM_FIELDS = COLUMN_FIELDS + ATTRIBUTE_FIELDS


class UnknownFieldsError(ValueError):
    """``fields`` named something that is not an item field; the message lists the allowed ones."""


def parse_fields(raw: str | None) -> tuple[str, ...]:
    """The fields of a ``fields`` query value (comma-separated, order kept, repeats dropped)."""
    if raw is None:
        return ()
    names = list(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))
    unknown = [name for name in names if name not in ITEM_FIELDS]
    if unknown:
        raise UnknownFieldsError(
            f"unknown field(s) {', '.join(repr(u) for u in unknown)}; allowed: {', '.join(ITEM_FIELDS)}"
        )
    return tuple(names)


def with_item_fields(answer: dict[str, Any], catalogue: Catalogue, fields: tuple[str, ...]) -> dict[str, Any]:
    """A copy of ``answer`` whose items carry ``fields`` from ``catalogue`` (null when missing)."""
    if not fields:
        return answer
    items = answer.get("items") or []
    values = _values([str(entry["item_id"]) for entry in items], catalogue, fields)
    enriched = [{**entry, **row} for entry, row in zip(items, values, strict=True)]
    return {**answer, "items": enriched}


def _values(item_ids: list[str], catalogue: Catalogue, fields: tuple[str, ...]) -> list[dict[str, Any]]:
    """One dict of ``fields`` per item id, in order; unknown items get nulls throughout."""
    frame = catalogue.frame
    wanted = [f for f in fields if f in frame.columns]
    if "attributes" in frame.columns and any(f in ATTRIBUTE_FIELDS for f in fields):
        wanted.append("attributes")
    rows = frame.reindex(pd.Index(item_ids, dtype=object))[list(dict.fromkeys(wanted))]
    out = []
    for record in rows.to_dict("records"):
        attributes = _attributes(record.get("attributes"))
        row = {}
        for name in fields:
            value = _plain(record.get(name))
            if value is None and name in ATTRIBUTE_FIELDS:
                value = _plain(attributes.get(name))
            row[name] = value
        out.append(row)
    return out


def _attributes(raw: Any) -> dict[str, Any]:
    """The item's ``attributes`` JSON object ({} when absent or not an object: a catalogue may
    hold anything there, and one bad row must not fail an answer)."""
    if isinstance(raw, dict):
        return raw
    if not isinstance(raw, str) or not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _plain(value: Any) -> Any:
    """A JSON-ready scalar: numpy values unwrapped, NaN and NaT as None; lists and dicts left out
    (a page asked for a displayable value)."""
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return None
