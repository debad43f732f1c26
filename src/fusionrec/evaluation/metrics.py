"""Ranking and rating metrics, vectorised over users.

Inputs
------
``recs``: int array ``[n_users, K_max]`` of recommended item indices, best first; ``-1`` pads a row
that has fewer than ``K_max`` items (padding must be trailing, and an item may appear once per row).
``truth``: scipy sparse matrix ``[n_users, n_items]``; row ``i`` holds the relevant (held-out) items of
the user of ``recs[i]``. A stored nonzero means relevant; its value is the graded gain used by NDCG
when ``gain`` is ``"linear"`` or ``"exponential"``. Negative values are rejected.

Conventions (per user ``u`` with ``R`` relevant items, cut-off ``K``, ``rel_j`` the gain at rank ``j``)
----------------------------------------------------------------------------------------------------
- ``Recall@K = hits / R`` (the LightGCN / NGCF convention, and ``ranx``'s ``recall@k``).
  ``TruncRecall@K = hits / min(R, K)`` (Liang et al. 2018) is available on request only.
- ``Precision@K = hits / K``; padded slots count as misses, so short lists are penalised.
- ``HR@K = 1`` if any of the top K is relevant.
- ``NDCG@K = DCG / IDCG`` with ``DCG = sum_j g(rel_j) / log2(j + 1)`` (ranks ``j`` from 1) and ``IDCG``
  the DCG of the ``min(R, K)`` largest gains in rank order. ``g`` is 1 (``"binary"``, default), the
  value (``"linear"``, Järvelin) or ``2**value - 1`` (``"exponential"``, Burges).
- ``MAP@K``: ``AP@K = sum_{j<=K, rel_j} Precision@j / min(R, K)``, so a perfect list scores 1 even when
  ``R > K``. ``ranx``'s ``map@k`` divides by ``R`` instead: ours equals it times ``R / min(R, K)``.
- ``MRR@K = 1 / rank`` of the first relevant item in the top K, else 0.
- ``Coverage@K``: share of the catalogue (``truth.shape[1]`` items) recommended to at least one user.
- ``Novelty@K``: per user, mean self-information ``-log2(p_i)`` of the recommended items with
  ``p_i = pop_i / sum(pop)`` from training popularity; items never seen in training count as
  popularity 1 (finite, maximal novelty).
- ``ARP@K``: per user, mean training popularity (raw value of ``train_popularity``) of the list.
- ``ILD@K``: per user, share of pairs of recommended items whose categories differ; items with an
  unknown category (``None``/NaN, or a negative integer code) are left out of the pairs.
- ``ILD-Emb@K``: per user, mean pairwise cosine distance ``1 - cos`` of the item embeddings.
- ``Gini@K``: Gini index of how often each catalogue item is recommended (0 = even, ->1 = concentrated).

Users with no relevant item are excluded from every metric (they cannot be scored, and including them
as zeros would only measure the split). Per-user metrics are means over the remaining users; Novelty,
ARP and ILD also skip users whose list is too short to define them (no items; fewer than two items
with known category/embedding). Coverage and Gini are over the lists of the evaluated users.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, overload

import numpy as np
import pandas as pd
import scipy.sparse as sp

from fusionrec.relevance import canonical_truth, gains_at_ranks

Gain = Literal["binary", "linear", "exponential"]

ACCURACY_METRICS: tuple[str, ...] = ("Recall", "Precision", "HR", "NDCG", "MAP", "MRR")
OPTIONAL_ACCURACY_METRICS: tuple[str, ...] = ("TruncRecall",)
BEYOND_ACCURACY_METRICS: tuple[str, ...] = ("Coverage", "Gini", "Novelty", "ARP", "ILD", "ILD-Emb")
ALL_METRICS: tuple[str, ...] = ACCURACY_METRICS + OPTIONAL_ACCURACY_METRICS + BEYOND_ACCURACY_METRICS
_NEEDS = {
    "Novelty": "train_popularity",
    "ARP": "train_popularity",
    "ILD": "item_categories",
    "ILD-Emb": "item_embeddings",
}
DEFAULT_CHUNK_USERS = 16_384


# ----------------------------------------------------------------------------------------------------
# input checking
# ----------------------------------------------------------------------------------------------------


def _check_recs(recs: np.ndarray, n_users: int, n_items: int) -> np.ndarray:
    recs = np.asarray(recs)
    if recs.ndim != 2:
        raise ValueError(f"recs must be 2-D [n_users, K], got shape {recs.shape}")
    if not np.issubdtype(recs.dtype, np.integer):
        raise ValueError(f"recs must hold integer item indices, got dtype {recs.dtype}")
    if recs.shape[0] != n_users:
        raise ValueError(f"recs has {recs.shape[0]} rows but truth has {n_users} users")
    recs = recs.astype(np.int64, copy=False)
    bad = (recs < -1) | (recs >= n_items)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(
            f"recs[{row}, {col}] = {recs[row, col]} is not an item index in [0, {n_items}) nor -1 padding"
        )
    valid = recs >= 0
    # an item after a padding slot would have an ambiguous rank
    gap = valid[:, 1:] & ~valid[:, :-1]
    if gap.any():
        row, col = np.argwhere(gap)[0]
        raise ValueError(
            f"recs row {row}: item at position {col + 1} follows -1 padding (pad at the end only)"
        )
    srt = np.sort(recs, axis=1)
    dup = (srt[:, 1:] == srt[:, :-1]) & (srt[:, 1:] >= 0)
    if dup.any():
        row, col = np.argwhere(dup)[0]
        raise ValueError(f"recs row {row}: item {srt[row, col]} is recommended more than once")
    return recs


def _check_ks(ks: Sequence[int] | int, k_max: int) -> tuple[int, ...]:
    ks_t = (ks,) if isinstance(ks, int | np.integer) else tuple(ks)
    if not ks_t:
        raise ValueError("ks is empty")
    for k in ks_t:
        if int(k) < 1:
            raise ValueError(f"cut-off k={k} must be >= 1")
        if int(k) > k_max:
            raise ValueError(f"cut-off k={k} exceeds the {k_max} recommendations per user in recs")
    return tuple(sorted({int(k) for k in ks_t}))


def _ideal_dcg(truth: sp.csr_array, k: int, gain: Gain) -> np.ndarray:
    """IDCG@k per user: the ``min(R, k)`` largest gains placed at ranks 1.."""
    n_users = truth.shape[0]
    counts = np.diff(truth.indptr)
    if gain == "binary":
        disc_cum = np.concatenate(([0.0], np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))))
        return disc_cum[np.minimum(counts, k)]
    rows = np.repeat(np.arange(n_users), counts)
    order = np.lexsort((-truth.data, rows))  # per row, gains descending
    rank = np.arange(truth.nnz) - truth.indptr[rows]  # rows are already grouped, so this is in-row rank
    top = rank < k
    g = _apply_gain(truth.data[order][top], gain)
    return np.bincount(rows[top], weights=g / np.log2(rank[top] + 2.0), minlength=n_users)


def _apply_gain(values: np.ndarray, gain: Gain) -> np.ndarray:
    if gain == "binary":
        return (values > 0).astype(np.float64)
    if gain == "linear":
        return values
    if gain == "exponential":
        return np.exp2(values) - 1.0
    raise ValueError(f"unknown gain {gain!r}; use 'binary', 'linear' or 'exponential'")


# ----------------------------------------------------------------------------------------------------
# per-chunk computation
# ----------------------------------------------------------------------------------------------------


@dataclass
class _Context:
    gain: Gain
    log_pop_share: np.ndarray | None  # -log2 p_i per item
    popularity: np.ndarray | None
    category_codes: np.ndarray | None  # int64 per item, -1 unknown
    n_categories: int
    unit_embeddings: np.ndarray | None  # rows of norm 1 (or 0 if unknown)
    has_embedding: np.ndarray | None


def _accuracy_chunk(
    recs: np.ndarray, truth: sp.csr_array, ks: tuple[int, ...], wanted: set[str], ctx: _Context
) -> dict[str, np.ndarray]:
    gains = gains_at_ranks(recs, truth)
    hit = gains > 0
    n_rel = np.diff(truth.indptr).astype(np.float64)
    safe_rel = np.maximum(n_rel, 1.0)
    ranks = np.arange(1, recs.shape[1] + 1, dtype=np.float64)
    cum_hits = np.cumsum(hit, axis=1, dtype=np.float64)
    discount = 1.0 / np.log2(ranks + 1.0)
    dcg_terms = _apply_gain(gains, ctx.gain) * discount if "NDCG" in wanted else None
    ap_terms = np.where(hit, cum_hits / ranks, 0.0) if "MAP" in wanted else None
    # rank of first hit (K_max + 1 when none) serves every cut-off
    first = np.where(hit.any(axis=1), hit.argmax(axis=1) + 1, recs.shape[1] + 1)
    out: dict[str, np.ndarray] = {}
    for k in ks:
        hits = cum_hits[:, k - 1]
        if "Recall" in wanted:
            out[f"Recall@{k}"] = hits / safe_rel
        if "TruncRecall" in wanted:
            out[f"TruncRecall@{k}"] = hits / np.minimum(safe_rel, k)
        if "Precision" in wanted:
            out[f"Precision@{k}"] = hits / k
        if "HR" in wanted:
            out[f"HR@{k}"] = (hits > 0).astype(np.float64)
        if dcg_terms is not None:
            idcg = _ideal_dcg(truth, k, ctx.gain)
            dcg = dcg_terms[:, :k].sum(axis=1)
            out[f"NDCG@{k}"] = np.divide(dcg, idcg, out=np.zeros_like(dcg), where=idcg > 0)
        if ap_terms is not None:
            out[f"MAP@{k}"] = ap_terms[:, :k].sum(axis=1) / np.minimum(safe_rel, k)
        if "MRR" in wanted:
            out[f"MRR@{k}"] = np.where(first <= k, 1.0 / first, 0.0)
    return out


def _beyond_chunk(
    recs: np.ndarray, ks: tuple[int, ...], wanted: set[str], ctx: _Context
) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    valid = recs >= 0
    safe = np.where(valid, recs, 0)
    n = recs.shape[0]
    for k in ks:
        v = valid[:, :k]
        m = v.sum(axis=1).astype(np.float64)
        with np.errstate(invalid="ignore", divide="ignore"):
            if "Novelty" in wanted:
                assert ctx.log_pop_share is not None
                out[f"Novelty@{k}"] = np.where(v, ctx.log_pop_share[safe[:, :k]], 0.0).sum(axis=1) / m
            if "ARP" in wanted:
                assert ctx.popularity is not None
                out[f"ARP@{k}"] = np.where(v, ctx.popularity[safe[:, :k]], 0.0).sum(axis=1) / m
        if "ILD" in wanted:
            assert ctx.category_codes is not None
            out[f"ILD@{k}"] = _category_ild(safe[:, :k], v, ctx.category_codes, ctx.n_categories, n)
    if "ILD-Emb" in wanted:
        assert ctx.unit_embeddings is not None and ctx.has_embedding is not None
        by_k = _embedding_ild(safe, valid, ctx.unit_embeddings, ctx.has_embedding, ks)
        out |= {f"ILD-Emb@{k}": v for k, v in by_k.items()}
    return out


def _category_ild(items: np.ndarray, valid: np.ndarray, codes: np.ndarray, n_cat: int, n: int) -> np.ndarray:
    """Share of differing-category pairs: ``1 - sum_c C(m_c, 2) / C(m, 2)``, counted without K x K."""
    cat = np.where(valid, codes[items], -1)
    known = cat >= 0
    m = known.sum(axis=1).astype(np.float64)
    rows = np.broadcast_to(np.arange(n)[:, None], cat.shape)[known]
    keys, per_cat = np.unique(rows.astype(np.int64) * max(n_cat, 1) + cat[known], return_counts=True)
    same = np.bincount(keys // max(n_cat, 1), weights=per_cat * (per_cat - 1) / 2.0, minlength=n)
    pairs = m * (m - 1) / 2.0
    return np.divide(pairs - same, pairs, out=np.full(n, np.nan), where=pairs > 0)


def _embedding_ild(
    items: np.ndarray, valid: np.ndarray, unit: np.ndarray, has: np.ndarray, ks: tuple[int, ...]
) -> dict[int, np.ndarray]:
    """Mean pairwise ``1 - cos`` per cut-off; with unit vectors ``sum_{a<b} cos = (|sum e|^2 - m) / 2``."""
    use = valid & has[items]
    out: dict[int, np.ndarray] = {}
    # accumulate rank by rank (K steps) so memory stays [users, dim], never [users, K, dim]
    s = np.zeros((items.shape[0], unit.shape[1]))
    for j in range(max(ks)):
        s += unit[items[:, j]] * use[:, j, None]
        if j + 1 in ks:
            m = use[:, : j + 1].sum(axis=1).astype(np.float64)
            sum_cos = (np.einsum("ij,ij->i", s, s) - m) / 2.0
            pairs = m * (m - 1) / 2.0
            out[j + 1] = np.divide(pairs - sum_cos, pairs, out=np.full(len(m), np.nan), where=pairs > 0)
    return out


# ----------------------------------------------------------------------------------------------------
# global metrics
# ----------------------------------------------------------------------------------------------------


def gini(counts: np.ndarray) -> float:
    """Gini index of non-negative counts (0 when all equal or all zero)."""
    c = np.sort(np.asarray(counts, dtype=np.float64))
    n, total = c.size, c.sum()
    if n == 0 or total == 0:
        return 0.0
    i = np.arange(1, n + 1)
    return float(np.sum((2 * i - n - 1) * c) / (n * total))


# ----------------------------------------------------------------------------------------------------
# public entry points
# ----------------------------------------------------------------------------------------------------


def _build_context(
    n_items: int,
    wanted: set[str],
    gain: Gain,
    train_popularity: np.ndarray | None,
    item_categories: Sequence[object] | np.ndarray | None,
    item_embeddings: np.ndarray | None,
) -> _Context:
    _apply_gain(np.zeros(1), gain)  # validates the name early
    ctx = _Context(gain, None, None, None, 0, None, None)
    if wanted & {"Novelty", "ARP"}:
        pop = np.asarray(train_popularity, dtype=np.float64)
        if pop.shape != (n_items,):
            raise ValueError(
                f"train_popularity must have one value per item ({n_items}), got shape {pop.shape}"
            )
        bad = ~np.isfinite(pop) | (pop < 0)
        if bad.any():
            raise ValueError(f"train_popularity[{np.flatnonzero(bad)[0]}] must be finite and >= 0")
        ctx.popularity = pop
        smoothed = np.maximum(pop, 1.0)  # unseen items: popularity 1, so self-information stays finite
        ctx.log_pop_share = -np.log2(smoothed / max(pop.sum(), 1.0))
    if "ILD" in wanted:
        cats = np.asarray(item_categories)
        if cats.shape != (n_items,):
            raise ValueError(
                f"item_categories must have one label per item ({n_items}), got shape {cats.shape}"
            )
        if np.issubdtype(cats.dtype, np.integer):
            codes = np.where(cats < 0, -1, pd.factorize(cats)[0])
        else:
            codes = pd.factorize(cats)[0]  # None/NaN -> -1 (unknown)
        ctx.category_codes = codes.astype(np.int64)
        ctx.n_categories = int(ctx.category_codes.max(initial=-1)) + 1
    if "ILD-Emb" in wanted:
        emb = np.asarray(item_embeddings, dtype=np.float64)
        if emb.ndim != 2 or emb.shape[0] != n_items:
            raise ValueError(f"item_embeddings must be [n_items={n_items}, dim], got shape {emb.shape}")
        if not np.isfinite(emb).all():
            raise ValueError(f"item_embeddings row {np.argwhere(~np.isfinite(emb))[0][0]} is not finite")
        norms = np.linalg.norm(emb, axis=1)
        ctx.has_embedding = norms > 0  # zero vectors have no direction: left out of the pairs
        ctx.unit_embeddings = emb / np.where(ctx.has_embedding, norms, 1.0)[:, None]
    return ctx


def _resolve_metrics(
    metrics: Sequence[str] | None, train_popularity: object, item_categories: object, item_embeddings: object
) -> set[str]:
    given = {
        "train_popularity": train_popularity is not None,
        "item_categories": item_categories is not None,
        "item_embeddings": item_embeddings is not None,
    }
    if metrics is None:  # everything the inputs allow, except the opt-in TruncRecall
        return {m for m in ACCURACY_METRICS + BEYOND_ACCURACY_METRICS if m not in _NEEDS or given[_NEEDS[m]]}
    wanted = set(metrics)
    unknown = wanted - set(ALL_METRICS)
    if unknown:
        raise ValueError(f"unknown metric(s) {sorted(unknown)}; known: {list(ALL_METRICS)}")
    for m in wanted:
        if m in _NEEDS and not given[_NEEDS[m]]:
            raise ValueError(f"metric {m} needs {_NEEDS[m]}")
    return wanted


@overload
def evaluate_rankings(
    recs: np.ndarray,
    truth: sp.spmatrix | sp.sparray,
    ks: Sequence[int] | int = ...,
    metrics: Sequence[str] | None = ...,
    train_popularity: np.ndarray | None = ...,
    item_categories: Sequence[object] | np.ndarray | None = ...,
    item_embeddings: np.ndarray | None = ...,
    *,
    gain: Gain = ...,
    per_user: Literal[False] = ...,
    chunk_users: int = ...,
) -> dict[str, float]: ...


@overload
def evaluate_rankings(
    recs: np.ndarray,
    truth: sp.spmatrix | sp.sparray,
    ks: Sequence[int] | int = ...,
    metrics: Sequence[str] | None = ...,
    train_popularity: np.ndarray | None = ...,
    item_categories: Sequence[object] | np.ndarray | None = ...,
    item_embeddings: np.ndarray | None = ...,
    *,
    gain: Gain = ...,
    per_user: Literal[True],
    chunk_users: int = ...,
) -> tuple[dict[str, float], dict[str, np.ndarray]]: ...


def evaluate_rankings(
    recs: np.ndarray,
    truth: sp.spmatrix | sp.sparray,
    ks: Sequence[int] | int = (10, 20),
    metrics: Sequence[str] | None = None,
    train_popularity: np.ndarray | None = None,
    item_categories: Sequence[object] | np.ndarray | None = None,
    item_embeddings: np.ndarray | None = None,
    *,
    gain: Gain = "binary",
    per_user: bool = False,
    chunk_users: int = DEFAULT_CHUNK_USERS,
) -> dict[str, float] | tuple[dict[str, float], dict[str, np.ndarray]]:
    """Score ranked lists against held-out relevant items (conventions in the module docstring).

    ``metrics`` names from ``ALL_METRICS``; ``None`` means every metric the given inputs allow
    (Novelty/ARP need ``train_popularity`` [n_items], ILD needs ``item_categories`` [n_items],
    ILD-Emb needs ``item_embeddings`` [n_items, d]). Keys are ``"<Metric>@<k>"``.

    With ``per_user=True`` also returns, per per-user metric, a float64 array over all rows of
    ``recs`` with NaN for the users excluded from the mean (rows line up for paired tests).
    Users are processed ``chunk_users`` at a time to bound memory.
    """
    t = canonical_truth(truth)
    n_users, n_items = t.shape
    recs = _check_recs(recs, n_users, n_items)
    ks_t = _check_ks(ks, recs.shape[1])
    if chunk_users < 1:
        raise ValueError(f"chunk_users must be >= 1, got {chunk_users}")
    wanted = _resolve_metrics(metrics, train_popularity, item_categories, item_embeddings)
    ctx = _build_context(n_items, wanted, gain, train_popularity, item_categories, item_embeddings)

    evaluated = np.diff(t.indptr) > 0
    rows = np.flatnonzero(evaluated)
    per: dict[str, list[np.ndarray]] = {}
    rec_counts = {k: np.zeros(n_items, dtype=np.int64) for k in ks_t}
    for start in range(0, rows.size, chunk_users):
        idx = rows[start : start + chunk_users]
        r = recs[idx]
        parts = _beyond_chunk(r, ks_t, wanted, ctx)
        if wanted & set(ACCURACY_METRICS + OPTIONAL_ACCURACY_METRICS):
            parts |= _accuracy_chunk(r, t[idx], ks_t, wanted, ctx)
        for key, val in parts.items():
            per.setdefault(key, []).append(val)
        for k in ks_t:
            top = r[:, :k]
            rec_counts[k] += np.bincount(top[top >= 0], minlength=n_items)

    summary: dict[str, float] = {}
    per_user_out: dict[str, np.ndarray] = {}
    for m in ALL_METRICS:
        if m not in wanted:
            continue
        for k in ks_t:
            key = f"{m}@{k}"
            if m == "Coverage":
                summary[key] = float(np.count_nonzero(rec_counts[k]) / n_items) if n_items else 0.0
            elif m == "Gini":
                summary[key] = gini(rec_counts[k])
            else:
                vals = np.concatenate(per[key]) if key in per else np.empty(0)
                defined = vals[~np.isnan(vals)]
                summary[key] = float(defined.mean()) if defined.size else float("nan")
                full = np.full(n_users, np.nan)
                full[rows] = vals
                per_user_out[key] = full
    if per_user:
        return summary, per_user_out
    return summary


def grouped_ndcg(
    scores: np.ndarray, labels: np.ndarray, group: np.ndarray, k: int, *, gain: Gain = "exponential"
) -> float:
    """Mean NDCG@k of ranking each group's entries by ``scores``, against their graded ``labels``.

    Flat per-entry arrays (a candidate list per user, as the fused models train on): entry ``i``
    belongs to group ``group[i]``. Each group's entries are ranked by score (ties: the earlier
    entry first) and scored by `evaluate_rankings`' NDCG, the ideal ordering taken over that
    group's own labels; groups without a positive label are left out (0.0 when no group has one).
    ``gain`` as in `evaluate_rankings` (default ``2**label - 1``).
    """
    scores, labels = np.asarray(scores), np.asarray(labels, dtype=np.float64)
    group = np.asarray(group, dtype=np.int64)
    order = np.lexsort((-scores, group))
    in_group = group[order]
    rank = np.arange(len(order)) - np.searchsorted(in_group, in_group)  # 0 = the group's best score
    n_groups = int(group.max()) + 1 if len(group) else 0
    # Columns are ranks: each group's list is its ranks in order, and its truth the label at each rank.
    truth = sp.csr_array(
        (labels[order], (in_group, rank)), shape=(n_groups, int(rank.max(initial=0)) + 1), dtype=np.float64
    )
    if not (truth.data > 0).any():
        return 0.0
    top = rank < k
    recs = np.full((n_groups, k), -1, dtype=np.int64)
    recs[in_group[top], rank[top]] = rank[top]
    return evaluate_rankings(recs, truth, ks=k, metrics=["NDCG"], gain=gain)[f"NDCG@{k}"]


def rating_errors(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """RMSE and MAE of predicted against true ratings (same shape, finite, non-empty)."""
    p = np.asarray(pred, dtype=np.float64)
    y = np.asarray(true, dtype=np.float64)
    if p.shape != y.shape:
        raise ValueError(f"pred has shape {p.shape} but true has shape {y.shape}")
    if p.size == 0:
        raise ValueError("no ratings to score")
    for name, a in (("pred", p), ("true", y)):
        bad = ~np.isfinite(a)
        if bad.any():
            raise ValueError(f"{name} at position {np.argwhere(bad)[0].tolist()} is not finite")
    err = p - y
    return {"RMSE": float(np.sqrt(np.mean(err**2))), "MAE": float(np.mean(np.abs(err)))}
