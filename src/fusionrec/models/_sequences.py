"""Item sequences for sequential and session models (no torch needed).

Everything here is vectorised over the event log: sequences are CSR-like ``(indptr, items)``
pairs, windows are dense right-padded matrices built with one gather.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from fusionrec.data.dataset import Dataset


def positive_sequences(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Per-user time-ordered items of positive events, consecutive repeats collapsed.

    A shop log often holds view -> add_to_cart -> purchase of one item in a row; for next-item
    models that is one step, not three. Returns ``(indptr int64[n_users+1], items int32)``.
    """
    keep = dataset.weight > 0
    users = dataset.user_idx[keep]
    items = dataset.item_idx[keep]
    order = np.argsort(users, kind="stable")  # the log is time-ordered, so stable keeps time order
    users, items = users[order], items[order]
    repeat = np.zeros(len(items), dtype=bool)
    repeat[1:] = (users[1:] == users[:-1]) & (items[1:] == items[:-1])
    users, items = users[~repeat], items[~repeat]
    indptr = np.zeros(dataset.n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(users, minlength=dataset.n_users), out=indptr[1:])
    return indptr, items.astype(np.int32)


def last_windows(
    indptr: np.ndarray, items: np.ndarray, rows: np.ndarray, width: int, *, pad: int = -1, drop_last: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The last ``width`` items of each row's sequence (without its final ``drop_last`` items),
    left-aligned and right-padded with ``pad``.

    Returns ``(windows int64[len(rows), width], lengths int64[len(rows)])``.
    """
    rows = np.asarray(rows, dtype=np.int64)
    ends = indptr[rows + 1] - drop_last
    lengths = np.clip(ends - indptr[rows], 0, width)
    starts = ends - lengths
    offsets = np.arange(width)
    valid = offsets[None, :] < lengths[:, None]
    positions = np.where(valid, starts[:, None] + offsets[None, :], 0)
    windows = np.where(valid, items[positions] if len(items) else pad, pad).astype(np.int64)
    return windows, lengths


def histories_to_csr(histories: Sequence[np.ndarray], n_items: int) -> tuple[np.ndarray, np.ndarray]:
    """Request-time histories as ``(indptr, items)``, items outside ``0..n_items-1`` dropped."""
    cleaned = [h[(h >= 0) & (h < n_items)] for h in histories]
    indptr = np.zeros(len(cleaned) + 1, dtype=np.int64)
    np.cumsum([len(h) for h in cleaned], out=indptr[1:])
    items = np.concatenate(cleaned).astype(np.int32) if cleaned else np.zeros(0, dtype=np.int32)
    return indptr, items


def chunk_owners(indptr: np.ndarray, max_len: int) -> np.ndarray:
    """The row (user) of each window of `training_chunks`, in the same order."""
    lengths = np.diff(indptr)
    n_chunks = np.where(lengths >= 2, -(-(lengths - 1) // max_len), 0)
    return np.repeat(np.arange(len(lengths), dtype=np.int64), n_chunks)


def training_chunks(indptr: np.ndarray, items: np.ndarray, max_len: int) -> np.ndarray:
    """Cut every sequence into windows of ``max_len + 1`` items (input + shifted target).

    Windows are taken from the end of the sequence backwards and overlap by one item, so every
    transition is a training target exactly once. Rows are right-padded with -1; sequences with
    fewer than two items give no window.
    """
    lengths = np.diff(indptr)
    n_chunks = np.where(lengths >= 2, -(-(lengths - 1) // max_len), 0)
    owner = np.repeat(np.arange(len(lengths)), n_chunks)
    chunk_no = np.arange(len(owner)) - np.repeat(np.cumsum(n_chunks) - n_chunks, n_chunks)
    ends = indptr[owner + 1] - chunk_no * max_len
    starts = np.maximum(indptr[owner], ends - (max_len + 1))
    offsets = np.arange(max_len + 1)
    valid = offsets[None, :] < (ends - starts)[:, None]
    positions = np.where(valid, starts[:, None] + offsets[None, :], 0)
    return np.where(valid, items[positions] if len(items) else -1, -1).astype(np.int64)
