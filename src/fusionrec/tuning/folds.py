"""Validation folds for choosing a pipeline: k windows at the end of the data, each scored by a
model fit on what came before it, with the metrics and ranking code of `fusionrec evaluate`.

The shape of a fold follows the data (`fusionrec.tuning.portfolio.Plan`):

* ``days``: the last ``window_days`` days are the first fold's target, the window before them the
  second's, and so on (temporal shop data);
* ``last``: each user's last item, then the one before it (sequence-shaped data whose clock is not
  usable, such as leave-one-out benchmarks);
* ``random``: a seeded random 20 % of each user's items, redrawn per fold (data whose order says
  nothing);
* ``session``: the sessions that start in the window, each one's last item predicted from the
  items before it (anonymous session data), so only models that score a live history take part.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from fusionrec.data.dataset import SECONDS_PER_DAY, Dataset
from fusionrec.evaluation.protocol import score_next_items
from fusionrec.fusion.config import HoldoutConfig
from fusionrec.fusion.pipeline import label_windows
from fusionrec.models.base import Recommender
from fusionrec.tuning.search import Fold, score_fitted

FoldShape = Literal["days", "last", "random", "session"]
KS = (10, 20)
MIN_TARGET_USERS = 50  # a window with fewer users to score is widened (days) or dropped
# Users scored per fold: a seeded sample beyond this. Scoring every user against every item is
# most of a trial's time on a large catalogue (ChebyCF on 30k users x 41k items), and 8,000 users
# tell settings apart as well for choosing (the benchmarks' tuning samples as many).
MAX_SCORED_USERS = 8_000


@dataclass(frozen=True)
class ValidationFold:
    """One fold: what models fit on, and how a fitted model is scored."""

    train: Dataset
    target: Dataset
    shape: FoldShape
    mask_seen: bool

    @property
    def target_users(self) -> int:
        return int(np.count_nonzero(np.diff(self.target.matrix(binary=True).indptr)))

    def score(self, model: Recommender, ks: Sequence[int] = KS) -> dict[str, float]:
        """The shared ranking metrics of ``model`` (fit on ``train``) on this fold's target."""
        if self.shape == "session":
            return score_next_items(model, self.target, ks)
        return score_fitted(model, Fold(self.train, self.target, self.mask_seen), ks)


def validation_folds(
    dataset: Dataset,
    shape: FoldShape,
    *,
    folds: int,
    window_days: float,
    mask_seen: bool,
    seed: int = 0,
) -> list[ValidationFold]:
    """Up to ``folds`` folds of ``shape``, the latest first; windows too small to score are left out."""
    if shape == "session":
        pairs = _session_windows(dataset, window_days, folds)
    else:
        holdout = HoldoutConfig(
            mode=shape, days=window_days, items=1, fraction=0.2, min_history=1, windows=folds
        )
        pairs = label_windows(dataset, holdout, seed)
    if shape != "session":  # a session fold's targets are sessions, scored whole
        pairs = [
            (before, sampled_users(window, MAX_SCORED_USERS, seed + n))
            for n, (before, window) in enumerate(pairs)
        ]
    out = [ValidationFold(before, window, shape, mask_seen) for before, window in pairs]
    return [fold for fold in out if fold.train.n_events and fold.target_users >= MIN_TARGET_USERS] or out[:1]


def sampled_users(target: Dataset, most: int, seed: int) -> Dataset:
    """``target`` restricted to a seeded sample of ``most`` of its users (all when fewer), the
    same for every trial of the search so that they are compared on the same people."""
    users = np.unique(target.user_idx)
    if len(users) <= most:
        return target
    chosen = np.random.default_rng(seed).choice(users, size=most, replace=False)
    return target.select(np.isin(target.user_idx, chosen))


def window_days_for(dataset: Dataset, start_days: float, folds: int) -> float:
    """The shortest window, from ``start_days`` doubling, in which enough users have events to
    score (at least `MIN_TARGET_USERS` and 5 % of the active users), while ``folds`` such windows
    leave at least half of the time span for training."""
    if not dataset.n_events:
        return start_days
    last, first = int(dataset.timestamp.max()), int(dataset.timestamp.min())
    span_days = (last - first) / SECONDS_PER_DAY
    active = len(np.unique(dataset.user_idx))
    needed = max(MIN_TARGET_USERS, 0.05 * active)
    days = start_days
    while days * 2 * folds <= span_days / 2:
        recent = dataset.timestamp > last - days * SECONDS_PER_DAY
        if len(np.unique(dataset.user_idx[recent])) >= needed:
            break
        days *= 2
    return days


def _session_windows(dataset: Dataset, days: float, folds: int) -> list[tuple[Dataset, Dataset]]:
    """(sessions before, sessions starting in the window) pairs, stepping back ``days`` per fold."""
    sessions = dataset.user_idx  # in session data the anonymous sessions are the users
    first_seen = np.full(dataset.n_users, np.iinfo(np.int64).max)
    np.minimum.at(first_seen, sessions, dataset.timestamp)
    end = int(dataset.timestamp.max()) if dataset.n_events else 0
    out = []
    for k in range(folds):
        stop = end - k * days * SECONDS_PER_DAY
        start = stop - days * SECONDS_PER_DAY
        in_window = (first_seen[sessions] > start) & (first_seen[sessions] <= stop)
        before = first_seen[sessions] <= start
        if not in_window.any() or not before.any():
            break
        out.append((dataset.select(before), dataset.select(in_window)))
    return out
