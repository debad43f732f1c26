"""Why a model ranks an item for a user: the part that drives its score, as data and as a sentence.

A fused pipeline's score of a candidate is split into parts by its combiner (`score_parts`: the
ranker's per-feature contributions, or a weighted fusion's per-source terms). The parts are
grouped into *drivers* (a candidate source: its score and rank features; co-visitation with
recent items; the user's categories; popularity; the user's own past with the item; price;
newness), and the reason is taken from the driver that adds most to this item's score and can
name something true about it:

- a history source (item-kNN, EASE, RP3beta, co-visitation: `Recommender.history_terms`) names
  the history item whose term of the source's score is largest ("Because you viewed X");
- co-visitation features name the recent item most often used together with the candidate;
- popularity names the item's category and the window whose count drives the score.

Features that are the same for every item of an answer (the user's own statistics) never give
a reason: they cannot tell one item from another. `Reason` is plain data (item indices, no
titles); `sentence` renders it with the caller's item names and categories.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from fusionrec.fusion.config import POPULAR_IN_CATEGORY, REPEAT
from fusionrec.fusion.features import FeatureContext
from fusionrec.fusion.pipeline import MultiSourceRecommender
from fusionrec.models.base import Recommender

VIEWED, CARTED, BOUGHT = "viewed", "added to cart", "bought"
POPULARITY_WINDOWS = {"pop_1d": "today", "pop_7d": "this week", "pop_30d": "this month", "pop_all": ""}
# Feature -> driver. User statistics and n_sources are left out: equal for all of an answer's
# items (or a count of sources, which the source drivers already cover).
FEATURE_DRIVERS = {
    **dict.fromkeys(("covisit_recent", "covisit_last"), "covisit"),
    **dict.fromkeys(("category_affinity", "same_category_as_last", "category"), "category"),
    **dict.fromkeys((*POPULARITY_WINDOWS, "popularity_gap", "item_events_per_user"), "popular"),
    **dict.fromkeys(
        (
            "viewed",
            "carted",
            "bought",
            "days_since_interaction",
            "pair_events",
            "interval_days",
            "due_ratio",
            "item_repeat_rate",
        ),
        "repeat",
    ),
    **dict.fromkeys(("price_trend", "price", "price_ratio"), "price"),
    "item_age_days": "new",
}
# Drivers that describe the user more than the item ("you often shop in C" holds for all of C):
# a reason only when no driver of the item itself adds to the score.
PROFILE_DRIVERS = {"category", "price"}
NEW_ITEM_DAYS = 30.0
_PAIR_EVENTS = ((BOUGHT, "bought"), (CARTED, "carted"), (VIEWED, "viewed"))  # event, pair feature
POPULARITY_MODELS = {"most_popular": "", "popular_in_category": "", "trending": "this week"}


@dataclass
class Reason:
    """The driver behind an item's score, in data: ``kind`` is one of history, covisit, category,
    popular, repeat, offer, price, new, source (generic) or none (not a candidate)."""

    kind: str
    source: str | None = None  # the candidate source or feature the reason comes from
    item: int | None = None  # the history item it names (index)
    event: str | None = None  # what the user did with that item: viewed, added to cart, bought
    window: str | None = None  # popular: today, this week, this month, "" (all time)
    shoppers: int | None = None  # popular (all time): the distinct users who chose the item
    events: int | None = None  # popular in a window: the item's events (views, carts, orders) in it


@dataclass
class Explanation:
    """One item's explanation: its reason, the sources that proposed it and the top score parts."""

    item: int
    reason: Reason
    candidate: bool = True
    score: float | None = None
    rank: int | None = None  # among the user's candidates, 1 = best
    sources: dict[str, dict[str, float]] = field(default_factory=dict)  # label -> rank, score
    features: list[dict[str, Any]] = field(default_factory=list)  # name, value, contribution

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class HistoryEvents:
    """What a user did with each of their items (bought > added to cart > viewed), from the
    pipeline's training counts and the purchases given at request time; None when unknown (a live
    event other than a purchase: the online state keeps no event types, so no sentence claims one).
    """

    def __init__(self, context: FeatureContext | None, user: int, bought: Collection[int] = ()) -> None:
        self._context = context
        self._user = user if context is not None and 0 <= user < context.bought.shape[0] else -1
        self._bought = set(bought)

    def __call__(self, item: int) -> str | None:
        if item in self._bought or self._count("bought", item) > 0:
            return BOUGHT
        if self._count("carted", item) > 0:
            return CARTED
        return VIEWED if self._count("viewed", item) > 0 else None

    def _count(self, matrix: str, item: int) -> float:
        if self._user < 0 or self._context is None:
            return 0.0
        return float(getattr(self._context, matrix)[self._user, item])


def top_history_item(
    model: Recommender, user: int, history: np.ndarray | None, item: int
) -> tuple[int, float] | None:
    """The history item with the largest positive term of ``model``'s score of ``item``, or None."""
    found = model.history_terms(user, history, item)
    if found is None or len(found[0]) == 0:
        return None
    items, terms = found
    best = int(np.argmax(terms))
    return (int(items[best]), float(terms[best])) if terms[best] > 0 else None


# --- fused pipelines -------------------------------------------------------------------------


def explain_items(
    model: MultiSourceRecommender,
    user: int,
    items: Sequence[int],
    history: np.ndarray | None = None,
    *,
    bought: Collection[int] = (),
    top: int = 5,
) -> list[Explanation]:
    """Explanations of ``items`` for ``user`` (index, -1 for a guest) with the live ``history``.

    One `trace` of the user's candidates (as serving scores them), then per item: the proposing
    sources, the ``top`` score parts by size and the reason from the largest driver. An item that
    is not a candidate gets ``candidate=False`` and the reason ``none``.
    """
    users = np.array([user], dtype=np.int64)
    histories = None if history is None else [np.asarray(history, dtype=np.int32)]
    candidates, X, values = model.trace(users, histories)
    at = {int(i): n for n, i in enumerate(candidates.item.tolist())}
    rows = np.array([at[int(i)] for i in items if int(i) in at], dtype=np.int64)
    parts = model.score_parts(X, candidates, rows)
    part_of = {int(r): n for n, r in enumerate(rows.tolist())}
    ctx = model.feature_context
    events = HistoryEvents(ctx, user, bought)
    feature_names = model.feature_names()
    out = []
    for item in (int(i) for i in items):
        row = at.get(item)
        if row is None:
            out.append(Explanation(item, Reason("none"), candidate=False))
            continue
        proposed = {
            label: {"rank": int(candidates.ranks[row, s]), "score": float(candidates.scores[row, s])}
            for s, label in enumerate(candidates.sources)
            if not np.isnan(candidates.ranks[row, s])
        }
        value_of = dict(zip(feature_names, X[row].tolist(), strict=True)) if X is not None else {}
        features: list[dict[str, Any]] = []
        part_values: dict[str, float] = {}
        drivers: dict[str, float] = {}
        if parts is not None:
            names, matrix = parts
            contributions = matrix[part_of[row]]
            part_values = dict(zip(names, contributions.tolist(), strict=True))
            order = np.argsort(-np.abs(contributions))[:top]
            features = [
                {"name": names[j], "value": value_of.get(names[j]), "contribution": float(contributions[j])}
                for j in order
            ]
            drivers = _drivers(names, contributions, candidates.sources)
        else:  # no split of the score: the proposing sources, the best rank first
            drivers = {f"source:{label}": 1.0 / p["rank"] for label, p in proposed.items()}
        context = _Context(model, ctx, user, history, item, value_of, events, proposed, part_values)
        reason = _reason(context, drivers)
        out.append(
            Explanation(
                item,
                reason,
                score=float(values[row]),
                rank=int((values > values[row]).sum()) + 1,
                sources=proposed,
                features=features,
            )
        )
    return out


def _drivers(names: Sequence[str], contributions: np.ndarray, sources: Sequence[str]) -> dict[str, float]:
    """Contributions summed per driver: a source (its score and rank features) or a feature group."""
    driver_of = {**FEATURE_DRIVERS}
    for label in sources:
        driver_of[label] = driver_of[f"{label}_score"] = driver_of[f"{label}_rank"] = f"source:{label}"
    drivers: dict[str, float] = {}
    for name, value in zip(names, contributions.tolist(), strict=True):
        driver = driver_of.get(name)
        if driver is not None:
            drivers[driver] = drivers.get(driver, 0.0) + value
    return drivers


@dataclass
class _Context:
    model: MultiSourceRecommender
    ctx: FeatureContext
    user: int
    history: np.ndarray | None
    item: int
    values: dict[str, float]
    events: HistoryEvents
    proposed: dict[str, dict[str, float]]
    parts: dict[str, float]  # feature -> its contribution to this item's score ({} when unknown)


def _reason(c: _Context, drivers: dict[str, float]) -> Reason:
    """The reason of the largest positive driver that has something true to say about this item;
    the user's profile drivers (category, price range) only when no item driver adds to the score.
    """
    ranked = sorted(((d, a) for d, a in drivers.items() if a > 0), key=lambda kv: -kv[1])
    for tier in (False, True):
        for driver, _ in ranked:
            if (driver in PROFILE_DRIVERS) == tier:
                reason = _driver_reason(c, driver)
                if reason is not None:
                    return reason
    best = min(c.proposed, key=lambda label: c.proposed[label]["rank"]) if c.proposed else None
    return Reason("source", source=best)


def _driver_reason(c: _Context, driver: str) -> Reason | None:
    if driver.startswith("source:"):
        return _source_reason(c, driver.removeprefix("source:"))
    value = c.values.get
    if driver == "covisit":
        return _covisit_reason(c)
    if driver == "category" and c.ctx.item_category[c.item] >= 0:
        if value("same_category_as_last", 0.0) > 0:
            last = _recent_items(c)
            if len(last):
                return Reason("category", "same_category_as_last", int(last[-1]), c.events(int(last[-1])))
        if value("category_affinity", 0.0) > 0:
            return Reason("category", "category_affinity")
    if driver == "popular":
        # item_pop columns: distinct users all time, then events per window (1, 7, 30 days)
        columns = ("pop_all", "pop_1d", "pop_7d", "pop_30d")
        counts = {name: int(c.ctx.item_pop[c.item, n]) for n, name in enumerate(columns)}
        # The window whose count adds most to the score (else the narrowest with events in it).
        windows = [name for name in columns[1:] if counts[name] > 0]
        adding = [name for name in windows if c.parts.get(name, 0.0) > 0]
        window = max(adding, key=lambda name: c.parts[name]) if adding else (windows or ["pop_all"])[0]
        count = counts[window]
        if window == "pop_all":
            return Reason("popular", window, window="", shoppers=count)
        return Reason("popular", window, window=POPULARITY_WINDOWS[window], events=count)
    if driver == "repeat" and value("pair_events", 0.0) > 0:
        event = next((e for e, f in _PAIR_EVENTS if value(f, 0.0) > 0), None)
        return Reason("repeat", "pair_events", c.item, event)
    if driver == "price":
        trend = value("price_trend", np.nan)
        if np.isfinite(trend) and trend < 0.95:
            return Reason("offer", "price_trend")
        ratio = value("price_ratio", np.nan)
        if np.isfinite(ratio) and 0.5 <= ratio <= 2.0:
            return Reason("price", "price_ratio")
    if driver == "new":
        age = value("item_age_days", np.nan)
        if np.isfinite(age) and age <= NEW_ITEM_DAYS:
            return Reason("new", "item_age_days")
    return None


def _source_reason(c: _Context, label: str) -> Reason | None:
    if label not in c.proposed:
        return None  # a source that did not propose the item drives it only by its absence
    if label == REPEAT:
        return Reason("repeat", REPEAT, c.item, c.events(c.item))
    if label == POPULAR_IN_CATEGORY:
        return Reason("popular", POPULAR_IN_CATEGORY, window="", shoppers=int(c.ctx.item_pop[c.item, 0]))
    source = c.model.source_models.get(label)
    if source is None:
        return None
    history = c.history if source.supports_history else None
    found = top_history_item(source, c.user, history, c.item)
    if found is not None:
        return Reason("history", label, found[0], c.events(found[0]))
    return model_reason(source, label, c.item)


def model_reason(model: Recommender, label: str, item: int) -> Reason:
    """The reason a model without per-history-item terms can honestly give: popularity (with the
    item's distinct users, for the all-time models) or generic."""
    if model.name in POPULARITY_MODELS:
        window = getattr(getattr(model, "config", None), "window_days", None)
        if model.name == "trending":
            text = POPULARITY_MODELS[model.name] if window in (None, 7.0) else f"in the last {window:g} days"
            return Reason("trending", label, window=text)
        return Reason("popular", label, window="", shoppers=int(model.popularity_[item]))
    return Reason("source", label)


def _recent_items(c: _Context) -> np.ndarray:
    """The user's recent items, oldest first: the live history's, else the training ones."""
    if c.history is not None:
        return np.asarray(c.history[-c.model.config.recent_items :], dtype=np.int64)
    if 0 <= c.user < c.ctx.recent.shape[0]:
        row = c.ctx.recent[c.user]
        return row.indices[np.argsort(row.data)].astype(np.int64)  # weight 1 = the newest: last
    return np.zeros(0, dtype=np.int64)


def _covisit_reason(c: _Context) -> Reason | None:
    """The recent item whose co-visitation with the candidate, times its recency weight, is largest."""
    recent = _recent_items(c)
    if not len(recent):
        return None
    weights = 1.0 / np.arange(len(recent), 0, -1)  # the newest weighs 1, then 1/2, 1/3 ...
    links = np.asarray(c.ctx.covisit[recent][:, [c.item]].todense()).ravel() * weights
    best = int(np.argmax(links))
    if links[best] <= 0:
        return None
    return Reason("covisit", "covisit_recent", int(recent[best]), c.events(int(recent[best])))


# --- single models ---------------------------------------------------------------------------


def explain_model_items(
    model: Recommender,
    user: int,
    items: Sequence[int],
    history: np.ndarray | None = None,
    *,
    bought: Collection[int] = (),
) -> list[Explanation]:
    """Explanations for a single (not fused) model: the history item with the largest term where
    the model is a sum over history items, else what the model is (popularity, generic)."""
    events = HistoryEvents(None, user, bought)
    out = []
    for item in (int(i) for i in items):
        found = top_history_item(model, user, history, item)
        if found is not None:
            reason = Reason("history", model.name, found[0], events(found[0]))
        else:
            reason = model_reason(model, model.name, item)
        out.append(Explanation(item, reason, sources={model.name: {}}))
    return out


# --- sentences -------------------------------------------------------------------------------

_EVENT_PHRASES = {
    VIEWED: "you viewed {}",
    CARTED: "you added {} to your cart",
    BOUGHT: "you bought {}",
    None: "you looked at {}",  # any event with the item: its type is not known
}


def sentence(
    reason: Reason, item: int, name: Callable[[int], str], category: Callable[[int], str | None]
) -> str:
    """The reason as a short sentence; ``name`` and ``category`` give an item's title and category."""
    kind = reason.kind
    cat = category(item)
    if kind == "history" and reason.item is not None:
        return "Because " + _EVENT_PHRASES[reason.event].format(name(reason.item))
    if kind == "covisit" and reason.item is not None:
        other = name(reason.item)
        if reason.event == CARTED:
            return f"Often chosen together with {other} in your cart"
        return f"Often chosen together with {other}, which you {reason.event or 'looked at'}"
    if kind == "category" and cat:
        if reason.item is not None:
            return f"More from {cat}, like {name(reason.item)}"
        return f"Because you often shop in {cat}"
    if kind in ("popular", "trending"):
        where = f" in {cat}" if cat else ""
        when = f" {reason.window}" if reason.window else ""
        count = f" ({reason.shoppers:,} shoppers)" if reason.shoppers else ""
        if reason.events:
            count = f": viewed or bought {reason.events:,} time{'s' if reason.events > 1 else ''}"
        return f"{'Trending' if kind == 'trending' else 'Popular'}{where}{when}{count}"
    if kind == "repeat":
        return {
            BOUGHT: "You bought this before",
            CARTED: "You added this to your cart before",
            VIEWED: "You viewed this before",
        }.get(reason.event or "", "You looked at this before")
    if kind == "offer":
        return "On offer: cheaper than its usual price"
    if kind == "price":
        return "In your usual price range"
    if kind == "new":
        return f"New in {cat}" if cat else "New in the shop"
    if kind == "none":
        return "Not among your recommendations: no source proposed it"
    return "Picked for you from your activity"
