"""Candidate generation: the deduplicated union of each source's top-N, and its recall.

Every source (a fitted `Recommender`, or an extra list such as the user's repeat purchases)
proposes its top ``n`` items per user; the union keeps one row per (user, item) with each
source's score and rank side by side (NaN where the source did not propose the item), sorted by
user row then item, so downstream features and rankers work on flat arrays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from fusionrec.models.base import Recommender, top_k
from fusionrec.models.itemtools import request_history_matrix

TopLists = tuple[np.ndarray, np.ndarray]  # (items int32[n_rows, k] with -1 padding, scores float32)


@dataclass(frozen=True)
class Candidates:
    """Flat candidate table for ``n_rows`` users, sorted by (row, item)."""

    n_rows: int
    row: np.ndarray  # int32[n]: which requested user (0..n_rows-1)
    item: np.ndarray  # int32[n]
    scores: np.ndarray  # float32[n, n_sources]; NaN = not proposed by that source
    ranks: np.ndarray  # float32[n, n_sources]; 1 = the source's best item; NaN = not proposed
    sources: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.item)

    @property
    def indptr(self) -> np.ndarray:
        """Row offsets: row ``r``'s candidates are ``[indptr[r], indptr[r+1])``."""
        counts = np.bincount(self.row, minlength=self.n_rows)
        indptr = np.zeros(self.n_rows + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return indptr

    def proposed(self) -> np.ndarray:
        """bool[n, n_sources]: which source proposed each candidate."""
        return ~np.isnan(self.ranks)

    def take(self, mask: np.ndarray) -> Candidates:
        """The candidates where ``mask`` holds (rows keep their numbering)."""
        return Candidates(
            self.n_rows, self.row[mask], self.item[mask], self.scores[mask], self.ranks[mask], self.sources
        )


def source_lists(
    models: Mapping[str, Recommender],
    quotas: Mapping[str, int],
    users: np.ndarray,
    *,
    exclude: sp.csr_matrix | str | None,
    histories: Sequence[np.ndarray] | None = None,
    min_scores: Mapping[str, float | None] | None = None,
    dense: dict[str, np.ndarray] | None = None,
    history_rows: sp.csr_matrix | None = None,
) -> dict[str, TopLists]:
    """Each source's top-``quota`` lists for ``users`` (or for live ``histories`` where supported).

    Items scored at or below a source's ``min_scores`` entry are dropped (item -1). ``dense``, when
    given, receives each source's scores of every item (``float32[len(users), n_items]``, excluded
    items at -inf), for `fill_scores`. ``history_rows``: the histories' distinct items as
    ``request_history_matrix(histories, n_items, binary=True)`` builds them, when the caller has
    them already; else built here once for the sources that score histories as ``rows @ W``
    (`Recommender.history_weights`).
    """
    lists: dict[str, TopLists] = {}
    rows = history_rows
    for label, model in models.items():
        if dense is None:
            weights = _history_weights(model, histories)
            if weights is not None:
                if rows is None:
                    rows = request_history_matrix(list(histories or ()), model.n_items_, binary=True)
                lists[label] = weighted_top(rows, weights, quotas[label], exclude)
            else:
                lists[label] = _source_list(model, quotas[label], users, exclude, histories)
        else:
            dense[label] = _dense_scores(model, users, exclude, histories)
            lists[label] = top_k(dense[label], quotas[label])
        floor = (min_scores or {}).get(label)
        if floor is not None:
            items, scores = lists[label]
            items = np.where(scores > floor, items, -1).astype(np.int32)
            lists[label] = (items, scores)
    return lists


def _history_weights(
    model: Recommender, histories: Sequence[np.ndarray] | None
) -> np.ndarray | sp.csr_matrix | None:
    """The model's ``W`` when it scores every one of ``histories`` as ``rows @ W`` (an empty
    history takes the model's fallback scores instead: then None, the general path)."""
    if histories is None or not model.supports_history or not all(len(h) for h in histories):
        return None
    return model.history_weights()


def weighted_top(
    rows: sp.csr_matrix, weights: np.ndarray | sp.csr_matrix, k: int, exclude: sp.csr_matrix | str | None
) -> TopLists:
    """`top_k` of the scores ``rows @ weights`` (float32), items nonzero in a CSR ``exclude`` at
    -inf: what `_source_list` gives for a source whose `Recommender.history_weights` is
    ``weights``. A sparse ``weights`` gives sparse score rows, ranked by their stored entries."""
    mask = exclude if sp.issparse(exclude) else None
    product = rows @ weights
    if sp.issparse(product):
        return sparse_top_k(product.tocsr(), k, mask)
    scores = np.asarray(product, dtype=np.float32)
    if mask is not None:
        mask_out(scores, mask)
    return top_k(scores, k)


def sparse_top_k(scores: sp.csr_matrix, k: int, mask: sp.csr_matrix | None = None) -> TopLists:
    """`top_k` of ``scores`` as float32 (absent entries 0), items nonzero in ``mask`` at -inf.

    A row with at least ``k`` positive entries outside the mask has its top among them (every
    absent entry, a 0, ranks below), ordered as `top_k` orders them (higher score first, ties to
    the lower item); a row with fewer, or with a NaN, is ranked densely by `top_k` itself.
    """
    scores = scores.tocsr()
    n_rows, n_cols = scores.shape
    k = min(k, n_cols)
    items = np.empty((n_rows, k), dtype=np.int32)
    values = np.empty((n_rows, k), dtype=np.float32)
    for r in range(n_rows):
        start, end = scores.indptr[r], scores.indptr[r + 1]
        cols = scores.indices[start:end]
        data = scores.data[start:end].astype(np.float32)
        if mask is not None:
            lo, hi = mask.indptr[r], mask.indptr[r + 1]
            masked = np.sort(mask.indices[lo:hi][mask.data[lo:hi] != 0])
            if len(masked):  # membership by binary search: np.isin costs more on one short row
                at = np.minimum(np.searchsorted(masked, cols), len(masked) - 1)
                keep = masked[at] != cols
                cols, data = cols[keep], data[keep]
        positive = data > 0
        if int(positive.sum()) >= k and not np.isnan(data).any():
            cols, data = cols[positive], data[positive]
            if len(data) > k:  # the k-th largest value first: only its ties and above are sorted
                kept = data >= -np.partition(-data, k - 1)[k - 1]
                cols, data = cols[kept], data[kept]
            order = np.lexsort((cols, -data))[:k]
            items[r], values[r] = cols[order], data[order]
            continue
        row = np.zeros((1, n_cols), dtype=np.float32)
        row[0, cols] = data
        if mask is not None:
            mask_out(row, mask[r])
        items[r], values[r] = top_k(row, k)
    return items, values


def _source_list(
    model: Recommender,
    n: int,
    users: np.ndarray,
    exclude: sp.csr_matrix | str | None,
    histories: Sequence[np.ndarray] | None,
) -> TopLists:
    if histories is not None and model.supports_history:
        return top_k(_dense_scores(model, users, exclude, histories), n)
    return model.recommend(users, n, exclude=exclude)


def _dense_scores(
    model: Recommender,
    users: np.ndarray,
    exclude: sp.csr_matrix | str | None,
    histories: Sequence[np.ndarray] | None,
) -> np.ndarray:
    """The source's score of every item for each user or live history; excluded items at -inf."""
    if histories is not None and model.supports_history:
        scores = model.fallback_scores(len(histories))
        filled = np.array([len(h) > 0 for h in histories], dtype=bool)
        if filled.any():
            scores[filled] = model.score_histories([h for h in histories if len(h)])
        mask = exclude if sp.issparse(exclude) else None
    else:
        scores = model.score(users)
        mask = model.exclusion(np.asarray(users, dtype=np.int64), exclude)
    if mask is not None:
        mask_out(scores, mask)
    return scores


def mask_out(scores: np.ndarray, mask: sp.csr_matrix) -> None:
    """Set ``scores`` to -inf where ``mask`` (a CSR of the same shape) has a nonzero entry.

    Read straight from the CSR arrays: ``mask.nonzero()`` goes through a COO copy, which cost
    more than the scoring on a one-visitor request.
    """
    mask = mask if mask.format == "csr" else mask.tocsr()
    rows = np.repeat(np.arange(mask.shape[0]), np.diff(mask.indptr))
    hit = mask.data != 0  # explicit zeros (left by a product with a diagonal) do not mask
    scores[rows[hit], mask.indices[hit]] = -np.inf


def fill_scores(candidates: Candidates, dense: Mapping[str, np.ndarray]) -> None:
    """Each source's score for the candidates it did not propose, from its ``dense`` scores.

    Ranks stay missing there (the item is outside the source's list), so the ranker still sees
    who proposed what, and now also every source's opinion of every candidate.
    """
    for s, label in enumerate(candidates.sources):
        if label not in dense:
            continue  # the extra lists (repeat, popular in category) have no model behind them
        missing = np.flatnonzero(np.isnan(candidates.scores[:, s]))
        values = dense[label][candidates.row[missing], candidates.item[missing]]
        candidates.scores[missing, s] = np.where(np.isfinite(values), values, np.nan)


def union(lists: Mapping[str, TopLists], n_rows: int, n_items: int) -> Candidates:
    """Deduplicate the sources' lists into one `Candidates` table (vectorised, no per-user loop)."""
    labels = tuple(lists)
    keys, source_of, score_of, rank_of = [], [], [], []
    for s, label in enumerate(labels):
        items, scores = lists[label]
        if items.shape[0] != n_rows:
            raise ValueError(f"source {label!r} returned {items.shape[0]} rows for {n_rows} users")
        valid = items >= 0
        rows, cols = np.nonzero(valid)
        keys.append(rows.astype(np.int64) * n_items + items[valid])
        source_of.append(np.full(len(rows), s, dtype=np.int32))
        score_of.append(scores[valid].astype(np.float32))
        rank_of.append((cols + 1).astype(np.float32))
    all_keys = np.concatenate(keys) if keys else np.zeros(0, dtype=np.int64)
    unique, inverse = np.unique(all_keys, return_inverse=True)
    scores = np.full((len(unique), len(labels)), np.nan, dtype=np.float32)
    ranks = np.full((len(unique), len(labels)), np.nan, dtype=np.float32)
    if len(all_keys):
        src = np.concatenate(source_of)
        scores[inverse, src] = np.concatenate(score_of)
        ranks[inverse, src] = np.concatenate(rank_of)
    return Candidates(
        n_rows=n_rows,
        row=(unique // n_items).astype(np.int32),
        item=(unique % n_items).astype(np.int32),
        scores=scores,
        ranks=ranks,
        sources=labels,
    )


def candidate_recall(candidates: Candidates, truth: sp.csr_matrix) -> dict[str, float]:
    """Share of the truth items (one row per candidate row) inside the candidate set.

    Returns ``{"total": ..., "<source>": ...}``: the union's recall and each source's own.
    """
    truth = sp.csr_matrix(truth)
    if truth.shape[0] != candidates.n_rows:
        raise ValueError(f"truth has {truth.shape[0]} rows for {candidates.n_rows} candidate rows")
    n_truth = truth.nnz
    if n_truth == 0:
        return {"total": 0.0, **{label: 0.0 for label in candidates.sources}}
    hit = np.asarray(truth[candidates.row, candidates.item]).ravel() > 0
    proposed = candidates.proposed()
    recall = {"total": float(hit.sum() / n_truth)}
    for s, label in enumerate(candidates.sources):
        recall[label] = float((hit & proposed[:, s]).sum() / n_truth)
    return recall


def top_rows(matrix: sp.csr_matrix, k: int) -> TopLists:
    """Each row's ``k`` largest stored entries (e.g. a user's most repeated items)."""
    dense = matrix.toarray().astype(np.float32)
    dense[dense <= 0] = -np.inf
    return top_k(dense, k)
