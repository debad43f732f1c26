"""Association rules ("bought together") over baskets.

Pairwise rules ``a -> c`` with support, confidence and lift, counted for all pairs at once as the
sparse product ``BᵀB`` of the binary basket x item matrix. `baskets_from_dataset` turns a Dataset's
events into baskets; `rules_from_frame` mines a long ``basket, item`` table (analytics);
`rules_matrix` gives the antecedent x consequent matrix the ``association_rules`` model scores with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from fusionrec.data.dataset import SECONDS_PER_DAY, Dataset

RULE_COLUMNS = ["antecedent", "consequent", "support", "confidence", "lift", "count"]


def baskets_from_dataset(
    dataset: Dataset, event_types: Sequence[str] = ("purchase",), by: str = "session"
) -> tuple[np.ndarray, np.ndarray]:
    """``(basket_idx, item_idx)`` of the events of ``event_types``, one basket per group.

    ``by="session"`` groups by session id and falls back to the user's calendar day (UTC) for events
    without one; ``"user_day"`` always groups by user and day; ``"user"`` puts a user's events in one basket.
    Basket indices are dense ``0..n_baskets-1``.
    """
    if by not in ("session", "user_day", "user"):
        raise ValueError(f"by must be 'session', 'user_day' or 'user', not {by!r}")
    unknown = [name for name in event_types if name not in dataset.event_types]
    if unknown:
        raise ValueError(f"unknown event type(s) {unknown}; configured: {dataset.event_types.names}")
    mask = dataset.event_mask(*event_types)
    users = dataset.user_idx[mask].astype(np.int64)
    days = dataset.timestamp[mask] // int(SECONDS_PER_DAY)
    sessions = (
        dataset.session_idx[mask]
        if len(dataset.session_idx)
        else np.full(int(mask.sum()), -1, dtype=np.int64)
    )
    if by == "user":
        keys = np.stack([users, np.zeros_like(users)], axis=1)
    elif by == "user_day":
        keys = np.stack([users, days], axis=1)
    else:
        has_session = sessions >= 0
        # Session keys are non-negative, user-day fallback keys negative: the two never collide.
        keys = np.stack([np.where(has_session, sessions, -1 - users), np.where(has_session, 0, days)], axis=1)
    if len(keys) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int32)
    _, basket = np.unique(keys, axis=0, return_inverse=True)
    return basket.ravel().astype(np.int64), dataset.item_idx[mask]


def basket_matrix(
    baskets: sp.spmatrix | tuple[np.ndarray, np.ndarray], n_items: int | None = None
) -> sp.csr_matrix:
    """Binary CSR baskets x items from a sparse matrix or ``(basket_idx, item_idx)`` arrays.

    Empty baskets (rows) are dropped.
    """
    if sp.issparse(baskets):
        matrix = sp.csr_matrix(baskets, dtype=np.float32)
        matrix.sum_duplicates()
        matrix.data = (matrix.data != 0).astype(np.float32)
        matrix.eliminate_zeros()
    else:
        basket_idx, item_idx = (np.asarray(a, dtype=np.int64).ravel() for a in baskets)
        if len(basket_idx) != len(item_idx):
            raise ValueError(f"{len(basket_idx)} basket indices for {len(item_idx)} item indices")
        for name, values in (("basket_idx", basket_idx), ("item_idx", item_idx)):
            if len(values) and values.min() < 0:
                bad = int(np.argmax(values < 0))
                raise ValueError(f"{name}[{bad}] is {values[bad]}: indices must be >= 0")
        width = n_items if n_items is not None else (int(item_idx.max()) + 1 if len(item_idx) else 0)
        if len(item_idx) and item_idx.max() >= width:
            bad = int(np.argmax(item_idx >= width))
            raise ValueError(f"item_idx[{bad}] is {item_idx[bad]}, outside n_items={width}")
        height = int(basket_idx.max()) + 1 if len(basket_idx) else 0
        matrix = sp.csr_matrix(
            (np.ones(len(item_idx), dtype=np.float32), (basket_idx, item_idx)), shape=(height, width)
        )
        matrix.sum_duplicates()
        matrix.data[:] = 1.0
    if n_items is not None and matrix.shape[1] != n_items:
        raise ValueError(f"baskets have {matrix.shape[1]} item columns, expected n_items={n_items}")
    nonempty = np.diff(matrix.indptr) > 0
    return matrix[nonempty] if not nonempty.all() else matrix


def mine_rules(
    baskets: sp.spmatrix | tuple[np.ndarray, np.ndarray],
    min_support: float = 0.001,
    min_confidence: float = 0.0,
    *,
    max_len: int = 2,
    min_count: int = 1,
    n_items: int | None = None,
    item_ids: Sequence[str] | np.ndarray | None = None,
) -> pd.DataFrame:
    """Pairwise association rules ``antecedent -> consequent`` over baskets.

    ``support = count / n_baskets`` (share of non-empty baskets holding both items),
    ``confidence = count / count(antecedent)``, ``lift = confidence / support(consequent)``.
    Rules need ``count >= max(min_count, min_support * n_baskets)`` and ``confidence >= min_confidence``.
    All pairs are counted at once as ``BᵀB`` over the items that are frequent on their own.

    Returns a DataFrame with columns ``RULE_COLUMNS``, strongest lift first; antecedent and
    consequent are item indices, or the matching ``item_ids`` when given.
    """
    if max_len != 2:
        raise ValueError(f"max_len={max_len}: only pairwise rules (max_len=2) are mined")
    if not 0.0 <= min_support <= 1.0 or not 0.0 <= min_confidence <= 1.0:
        raise ValueError(
            f"min_support and min_confidence must be in [0, 1], got {min_support}, {min_confidence}"
        )
    matrix = basket_matrix(baskets, n_items)
    n_baskets = matrix.shape[0]
    empty = pd.DataFrame({c: pd.Series(dtype=t) for c, t in zip(RULE_COLUMNS, _RULE_DTYPES, strict=True)})
    if n_baskets == 0:
        return empty
    threshold = max(min_count, int(np.ceil(min_support * n_baskets - 1e-9)))
    item_count = np.asarray(matrix.sum(axis=0)).ravel().astype(np.int64)
    frequent = np.nonzero(item_count >= threshold)[0]
    sub = matrix[:, frequent]
    co = (sub.T @ sub).tocoo()
    keep = (co.row != co.col) & (co.data >= threshold)
    antecedent, consequent = frequent[co.row[keep]], frequent[co.col[keep]]
    count = np.rint(co.data[keep]).astype(np.int64)
    support = count / n_baskets
    confidence = count / item_count[antecedent]
    lift = confidence / (item_count[consequent] / n_baskets)
    strong = confidence >= min_confidence
    rules = pd.DataFrame(
        {
            "antecedent": antecedent[strong],
            "consequent": consequent[strong],
            "support": support[strong],
            "confidence": confidence[strong],
            "lift": lift[strong],
            "count": count[strong],
        }
    )
    rules = rules.sort_values(
        ["lift", "confidence", "antecedent", "consequent"], ascending=[False, False, True, True]
    ).reset_index(drop=True)
    if item_ids is not None:
        ids = np.asarray(item_ids, dtype=object)
        rules["antecedent"] = ids[rules["antecedent"].to_numpy()]
        rules["consequent"] = ids[rules["consequent"].to_numpy()]
    return rules


_RULE_DTYPES = ["int64", "int64", "float64", "float64", "float64", "int64"]


def rules_from_frame(
    frame: pd.DataFrame, basket: str = "basket_id", item: str = "item_id", **options: Any
) -> pd.DataFrame:
    """`mine_rules` over a long table of ``(basket, item)`` rows; rules name items by their ids.

    ``options`` go to `mine_rules` (``min_support``, ``min_confidence``, ``min_count``). A row
    with a null basket or item is an error naming the row.
    """
    for column in (basket, item):
        if column not in frame.columns:
            raise ValueError(f"frame has no column {column!r}; columns: {list(frame.columns)}")
        missing = frame[column].isna().to_numpy()
        if missing.any():
            raise ValueError(f"row {int(np.argmax(missing))}: {column} is null")
    basket_codes, _ = pd.factorize(frame[basket])
    item_codes, item_ids = pd.factorize(frame[item])
    return mine_rules(
        (basket_codes, item_codes),
        n_items=len(item_ids),
        item_ids=np.asarray(item_ids, dtype=object),
        **options,
    )


def rules_matrix(rules: pd.DataFrame, n_items: int, metric: str = "confidence") -> sp.csr_matrix:
    """Rules as CSR antecedent x consequent holding ``metric`` (``confidence``, ``lift``, ``support``)."""
    if metric not in ("confidence", "lift", "support", "count"):
        raise ValueError(f"metric must be confidence, lift, support or count, not {metric!r}")
    matrix = sp.csr_matrix(
        (
            rules[metric].to_numpy(dtype=np.float64),
            (rules["antecedent"].to_numpy(dtype=np.int64), rules["consequent"].to_numpy(dtype=np.int64)),
        ),
        shape=(n_items, n_items),
    )
    matrix.sort_indices()
    return matrix.astype(np.float32)
