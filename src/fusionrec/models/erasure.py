"""Removing one user from a saved model (`Recommender.save`'s folder), for erasure.

A saved model keeps users in two ways: by id (``user_ids_``) and by row (every array sized by
users: the seen matrix, user factors, the fused model's per-user features). Erasing a user
replaces their id with a tombstone that no request can carry (ids never hold control
characters) and zeroes their row in every such array; the model's manifest is re-hashed.
Aggregates learnt from everyone (item-item weights, item factors, popularity) keep the user's
share of the statistics until the next training.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from fusionrec.models.base import (
    ARRAYS_FILE,
    CONFIG_FILE,
    MANIFEST_FILE,
    pack_strings,
    sha256_file,
    unpack_strings,
)

USER_IDS = "user_ids_"
TOMBSTONE = "\x00erased:{}"  # a control character: never a valid id, so never looked up


def erase_user_from_saved(directory: Path, user_id: str) -> bool:
    """Remove ``user_id`` from the saved model in ``directory`` (its own files, not its
    sub-models'); whether the user was there. The manifest is re-hashed when anything changed."""
    arrays = _read_npz(directory / ARRAYS_FILE)
    ids = _user_ids(arrays)
    if ids is None or user_id not in set(ids.tolist()):
        return False
    row = int(np.flatnonzero(ids == user_id)[0])
    ids[row] = TOMBSTONE.format(row)
    if f"{USER_IDS}__offsets" in arrays:
        arrays[f"{USER_IDS}__utf8"], arrays[f"{USER_IDS}__offsets"] = pack_strings(ids)
    else:  # saved before ids were packed: a fixed-width array
        arrays[USER_IDS] = ids.astype(str)
    n_items = _n_items(directory)
    for path in sorted(directory.glob("*.npz")):
        saved = arrays if path.name == ARRAYS_FILE else _read_npz(path)
        _zero_user_rows(saved, row, len(ids), n_items)
        np.savez(path, **saved)
    rehash(directory)
    return True


def rehash(directory: Path) -> None:
    """Recompute the checksums a saved model's manifest lists (after its files were rewritten)."""
    manifest = json.loads((directory / MANIFEST_FILE).read_text())
    manifest["files"] = {name: sha256_file(directory / name) for name in manifest["files"]}
    (directory / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True))


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as saved:
        return {key: saved[key] for key in saved.files}


def _user_ids(arrays: dict[str, np.ndarray]) -> np.ndarray | None:
    if f"{USER_IDS}__offsets" in arrays:
        return unpack_strings(arrays[f"{USER_IDS}__utf8"], arrays[f"{USER_IDS}__offsets"])
    if USER_IDS in arrays:
        return arrays[USER_IDS].astype(object)
    return None


def _n_items(directory: Path) -> int | None:
    scalars = json.loads((directory / CONFIG_FILE).read_text()).get("scalars", {})
    value = scalars.get("n_items_")
    return int(value) if value is not None else None


def _is_user_sized(name: str, length: int, n_users: int, n_items: int | None) -> bool:
    """Whether the array ``name`` has one row per user. When there are as many users as items the
    length cannot tell, so only the arrays named for users (``user...``, ``seen_``) count then."""
    if length != n_users or name.startswith(USER_IDS):
        return False
    return n_users != n_items or name.startswith("user") or name.startswith("seen_")


def _zero_user_rows(arrays: dict[str, np.ndarray], row: int, n_users: int, n_items: int | None) -> None:
    """Zero ``row`` of every dense array and drop it from every CSR matrix sized by users."""
    for key in [k for k in arrays if k.endswith("__shape")]:
        base = key[: -len("__shape")]
        if _is_user_sized(base, int(arrays[key][0]), n_users, n_items):
            _drop_csr_row(arrays, base, row)
    for key, value in list(arrays.items()):
        if "__" in key or value.ndim == 0 or value.dtype.kind not in "biuf":
            continue
        if _is_user_sized(key, value.shape[0], n_users, n_items):
            value = value.copy()
            value[row] = 0
            arrays[key] = value


def _drop_csr_row(arrays: dict[str, np.ndarray], base: str, row: int) -> None:
    indptr = arrays[f"{base}__indptr"].copy()
    start, end = int(indptr[row]), int(indptr[row + 1])
    for part in ("data", "indices"):
        arrays[f"{base}__{part}"] = np.delete(arrays[f"{base}__{part}"], slice(start, end))
    indptr[row + 1 :] -= end - start
    arrays[f"{base}__indptr"] = indptr
