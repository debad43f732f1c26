"""Shared pieces of item-based recommenders (content, co-visitation, association rules, and the
item x item models that score histories given at request time).

These models score a user from the items in their history: a weighted, recency-decayed
user x item matrix multiplied into an item representation. `user_history_matrix` builds it for
the training users from the event log, `request_history_matrix` for histories given at request
time (live sessions; also plain 0/1 or count rows). Items a model has no evidence for are filled
in by popularity below every scored item (`fill_unscored`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from fusionrec.data.dataset import Dataset
from fusionrec.models.base import top_k

# Unscored items get scores in [FILL_LOW, FILL_LOW + 0.5]: below every real (positive) score.
FILL_LOW = -1.0


def _decay(position_from_end: np.ndarray, half_life: float | None) -> np.ndarray:
    if half_life is None:
        return np.ones(len(position_from_end), dtype=np.float64)
    return np.power(0.5, position_from_end / half_life)


def user_history_matrix(
    dataset: Dataset,
    *,
    weighting: str = "events",
    last_n: int | None = None,
    half_life: float | None = None,
) -> sp.csr_matrix:
    """Users' weighted histories as a CSR ``n_users x n_items`` (float32, non-negative).

    Each event counts its signed event-type weight (``weighting="events"``) or 1 if positive
    (``"binary"``), times ``0.5 ** (position_from_end / half_life)`` where the user's newest event
    has position 0; only the newest ``last_n`` events of each user count. Cells are summed and
    clipped at 0 (a removal cancels an add-to-cart).
    """
    if weighting not in ("events", "binary"):
        raise ValueError(f"weighting must be 'events' or 'binary', not {weighting!r}")
    order = np.argsort(dataset.user_idx, kind="stable")  # the log is time-ordered already
    users = dataset.user_idx[order]
    counts = np.bincount(users, minlength=dataset.n_users)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    position_from_end = counts[users] - (np.arange(len(order)) - starts[users]) - 1
    weights = dataset.weight[order].astype(np.float64)
    if weighting == "binary":
        weights = (weights > 0).astype(np.float64)
    weights = weights * _decay(position_from_end, half_life)
    keep = np.ones(len(order), dtype=bool) if last_n is None else position_from_end < last_n
    matrix = sp.csr_matrix(
        (weights[keep], (users[keep], dataset.item_idx[order][keep])),
        shape=(dataset.n_users, dataset.n_items),
    )
    matrix.sum_duplicates()
    matrix.data = np.clip(matrix.data, 0.0, None)
    matrix.eliminate_zeros()
    return matrix.astype(np.float32)


def request_history_matrix(
    histories: Sequence[np.ndarray],
    n_items: int,
    *,
    last_n: int | None = None,
    half_life: float | None = None,
    binary: bool = False,
) -> sp.csr_matrix:
    """Request-time histories (oldest first) as a CSR ``len(histories) x n_items`` (float32).

    Every entry weighs 1 times the same position decay as `user_history_matrix`, summed over an
    item's repeats (without decay: how often the item occurs); ``binary=True`` gives 1 per distinct
    item instead. Item indices outside ``0..n_items-1`` (items unknown to the model) are ignored.
    """
    if binary and last_n is None:
        return _distinct_items_matrix(histories, n_items)
    lengths = np.array([len(h) for h in histories], dtype=np.int64)
    items = np.concatenate([np.asarray(h, dtype=np.int64) for h in histories]) if len(histories) else []
    items = np.asarray(items, dtype=np.int64)
    rows = np.repeat(np.arange(len(histories)), lengths)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if len(lengths) else lengths
    position_from_end = lengths[rows] - (np.arange(len(items)) - starts[rows]) - 1
    keep = (items >= 0) & (items < n_items)
    if last_n is not None:
        keep &= position_from_end < last_n
    weights = _decay(position_from_end, half_life)
    matrix = sp.csr_matrix(
        (weights[keep], (rows[keep], items[keep])), shape=(len(histories), n_items), dtype=np.float64
    )
    matrix.sum_duplicates()
    if binary:
        matrix.data = np.ones_like(matrix.data)  # repeated items count once
    return matrix.astype(np.float32)


def _distinct_items_matrix(histories: Sequence[np.ndarray], n_items: int) -> sp.csr_matrix:
    """`request_history_matrix(..., binary=True)` built row by row as CSR arrays.

    Serving scores one visitor's history per request, several times (each source, the exclusion):
    the COO round trip with its duplicate summing cost several times more than the scoring itself.
    """
    rows = []
    for history in histories:
        history = np.asarray(history, dtype=np.int64)
        rows.append(np.unique(history[(history >= 0) & (history < n_items)]))
    indptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in rows], out=indptr[1:])
    indices = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    data = np.ones(len(indices), dtype=np.float32)
    return sp.csr_matrix((data, indices, indptr), shape=(len(rows), n_items))


def history_row(
    stored: sp.csr_matrix,
    user: int,
    history: np.ndarray | None,
    *,
    last_n: int | None = None,
    half_life: float | None = None,
    binary: bool = True,
) -> sp.csr_matrix | None:
    """The one-row history a model scores: ``history`` as `request_history_matrix` builds it (the
    model's own ``last_n``, ``half_life``, ``binary``), else ``user``'s row of ``stored``; None for
    an unknown user without a history."""
    if history is not None:
        return request_history_matrix(
            [np.asarray(history, dtype=np.int64)],
            stored.shape[1],
            last_n=last_n,
            half_life=half_life,
            binary=binary,
        )
    if 0 <= user < stored.shape[0]:
        return stored[[user]].tocsr()
    return None


def row_terms(
    row: sp.csr_matrix, weights: sp.spmatrix | np.ndarray, item: int
) -> tuple[np.ndarray, np.ndarray]:
    """The terms ``row[j] * weights[j, item]`` of ``(row @ weights)[item]``, one per item ``j``
    of the one-row ``row``: ``(items int64, terms float32)``, zero terms left out."""
    items = row.indices.astype(np.int64)
    if sp.issparse(weights):
        column = np.asarray(weights[items][:, [item]].todense()).ravel()
    else:
        column = np.asarray(weights[items, item]).ravel()
    terms = (row.data * column).astype(np.float32)
    keep = terms != 0
    return items[keep], terms[keep]


def fill_unscored(scores: np.ndarray, popularity: np.ndarray) -> np.ndarray:
    """Give items without a positive score a popularity-ordered score below every scored item.

    Scores ``<= 0`` become ``FILL_LOW + 0.5 * popularity / max(popularity)``, so a list the model
    cannot fill is completed by the most popular items instead of by item index.
    """
    top = float(popularity.max()) if len(popularity) else 0.0
    fill = (FILL_LOW + 0.5 * popularity / top if top > 0 else np.full_like(popularity, FILL_LOW)).astype(
        np.float32
    )
    scores = np.asarray(scores, dtype=np.float32)
    return np.where(scores > 0, scores, fill[None, :]).astype(np.float32)


def top_neighbours(rows: np.ndarray, items: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` columns of each dense row with a positive score, the row's own item excluded.

    ``rows[i]`` scores every item against ``items[i]``; returns ``(items int32[n, k], scores)``
    padded with -1 / -inf where fewer than ``k`` items have a positive score.
    """
    rows = np.array(rows, dtype=np.float32, copy=True)
    rows[rows <= 0] = -np.inf
    inside = (items >= 0) & (items < rows.shape[1])
    rows[np.nonzero(inside)[0], items[inside]] = -np.inf
    return top_k(rows, k)


def check_items(items: np.ndarray | Sequence[int], n_items: int) -> np.ndarray:
    """Item indices as int64, with a clear error naming the first one out of range."""
    items = np.asarray(items, dtype=np.int64).ravel()
    bad = np.nonzero((items < 0) | (items >= n_items))[0]
    if len(bad):
        raise IndexError(f"item index {items[bad[0]]} (position {bad[0]}) is not in 0..{n_items - 1}")
    return items
