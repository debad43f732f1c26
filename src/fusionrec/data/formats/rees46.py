"""REES46 e-commerce behaviour CSV (Kaggle "eCommerce behavior data from multi category store").

Columns: event_time ("2019-10-01 00:00:00 UTC"), event_type (view, cart, remove_from_cart,
purchase), product_id, category_id, category_code (dotted path such as
``appliances.environment.water_heater``), brand, price, user_id, user_session.

Events keep price and session; items take the last row seen for each product (prices move over
time), with the dotted category code turned into a " > " path and the numeric category id kept in
``attributes``.
"""

from __future__ import annotations

from pathlib import Path

from fusionrec.data.formats.base import (
    SourceData,
    events_frame,
    existing,
    find_one,
    id_strings,
    items_frame,
    json_objects,
    map_event_types,
    parse_numbers,
    parse_times,
    read_delimited,
    require_columns,
)
from fusionrec.data.schema import CATEGORY_SEPARATOR

EVENT_TYPES = {
    "view": "view",
    "cart": "add_to_cart",
    "remove_from_cart": "remove_from_cart",
    "purchase": "purchase",
}
COLUMNS = [
    "event_time",
    "event_type",
    "product_id",
    "category_id",
    "category_code",
    "brand",
    "price",
    "user_id",
    "user_session",
]


def read_rees46(path: str | Path, *, tz: str = "UTC") -> SourceData:
    """Read one REES46 CSV file (or the first ``*.csv`` in a folder).

    ``tz`` is only used for times written without the " UTC" suffix.
    """
    p = existing(path)
    file = find_one(p, ["*.csv"], "REES46 CSV file") if p.is_dir() else p
    raw = read_delimited(file, sep=",")
    require_columns(raw.columns, COLUMNS, path=file)

    times = raw["event_time"].str.removesuffix(" UTC")
    timestamp = parse_times(times, path=file, field="event_time", fmt="%Y-%m-%d %H:%M:%S", tz=tz)
    price = parse_numbers(raw["price"], path=file, field="price")

    events = events_frame(
        {
            "user_id": id_strings(raw["user_id"]),
            "item_id": id_strings(raw["product_id"]),
            "event_type": map_event_types(raw["event_type"], EVENT_TYPES),
            "timestamp": timestamp,
            "session_id": id_strings(raw["user_session"]),
            "price": price,
        },
        row_number=range(1, len(raw) + 1),
    )

    # Rows without a product id stay in events (ingestion quarantines them) but make no item.
    known = raw.assign(price=price)[raw["product_id"].notna()]
    last = known.drop_duplicates("product_id", keep="last")
    category = last["category_code"].str.replace(".", CATEGORY_SEPARATOR, regex=False)
    items = items_frame(
        {
            "item_id": id_strings(last["product_id"]),
            "category": category,
            "brand": last["brand"],
            "price": last["price"],
            "attributes": json_objects(last, ["category_id"]),
        }
    )
    return SourceData(events=events, items=items, users=None, protocol="temporal", name=file.stem)
