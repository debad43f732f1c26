"""Candidates of known users, and of guests with one live item, scored ahead of time in
batches when a version becomes active.

Batch scoring is far cheaper per user than one user per request (a fused pipeline builds
candidates and features and runs its ranker on hundreds of rows at once), so a visitor with no
live events since training is answered from these lists, and so is a guest whose one live item
has a list (`precompute_guests`); the rules, the online state and the pagination still apply at
request time. Other visitors with live events take the real-time path.

At scale the lists come from Spark instead (`fusionrec train --engine spark` writes every user's
top-N to the store's ``recommendations_batch`` table): `from_batch_table` turns that table into the
same `Precomputed` lists, so the service reads them rather than scoring every user itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from fusionrec.models.base import Recommender, top_k
from fusionrec.serving.scored import SESSION, Provenance, Scored, merge

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Precomputed:
    """Per-user candidate lists in flat arrays (user ``u``'s slice: ``indptr[u]:indptr[u + 1]``)."""

    indptr: np.ndarray  # int64[n_users + 1]
    items: np.ndarray  # int32
    scores: np.ndarray  # float32 (float64 `with_session`: the sums `merge` makes)
    proposed: np.ndarray | None  # bool[n, n_sources] for pipelines with sources, else None
    labels: tuple[str, ...]
    with_session: bool = False  # one-item guests' lists with their item's neighbours merged in

    def has(self, user: int) -> bool:
        """Whether user ``user`` has a list (`get` answers), without building it."""
        return 0 <= user < len(self.indptr) - 1 and bool(self.indptr[user] < self.indptr[user + 1])

    def get(self, user: int) -> tuple[np.ndarray, np.ndarray, Provenance] | None:
        """User ``user``'s candidates, scores and sources; None when the user has no list."""
        if not self.has(user):
            return None
        start, end = self.indptr[user], self.indptr[user + 1]
        items = self.items[start:end].astype(np.int64)
        proposed = None if self.proposed is None else self.proposed[start:end]
        return items, self.scores[start:end].astype(np.float64), Provenance(items, self.labels, proposed)


def precompute(model: Recommender, n_users: int, per_user: int, batch: int = 256) -> Precomputed:
    """Top ``per_user`` candidates of users ``0..n_users-1`` (unknown-to-the-model users: none)."""
    started = time.perf_counter()
    known = model.known_users(np.arange(n_users))

    def score(users: np.ndarray) -> _Batch:
        if model.scores_candidates:
            return model.score_candidates(users)  # type: ignore[attr-defined, no-any-return]
        return model.score(users)

    result = _lists(score, np.flatnonzero(known), n_users, per_user, batch, model.name)
    logger.info("precomputed %d users in %.1f s", int(known.sum()), time.perf_counter() - started)
    return result


def takes_guests(model: Recommender) -> bool:
    """Whether ``model`` scores a visitor from their live items alone (a guest's answer)."""
    return bool(model.scores_candidates or model.supports_history)


def precompute_guests(
    model: Recommender, items: np.ndarray, n_items: int, per_item: int, batch: int = 256
) -> Precomputed:
    """The answer of a guest whose one live item is ``i``, for each ``i`` of ``items``: lists
    indexed by that item (`Precomputed.get(i)`), as `recommend`'s live path scores such a guest
    (no training history, the history ``[i]``, no request context).

    A guest's first view is the commonest live request and, scored on request, cost about 4 ms
    (candidates, features and the ranker over ~140 rows at 2M events) against a known user's
    pre-scored 0.12 ms; its answer depends on that item alone, so it is scored ahead, in batches.
    """
    started = time.perf_counter()

    def score(rows: np.ndarray) -> _Batch:
        histories = [np.array([item], dtype=np.int32) for item in rows.tolist()]
        guests = np.full(len(rows), -1, dtype=np.int64)
        if model.scores_candidates:
            return model.score_candidates(guests, histories)  # type: ignore[attr-defined, no-any-return]
        return model.score_histories(histories)

    result = _lists(score, np.sort(np.asarray(items, dtype=np.int64)), n_items, per_item, batch, model.name)
    logger.info("precomputed the guests of %d items in %.1f s", len(items), time.perf_counter() - started)
    return result


def with_session(lists: Precomputed, session: Callable[[int], Scored | None], weight: float) -> Precomputed:
    """One-item guests' ``lists`` with each item's live item-to-item candidates (``session(i)``)
    merged in at ``weight``, as `recommend` merges them per request (`merge`; the neighbours and
    their merge were about 40 % of such a guest's answer): the union in `merge`'s order, its
    scores as float64, and the label `SESSION` after the lists' own. An item whose neighbours are
    none keeps its list."""
    labels = (*lists.labels, SESSION)
    counts = np.diff(lists.indptr)
    parts_items, parts_scores, parts_proposed = [], [], []
    for row in np.flatnonzero(counts).tolist():
        items, scores, sources = lists.get(row)  # type: ignore[misc]  # rows with a list
        personal = Scored(items, scores, sources)
        near = session(row)
        merged = personal if near is None else merge(personal, near, weight)
        proposed = np.zeros((len(merged.items), len(labels)), dtype=bool)
        at = np.searchsorted(merged.items, items) if near is not None else np.arange(len(items))
        start = lists.indptr[row]
        own = lists.proposed[start : start + len(items)] if lists.proposed is not None else True
        proposed[at, : len(lists.labels)] = own
        if near is not None:
            proposed[np.searchsorted(merged.items, near.items), -1] = True
        counts[row] = len(merged.items)
        parts_items.append(merged.items.astype(np.int32))
        parts_scores.append(np.asarray(merged.scores, dtype=np.float64))
        parts_proposed.append(proposed)
    if not parts_items:
        return lists
    return _packed(counts, parts_items, parts_scores, parts_proposed, labels, with_session=True)


# A batch's answer: a fused pipeline's candidates and their scores, else a dense score matrix.
_Batch = Any


def _lists(
    score: Callable[[np.ndarray], _Batch],
    rows: np.ndarray,
    n_rows: int,
    per_row: int,
    batch: int,
    label: str,
) -> Precomputed:
    """The top ``per_row`` of each of ``rows`` (sorted; the others of ``0..n_rows-1`` get no list),
    scored ``batch`` at a time by ``score``."""
    counts = np.zeros(n_rows, dtype=np.int64)
    parts_items, parts_scores, parts_proposed = [], [], []
    labels: tuple[str, ...] = (label,)
    for begin in range(0, len(rows), batch):
        chunk = rows[begin : begin + batch]
        answer = score(chunk)
        if isinstance(answer, tuple):  # a fused pipeline's candidates, with their sources
            candidates, values = answer
            labels = tuple(candidates.sources)
            order = np.lexsort((candidates.item, -values, candidates.row))
            row = candidates.row[order]
            position = np.arange(len(row)) - np.searchsorted(row, row)
            keep = order[position < per_row]
            np.add.at(counts, chunk[candidates.row[keep]], 1)
            parts_items.append(candidates.item[keep].astype(np.int32))
            parts_scores.append(values[keep].astype(np.float32))
            parts_proposed.append(candidates.proposed()[keep])
        else:
            items, scores = top_k(answer, per_row)
            valid = items >= 0
            counts[chunk] = valid.sum(axis=1)
            parts_items.append(items[valid].astype(np.int32))
            parts_scores.append(scores[valid].astype(np.float32))
    return _packed(counts, parts_items, parts_scores, parts_proposed, labels)


def _packed(
    counts: np.ndarray,
    items: list[np.ndarray],
    scores: list[np.ndarray],
    proposed: list[np.ndarray],
    labels: tuple[str, ...],
    *,
    with_session: bool = False,
) -> Precomputed:
    """`Precomputed` of the rows' parts, in row order, row ``r`` holding ``counts[r]`` entries."""
    indptr = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return Precomputed(
        indptr,
        np.concatenate(items) if items else np.zeros(0, dtype=np.int32),
        np.concatenate(scores) if scores else np.zeros(0, dtype=np.float32),
        np.concatenate(proposed) if proposed else None,
        labels,
        with_session,
    )


def from_batch_table(
    table: pa.Table, user_index: Mapping[str, int], item_index: Mapping[str, int], label: str
) -> Precomputed:
    """`Precomputed` lists from ``recommendations_batch`` rows (``user_id, rank, item_id, score``).

    Rows of users or items the active version does not know are dropped (a list written for an
    older catalogue); each user's items keep their stored rank order.
    """
    n_users = len(user_index)
    users = pd.Series(table["user_id"].to_pandas(), dtype=object).map(user_index)
    items = pd.Series(table["item_id"].to_pandas(), dtype=object).map(item_index)
    known = (users.notna() & items.notna()).to_numpy()
    users_idx = users.to_numpy()[known].astype(np.int64)
    items_idx = items.to_numpy()[known].astype(np.int32)
    ranks = table["rank"].to_numpy()[known]
    scores = table["score"].to_numpy(zero_copy_only=False)[known].astype(np.float32)
    order = np.lexsort((ranks, users_idx))
    counts = np.bincount(users_idx, minlength=n_users)
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    logger.info(
        "read %d precomputed rows of %s for %d users", int(known.sum()), label, int((counts > 0).sum())
    )
    return Precomputed(indptr, items_idx[order], scores[order], None, (label,))
