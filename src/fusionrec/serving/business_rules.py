"""Business rules applied to a model's candidates: filters, boosts, pins, diversity, pagination.

Everything works on arrays of candidate item indices (one request, a few hundred candidates):
filters are boolean masks, boosts multiply normalised scores, diversity is MMR over category
similarity or a per-category cap, and a page is a slice of one deterministic ordering, so
consecutive pages (``offset``) never repeat an item.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from fusionrec.data.schema import CATEGORY_SEPARATOR
from fusionrec.serving.catalogue import CatalogueView

SECONDS_PER_DAY = 86_400.0


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Boost(_Strict):
    """Multiply the (0..1 normalised) score of items of a category, or of listed items."""

    category: str | None = None
    items: list[str] = Field(default_factory=list)
    factor: float = Field(gt=0)

    @model_validator(mode="after")
    def _target(self) -> Boost:
        if self.category is None and not self.items:
            raise ValueError("a boost needs a category or items")
        return self


class Pin(_Strict):
    """Show ``item_id`` at ``position`` (1 = first) on the given placements (empty = all)."""

    item_id: str
    position: int = Field(ge=1)
    placements: list[str] = Field(default_factory=list)


class RulesConfig(_Strict):
    """The ``[serving.rules]`` (or top-level ``[rules]``) table."""

    exclude_purchased: bool = True
    # Category path prefix -> days after a purchase when the item may be recommended again
    # (consumables); the longest matching prefix wins; "*" is the default for other categories.
    repurchase_days: dict[str, float] = Field(default_factory=dict)
    exclude_seen: bool = True  # items the visitor interacted with (training and live events)
    drop_hidden: bool = True
    drop_out_of_stock: bool = True
    exclude_categories: list[str] = Field(default_factory=list)
    min_price: float | None = Field(None, ge=0)
    max_price: float | None = Field(None, ge=0)
    boosts: list[Boost] = Field(default_factory=list)
    pins: list[Pin] = Field(default_factory=list)
    diversity: Literal["none", "mmr", "category_cap"] = "none"
    mmr_lambda: float = Field(0.7, ge=0, le=1)  # 1 = relevance only
    max_per_category: int = Field(3, ge=1)


@dataclass
class RuleRequest:
    """Per-request inputs of the rules."""

    n: int  # offset + k: how many ranked items the page needs
    blocked: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # never show these
    category: str | None = None
    exclude_categories: list[str] = field(default_factory=list)
    min_price: float | None = None
    max_price: float | None = None
    placement: str | None = None
    item_index: dict[str, int] = field(default_factory=dict)  # id -> index, for boosts and pins


def repurchase_blocked(
    items: np.ndarray, bought_at: np.ndarray, view: CatalogueView, rules: RulesConfig, now: float
) -> np.ndarray:
    """Of the bought ``items`` (with purchase times, unix seconds), those still blocked at ``now``."""
    items = np.asarray(items, dtype=np.int64)
    if not rules.exclude_purchased or len(items) == 0:
        return np.zeros(0, dtype=np.int64)
    if not rules.repurchase_days:
        return items
    windows = np.full(len(items), np.inf)
    default = rules.repurchase_days.get("*")
    if default is not None:
        windows[:] = default
    best = np.full(len(items), -1)
    for prefix, days in rules.repurchase_days.items():
        if prefix == "*":
            continue
        inside = view.category_mask(prefix)[np.clip(items, 0, len(view.category_code) - 1)]
        longer = inside & (len(prefix) > best)
        windows[longer], best[longer] = days, len(prefix)
    elapsed_days = (now - np.asarray(bought_at, dtype=np.float64)) / SECONDS_PER_DAY
    return items[elapsed_days < windows]


def eligible(items: np.ndarray, view: CatalogueView, rules: RulesConfig, request: RuleRequest) -> np.ndarray:
    """Boolean mask of the candidates that pass every filter."""
    n_catalogue = len(view.category_code)
    inside = (items >= 0) & (items < n_catalogue)
    safe = np.where(inside, items, 0)
    keep = inside & ~among(items, request.blocked)
    if rules.drop_hidden:
        keep &= ~view.hidden[safe]
    if rules.drop_out_of_stock:
        keep &= view.in_stock[safe]
    if request.category:
        keep &= view.category_mask(request.category)[safe]
    for prefix in (*rules.exclude_categories, *request.exclude_categories):
        keep &= ~view.category_mask(prefix)[safe]
    low = request.min_price if request.min_price is not None else rules.min_price
    high = request.max_price if request.max_price is not None else rules.max_price
    if low is not None or high is not None:
        price = view.price[safe]
        known = ~np.isnan(price)
        if low is not None:
            keep &= known & (price >= low)
        if high is not None:
            keep &= known & (price <= high)
    return keep


def among(values: np.ndarray, members: np.ndarray) -> np.ndarray:
    """Boolean mask of the ``values`` found in ``members`` (any order, repeats allowed).

    One sort of the (small) member set and a binary search per value: on a request's few hundred
    candidates and few dozen blocked items this is several times cheaper than `np.isin`, and it
    allocates nothing of the catalogue's size.
    """
    values = np.asarray(values)
    if len(members) == 0 or len(values) == 0:
        return np.zeros(len(values), dtype=bool)
    ordered = np.sort(members)
    at = np.minimum(np.searchsorted(ordered, values), len(ordered) - 1)
    return ordered[at] == values


def normalise(scores: np.ndarray) -> np.ndarray:
    """Scores mapped onto (0, 1], order kept (min-max; equal scores all become 1)."""
    scores = np.asarray(scores, dtype=np.float64)
    finite = np.isfinite(scores)
    if not finite.any():
        return np.ones(len(scores))
    low, high = scores[finite].min(), scores[finite].max()
    out = np.where(finite, (scores - low) / (high - low) if high > low else 1.0, 0.0)
    return 0.01 + 0.99 * out  # strictly positive so that boosts (multiplicative) always act


def apply_rules(
    items: np.ndarray,
    scores: np.ndarray,
    view: CatalogueView,
    rules: RulesConfig,
    request: RuleRequest,
) -> tuple[np.ndarray, np.ndarray]:
    """Filter, boost, diversify and pin ``items``; the first ``request.n`` as ``(items, scores)``."""
    items = np.asarray(items, dtype=np.int64)
    keep = eligible(items, view, rules, request)
    items, rel = items[keep], normalise(np.asarray(scores)[keep])
    for boost in rules.boosts:
        hit = np.zeros(len(items), dtype=bool)
        if boost.category is not None:
            hit |= view.category_mask(boost.category)[items]
        if boost.items:
            ids = [request.item_index[i] for i in boost.items if i in request.item_index]
            hit |= np.isin(items, ids)
        rel = np.where(hit, rel * boost.factor, rel)
    order = np.lexsort((items, -rel))  # deterministic: score, then lower index
    items, rel = items[order], rel[order]
    if rules.diversity == "mmr":
        chosen = _mmr(view.category_code[items], rel, request.n, rules.mmr_lambda)
        items, rel = items[chosen], rel[chosen]
    elif rules.diversity == "category_cap":
        capped = _category_cap(view.category_code[items], rules.max_per_category)
        items, rel = items[capped], rel[capped]
    items, rel = _pin(items, rel, view, rules, request)
    return items[: request.n], rel[: request.n].astype(np.float32)


def _mmr(codes: np.ndarray, rel: np.ndarray, n: int, lam: float) -> np.ndarray:
    """Greedy maximal marginal relevance with similarity 1 for the same category, else 0."""
    n = min(n, len(rel))
    chosen = np.empty(n, dtype=np.int64)
    max_sim = np.zeros(len(rel))
    taken = np.zeros(len(rel), dtype=bool)
    for step in range(n):  # n is a page size: a few dozen steps of vector work
        value = lam * rel - (1.0 - lam) * max_sim
        value[taken] = -np.inf
        pick = int(np.argmax(value))
        chosen[step], taken[pick] = pick, True
        if codes[pick] >= 0:
            max_sim = np.maximum(max_sim, codes == codes[pick])
    return chosen


def _category_cap(codes: np.ndarray, cap: int) -> np.ndarray:
    """Positions (in the given order) kept when each category may appear at most ``cap`` times."""
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    rank = np.arange(len(codes)) - np.repeat(starts, np.diff(np.r_[starts, len(codes)]))
    within = np.empty(len(codes), dtype=np.int64)
    within[order] = rank
    return np.flatnonzero((within < cap) | (codes < 0))


def _pin(
    items: np.ndarray, rel: np.ndarray, view: CatalogueView, rules: RulesConfig, request: RuleRequest
) -> tuple[np.ndarray, np.ndarray]:
    pins = [p for p in rules.pins if not p.placements or request.placement in p.placements]
    if not pins:
        return items, rel
    listed, scores = items.tolist(), rel.tolist()
    for pin in sorted(pins, key=lambda p: p.position):
        index = request.item_index.get(pin.item_id)
        if index is None or not eligible(np.array([index]), view, rules, request)[0]:
            continue  # a pin never forces a hidden, out-of-stock or excluded item
        if index in listed:
            at = listed.index(index)
            listed.pop(at)
            scores.pop(at)
        position = min(pin.position - 1, len(listed))
        listed.insert(position, index)
        scores.insert(position, scores[position - 1] if position > 0 and scores else 1.0)
    return np.asarray(listed, dtype=np.int64), np.asarray(scores)


def category_prefixes(path: str) -> list[str]:
    """``"A > B > C"`` -> ``["A", "A > B", "A > B > C"]`` (the levels a category filter can name)."""
    parts = path.split(CATEGORY_SEPARATOR)
    return [CATEGORY_SEPARATOR.join(parts[: i + 1]) for i in range(len(parts))]
