"""Association rules ("bought together") and time-windowed co-visitation ("viewed together").

Two plain functions do the mining and are reused by analytics without any recommender:

* `mine_rules` (and `rules_from_frame` for a long ``basket, item`` table): pairwise rules
  ``a -> c`` with support, confidence and lift, counted for all pairs at once as the sparse
  product ``BᵀB`` of the binary basket x item matrix;
* `covisitation_matrix`: item x item weights of items used close together in time by the same
  session (or user), each pair weighted by the event type of its target event.

`baskets_from_dataset` turns a Dataset's purchases into baskets. The two recommenders wrap the
item x item matrices: they expose item-to-item lists (`similar_items`, `bought_together`) and score a
user, or a live session, from their most recent items.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import Field

from fusionrec.data.dataset import SECONDS_PER_DAY, Dataset
from fusionrec.data.schema import EventTypes
from fusionrec.models.base import ModelConfig, Recommender
from fusionrec.models.itemtools import (
    check_items,
    fill_unscored,
    histories_matrix,
    history_matrix,
    prune_rows,
    top_neighbours,
)

logger = logging.getLogger(__name__)

RULE_COLUMNS = ["antecedent", "consequent", "support", "confidence", "lift", "count"]
_PAIR_CHUNK = 4_000_000  # co-visitation pairs materialised at once (bounds memory)


# --- baskets and rules ---------------------------------------------------------------------------


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


# --- co-visitation -------------------------------------------------------------------------------


def covisitation_type_weights(
    event_types: EventTypes, type_weights: Mapping[str, float] | None = None
) -> dict[str, float]:
    """Weight per event type name: the configured weight, overridden by ``type_weights``.

    Negative types (``remove_from_cart``) weigh 0: they never make items related. Shared by the
    in-memory co-visitation here and the SQL job of `fusionrec.engine.jobs`.
    """
    weights = {t.name: (t.weight if t.positive else 0.0) for t in event_types.types}
    for name, value in (type_weights or {}).items():
        if name not in weights:
            raise ValueError(f"type_weights names unknown event type {name!r}; known: {sorted(weights)}")
        if value < 0:
            raise ValueError(f"type_weights[{name!r}] is {value}: weights must be >= 0")
        weights[name] = float(value)
    return weights


def event_type_weights(dataset: Dataset, type_weights: Mapping[str, float] | None = None) -> np.ndarray:
    """Weight per event code of ``dataset`` (see `covisitation_type_weights`)."""
    weights = covisitation_type_weights(dataset.event_types, type_weights)
    return np.array([weights[name] for name in dataset.event_types.names], dtype=np.float64)


def covisitation_matrix(
    dataset: Dataset,
    window_seconds: float = SECONDS_PER_DAY,
    type_weights: Mapping[str, float] | None = None,
    *,
    group: str = "session",
    max_span_events: int | None = 30,
    symmetric: bool = True,
    collapse_repeats: bool = True,
    normalise: str = "none",
    max_neighbours: int | None = None,
) -> sp.csr_matrix:
    """Item x item co-visitation weights (CSR float32).

    Two events of the same group (``"session"``, falling back to the user where an event has no
    session, or ``"user"``) are a pair when the later one is at most ``window_seconds`` after the
    earlier one and at most ``max_span_events`` events later. Pair ``a -> b`` adds the type weight of
    ``b``'s event (``symmetric`` also adds ``b -> a`` with ``a``'s weight). Types of weight 0 are
    ignored. ``collapse_repeats`` merges back-to-back events on the same item (a run of reloads)
    into one with the run's highest weight.

    ``normalise``: ``"none"`` (summed weights), ``"row"`` (each row sums to 1) or ``"cosine"``
    (divided by ``sqrt(w_a * w_b)``, the items' total event weights). ``max_neighbours`` keeps the
    largest entries of each row.
    """
    if window_seconds <= 0:
        raise ValueError(f"window_seconds must be > 0, got {window_seconds}")
    if normalise not in ("none", "row", "cosine"):
        raise ValueError(f"normalise must be 'none', 'row' or 'cosine', not {normalise!r}")
    if group not in ("session", "user"):
        raise ValueError(f"group must be 'session' or 'user', not {group!r}")
    n_items = dataset.n_items
    code_weight = event_type_weights(dataset, type_weights)
    weight = code_weight[dataset.event_code]
    keep = weight > 0
    users = dataset.user_idx[keep].astype(np.int64)
    if group == "session" and len(dataset.session_idx):
        sessions = dataset.session_idx[keep]
        groups = np.where(sessions >= 0, sessions, -1 - users)
    else:
        groups = users
    times, items, weight = dataset.timestamp[keep], dataset.item_idx[keep].astype(np.int64), weight[keep]
    order = np.lexsort((np.arange(len(groups)), times, groups))
    groups, times, items, weight = groups[order], times[order], items[order], weight[order]
    if collapse_repeats and len(items):
        starts = np.nonzero(np.r_[True, (groups[1:] != groups[:-1]) | (items[1:] != items[:-1])])[0]
        weight = np.maximum.reduceat(weight, starts)
        groups, times, items = groups[starts], times[starts], items[starts]

    result = sp.csr_matrix((n_items, n_items), dtype=np.float64)
    if len(items) > 1:
        # One sortable key: groups are laid out one after another on the time axis, further apart
        # than the window, so a single searchsorted finds every event's window end.
        rank = np.unique(groups, return_inverse=True)[1].ravel().astype(np.int64)
        span = int(times.max() - times.min()) + int(np.ceil(window_seconds)) + 1
        key = rank * span + (times - times.min())
        end = np.searchsorted(key, key + int(window_seconds), side="right")
        partners = end - np.arange(len(key)) - 1
        if max_span_events is not None:
            partners = np.minimum(partners, max_span_events)
        result = _accumulate_pairs(items, weight, partners, n_items, symmetric)

    if normalise == "row":
        sums = np.asarray(result.sum(axis=1)).ravel()
        result = sp.diags(np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)) @ result
    elif normalise == "cosine":
        totals = np.bincount(items, weights=weight, minlength=n_items)
        inv = np.divide(1.0, np.sqrt(totals), out=np.zeros_like(totals), where=totals > 0)
        result = sp.diags(inv) @ result @ sp.diags(inv)
    result = prune_rows(sp.csr_matrix(result).astype(np.float32), max_neighbours)
    result.eliminate_zeros()
    return result


def _accumulate_pairs(
    items: np.ndarray, weight: np.ndarray, partners: np.ndarray, n_items: int, symmetric: bool
) -> sp.csr_matrix:
    """Sum the pair weights of event ``i`` with its next ``partners[i]`` events, chunk by chunk."""
    total = sp.csr_matrix((n_items, n_items), dtype=np.float64)
    cumulative = np.cumsum(partners)
    bounds = np.searchsorted(
        cumulative, np.arange(_PAIR_CHUNK, int(cumulative[-1]) + _PAIR_CHUNK, _PAIR_CHUNK)
    )
    start = 0
    for stop in np.unique(np.r_[bounds + 1, len(partners)].clip(max=len(partners))):
        counts = partners[start:stop]
        if counts.sum() > 0:
            source = np.repeat(np.arange(start, stop), counts)
            offset = np.arange(len(source)) - np.repeat(np.cumsum(counts) - counts, counts)
            target = source + 1 + offset
            a, b = items[source], items[target]
            different = a != b
            rows, cols, values = a[different], b[different], weight[target][different]
            if symmetric:
                rows = np.r_[rows, b[different]]
                cols = np.r_[cols, a[different]]
                values = np.r_[values, weight[source][different]]
            total = total + sp.csr_matrix((values, (rows, cols)), shape=(n_items, n_items))
        start = stop
    return total


# --- recommenders ----------------------------------------------------------------------------------


class ItemToItemConfig(ModelConfig):
    last_n: int = Field(default=20, ge=1)  # a user is scored from their newest events
    recency_half_life: float | None = Field(default=5.0, gt=0)  # in events: the newest counts most
    weighting: Literal["events", "binary"] = "events"  # how a history event counts
    max_neighbours: int | None = Field(default=200, ge=1)  # kept per item row


class _ItemToItemRecommender(Recommender):
    """Scores ``sum over recent items i of weight(i) * item_item_[i, :]`` (then popularity fill)."""

    supports_history: ClassVar[bool] = True
    config: ItemToItemConfig

    def _item_item(self, dataset: Dataset) -> sp.csr_matrix:
        raise NotImplementedError

    def _fit(self, dataset: Dataset) -> None:
        cfg = self.config
        self.item_item_ = prune_rows(self._item_item(dataset), cfg.max_neighbours)
        self.history_ = history_matrix(
            dataset, weighting=cfg.weighting, last_n=cfg.last_n, half_life=cfg.recency_half_life
        )
        covered = int((np.diff(self.item_item_.indptr) > 0).sum())
        logger.info(
            "%s: %d item pairs; %d of %d items have neighbours",
            self.name, self.item_item_.nnz, covered, dataset.n_items,
        )  # fmt: skip

    def _score_users(self, users: np.ndarray) -> np.ndarray:
        return self._score_weights(self.history_[users])

    def _score_histories(self, histories: list[np.ndarray]) -> np.ndarray:
        cfg = self.config
        return self._score_weights(
            histories_matrix(histories, self.n_items_, last_n=cfg.last_n, half_life=cfg.recency_half_life)
        )

    def _score_weights(self, weights: sp.csr_matrix) -> np.ndarray:
        return fill_unscored((weights @ self.item_item_).toarray(), self.popularity_)

    def similar_items(self, items: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Each item's ``k`` strongest neighbours ``(items int32[n, k], scores)``, padded with -1."""
        self._check_fitted()
        items = check_items(items, self.n_items_)
        return top_neighbours(self.item_item_[items].toarray(), items, k)

    def bought_together(self, items: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Same as `similar_items`: the items most often taken together with each of ``items``."""
        return self.similar_items(items, k)


class CovisitationConfig(ItemToItemConfig):
    window_seconds: float = Field(default=SECONDS_PER_DAY, gt=0)
    type_weights: dict[str, float] | None = None  # overrides of the dataset's event-type weights
    group: Literal["session", "user"] = "session"
    max_span_events: int | None = Field(default=30, ge=1)
    normalise: Literal["none", "row", "cosine"] = "cosine"


class CovisitationRecommender(_ItemToItemRecommender):
    """Items used close together in time ("viewed together"), scored from the user's recent items."""

    name = "covisitation"
    Config = CovisitationConfig
    config: CovisitationConfig

    def _item_item(self, dataset: Dataset) -> sp.csr_matrix:
        cfg = self.config
        return covisitation_matrix(
            dataset,
            cfg.window_seconds,
            cfg.type_weights,
            group=cfg.group,
            max_span_events=cfg.max_span_events,
            normalise=cfg.normalise,
        )


class AssociationRulesConfig(ItemToItemConfig):
    event_types: list[str] = Field(default_factory=lambda: ["purchase"], min_length=1)  # basket events
    basket: Literal["session", "user_day", "user"] = "session"
    min_count: int = Field(default=2, ge=1)  # baskets a pair must share
    min_support: float = Field(default=0.0, ge=0.0, le=1.0)
    min_confidence: float = Field(default=0.0, ge=0.0, le=1.0)
    metric: Literal["confidence", "lift"] = "confidence"  # the rule strength used for scoring


class AssociationRulesRecommender(_ItemToItemRecommender):
    """Bought-together rules over baskets, scored from the user's recent items."""

    name = "association_rules"
    Config = AssociationRulesConfig
    config: AssociationRulesConfig

    def _item_item(self, dataset: Dataset) -> sp.csr_matrix:
        cfg = self.config
        baskets = baskets_from_dataset(dataset, cfg.event_types, by=cfg.basket)
        rules = mine_rules(
            baskets,
            cfg.min_support,
            cfg.min_confidence,
            min_count=cfg.min_count,
            n_items=dataset.n_items,
        )
        if rules.empty:
            logger.warning(
                "%s: no rules from %d %s events; scores fall back to popularity",
                self.name, len(baskets[0]), "/".join(cfg.event_types),
            )  # fmt: skip
        return rules_matrix(rules, dataset.n_items, cfg.metric)
