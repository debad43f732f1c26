"""What a fused trial of the search will cost, estimated before it starts.

A fused ranker's fold fits each of its sources once per label window and once on the fold's
training data (unless the search already holds that fit), has every source score each window's
training users, learns the ranker on their candidates, then scores the fold's users. The single
sources' trials measured each source's fit and its scoring per user on the same data; this adds
them up the way the pipeline will spend them. On gowalla one fused fold of ChebyCF and user-kNN
took 720 s, most of it ChebyCF scoring 40,000 window users against 41k items, where its single
trial (8,000 users) took 104 s: the trial's own time says little about the fused fold's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fusionrec.data.dataset import Dataset
from fusionrec.fusion.config import FusionSettings, HoldoutConfig
from fusionrec.fusion.pipeline import label_windows
from fusionrec.fusion.source_cache import fingerprint, is_fitted
from fusionrec.tuning.folds import ValidationFold

# Per candidate row, one thread: the ranker's training (300 trees of 31 leaves; 93 s for 1.27 M
# rows), and the features and ranker scores of the fold's users (21 s for 8,000 users, about 1.4 M
# rows), measured on amazon-beauty's first validation fold with EASE + co-visitation.
RANKER_SECONDS_PER_ROW = 70e-6
SCORING_SECONDS_PER_ROW = 15e-6
TRAIN_USERS = FusionSettings.model_fields["train_users"].default


@dataclass(frozen=True)
class SourceCost:
    """One source's measured cost on a fold: its fit, its scoring per user, and its hit rate (the
    share of users with a held-out item in its top 20)."""

    fit_seconds: float
    seconds_per_user: float
    hit_rate: float


@dataclass(frozen=True)
class FoldCuts:
    """What a fused ranker fits on and scores in one fold: the events (`fingerprint`) of each
    label window's history and of the fold's training data, the window's ranker groups (users
    with labels and a history), and the users the fold scores."""

    fits_on: tuple[str, ...]
    window_users: tuple[int, ...]
    target_users: int


def fold_cuts(fold: ValidationFold, holdout: HoldoutConfig, seed: int) -> FoldCuts:
    """``fold`` cut into label windows as the fused pipeline cuts it (`label_windows`)."""
    windows = label_windows(fold.train, holdout, seed)
    return FoldCuts(
        fits_on=(*(fingerprint(before) for before, _ in windows), fingerprint(fold.train)),
        window_users=tuple(_labelled_users(before, window) for before, window in windows),
        target_users=fold.target_users,
    )


def cost_key(model: str, params: Mapping[str, Any]) -> str:
    """A source setting's name among the measured costs (its seed left out)."""
    setting = {k: v for k, v in params.items() if k != "seed"}
    return f"{model}:{json.dumps(setting, sort_keys=True, default=str)}"


def fused_seconds(
    cuts: Sequence[FoldCuts], config: Mapping[str, Any], costs: Mapping[str, SourceCost]
) -> float:
    """Estimated seconds of a fused ranker with ``config`` (the search's fusion params) on the
    folds of ``cuts``: the source fits the search does not hold yet (each counted once, as the
    pipelines share them), every source's scoring of the windows' users and of the folds' users,
    and the ranker's rows to learn from and to score. The ranker learns from the users with a
    labelled item among their candidates, each with every source's list: rows per window user are
    taken as the lists' lengths times the best source's hit rate, a rough count. The whole
    estimate came within 15 % of the fused trials measured over three folds: gowalla 2,841 s
    against 2,492 s, amazon-beauty 1,253 s against 1,333 s."""
    seed = int(config.get("seed", 0))
    train_users = int(config.get("train_users", TRAIN_USERS))
    sources = [
        (s["model"], dict(s.get("params", {})), costs.get(cost_key(s["model"], s.get("params", {}))))
        for s in config["sources"]
    ]
    measured = [cost for *_, cost in sources if cost is not None]
    per_user = sum(cost.seconds_per_user for cost in measured)
    hit_rate = max((cost.hit_rate for cost in measured), default=1.0)
    listed = sum(int(s.get("n", 100)) for s in config["sources"])
    rows_per_user = hit_rate * listed
    planned: set[str] = set()
    seconds = 0.0
    for fold in cuts:
        for events in fold.fits_on:
            for model, params, cost in sources:
                key = f"{cost_key(model, params)}@{events}"
                if cost is None or key in planned or is_fitted(model, {"seed": seed, **params}, events):
                    continue
                planned.add(key)
                seconds += cost.fit_seconds
        users = sum(min(users, train_users) for users in fold.window_users)
        seconds += users * (per_user + rows_per_user * RANKER_SECONDS_PER_ROW)
        seconds += fold.target_users * (per_user + listed * SCORING_SECONDS_PER_ROW)
    return seconds


def _labelled_users(before: Dataset, window: Dataset) -> int:
    """Users with items in the label window and a history before it: the ranker's groups."""
    in_window = np.diff(window.matrix(binary=True).indptr) > 0
    with_history = np.diff(before.matrix(binary=True).indptr) > 0
    return int(np.count_nonzero(in_window & with_history))
