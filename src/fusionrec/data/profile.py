"""A profile of a shop's events: the facts that decide how fusionrec trains on them.

`profile_dataset` measures what the automatic pipeline search (`fusionrec.tuning.auto`) needs to
know about the data before it trains anything: its size and time span, the event mix, how often
customers buy the same item again, how long sessions and histories are, whether the catalogue has
text and categories, how many items are new, and whether the time stamps are a real clock at all.
The profile is recorded in every version's manifest, so a choice can be traced back to the data.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict

from fusionrec.data.dataset import SECONDS_PER_DAY, Dataset

TEXT_COLUMNS = ("title", "description", "tags")
NEW_ITEM_DAYS = 28.0  # "new in the last weeks"


class DataProfile(BaseModel):
    """Measured facts about a dataset (all counts and shares; no setting)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    users: int
    items: int
    events: int
    interactions: int  # distinct (user, item) pairs
    span_days: float
    event_mix: dict[str, float]  # share of events per type
    # Of the purchases, the share of a (user, item) pair bought before (None without purchases).
    repeat_purchase_share: float | None
    # Of the events on a (user, item) pair, the share whose pair was touched on an earlier day.
    repeat_interaction_share: float
    median_user_events: float
    median_user_span_days: float  # first to last event of a user
    median_session_events: float | None  # None when the events carry no session
    text_share: float  # items with a title, description or tags
    category_share: float  # items with a category
    new_item_share: float  # items whose first event falls in the last NEW_ITEM_DAYS days
    # Share of time-adjacent event pairs that switch user. Real traffic interleaves users; data whose
    # times only encode file order (each user's events in one block) scores close to 0.
    interleaving: float
    # Share of time steps between consecutive events equal to the commonest step: close to 1 when
    # the times are stand-ins that only count events (one second each, as some benchmark files get).
    regular_step_share: float
    # Share of users with an event in the last 7 days (how much a recent window sees).
    recent_user_share: float
    # Of consecutive items in users' histories, the share in ascending item order: about 0.5 when
    # the order is the customers', close to 1 when a file lists each user's items sorted by id.
    ascending_share: float
    # Whether every (user, item) pair carries the same weight (one event type, no repeats): then a
    # model's weighted and presence-only variants learn the same thing. False in older manifests.
    uniform_weights: bool = False
    # Of all events, the share whose (user, item) pair occurred before (a visitor back on an item
    # they saw earlier in the visit, in session data). 0 in older manifests.
    repeat_event_share: float = 0.0

    @property
    def real_clock(self) -> bool:
        """Whether the time stamps are a clock, not stand-ins that count events in file order
        (each user's events in one block, one step apart)."""
        stand_ins = self.interleaving < 0.05 and self.regular_step_share >= 0.8
        return not stand_ins and self.span_days > 0

    @property
    def ordered_histories(self) -> bool:
        """Whether the order of a user's events says what came after what."""
        return self.real_clock or self.ascending_share < 0.9

    @property
    def session_shaped(self) -> bool:
        """Anonymous, short visits: each user's whole history is one sitting of a few events."""
        return self.real_clock and self.median_user_span_days < 1.0 / 24 and self.median_user_events <= 20


def profile_dataset(dataset: Dataset) -> DataProfile:
    """Measure ``dataset`` (vectorised; a few passes over the event arrays)."""
    n = dataset.n_events
    matrix = dataset.matrix(binary=True)
    last = int(dataset.timestamp.max()) if n else 0
    first = int(dataset.timestamp.min()) if n else 0
    return DataProfile(
        users=dataset.n_users,
        items=dataset.n_items,
        events=n,
        interactions=int(matrix.nnz),
        span_days=round((last - first) / SECONDS_PER_DAY, 3),
        event_mix=_event_mix(dataset),
        repeat_purchase_share=_repeat_share(dataset.select(dataset.event_mask("purchase")), by_day=False),
        repeat_interaction_share=_repeat_share(dataset, by_day=True) or 0.0,
        median_user_events=_median(np.bincount(dataset.user_idx)[np.unique(dataset.user_idx)]),
        median_user_span_days=_median_span(dataset.user_idx, dataset.timestamp) / SECONDS_PER_DAY,
        median_session_events=_median_session(dataset),
        text_share=_filled_share(dataset, TEXT_COLUMNS),
        category_share=_filled_share(dataset, ("category",)),
        new_item_share=_new_item_share(dataset, last),
        interleaving=_interleaving(dataset),
        regular_step_share=_regular_step_share(dataset),
        recent_user_share=_recent_user_share(dataset, last),
        ascending_share=_ascending_share(dataset),
        uniform_weights=_uniform_weights(dataset),
        repeat_event_share=_repeat_share(dataset, by_day=False) or 0.0,
    )


def _uniform_weights(dataset: Dataset) -> bool:
    weights = dataset.matrix(binary=False).data
    return bool(len(weights)) and bool(weights.min() == weights.max())


def _event_mix(dataset: Dataset) -> dict[str, float]:
    if not dataset.n_events:
        return {}
    counts = np.bincount(dataset.event_code.astype(np.int64), minlength=len(dataset.event_types.names))
    names = dataset.event_types.names
    return {names[code]: round(count / dataset.n_events, 4) for code, count in enumerate(counts) if count}


def _repeat_share(dataset: Dataset, *, by_day: bool) -> float | None:
    """Share of events whose (user, item) pair occurred earlier (on an earlier day with ``by_day``)."""
    if not dataset.n_events:
        return None
    pair = dataset.user_idx.astype(np.int64) * dataset.n_items + dataset.item_idx
    when = dataset.timestamp // SECONDS_PER_DAY if by_day else np.arange(dataset.n_events)
    order = np.lexsort((when, pair))
    pair, when = pair[order], when[order]
    first_of_pair = np.ones(len(pair), dtype=bool)
    first_of_pair[1:] = pair[1:] != pair[:-1]
    # the first time of each pair, spread over its events: an event is a repeat when it is later
    starts = np.flatnonzero(first_of_pair)
    first_when = np.repeat(when[starts], np.diff(np.append(starts, len(pair))))
    return round(float(np.mean(when > first_when)), 4)


def _median(values: np.ndarray) -> float:
    return float(np.median(values)) if len(values) else 0.0


def _median_span(groups: np.ndarray, timestamp: np.ndarray) -> float:
    """Median over groups (users or sessions) of last minus first time stamp, in seconds."""
    if not len(groups):
        return 0.0
    size = int(groups.max()) + 1
    lo = np.full(size, np.iinfo(np.int64).max)
    hi = np.full(size, np.iinfo(np.int64).min)
    np.minimum.at(lo, groups, timestamp)
    np.maximum.at(hi, groups, timestamp)
    present = hi >= lo
    return float(np.median(hi[present] - lo[present]))


def _median_session(dataset: Dataset) -> float | None:
    sessions = dataset.session_idx
    if not len(sessions) or (sessions < 0).all():
        return None
    counts = np.bincount(sessions[sessions >= 0])
    return _median(counts[counts > 0])


def _filled_share(dataset: Dataset, columns: tuple[str, ...]) -> float:
    features = dataset.item_features
    present = [c for c in columns if c in features.columns]
    if not present or not dataset.n_items:
        return 0.0
    filled = np.zeros(len(features), dtype=bool)
    for column in present:
        values = features[column]
        filled |= values.notna().to_numpy() & (values.astype(str).str.strip().str.len() > 0).to_numpy()
    return round(float(filled.mean()), 4)


def _new_item_share(dataset: Dataset, last: int) -> float:
    if not dataset.n_events:
        return 0.0
    first_seen = np.full(dataset.n_items, np.iinfo(np.int64).max)
    np.minimum.at(first_seen, dataset.item_idx, dataset.timestamp)
    seen = first_seen < np.iinfo(np.int64).max
    new = first_seen[seen] > last - NEW_ITEM_DAYS * SECONDS_PER_DAY
    return round(float(new.mean()), 4) if seen.any() else 0.0


def _interleaving(dataset: Dataset) -> float:
    if dataset.n_events < 2:
        return 0.0
    order = np.lexsort((dataset.user_idx, dataset.timestamp))  # ties of one second kept per user
    users = dataset.user_idx[order]
    switches = int(np.count_nonzero(users[1:] != users[:-1]))
    # A log of one block per user switches exactly (users - 1) times.
    blocks = len(np.unique(users)) - 1
    return round(max(switches - blocks, 0) / (dataset.n_events - 1), 4)


def _regular_step_share(dataset: Dataset) -> float:
    if dataset.n_events < 2:
        return 0.0
    steps = np.diff(np.sort(dataset.timestamp))
    _, counts = np.unique(steps, return_counts=True)
    return round(float(counts.max() / len(steps)), 4)


def _recent_user_share(dataset: Dataset, last: int) -> float:
    if not dataset.n_events:
        return 0.0
    recent = dataset.timestamp > last - 7 * SECONDS_PER_DAY
    active = len(np.unique(dataset.user_idx))
    return round(len(np.unique(dataset.user_idx[recent])) / max(active, 1), 4)


def _ascending_share(dataset: Dataset) -> float:
    indptr, items = dataset.sequences()
    if len(items) < 2:
        return 0.0
    same_user = np.ones(len(items) - 1, dtype=bool)
    same_user[indptr[1:-1][(indptr[1:-1] > 0) & (indptr[1:-1] < len(items))] - 1] = False
    steps = np.diff(items.astype(np.int64))[same_user]
    moved = steps != 0
    return round(float(np.mean(steps[moved] > 0)), 4) if moved.any() else 0.0
