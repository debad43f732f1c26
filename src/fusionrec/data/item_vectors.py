"""Precomputed item vectors (an image embedding, a supplier's text embedding, ...) as matrices.

A catalogue row may carry named vectors in its ``vectors`` column: a mapping from a name such as
``"image_embedding"`` to a list of floats. Models and features read them through this module, one
dense ``float32`` matrix per name with a row per item index and a mask of the rows that have one,
so an item without the vector is never mistaken for the zero vector.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from fusionrec.data.dataset import Dataset

VECTORS_COLUMN = "vectors"


def _cells(dataset: Dataset) -> Iterable[Mapping[str, Any] | None]:
    features = dataset.item_features
    if VECTORS_COLUMN not in features.columns:
        return [None] * dataset.n_items
    return (_as_mapping(cell) for cell in features[VECTORS_COLUMN].tolist())


def _as_mapping(cell: object) -> Mapping[str, Any] | None:
    """A cell as a name -> floats mapping (Arrow maps arrive in pandas as lists of pairs)."""
    if isinstance(cell, Mapping):
        return cell
    if isinstance(cell, (list, tuple, np.ndarray)) and len(cell) and isinstance(cell[0], (tuple, list)):
        return dict(cell)  # type: ignore[arg-type]
    return None


def vector_names(dataset: Dataset) -> list[str]:
    """The names of the vectors that at least one item carries, sorted."""
    names: set[str] = set()
    for cell in _cells(dataset):
        if cell:
            names.update(str(name) for name, value in cell.items() if value is not None)
    return sorted(names)


def vector_matrix(dataset: Dataset, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(matrix [n_items, dim] float32, present [n_items] bool)`` for the vector ``name``.

    Rows of items without the vector are zero and ``present`` is False there. Raises ValueError
    when no item carries ``name`` or two items give it different lengths.
    """
    rows: dict[int, np.ndarray] = {}
    for index, cell in enumerate(_cells(dataset)):
        value = cell.get(name) if cell else None
        if value is not None:
            rows[index] = np.asarray(value, dtype=np.float32).ravel()
    if not rows:
        raise ValueError(f"no item carries the vector {name!r}")
    dims = {row.shape[0] for row in rows.values()}
    if len(dims) > 1:
        raise ValueError(f"item vector {name!r} has different lengths: {sorted(dims)}")
    matrix = np.zeros((dataset.n_items, dims.pop()), dtype=np.float32)
    present = np.zeros(dataset.n_items, dtype=bool)
    for index, row in rows.items():
        matrix[index] = row
        present[index] = True
    return matrix, present
