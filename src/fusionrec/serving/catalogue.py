"""The catalogue as serving sees it: item attributes by id, and their arrays in a model's item order.

A `Catalogue` is immutable: `PUT /v1/items/{id}` builds a new one (copy-on-write) and the service
swaps the reference, so a request always sees one consistent catalogue. `view(item_ids)` gives
the attribute arrays aligned with a model version's item indices (memoised per version).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from fusionrec.data import item_vectors
from fusionrec.data.schema import CATEGORY_SEPARATOR, ITEM_COLUMNS

_COLUMNS = [c for c in ITEM_COLUMNS if c != "item_id"]


@dataclass
class CatalogueView:
    """Attributes of a model's items, index-aligned with its vocabulary (unknown items: no category)."""

    category: np.ndarray  # object: category path or None
    category_code: np.ndarray  # int32, -1 = none
    categories: list[str]
    price: np.ndarray  # float64, NaN = unknown
    hidden: np.ndarray  # bool
    in_stock: np.ndarray  # bool (unknown counts as in stock)
    _masks: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def category_mask(self, prefix: str) -> np.ndarray:
        """Items in category ``prefix`` or below it (``"Food"`` matches ``"Food > Tea"``)."""
        mask = self._masks.get(prefix)
        if mask is None:
            matching = [
                code
                for code, name in enumerate(self.categories)
                if name == prefix or name.startswith(prefix + CATEGORY_SEPARATOR)
            ]
            mask = np.isin(self.category_code, np.asarray(matching, dtype=np.int32))
            if len(self._masks) < 10_000:  # bounded: categories come from requests
                self._masks[prefix] = mask
        return mask

    def category_of(self, index: int) -> str | None:
        value = self.category[index] if 0 <= index < len(self.category) else None
        return value if isinstance(value, str) else None


class Catalogue:
    """Item attributes keyed by item id (a pandas frame indexed by ``item_id``)."""

    def __init__(self, frame: pd.DataFrame | None = None, revision: int = 0) -> None:
        if frame is None:
            frame = pd.DataFrame(columns=_COLUMNS, index=pd.Index([], name="item_id", dtype=object))
        self.frame = frame
        self.revision = revision
        self._views: dict[int, tuple[np.ndarray, CatalogueView]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_arrow(cls, table: pa.Table) -> Catalogue:
        frame = table.to_pandas()
        frame["item_id"] = frame["item_id"].astype(str)
        if "vectors" in frame.columns:  # Arrow maps arrive as lists of pairs: plain dicts instead
            frame["vectors"] = pd.Series(
                [item_vectors.cell_mapping(c) for c in frame["vectors"]], dtype=object
            )
        return cls(frame.set_index("item_id"))

    @cached_property
    def vector_dims(self) -> dict[str, int]:
        """The length of each item vector name in this catalogue (what a PUT item must match)."""
        if "vectors" not in self.frame.columns:
            return {}
        return item_vectors.dims_of(self.frame["vectors"].tolist())

    def __len__(self) -> int:
        return len(self.frame)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self.frame.index

    def get(self, item_id: str) -> dict[str, Any] | None:
        if item_id not in self.frame.index:
            return None
        row = self.frame.loc[item_id]
        return {"item_id": item_id, **{k: _plain(row[k]) for k in self.frame.columns}}

    def updated(self, item_id: str, values: Mapping[str, Any]) -> Catalogue:
        """A new catalogue with ``item_id``'s given attributes replaced (other attributes kept)."""
        frame = self.frame.copy()
        if item_id not in frame.index:
            frame = frame.astype(object)  # a new row of nulls fits any column
            frame.loc[item_id] = dict.fromkeys(frame.columns)
        for key, value in values.items():
            if key not in frame.columns:
                frame[key] = None
            frame[key] = frame[key].astype(object)
            frame.at[item_id, key] = value
        updated = Catalogue(frame, self.revision + 1)
        if "vector_dims" in self.__dict__:  # known already: carry it over, not a scan per PUT
            dims = dict(self.vector_dims)
            for name, vector in (values.get("vectors") or {}).items():
                dims.setdefault(name, len(vector))
            updated.__dict__["vector_dims"] = dims
        return updated

    def view(self, item_ids: np.ndarray) -> CatalogueView:
        """Attribute arrays aligned with ``item_ids`` (memoised per ids array)."""
        key = id(item_ids)
        cached = self._views.get(key)
        if cached is not None and cached[0] is item_ids:
            return cached[1]
        with self._lock:
            frame = self.frame.reindex(pd.Index(item_ids.astype(str)))
            category = _column(frame, "category").astype(object)
            category = np.where(pd.isna(category), None, category)
            codes, uniques = pd.factorize(pd.Series(category, dtype=object), use_na_sentinel=True)
            view = CatalogueView(
                category=category,
                category_code=codes.astype(np.int32),
                categories=[str(u) for u in uniques],
                price=pd.to_numeric(_column(frame, "price"), errors="coerce").to_numpy(np.float64),
                hidden=_flag(frame, "hidden", default=False),
                in_stock=_flag(frame, "in_stock", default=True),
            )
            self._views[key] = (item_ids, view)
            return view


def fingerprint(table: pa.Table) -> str:
    """A digest of a catalogue table's content (its Arrow IPC bytes): whether it changed."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.blake2b(sink.getvalue().to_pybytes(), digest_size=16).hexdigest()


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    return frame[name] if name in frame.columns else pd.Series(None, index=frame.index, dtype=object)


def _flag(frame: pd.DataFrame, name: str, *, default: bool) -> np.ndarray:
    values = _column(frame, name)
    return values.where(values.notna(), default).astype(bool).to_numpy()


def _plain(value: Any) -> Any:
    """JSON-friendly scalar (numpy and pandas values, NaN as None)."""
    if isinstance(value, np.ndarray):
        return [_plain(v) for v in value.tolist()]
    if isinstance(value, list):
        return value
    if isinstance(value, dict):  # item vectors: name -> values
        return {str(k): _plain(v) for k, v in value.items()}
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, np.generic):
        return value.item()
    return value
