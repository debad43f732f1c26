"""Bring query results onto the canonical Arrow types, whatever the backend handed back."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Columns of ``table`` (by position) cast to ``schema``'s types and named by it."""
    if table.num_columns != len(schema):
        raise ValueError(f"query returned {table.num_columns} columns, expected {len(schema)}")
    columns = []
    for column, field in zip(table.columns, schema, strict=True):
        if (
            pa.types.is_timestamp(field.type)
            and pa.types.is_timestamp(column.type)
            and column.type.tz is None
        ):
            column = pc.assume_timezone(column, "UTC")
        elif pa.types.is_timestamp(field.type) and pa.types.is_integer(column.type):
            column = column.cast(pa.int64()).cast(pa.timestamp("us", tz="UTC"))  # epoch microseconds
        if not column.type.equals(field.type):
            column = column.cast(field.type)
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)
