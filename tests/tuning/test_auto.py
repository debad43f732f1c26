"""The automatic pipeline search: the data profile, the plan it leads to, the validation folds,
and the search itself (`fusionrec.tuning.auto`), on real data through the real code path."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from fusionrec.data.dataset import SECONDS_PER_DAY, Dataset
from fusionrec.data.profile import profile_dataset
from fusionrec.data.synthetic import generate_frames
from fusionrec.models.registry import model_class
from fusionrec.tuning.auto import select_pipeline
from fusionrec.tuning.folds import validation_folds
from fusionrec.tuning.portfolio import plan_for, portfolio

START = pd.Timestamp("2026-01-01", tz="UTC")
# Sources cheap enough for a test search; popularity, item-kNN and popular-in-category differ a lot.
CHEAP = ["most_popular", "popular_in_category", "item_knn"]


@pytest.fixture(scope="module")
def shop() -> Dataset:
    events, items, users = generate_frames(n_events=10_000, seed=4)
    return Dataset.from_frame(events, items, users)


def _log(rows: list[tuple[str, str, str, float]]) -> Dataset:
    """A Dataset from (user, item, event type, days after START) rows."""
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "day"])
    frame["timestamp"] = (START + pd.to_timedelta(frame.pop("day"), unit="D")).dt.round("s")
    return Dataset.from_frame(frame)


def _grocery(users: int = 120, weeks: int = 12) -> Dataset:
    """Households buying mostly their own staples every week, interleaved in time."""
    rng = np.random.default_rng(0)
    rows = []
    for week in range(weeks):
        for user in range(users):
            staples = [f"i{(user * 3 + k) % 60}" for k in range(3)]
            for item in [*staples, f"i{rng.integers(60)}"]:
                rows.append((f"u{user}", item, "purchase", week * 7 + rng.uniform(0, 6)))
    return _log(rows)


def test_profile_and_plan_keep_bought_items_where_customers_buy_again(shop: Dataset) -> None:
    grocery = profile_dataset(_grocery())
    assert grocery.repeat_purchase_share is not None and grocery.repeat_purchase_share > 0.6
    assert grocery.real_clock and grocery.interleaving > 0.5
    plan = plan_for(grocery, window_days=7.0)
    assert plan.exclude_seen is False and plan.shape == "days"
    assert "past items stay eligible" in plan.reasons["exclude_seen"]
    options, skipped = portfolio(grocery, plan, budget_seconds=60.0)
    assert {"repeat_purchase", "tifu_knn"} <= {o.model for o in options}

    shop_profile = profile_dataset(shop)
    shop_plan = plan_for(shop_profile, window_days=7.0)
    assert shop_plan.exclude_seen is True and shop_plan.shape == "days"
    options, skipped = portfolio(shop_profile, shop_plan, budget_seconds=60.0)
    assert "repeat_purchase" in skipped and "content_tfidf" in {o.model for o in options}


def test_a_log_in_file_order_is_validated_on_random_folds() -> None:
    """Each user's items listed by id, users one block after another, one second per event (the
    Gowalla files' shape): neither time nor order means anything, so the plan draws random folds."""
    rows = []
    for user in range(80):
        items = sorted(np.random.default_rng(user).choice(200, size=12, replace=False))
        rows += [(f"u{user:03d}", f"i{item:03d}", "view", 0.0) for item in items]
    # stand-in times: one second per event, in file order
    rows = [(*row[:3], position / SECONDS_PER_DAY) for position, row in enumerate(rows)]
    profile = profile_dataset(_log(rows))
    assert profile.interleaving == 0.0 and profile.ascending_share == 1.0
    assert profile.regular_step_share == 1.0
    assert not profile.real_clock and not profile.ordered_histories
    assert plan_for(profile, window_days=7.0).shape == "random"


def test_anonymous_sessions_get_session_folds_and_only_models_that_read_them() -> None:
    rng = np.random.default_rng(1)
    rows = []
    for session in range(400):
        start = rng.uniform(0, 60)
        for step in range(int(rng.integers(2, 6))):
            rows.append((f"s{session}", f"i{rng.integers(50)}", "view", start + step * 60 / SECONDS_PER_DAY))
    dataset = _log(rows)
    profile = profile_dataset(dataset)
    plan = plan_for(profile, window_days=7.0)
    assert profile.session_shaped and plan.shape == "session"
    options, skipped = portfolio(profile, plan, budget_seconds=60.0)
    assert options and all(model_class(o.model).supports_history for o in options)
    assert "cannot score" in skipped["ials"]
    folds = validation_folds(dataset, "session", folds=3, window_days=7.0, mask_seen=True)
    for fold in folds:  # every target session starts after every training session
        first_target = min(
            dataset.timestamp[dataset.user_idx == u].min() for u in np.unique(fold.target.user_idx)
        )
        assert fold.train.timestamp.max() <= first_target


def test_temporal_folds_are_the_latest_windows_each_after_its_training_data(shop: Dataset) -> None:
    folds = validation_folds(shop, "days", folds=3, window_days=7.0, mask_seen=True)
    assert len(folds) == 3
    ends = [int(fold.target.timestamp.max()) for fold in folds]
    assert ends == sorted(ends, reverse=True)  # the latest first
    for fold in folds:
        assert fold.train.timestamp.max() < fold.target.timestamp.min()
        span = (fold.target.timestamp.max() - fold.target.timestamp.min()) / SECONDS_PER_DAY
        assert span <= 7.0 and fold.target_users >= 50
    # folds step back: the second fold's target is inside the first fold's training data
    assert folds[1].target.timestamp.max() <= folds[0].train.timestamp.max()


def test_the_search_records_every_trial_ships_the_best_and_repeats_itself(shop: Dataset) -> None:
    first = select_pipeline(shop, budget_seconds=600.0, seed=3, folds=2, models=CHEAP)
    record = first.record
    assert record.plan["folds"] == 2 and record.profile["events"] == shop.n_events
    stages = {trial.stage for trial in record.trials}
    assert {"screen", "confirm", "fusion"} <= stages
    assert all(trial.seconds > 0 and "NDCG@20" in trial.metrics for trial in record.trials)
    assert "ials" in record.skipped and "not among the models" in record.skipped["ials"]
    # the guardrail: the shipped candidate is the best of the fused ranker, the blend and each source
    board = first.leaderboard
    assert {c.model for c in board} >= {"fusion", "blend", *CHEAP}
    assert board[0].label == record.chosen and (first.model, first.params) == (
        board[0].model,
        board[0].config,
    )
    assert board[0].metrics["NDCG@20"] == max(c.metrics["NDCG@20"] for c in board)
    assert record.chosen in record.reason
    assert all(c.metrics for c in board) and all(
        t.folds == 2 for t in record.trials if t.label in {c.label for c in board} and t.stage == "confirm"
    )
    # same data, seed and an ample budget: the same choice
    again = select_pipeline(shop, budget_seconds=600.0, seed=3, folds=2, models=CHEAP)
    assert (again.model, again.params) == (first.model, first.params)


def test_a_spent_budget_stops_the_search_and_says_what_it_left_out(shop: Dataset) -> None:
    selection = select_pipeline(shop, budget_seconds=0.01, seed=0)
    record = selection.record
    assert any("budget ran out" in why for why in record.skipped.values())
    assert len([t for t in record.trials if t.stage == "screen"]) <= 1
    assert selection.model in {t.model for t in record.trials}  # something scored still ships


def test_the_search_validates_on_the_horizon_it_is_judged_on() -> None:
    """`evaluate --models auto` on a temporal benchmark: windows as long as the test's (dunnhumby's
    4 weeks, the synthetic shop's 7 days); `train`: as long as its report window (--valid-days)."""
    from fusionrec.evaluation.benchmarks import BENCHMARKS
    from fusionrec.training import auto_spec

    assert BENCHMARKS["dunnhumby"].horizon_days == 28.0
    assert BENCHMARKS["synthetic"].horizon_days == 7.0
    assert BENCHMARKS["amazon-beauty"].horizon_days is None  # each user's last item, not days
    assert auto_spec(horizon_days=14.0).params["window_days"] == 14.0


def test_a_stage_gets_its_share_of_the_time_left_when_it_begins(monkeypatch: pytest.MonkeyPatch) -> None:
    """A screening that overran its share (a source far slower than its estimate) shortens the
    confirmation and the fused stage; it does not leave them no time (amazon-beauty, first try:
    ChebyCF took 446 s against an estimate of 12 s, and 599 s of the budget went unused)."""
    import fusionrec.tuning.auto as auto

    clock = [0.0]
    monkeypatch.setattr(auto.time, "perf_counter", lambda: clock[0])
    search = auto._Search([], plan=None, deadline=1000.0, progress=None, seed=0)  # type: ignore[arg-type]
    search.begin("screen")
    assert search.stage_end == pytest.approx(350.0)
    clock[0] = 600.0  # screening overran to 60 % of the time
    search.begin("confirm")
    assert search.stage_end == pytest.approx(600.0 + 400.0 * 0.20 / 0.65)
    clock[0] = search.stage_end
    search.begin("fusion")
    assert search.stage_end == pytest.approx(1000.0)


def test_folds_score_a_seeded_sample_of_at_most_max_scored_users(shop: Dataset) -> None:
    from fusionrec.tuning import folds as fold_module

    full = fold_module.validation_folds(shop, "days", folds=2, window_days=7.0, mask_seen=True)
    small = fold_module.sampled_users(full[0].target, 60, seed=3)
    again = fold_module.sampled_users(full[0].target, 60, seed=3)
    assert full[0].target_users > 60 and len(np.unique(small.user_idx)) == 60
    assert np.array_equal(small.user_idx, again.user_idx)  # every trial scores the same people
    assert set(small.user_idx) <= set(full[0].target.user_idx)
    assert fold_module.sampled_users(small, 1_000, seed=3) is small  # fewer users: all of them


def test_uniform_weights_leave_the_weighted_user_knn_out() -> None:
    """One event per (user, item) pair of one type: weighted and presence-only user-kNN are the
    same model, so the grid does not pay for both (gowalla and amazon-beauty scored them equal)."""
    rows = [(f"u{u}", f"i{(u * 7 + k) % 40}", "view", float(k)) for u in range(60) for k in range(5)]
    uniform = profile_dataset(_log(rows))
    assert uniform.uniform_weights
    mixed = profile_dataset(_log([*rows, ("u1", "i7", "purchase", 9.0)]))
    assert not mixed.uniform_weights
    plan = plan_for(uniform, window_days=7.0)
    grids = {o.model: o.grid for o in portfolio(uniform, plan, budget_seconds=600.0)[0]}
    assert grids["user_knn"] == ({"neighbours": 100},)
    grids = {o.model: o.grid for o in portfolio(mixed, plan, budget_seconds=600.0)[0]}
    assert len(grids["user_knn"]) == 2


def test_a_large_catalogue_screens_the_spectral_filter_before_item_knn() -> None:
    """On a catalogue the size of gowalla's (41k items), item-kNN's item x item pass costs more
    than ChebyCF's fold; the estimate orders them so (item-kNN took 212 s, more than ChebyCF's)."""
    rows = [(f"u{u}", f"i{(u * 13 + k) % 400}", "view", k / 10) for u in range(200) for k in range(8)]
    profile = profile_dataset(_log(rows)).model_copy(
        update={"users": 29_858, "items": 40_981, "interactions": 810_128, "events": 810_128}
    )
    options, _ = portfolio(profile, plan_for(profile, window_days=7.0), budget_seconds=1800.0)
    order = [o.model for o in options]
    assert order.index("cheby_cf") < order.index("item_knn")
    assert order[0] == "most_popular" and options[0].cost > 30  # scoring 8,000 users x 41k items


def test_screening_tries_second_settings_only_for_the_better_half(shop: Dataset) -> None:
    selection = select_pipeline(
        shop,
        budget_seconds=600.0,
        seed=3,
        folds=2,
        models=["most_popular", "popular_in_category", "item_knn", "rp3beta"],
    )
    screened = [t for t in selection.record.trials if t.stage == "screen"]
    first_round = {t.model: t.metrics["NDCG@20"] for t in screened[:4]}
    assert sorted(first_round) == ["item_knn", "most_popular", "popular_in_category", "rp3beta"]
    better_half = sorted(first_round, key=lambda m: -first_round[m])[:2]
    second_round = {t.model for t in screened[4:]}
    assert second_round and second_round <= set(better_half) & {"item_knn", "rp3beta"}


def _sessions(revisit: bool, n: int = 400) -> Dataset:
    """Anonymous two-minute visits along chains of items (i, i+1, i+2 ...), with or without a
    return to the first item of the visit."""
    rng = np.random.default_rng(2)
    rows = []
    for session in range(n):
        start, first = rng.uniform(0, 60), int(rng.integers(40))
        path = [first + step for step in range(3)] + ([first] if revisit else [first + 3])
        rows += [
            (f"s{session}", f"i{item}", "view", start + step * 30 / SECONDS_PER_DAY)
            for step, item in enumerate(path)
        ]
    return _log(rows)


def test_sessions_that_return_to_their_items_keep_them_eligible_and_fuse_on_the_prefix() -> None:
    revisits = profile_dataset(_sessions(revisit=True))
    assert revisits.session_shaped and revisits.repeat_event_share >= 0.2
    plan = plan_for(revisits, window_days=7.0)
    assert plan.exclude_seen is False and "return to an item" in plan.reasons["exclude_seen"]
    straight = profile_dataset(_sessions(revisit=False))
    assert straight.repeat_event_share == 0.0 and plan_for(straight, window_days=7.0).exclude_seen

    # The search fuses session sources too, its fused trials fed each session's prefix.
    selection = select_pipeline(
        _sessions(revisit=True),
        budget_seconds=300.0,
        seed=0,
        folds=2,
        models=["session_knn", "repeat_purchase"],
    )
    fused = [t for t in selection.record.trials if t.model == "fusion"]
    assert fused and all(t.metrics["NDCG@20"] > 0.3 for t in fused), selection.record.trials
    assert "fusion" not in selection.record.skipped


def _fake_trials(
    monkeypatch: pytest.MonkeyPatch,
    seconds_a_fold: Callable[[str], float],
    score: Callable[[str], float],
) -> list[float]:
    """The search's clock and trials faked: each fold of ``model`` advances the clock by
    ``seconds_a_fold(model)`` and scores ``score(model)``. Returns the clock, to set by hand."""
    import fusionrec.tuning.auto as auto
    from fusionrec.versions import GATE_METRIC, Trial

    clock = [0.0]
    monkeypatch.setattr(auto.time, "perf_counter", lambda: clock[0])

    def record(self, stage, label, model, params, folds, earlier=None):  # type: ignore[no-untyped-def]
        clock[0] += seconds_a_fold(model) * len(folds)
        seen = (earlier.folds if earlier else 0) + len(folds)
        trial = Trial(
            stage=stage, label=label, model=model, config=params, metrics={GATE_METRIC: score(model)},
            folds=seen, seconds=seconds_a_fold(model) * seen,
        )  # fmt: skip
        self.trials.append(trial)
        return trial

    monkeypatch.setattr(auto._Search, "_record", record)
    return clock


def test_the_blend_is_tried_only_where_its_folds_fit_in_the_time_left(
    shop: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On amazon-beauty the blend, started with a little time left, took 414 s over 3 folds and
    pushed the fit past its budget: it costs about what the fused ranker does per fold, and is
    now started only where that fits, else the search says it was left out."""
    import fusionrec.tuning.auto as auto
    from fusionrec.versions import Trial

    clock = _fake_trials(
        monkeypatch, lambda model: 100.0, lambda model: {"fusion": 0.3, "blend": 0.2}.get(model, 0.1)
    )
    profile, plan, folds = auto.planned_folds(shop, folds=3, window_days=7.0)
    options = {o.model: o for o in portfolio(profile, plan, budget_seconds=600.0)[0]}
    singles = [
        auto.Scored(Trial(stage="confirm", label=m, model=m, config={}, metrics={}, folds=3, seconds=1.0), options[m], 0.1)
        for m in ("most_popular", "item_knn")
    ]  # fmt: skip

    def models_tried(deadline: float) -> tuple[list[str], dict[str, str]]:
        clock[0] = 0.0
        search = auto._Search(folds, plan, deadline, None, seed=0)
        search.stage_end = deadline
        skipped: dict[str, str] = {}
        auto._forward_selection(search, list(singles), skipped)
        return [t.model for t in search.trials], skipped

    # The fused ranker's first fold, its two ranker variants and its confirmation on the other two
    # folds end at 500 s: a deadline of 1,400 s leaves the blend's 3 x 100 s, one of 700 s does not.
    tried, skipped = models_tried(deadline=1400.0)
    assert tried.count("blend") == 1 and "blend" not in skipped
    tried, skipped = models_tried(deadline=700.0)
    assert "blend" not in tried and "too slow" in skipped["blend"]


def test_a_source_is_screened_only_where_its_confirmation_on_every_fold_fits_too(
    shop: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a quiet machine SASRec's screening fitted the screening stage (740 s against an estimate
    of 802 s on amazon-beauty) and then took the confirmation and the fused stage's time on two
    more folds. A source whose folds cannot all fit in the single sources' time is left out
    before it is screened, and a confirmation that no longer fits is skipped, not started."""
    import dataclasses

    import fusionrec.tuning.auto as auto

    seconds_a_fold = {"most_popular": 1.0, "item_knn": 10.0, "popular_in_category": 150.0, "slow": 250.0}
    score = {"most_popular": 0.1, "item_knn": 0.3, "popular_in_category": 0.2}
    _fake_trials(monkeypatch, seconds_a_fold.__getitem__, score.__getitem__)
    profile, plan, folds = auto.planned_folds(shop, folds=3, window_days=7.0)
    options = {o.model: o for o in portfolio(profile, plan, budget_seconds=1000.0)[0]}
    # Costs as estimated: the slow one (300 s a fold) passes the old test (at most twice the
    # screening's 350 s) but its 3 folds do not fit in the 550 s of screening and confirmation.
    chosen = [
        dataclasses.replace(options["most_popular"], cost=1.0),
        dataclasses.replace(options["item_knn"], cost=10.0),
        dataclasses.replace(options["popular_in_category"], cost=100.0),
        dataclasses.replace(options["item_knn"], model="slow", cost=300.0),
    ]
    search = auto._Search(folds, plan, deadline=1000.0, progress=None, seed=0)
    search.begin("screen")
    assert search.single_sources_seconds_left() == pytest.approx(550.0)
    skipped: dict[str, str] = {}
    confirmed = auto._screen_and_confirm(search, chosen, skipped)

    assert "slow" not in [t.model for t in search.trials]
    assert "confirm on 3 folds" in skipped["slow"]
    # popular_in_category took 150 s a fold (its estimate said 100): after item_knn, the leader,
    # its other two folds (300 s) no longer fit in the confirmation's share, so it is skipped;
    # most_popular, cheaper and after it, is still confirmed.
    assert [s.trial.model for s in confirmed] == ["item_knn", "most_popular"]
    assert "too slow to confirm" in skipped["popular_in_category"]
    assert all(s.trial.folds == 3 for s in confirmed)


def test_sasrec_samples_its_negatives_on_a_large_catalogue_and_costs_less_for_it() -> None:
    """SASRec's full softmax scores every item at every position: on amazon-beauty's 12k items one
    fold took 740 s, too slow for a 30-minute search; above four times the negatives' count the
    search samples them, and its cost estimate says what that saves."""
    rows = [(f"u{u}", f"i{(u * 13 + k) % 400}", "view", k / 10) for u in range(200) for k in range(8)]
    small = profile_dataset(_log(rows))
    large = small.model_copy(update={"users": 22_363, "items": 12_101, "events": 176_139})
    plan = plan_for(small, window_days=7.0)

    def sasrec(profile):  # type: ignore[no-untyped-def]
        options, skipped = portfolio(profile, plan, budget_seconds=1800.0)
        assert "sasrec" not in skipped, skipped.get("sasrec")
        return next(o for o in options if o.model == "sasrec")

    assert "loss" not in sasrec(small).grid[0]  # 400 items: the full softmax
    sampled = sasrec(large)
    assert sampled.grid[0]["loss"] == "sampled_softmax" and sampled.grid[0]["n_negatives"] < large.items
    model_class("sasrec").Config(**sampled.grid[0])  # a setting the model takes
    full_width = large.model_copy(update={"items": 4_000})  # under the threshold: every item scored
    assert sasrec(full_width).cost > 1.5 * sampled.cost  # a third of the items, scored in full


def test_the_first_fused_trial_starts_only_where_it_and_its_final_fit_fit_in_the_budget_left(
    shop: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On gowalla the first fused fold of ChebyCF and user-kNN took 720 s, and, leading the first
    fold, it was confirmed on two more: the search took twice its time. On amazon-beauty a fused
    trial started within twice the search's time left ran the whole fit 33 % past its budget. Its
    sources' measured scoring per user now says what it costs on every fold and in its final fit
    (about one fold more) before it starts, and the search leaves it out where that passes the
    end of the whole budget, saying which budget would try it."""
    import fusionrec.tuning.auto as auto
    from fusionrec.tuning.fused_cost import SourceCost, cost_key
    from fusionrec.versions import Trial

    clock = _fake_trials(monkeypatch, lambda model: 10.0, lambda model: {"fusion": 0.3}.get(model, 0.1))
    profile, plan, folds = auto.planned_folds(shop, folds=3, window_days=7.0)
    options = {o.model: o for o in portfolio(profile, plan, budget_seconds=600.0)[0]}
    singles = [
        auto.Scored(Trial(stage="confirm", label=m, model=m, config={"seed": 0}, metrics={}, folds=3, seconds=30.0), options[m], 0.1)
        for m in ("most_popular", "item_knn")
    ]  # fmt: skip

    def search_with(seconds_per_user: float, budget_end: float) -> auto._Search:
        clock[0] = 0.0
        search = auto._Search(folds, plan, 1000.0, None, seed=0, budget_end=budget_end)
        search.costs = {
            cost_key(m, {}): SourceCost(1.0, seconds_per_user, 0.5) for m in ("most_popular", "item_knn")
        }
        return search

    def fusion_tried(seconds_per_user: float, budget_end: float) -> tuple[bool, dict[str, str]]:
        search = search_with(seconds_per_user, budget_end)
        skipped: dict[str, str] = {}
        auto._forward_selection(search, list(singles), skipped)
        return any(t.model == "fusion" for t in search.trials), skipped

    tried, skipped = fusion_tried(seconds_per_user=0.001, budget_end=1000.0)
    assert tried and "fusion" not in skipped
    tried, skipped = fusion_tried(seconds_per_user=1.0, budget_end=1000.0)  # a few thousand users a fold
    assert not tried and "too slow for the time left" in skipped["fusion"]

    # Where its folds alone fit but its final fit (a fold more) takes the fit past the budget
    # and its tenth of slack, it is left out too; the budget that would try it is named.
    def estimate(seconds_per_user: float) -> float:
        probe = search_with(seconds_per_user, 0.0)
        return probe.fused_seconds(auto._fusion_params(probe, singles))

    fixed = estimate(0.0)  # fits and the ranker; the scoring grows with the seconds per user
    per_user = (1000.0 - fixed) / (estimate(1.0) - fixed)  # 1,000 s on 3 folds
    assert estimate(per_user) == pytest.approx(1000.0)
    needed = 1000.0 * (1 + 1 / 3)
    tried, _ = fusion_tried(per_user, budget_end=needed / 1.1 + 1.0)
    assert tried
    tried, skipped = fusion_tried(per_user, budget_end=1200.0)  # the folds' 1,000 s would fit
    assert not tried
    minutes = math.ceil(needed / 1.1 / 60)
    assert f"a budget of about {minutes}m would try it" in skipped["fusion"]
