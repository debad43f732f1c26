"""Precomputed item vectors (an image embedding, a supplier's text embedding, ...) as matrices.

A catalogue row may carry named vectors in its ``vectors`` column: a mapping from a name such as
``"image_embedding"`` to a list of floats (Arrow ``map<string, list<float32>>``, see
`fusionrec.data.schema.VECTORS_TYPE`). Models and features read them through this module, one
dense ``float32`` matrix per name with a row per item index and a mask of the rows that have one,
so an item without the vector is never mistaken for the zero vector.

The helpers below the matrix readers move a cell between its spellings: a Python mapping, an
Arrow map (pandas shows it as a list of ``(name, values)`` pairs), a struct, or JSON text (the
SQL stores keep the column as JSON, and a CSV file holds it as a JSON object).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from fusionrec.data.schema import VECTORS_TYPE

if TYPE_CHECKING:
    from fusionrec.data.dataset import Dataset

VECTORS_COLUMN = "vectors"
# Top-level item columns with these endings are vectors too (folded into ``vectors`` on reading).
VECTOR_COLUMN_SUFFIXES = ("_embedding", "_vector")


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
    if isinstance(cell, str) and cell.strip().startswith("{"):
        try:
            parsed = json.loads(cell)
        except ValueError:
            return None
        return parsed if isinstance(parsed, dict) else None
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


def vector_means(dataset: Dataset, names: Iterable[str] | None = None) -> dict[str, np.ndarray]:
    """Each named vector's mean over the items that carry it (what `normalised_matrix` removes)."""
    chosen = list(names) if names is not None else vector_names(dataset)
    means = {}
    for name in chosen:
        matrix, present = vector_matrix(dataset, name)
        means[name] = matrix[present].mean(axis=0)
    return means


def normalised_matrix(
    dataset: Dataset, names: Iterable[str] | None = None, means: Mapping[str, np.ndarray] | None = None
) -> np.ndarray:
    """``float32[n_items, sum of dims]``: each named vector centred over the items that carry it
    (or by ``means``), L2-normalised per item and scaled by 1/sqrt(#names), side by side; zero rows
    where absent.

    Centring removes the direction every item shares (raw embeddings are rarely zero-mean, which
    makes every cosine high); the scaling makes the stacked row unit length when all are present.
    """
    chosen = list(names) if names is not None else vector_names(dataset)
    blocks = []
    for name in chosen:
        matrix, present = vector_matrix(dataset, name)
        mean = means[name] if means is not None else matrix[present].mean(axis=0)
        matrix[present] -= np.asarray(mean, dtype=np.float32)
        blocks.append(_unit_rows(matrix))
    if not blocks:
        return np.zeros((dataset.n_items, 0), dtype=np.float32)
    return (np.hstack(blocks) / np.sqrt(len(blocks))).astype(np.float32)


def embed(
    cell: Mapping[str, Any] | None, names: Sequence[str], means: Mapping[str, Sequence[float] | np.ndarray]
) -> np.ndarray:
    """One item's row of `normalised_matrix` (with the training ``means``), from its vectors alone:
    how an item that arrived after training (e.g. by ``PUT /v1/items``) is compared with the rest.
    A name the cell lacks is a zero block; a length other than the mean's raises ValueError."""
    blocks = []
    for name in names:
        mean = np.asarray(means[name], dtype=np.float32)
        value = (cell or {}).get(name)
        if value is None:
            blocks.append(np.zeros((1, len(mean)), dtype=np.float32))
            continue
        row = np.asarray(value, dtype=np.float32).ravel()
        if row.shape != mean.shape:
            raise ValueError(f"vector {name!r} has {row.shape[0]} values, expected {mean.shape[0]}")
        blocks.append(_unit_rows((row - mean)[None, :]))
    if not blocks:
        return np.zeros(0, dtype=np.float32)
    return (np.hstack(blocks)[0] / np.sqrt(len(blocks))).astype(np.float32)


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0)


# --- cells between their spellings ---------------------------------------------------------------


def cell_mapping(cell: object) -> dict[str, Any] | None:
    """Any spelling of a cell (mapping, pairs, JSON text; null/NaN/empty: None) as a plain dict.

    Raises ValueError for text that is not a JSON object and for other values."""
    if cell is None or (isinstance(cell, float) and np.isnan(cell)):
        return None
    if isinstance(cell, str):
        text = cell.strip()
        if not text:
            return None
        try:
            parsed = json.loads(text)
        except ValueError:
            raise ValueError("vectors is not a JSON object") from None
        if parsed is None:
            return None
        if not isinstance(parsed, dict):
            raise ValueError("vectors is not a JSON object")
        return parsed
    mapping = _as_mapping(cell)
    if mapping is None:
        if isinstance(cell, (list, tuple, np.ndarray)) and not len(cell):
            return None
        raise ValueError("vectors is not a mapping of names to lists of numbers")
    return {str(k): v for k, v in mapping.items() if v is not None}


def to_arrow(cells: Iterable[Mapping[str, Any] | None]) -> pa.Array:
    """Plain dicts (or None) as a `VECTORS_TYPE` array (an empty mapping becomes null)."""
    return pa.array(
        [None if not c else [(str(k), [float(x) for x in v]) for k, v in c.items()] for c in cells],
        type=VECTORS_TYPE,
    )


def to_json_text(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A `VECTORS_TYPE` column as JSON text (how the SQL stores keep it), names sorted."""
    out = []
    for cell in array.to_pylist():
        out.append(None if not cell else json.dumps({k: v for k, v in sorted(cell)}, separators=(",", ":")))
    return pa.array(out, type=pa.string())


def from_json_text(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    """JSON text written by `to_json_text` back as a `VECTORS_TYPE` array."""
    return to_arrow(None if v is None else json.loads(v) for v in array.to_pylist())


# --- reading and checking a batch of catalogue rows ------------------------------------------------


def is_vector_column(name: str) -> bool:
    """``vectors`` itself, or a top-level column whose name ends in ``_embedding`` / ``_vector``."""
    return name == VECTORS_COLUMN or name.endswith(VECTOR_COLUMN_SUFFIXES)


def _values(value: object) -> list[Any] | None:
    """One vector's values from a list, an array or JSON text (None: absent)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            value = json.loads(text)
        except ValueError:
            raise ValueError("is not a list of numbers") from None
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, (list, tuple)):
        raise ValueError("is not a list of numbers")
    return list(value)


def _floats(values: list[Any]) -> np.ndarray:
    if any(isinstance(v, (bool, str)) or v is None for v in values):
        raise ValueError("is not a list of numbers")
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError("is not a list of numbers") from None
    if array.ndim != 1:
        raise ValueError("is not a flat list of numbers")
    if not len(array):
        raise ValueError("is empty")
    if not np.isfinite(array).all():
        raise ValueError("holds non-finite values (NaN or infinity)")
    if np.abs(array).max() > np.finfo(np.float32).max:
        raise ValueError("holds values beyond float32")
    return array


def read_vectors(
    columns: Mapping[str, list[Any]],
    n: int,
    item_ids: list[str | None],
    known_dims: Mapping[str, int] | None = None,
) -> tuple[list[dict[str, list[float]] | None], dict[int, str]]:
    """Per row, its vectors as ``{name: floats}`` (None: none), and a reason per refused row.

    ``columns``: the batch's `is_vector_column` columns as Python values; a ``vectors`` cell may be
    a mapping, a list of pairs or a JSON object, and a ``*_embedding`` cell a list or a JSON list
    (its column name is the vector's name). A row is refused when a vector is not a non-empty list
    of finite numbers, or when its length differs from ``known_dims[name]`` (the stored
    catalogue's) or, for a name the catalogue does not have yet, from the length most rows of
    this batch give it. Reasons name the item, the vector and the problem.
    """
    cells: list[dict[str, np.ndarray] | None] = [None] * n
    faults: dict[int, str] = {}

    def refuse(row: int, message: str) -> None:
        item = item_ids[row] if row < len(item_ids) else None
        faults[row] = f"item {item!r}: {message}" if item is not None else message

    for column, values in columns.items():
        for row, value in enumerate(values):
            if row in faults:
                continue
            try:
                if column == VECTORS_COLUMN:
                    given = cell_mapping(value) or {}
                else:
                    one = _values(value)
                    given = {} if one is None else {column: one}
            except ValueError as err:
                refuse(row, str(err) if column == VECTORS_COLUMN else f"vector {column!r} {err}")
                continue
            for name, raw in given.items():
                try:
                    values_ = _values(raw)
                    if values_ is None:
                        continue
                    vector = _floats(values_)
                except ValueError as err:
                    refuse(row, f"vector {name!r} {err}")
                    break
                if cells[row] is None:
                    cells[row] = {}
                cells[row][name] = vector  # type: ignore[index]
    _check_lengths(cells, faults, known_dims or {}, refuse)
    return [
        None if row in faults or not cell else {k: v.tolist() for k, v in cell.items()}
        for row, cell in enumerate(cells)
    ], faults


def _check_lengths(
    cells: list[dict[str, np.ndarray] | None],
    faults: dict[int, str],
    known_dims: Mapping[str, int],
    refuse: Any,
) -> None:
    lengths: dict[str, dict[int, int]] = {}
    for row, cell in enumerate(cells):
        if cell and row not in faults:
            for name, vector in cell.items():
                lengths.setdefault(name, {})[row] = len(vector)
    for name, per_row in sorted(lengths.items()):
        if name in known_dims:
            expected, where = int(known_dims[name]), "as in the stored catalogue"
        else:
            counts: dict[int, int] = {}
            for length in per_row.values():  # first seen wins a tie: stable for a given file
                counts[length] = counts.get(length, 0) + 1
            expected, where = max(counts, key=lambda k: counts[k]), "as most rows of this batch"
        for row, length in per_row.items():
            if length != expected and row not in faults:
                refuse(row, f"vector {name!r} has {length} values, expected {expected} {where}")


def dims_of(cells: pa.Array | pa.ChunkedArray | Iterable[Any]) -> dict[str, int]:
    """Each vector name's length in a column of cells (any spelling); the first row decides."""
    values = cells.to_pylist() if isinstance(cells, (pa.Array, pa.ChunkedArray)) else cells
    dims: dict[str, int] = {}
    for cell in values:
        mapping = cell_mapping(cell)
        for name, value in (mapping or {}).items():
            if name not in dims and value is not None:
                dims[name] = len(value)
    return dims
