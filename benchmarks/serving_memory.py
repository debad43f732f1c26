"""Where a served version's memory goes: arrays by what they grow with (users, items, items²).

`inventory` walks the objects a loaded `Service` holds (the active version, its model, what
serving attached to it, the catalogue) and sums the bytes of every numpy array, scipy sparse
matrix and id dictionary it meets once each, sorted by the dimension they scale with:

* user: an axis of the number of users (or +1: CSR offsets), the pre-scored lists, user-id maps
* item: an axis of the number of items, sparse item × item matrices (neighbour lists: nnz per row)
* item_item: dense item × item matrices (EASE's weights grow with the square of the catalogue)
* interactions: sparse user × item matrices (they grow with the events)
* other: what has neither size

What it cannot see (LightGBM's trees live in C memory, Python objects outside these containers)
is the gap between the sum and the growth of the process's resident memory.
"""

from __future__ import annotations

import sys
import types
from collections import deque
from typing import Any

import numpy as np

# Not walked: code, classes and scalars (they hold no per-user or per-item data).
SKIP = (
    types.ModuleType,
    type,
    types.FunctionType,
    types.BuiltinFunctionType,
    types.MethodType,
    str,
    bytes,
    int,
    float,
    bool,
)
MODULES = ("fusionrec", "numpy", "scipy", "builtins", "collections", "sklearn", "lightgbm", "implicit")


def _sparse_parts(value: Any) -> list[np.ndarray] | None:
    """The arrays of a scipy sparse matrix or array, None for anything else."""
    if hasattr(value, "tocsr") and hasattr(value, "nnz") and hasattr(value, "shape"):
        return [
            a
            for a in (getattr(value, n, None) for n in ("data", "indices", "indptr", "row", "col"))
            if isinstance(a, np.ndarray)
        ]
    return None


def _array_bytes(array: np.ndarray, seen: set[tuple[int, int]]) -> int:
    """Bytes of ``array`` not counted yet (views of one buffer count once); object arrays' items too."""
    key = (array.__array_interface__["data"][0], array.nbytes)
    if key in seen:
        return 0
    seen.add(key)
    size = array.nbytes
    if array.dtype == object and array.size <= 2_000_000:
        size += sum(sys.getsizeof(x) for x in array.ravel().tolist())
    return size


def _kind(shape: tuple[int, ...], n_users: int, n_items: int, sparse: bool) -> str:
    users, items = {n_users, n_users + 1}, {n_items, n_items + 1}
    if len(shape) == 2 and shape[0] in items and shape[1] in items:
        return "item" if sparse else "item_item"
    if len(shape) == 2 and sparse and {shape[0], shape[1]} & users and {shape[0], shape[1]} & items:
        return "interactions"
    if any(axis in users for axis in shape):
        return "user"
    if any(axis in items for axis in shape):
        return "item"
    return "other"


def _dict_bytes(value: dict) -> int:
    return sys.getsizeof(value) + sum(sys.getsizeof(k) for k in value)


def _children(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, list | tuple | set | frozenset | deque):
        return list(value)
    found = list(getattr(value, "__dict__", {}).values())
    for slot in getattr(type(value), "__slots__", ()):
        if hasattr(value, slot):
            found.append(getattr(value, slot))
    return found


def inventory(roots: list[Any], n_users: int, n_items: int, limit: int = 2_000_000) -> dict[str, int]:
    """Bytes by kind over the objects reachable from ``roots`` (see the module docstring)."""
    totals = dict.fromkeys(("user", "item", "item_item", "interactions", "other"), 0)
    seen_ids: set[int] = set()
    seen_buffers: set[tuple[int, int]] = set()
    todo: deque[tuple[Any, str | None]] = deque((root, None) for root in roots)
    visited = 0
    while todo and visited < limit:
        value, owner = todo.popleft()
        if id(value) in seen_ids or isinstance(value, SKIP) or value is None:
            continue
        seen_ids.add(id(value))
        visited += 1
        if type(value).__module__.split(".")[0] not in MODULES:
            continue  # locks, connections, C extensions' objects: not walked
        if isinstance(value, np.ndarray):
            totals[owner or _kind(value.shape, n_users, n_items, False)] += _array_bytes(value, seen_buffers)
            continue
        parts = _sparse_parts(value)
        if parts is not None:
            kind = owner or _kind(value.shape, n_users, n_items, True)
            totals[kind] += sum(_array_bytes(p, seen_buffers) for p in parts)
            continue
        if isinstance(value, dict) and len(value) in (n_users, n_items):
            totals["user" if len(value) == n_users else "item"] += _dict_bytes(value)
        # The pre-scored lists are flat arrays (CSR) whose length is no dimension: per user.
        child_owner = "user" if type(value).__name__ == "Precomputed" else owner
        todo.extend((child, child_owner) for child in _children(value))
    return totals
