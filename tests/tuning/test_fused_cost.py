"""The estimate of a fused trial's cost before it starts (`fusionrec.tuning.fused_cost`), on the
folds and label windows the search really cuts and the source fits it really holds."""

from __future__ import annotations

import pytest

from fusionrec.data.dataset import Dataset
from fusionrec.data.synthetic import generate_frames
from fusionrec.fusion.config import HoldoutConfig
from fusionrec.fusion.source_cache import fit_source, reuse_fitted_sources
from fusionrec.tuning.auto import planned_folds
from fusionrec.tuning.fused_cost import (
    RANKER_SECONDS_PER_ROW,
    SCORING_SECONDS_PER_ROW,
    SourceCost,
    cost_key,
    fold_cuts,
    fused_seconds,
)


@pytest.fixture(scope="module")
def shop() -> Dataset:
    events, items, users = generate_frames(n_events=6_000, seed=5)
    return Dataset.from_frame(events, items, users)


def _config(holdout: dict, **extra: object) -> dict:
    sources = [
        {"model": "item_knn", "n": 50, "params": {"neighbours": 20}},
        {"model": "most_popular", "n": 30},
    ]
    return {"seed": 0, "holdout": holdout, "sources": sources, **extra}


def test_each_fit_is_counted_once_and_none_that_the_search_already_holds(shop: Dataset) -> None:
    """The fused pipelines of one search share their source fits: a history that two folds' label
    windows both fit on is paid once, and a fit the search holds (a confirmed single's) not at all."""
    _, plan, folds = planned_folds(shop, folds=3, window_days=7.0)
    holdout = plan.holdout()
    cuts = [fold_cuts(fold, HoldoutConfig(**holdout), 0) for fold in folds]
    costs = {
        cost_key("item_knn", {"neighbours": 20}): SourceCost(10.0, 0.0, 0.5),
        cost_key("most_popular", {}): SourceCost(1.0, 0.0, 0.5),
    }
    histories = {events for cut in cuts for events in cut.fits_on}
    assert len(histories) < sum(len(cut.fits_on) for cut in cuts)  # the windows step over each other
    window_users = sum(min(users, 20_000) for cut in cuts for users in cut.window_users)
    scoring = sum(cut.target_users for cut in cuts) * 80 * SCORING_SECONDS_PER_ROW
    ranker = window_users * 0.5 * 80 * RANKER_SECONDS_PER_ROW
    with reuse_fitted_sources():
        assert fused_seconds(cuts, _config(holdout), costs) == pytest.approx(
            len(histories) * 11.0 + ranker + scoring
        )
        fit_source("item_knn", {"seed": 0, "neighbours": 20}, folds[0].train)
        assert fused_seconds(cuts, _config(holdout), costs) == pytest.approx(
            len(histories) * 11.0 - 10.0 + ranker + scoring
        )


def test_scoring_counts_the_sampled_window_users_and_the_folds_users(shop: Dataset) -> None:
    """Every source scores each window's ranker users (at most ``train_users`` a window) and each
    fold's users: on gowalla that, not the fits, was most of a fused fold's 720 s."""
    _, plan, folds = planned_folds(shop, folds=2, window_days=7.0)
    holdout = plan.holdout()
    cuts = [fold_cuts(fold, HoldoutConfig(**holdout), 0) for fold in folds]
    assert all(users > 5 for cut in cuts for users in cut.window_users)
    free = {cost_key("item_knn", {"neighbours": 20}): SourceCost(0.0, 0.0, 0.0)}
    slow = {cost_key("item_knn", {"neighbours": 20}): SourceCost(0.0, 2.0, 0.0)}
    windows = sum(len(cut.window_users) for cut in cuts)
    targets = sum(cut.target_users for cut in cuts)
    config = _config(holdout, train_users=5)
    added = fused_seconds(cuts, config, slow) - fused_seconds(cuts, config, free)
    assert added == pytest.approx(2.0 * (5 * windows + targets))
