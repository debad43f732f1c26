"""Candidates of known users scored ahead of time, in batches, when a version becomes active.

Batch scoring is far cheaper per user than one user per request (a fused pipeline builds
candidates and features and runs its ranker on hundreds of rows at once), so a visitor with no
live events since training is answered from these lists; the rules, the online state and the
pagination still apply at request time. A visitor with live events takes the real-time path.

At scale the lists come from Spark instead (`fusionrec train --engine spark` writes every user's
top-N to the store's ``recommendations_batch`` table): `from_batch_table` turns that table into the
same `Precomputed` lists, so the service reads them rather than scoring every user itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from fusionrec.models.base import Recommender, top_k
from fusionrec.serving.scored import Provenance

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Precomputed:
    """Per-user candidate lists in flat arrays (user ``u``'s slice: ``indptr[u]:indptr[u + 1]``)."""

    indptr: np.ndarray  # int64[n_users + 1]
    items: np.ndarray  # int32
    scores: np.ndarray  # float32
    proposed: np.ndarray | None  # bool[n, n_sources] for pipelines with sources, else None
    labels: tuple[str, ...]

    def get(self, user: int) -> tuple[np.ndarray, np.ndarray, Provenance] | None:
        """User ``user``'s candidates, scores and sources; None when the user has no list."""
        if not 0 <= user < len(self.indptr) - 1:
            return None
        start, end = self.indptr[user], self.indptr[user + 1]
        if start == end:
            return None
        items = self.items[start:end].astype(np.int64)
        proposed = None if self.proposed is None else self.proposed[start:end]
        return items, self.scores[start:end].astype(np.float64), Provenance(items, self.labels, proposed)


def precompute(model: Recommender, n_users: int, per_user: int, batch: int = 256) -> Precomputed:
    """Top ``per_user`` candidates of users ``0..n_users-1`` (unknown-to-the-model users: none)."""
    started = time.perf_counter()
    counts = np.zeros(n_users, dtype=np.int64)
    parts_items, parts_scores, parts_proposed = [], [], []
    labels: tuple[str, ...] = (model.name,)
    known = model.known_users(np.arange(n_users))
    for begin in range(0, n_users, batch):
        users = np.arange(begin, min(begin + batch, n_users))
        users = users[known[users]]
        if not len(users):
            continue
        if model.scores_candidates:
            candidates, values = model.score_candidates(users)  # type: ignore[attr-defined]
            labels = tuple(candidates.sources)
            order = np.lexsort((candidates.item, -values, candidates.row))
            row = candidates.row[order]
            position = np.arange(len(row)) - np.searchsorted(row, row)
            keep = order[position < per_user]
            np.add.at(counts, users[candidates.row[keep]], 1)
            parts_items.append(candidates.item[keep].astype(np.int32))
            parts_scores.append(values[keep].astype(np.float32))
            parts_proposed.append(candidates.proposed()[keep])
        else:
            items, scores = top_k(model.score(users), per_user)
            valid = items >= 0
            counts[users] = valid.sum(axis=1)
            parts_items.append(items[valid].astype(np.int32))
            parts_scores.append(scores[valid].astype(np.float32))
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    empty32 = np.zeros(0, dtype=np.int32)
    result = Precomputed(
        indptr,
        np.concatenate(parts_items) if parts_items else empty32,
        np.concatenate(parts_scores) if parts_scores else np.zeros(0, dtype=np.float32),
        np.concatenate(parts_proposed) if parts_proposed else None,
        labels,
    )
    logger.info("precomputed %d users in %.1f s", int(known.sum()), time.perf_counter() - started)
    return result


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
