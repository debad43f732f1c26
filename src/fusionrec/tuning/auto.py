"""The automatic pipeline search: what `fusionrec train` runs unless a pipeline is declared.

`select_pipeline` does, within a time budget, what the benchmarks did by hand:

1. profile the data (`fusionrec.data.profile`) and plan from it: the shape and length of the
   validation folds, whether bought items stay eligible, the portfolio of candidate sources
   (`fusionrec.tuning.portfolio`);
2. **screen** every source setting on the latest fold, cheapest first, then **confirm** the best
   setting of the better half of the models on every fold (successive halving);
3. **forward selection** on the latest fold: a fused ranker of the two best sources, then the
   source that adds the most to it, while one does; then the ranker's own small grid;
4. the best fused ranker **confirmed** on every fold, and the blend of its sources;
5. the **guardrail**: the best candidate on the mean of the folds ships, whether it is the fused
   ranker, the blend or a single source.

Each stage has its share of the time left when it begins (`STAGE_SHARES`), so the single sources
cannot eat the time the fused ranker needs, nor a slow screening leave the later stages nothing.

Every fused model of the search shares the sources it fits (`reuse_fitted_sources`), so adding a
source to a pipeline costs that source's fits and the ranker, not every source again. Every trial is
recorded with its metrics and time. Same data, seed and budget give the same choice, as long as
the budget is not what stopped the search.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fusionrec.data.dataset import Dataset
from fusionrec.data.profile import DataProfile, profile_dataset
from fusionrec.fusion.config import FUSION_MODELS, HoldoutConfig
from fusionrec.fusion.source_cache import fit_source, reuse_fitted_sources
from fusionrec.models.registry import create_model
from fusionrec.progress import step
from fusionrec.tuning.folds import ValidationFold, validation_folds, window_days_for
from fusionrec.tuning.fused_cost import FoldCuts, SourceCost, cost_key, fold_cuts, fused_seconds
from fusionrec.tuning.portfolio import Plan, SourceOption, plan_for, portfolio
from fusionrec.tuning.search import SearchError
from fusionrec.versions import GATE_METRIC, Candidate, SearchRecord, Trial

log = logging.getLogger(__name__)

SEARCH_SHARE = 0.8  # of the budget; the rest is left for the final fit on all the data
# The fused ranker is started only where, by the estimates, the whole fit ends within the budget
# and this much more (a tenth, or a minute where that is more: the estimates' error and the fixed
# costs of a small search). Synthetic's fused fit ended 7 % past its 263 s budget.
BUDGET_SLACK = 0.1
MIN_SLACK_SECONDS = 60.0
# Where each stage must end, as shares of the search's time: the single sources may not eat the
# time the fused ranker needs (screening stops taking new sources, confirmation new models).
# Each stage's share of the search's time. A stage gets its share of the time *left* when it
# begins, over the shares of the stages still to come: a screening that overran (a source slower
# than its estimate) shortens the later stages, it does not leave them nothing.
STAGE_SHARES = {"screen": 0.35, "confirm": 0.20, "fusion": 0.45}
SINGLE_SOURCE_STAGES = ("screen", "confirm")
MIN_GAIN = 0.002  # a source joins the fusion when it lifts the metric by more than this share
MAX_SOURCES = 6
CONFIRMED_MODELS = 5  # screened models scored on every fold (at least; or half of them)
RANKER = {"n_estimators": 300, "learning_rate": 0.05, "num_leaves": 31, "min_data_in_leaf": 50}
# Tried on the chosen sources after forward selection, each against the base config.
RANKER_GRID: dict[str, dict[str, Any]] = {
    "15-leaf ranker": {
        "ranker": {"kind": "lightgbm", "params": {**RANKER, "num_leaves": 15, "min_data_in_leaf": 100}}
    },
    "raw features": {"relative_features": False},
}

# progress(stage, done, total, what is being tried, seconds of budget left)
Progress = Callable[[str, int, int, str, float], None]


def default_budget(n_events: int) -> float:
    """Seconds for a search on ``n_events`` events: 40 s for 20k events (the demo trains in about
    a minute), growing a little slower than the data, 20 minutes from 2M events on."""
    return float(min(1200.0, max(30.0, 40.0 * (max(n_events, 1) / 20_000) ** 0.74)))


@dataclass(frozen=True)
class Scored:
    """A source's trial and the option it came from (its quota in a fusion)."""

    trial: Trial
    option: SourceOption
    first_fold: float  # its score on the latest fold, where every source was screened

    @property
    def score(self) -> float:
        return self.trial.score


@dataclass
class Selection:
    """What the search chose, and everything it tried."""

    model: str
    params: dict[str, Any]
    record: SearchRecord  # the profile, the plan, every trial
    plan: Plan
    leaderboard: list[Candidate] = field(default_factory=list)


class _Search:
    """One run of the search: the folds, the clock, the trials."""

    def __init__(
        self,
        folds: list[ValidationFold],
        plan: Plan,
        deadline: float,
        progress: Progress | None,
        seed: int,
        budget_started: float | None = None,
        budget_end: float | None = None,
    ) -> None:
        self.folds = folds
        self.plan = plan
        self.started = time.perf_counter()
        self.deadline = deadline  # of the search; the final fit has the time after it
        # The whole fit's budget (by default the search's): when it began, before the data was
        # profiled and cut, and when it ends.
        self.budget_started = self.started if budget_started is None else budget_started
        budget_end = deadline if budget_end is None else budget_end
        budget = max(budget_end - self.budget_started, 0.0)
        self.latest_end = budget_end + max(BUDGET_SLACK * budget, MIN_SLACK_SECONDS)
        self.stage_end = deadline
        self.stage = next(iter(STAGE_SHARES))
        self.progress = progress
        self.seed = seed
        self.trials: list[Trial] = []
        self.costs: dict[str, SourceCost] = {}  # each source setting's fit and scoring, measured
        self._cuts: list[FoldCuts] | None = None

    def seconds_left(self) -> float:
        """Of the current stage's time (`begin`)."""
        return self.stage_end - time.perf_counter()

    def begin(self, stage: str) -> None:
        self.stage = stage
        now = time.perf_counter()
        self.stage_end = now + max(self.deadline - now, 0.0) * STAGE_SHARES[stage] / self._shares_to_come()

    def seconds_to_latest_end(self) -> float:
        """Until the latest the whole fit, its final fit included, may end (`BUDGET_SLACK`)."""
        return self.latest_end - time.perf_counter()

    def single_sources_seconds_left(self) -> float:
        """Of the time the single sources' stages (screen, confirm) have left: their shares of the
        search's time left, as `begin` will hand them out."""
        to_come = self._stages_to_come()
        singles = sum(STAGE_SHARES[s] for s in to_come if s in SINGLE_SOURCE_STAGES)
        left = max(self.deadline - time.perf_counter(), 0.0)
        return left * singles / self._shares_to_come()

    def _stages_to_come(self) -> list[str]:
        stages = list(STAGE_SHARES)
        return stages[stages.index(self.stage) :]

    def _shares_to_come(self) -> float:
        return sum(STAGE_SHARES[s] for s in self._stages_to_come())

    def _measured(
        self,
        model: str,
        params: dict[str, Any],
        fit: float,
        scoring: float,
        fold: ValidationFold,
        metrics: dict[str, float],
    ) -> None:
        """Keep a source's cost for `fused_seconds`: its slowest fit (a fit the search already
        held took no time), its latest scoring per user and hit rate."""
        key = cost_key(model, params)
        earlier = self.costs.get(key)
        fit = max(fit, earlier.fit_seconds) if earlier else fit
        hit_rate = float(metrics.get("HR@20", 1.0))
        self.costs[key] = SourceCost(fit, scoring / max(fold.target_users, 1), hit_rate)

    def fused_seconds(self, config: dict[str, Any]) -> float:
        """Estimated seconds of the fused trial with ``config`` on every fold (`fused_cost`)."""
        if self._cuts is None:  # every fused trial of the search has the plan's label windows
            holdout = HoldoutConfig(**self.plan.holdout())
            self._cuts = [fold_cuts(fold, holdout, self.seed) for fold in self.folds]
        return fused_seconds(self._cuts, config, self.costs)

    def report(self, stage: str, done: int, total: int, what: str) -> None:
        left = max(self.deadline - time.perf_counter(), 0.0)
        if self.progress is not None:
            self.progress(stage, done, total, what, left)
        else:  # e.g. `fusionrec evaluate --models auto`: whoever listens to steps shows it
            step(f"auto {stage}", done, total, f"{what} ({left:.0f}s of the budget left)")

    def run(
        self, stage: str, label: str, model: str, params: dict[str, Any], n_folds: int | None = None
    ) -> Trial:
        """Fit ``model`` on each of the first ``n_folds`` folds (all by default) and record the
        mean metrics."""
        return self._record(stage, label, model, params, self.folds[: n_folds or len(self.folds)])

    def extend(self, stage: str, trial: Trial) -> Trial:
        """``trial`` scored on the folds it has not seen yet too: the mean over every fold."""
        if trial.folds >= len(self.folds):
            return trial
        return self._record(stage, trial.label, trial.model, trial.config, self.folds[trial.folds :], trial)

    def _record(
        self,
        stage: str,
        label: str,
        model: str,
        params: dict[str, Any],
        folds: list[ValidationFold],
        earlier: Trial | None = None,
    ) -> Trial:
        started = time.perf_counter()
        seen = earlier.folds if earlier is not None else 0
        sums = {name: value * seen for name, value in (earlier.metrics if earlier else {}).items()}
        for fold in folds:
            fit_started = time.perf_counter()
            if model in FUSION_MODELS:
                fitted = create_model(model, **params).fit(fold.train)
            else:  # kept for the fused models of the search, which fit the same source again
                fitted = fit_source(model, params, fold.train)
            score_started = time.perf_counter()
            metrics = fold.score(fitted)
            for name, value in metrics.items():
                if "@" in name:
                    sums[name] = sums.get(name, 0.0) + float(value)
            if model not in FUSION_MODELS:
                scoring = time.perf_counter() - score_started
                self._measured(model, params, score_started - fit_started, scoring, fold, metrics)
        n_folds = seen + len(folds)
        trial = Trial(
            stage=stage,
            label=label,
            model=model,
            config=params,
            metrics={name: value / n_folds for name, value in sums.items()},
            folds=n_folds,
            seconds=round(time.perf_counter() - started + (earlier.seconds if earlier else 0.0), 3),
        )
        self.trials.append(trial)
        log.info(
            "auto %s: %s %s %.4f (%d folds, %.1fs)",
            stage,
            label,
            GATE_METRIC,
            trial.score,
            n_folds,
            trial.seconds,
        )
        return trial


def planned_folds(
    dataset: Dataset, *, folds: int, window_days: float, seed: int = 0
) -> tuple[DataProfile, Plan, list[ValidationFold]]:
    """The data's profile, the plan it leads to, and the validation folds of that plan (the
    window widened where too few users are active in it): what `select_pipeline` and
    `fusionrec tune` validate on."""
    profile = profile_dataset(dataset)
    days = window_days_for(dataset, window_days, folds) if profile.real_clock else window_days
    plan = plan_for(profile, window_days=days)
    validation = validation_folds(
        dataset, plan.shape, folds=folds, window_days=days, mask_seen=plan.exclude_seen, seed=seed
    )
    return profile, plan, validation


def select_pipeline(
    dataset: Dataset,
    *,
    budget_seconds: float | None = None,
    folds: int = 3,
    window_days: float = 7.0,
    seed: int = 0,
    models: list[str] | None = None,
    progress: Progress | None = None,
) -> Selection:
    """Choose and tune the pipeline for ``dataset`` on validation folds cut from it (see the module
    docstring); the caller refits the choice on all of ``dataset``. ``models`` restricts the
    portfolio to those sources."""
    started = time.perf_counter()
    budget = budget_seconds if budget_seconds is not None else default_budget(dataset.n_events)
    profile, plan, validation = planned_folds(dataset, folds=folds, window_days=window_days, seed=seed)
    options, skipped = portfolio(profile, plan, budget_seconds=budget)
    if models is not None:
        skipped.update({o.model: "not among the models asked for" for o in options if o.model not in models})
        options = [o for o in options if o.model in models]
    if not options:
        raise SearchError(f"no source to try on this data: {skipped}")
    search = _Search(
        validation,
        plan,
        started + budget * SEARCH_SHARE,
        progress,
        seed,
        budget_started=started,
        budget_end=started + budget,
    )
    log.info(
        "auto: %s folds of shape %s, %d sources to screen, budget %.0fs",
        len(validation),
        plan.shape,
        len(options),
        budget,
    )
    with reuse_fitted_sources():
        singles = _screen_and_confirm(search, options, skipped)
        fused = _forward_selection(search, singles, skipped)
    candidates = [*(s.trial for s in singles), *fused]
    best = max(candidates, key=lambda t: t.score)  # the first on a tie: singles come first
    reason = _reason(best, candidates)
    record = SearchRecord(
        profile=profile.model_dump(),
        plan={
            "validation": plan.shape,
            "window_days": plan.window_days,
            "folds": len(validation),
            "exclude_seen": plan.exclude_seen,
        },
        reasons=plan.reasons,
        skipped=skipped,
        budget_seconds=budget,
        seconds=round(time.perf_counter() - started, 3),
        seed=seed,
        trials=search.trials,
        chosen=best.label,
        reason=reason,
    )
    leaderboard = [
        Candidate(label=t.label, model=t.model, config=t.config, metrics=t.metrics, seconds=t.seconds)
        for t in sorted(candidates, key=lambda t: -t.score)
    ]
    log.info("auto: chose %s: %s", best.label, reason)
    return Selection(best.model, best.config, record, plan, leaderboard)


def _screen_and_confirm(
    search: _Search, options: list[SourceOption], skipped: dict[str, str]
) -> list[Scored]:
    """Screening on the latest fold in two rounds, as successive halving does: every source's
    first setting, cheapest first; then the other settings of the better half of the sources. Then
    the best setting of the better models on every fold. The confirmed singles, best first."""
    search.begin("screen")
    screened: dict[str, Scored] = {}
    first_round = [(option, option.configs()[0]) for option in options]
    _screen(search, first_round, screened, skipped, total=sum(len(o.configs()) for o in options))
    leaders = sorted(screened.values(), key=lambda s: -s.score)[: math.ceil(len(screened) / 2)]
    second_round = [(s.option, params) for s in leaders for params in s.option.configs()[1:]]
    second_round.sort(key=lambda setting: setting[0].cost)
    _screen(search, second_round, screened, skipped, done=len(first_round))
    search.report("screen", 1, 1, "done")
    ranked = sorted(screened.values(), key=lambda s: -s.score)
    keep = ranked[: max(CONFIRMED_MODELS, math.ceil(len(ranked) / 2))]
    if len(search.folds) <= 1:  # nothing to confirm on (tiny data may cut no fold at all)
        return keep
    search.begin("confirm")
    confirmed = []
    for done, scored in enumerate(keep):
        search.report("confirm", done, len(keep), scored.trial.label)
        if search.seconds_left() <= 0:
            break
        # Past the leader, a model is confirmed only where its other folds, at its first fold's
        # pace, fit in the stage's time left; a slower one is left out, a cheaper one after it
        # may still fit.
        pace = scored.trial.seconds / max(scored.trial.folds, 1)
        other_folds = pace * (len(search.folds) - scored.trial.folds)
        if confirmed and other_folds > search.seconds_left():
            skipped.setdefault(
                scored.trial.model,
                f"screened, but too slow to confirm on the other folds in the time left "
                f"(about {other_folds:.0f}s)",
            )
            continue
        confirmed.append(Scored(search.extend("confirm", scored.trial), scored.option, scored.first_fold))
    search.report("confirm", len(keep), len(keep), "done")
    # With no time to confirm any, the leader of the first fold is the one candidate.
    return sorted(confirmed, key=lambda s: -s.score) or keep[:1]


def _screen(
    search: _Search,
    settings: list[tuple[SourceOption, dict[str, Any]]],
    screened: dict[str, Scored],
    skipped: dict[str, str],
    *,
    done: int = 0,
    total: int | None = None,
) -> None:
    """Score each setting on the latest fold while the budget lasts, keeping each model's best."""
    total = total if total is not None else done + len(settings)
    for position, (option, params) in enumerate(settings, start=done):
        search.report("screen", position, total, option.model)
        reason = _no_time_for(search, option) if position else None  # the cheapest always runs
        if reason:
            if option.model not in screened:  # a model with one setting screened is not skipped
                skipped.setdefault(option.model, reason)
            continue
        trial = search.run(
            "screen", _label(option, params), option.model, {"seed": search.seed, **params}, n_folds=1
        )
        if option.model not in screened or trial.score > screened[option.model].score:
            screened[option.model] = Scored(trial, option, trial.score)


def _no_time_for(search: _Search, option: SourceOption) -> str | None:
    """Why ``option`` cannot be screened in the time left, or None. A source is screened only
    where its confirmation on every fold would fit too: on a quiet machine SASRec's screening
    (740 s on amazon-beauty) fitted the screening stage's time, and confirming it on two more
    folds would have taken the rest of the budget and more."""
    if search.seconds_left() <= 0:
        return "the budget ran out before it was screened"
    if option.cost > 2 * search.seconds_left():
        return f"too slow to screen in the time left (about {option.cost:.0f}s on this data)"
    folds = len(search.folds)
    if folds > 1 and option.cost * folds > search.single_sources_seconds_left():
        return (
            f"too slow to screen and confirm on {folds} folds in the time left "
            f"(about {option.cost:.0f}s a fold on this data)"
        )
    return None


def _forward_selection(search: _Search, singles: list[Scored], skipped: dict[str, str]) -> list[Trial]:
    """The best fused ranker, grown one source at a time and tried over the ranker's grid on the
    latest fold, then scored on every fold; and the blend of its sources. Their trials."""
    if len(singles) < 2:
        skipped["fusion"] = "fewer than two sources were confirmed on every fold"
        return []
    search.begin("fusion")
    chosen, pool = list(singles[:2]), list(singles[2:])
    # The first fused trial, once it leads the first fold, is confirmed on every fold even past
    # the search's time, and, once chosen, it is fitted again on all the data: it is started only
    # where its estimate on every fold (`fused_cost`) and its final fit (about one fold's worth:
    # its windows are the folds, which the search holds) end the whole fit within the budget and
    # its slack. On gowalla one fused fold took 720 s and the search ran twice its time; on
    # amazon-beauty, on a machine 1.6 times slower than usual, a start within twice the search's
    # time left ended the whole fit 33 % past its budget.
    first = _fusion_params(search, chosen)
    needed = search.fused_seconds(first) * (1 + 1 / max(len(search.folds), 1))
    left = search.seconds_to_latest_end()
    log.info(
        "auto fusion: %s estimated at %.0fs over %d folds and its final fit, %.0fs left",
        _fusion_label(chosen),
        needed,
        len(search.folds),
        left,
    )
    if needed > left:
        end = time.perf_counter() - search.budget_started + needed  # of the whole fit, from its start
        enough = min(end / (1 + BUDGET_SLACK), end - MIN_SLACK_SECONDS)  # whose slack holds it
        skipped["fusion"] = (
            f"too slow for the time left (about {needed:.0f}s over {len(search.folds)} folds and its final "
            f"fit, from its sources' measured fits and scoring, {max(left, 0):.0f}s left); a budget of "
            f"about {_minutes(enough)} would try it"
        )
        return []
    best = search.run("fusion", _fusion_label(chosen), "fusion", first, n_folds=1)
    # A later fused trial is started only when it, and the leader's confirmation on the other
    # folds after it, fit in the time left: growing the ranker never pushes its confirmation past
    # the budget. The cost per fold is the slowest fused trial so far (more sources cost more), or
    # the estimate of the trial to come where that is more.
    per_fold = best.seconds

    def affordable(config: dict[str, Any] | None = None) -> bool:
        needed = per_fold * len(search.folds)
        if config is not None:
            needed = max(needed, search.fused_seconds(config))
        return search.seconds_left() > needed

    while pool and len(chosen) < MAX_SOURCES and affordable():
        tries = []
        for source in pool[:3]:
            sources = [*chosen, source]
            params = _fusion_params(search, sources)
            if not affordable(params):
                break
            search.report("forward selection", len(chosen) - 2, MAX_SOURCES - 2, f"+ {source.trial.model}")
            trial = search.run("fusion", _fusion_label(sources), "fusion", params, n_folds=1)
            per_fold = max(per_fold, trial.seconds)
            tries.append((source, trial))
        if not tries:
            break
        source, trial = max(tries, key=lambda pair: pair[1].score)
        if trial.score <= best.score * (1 + MIN_GAIN):
            break
        chosen.append(source)
        pool.remove(source)
        best = trial
    for done, (name, variant) in enumerate(RANKER_GRID.items()):
        if not affordable():
            break
        search.report("ranker", done, len(RANKER_GRID), name)
        label = f"{_fusion_label(chosen)}, {name}"
        trial = search.run("ranker", label, "fusion", _fusion_params(search, chosen, variant), n_folds=1)
        per_fold = max(per_fold, trial.seconds)
        if trial.score > best.score:
            best = trial
    # The fused candidate is compared with the singles on every fold. One that leads on the first
    # fold is confirmed even past the budget (its fits on the other folds), so it is never dropped
    # for want of time when it may be the best.
    if search.seconds_left() <= 0 and best.score <= max(s.first_fold for s in singles):
        skipped["fusion"] = (
            "the budget ran out before the fused ranker, behind on the first fold, was confirmed"
        )
        return []
    search.report("confirm fusion", 0, 1, best.label)
    fused = [search.extend("confirm", best)]
    search.report("confirm fusion", 1, 1, "done")
    # The blend fits on the same label windows as the fused ranker, so it costs about as much per
    # fold (amazon-beauty: 414 s against 466 s over 3 folds): it is tried only where that fits.
    if affordable():
        blend = {k: v for k, v in best.config.items() if k not in ("ranker", "relative_features")}
        fused.append(
            search.run("blend", f"blend of {', '.join(s.trial.model for s in chosen)}", "blend", blend)
        )
    else:
        skipped["blend"] = (
            f"too slow for the time left (about {per_fold * len(search.folds):.0f}s over "
            f"{len(search.folds)} folds, as the fused ranker)"
        )
    return fused


def _fusion_params(
    search: _Search, sources: list[Scored], variant: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A fused ranker's config over ``sources``, each at its confirmed setting and quota."""
    variant = dict(variant or {})
    holdout = search.plan.holdout()
    listed = []
    for source in sources:
        entry: dict[str, Any] = {"model": source.option.model, "n": source.option.n}
        if source.option.min_score is not None:
            entry["min_score"] = source.option.min_score
        params = {k: v for k, v in source.trial.config.items() if k != "seed"}
        if params:
            entry["params"] = params
        listed.append(entry)
    return {
        "seed": search.seed,
        "exclude_seen": search.plan.exclude_seen,
        "holdout": holdout,
        "sources": listed,
        "ranker": {"kind": "lightgbm", "params": dict(RANKER)},
        # The ranker learns on windows cut from less history than it serves on: scores and counts
        # relative to each user's best and to the mean travel between the two, raw ones do not.
        "relative_features": True,
        **variant,
    }


def _minutes(seconds: float) -> str:
    """``seconds`` rounded up to whole minutes, as ``--budget`` takes them (e.g. ``45m``)."""
    return f"{math.ceil(seconds / 60)}m"


def _fusion_label(sources: list[Scored]) -> str:
    return f"fusion of {', '.join(s.trial.model for s in sources)}"


def _label(option: SourceOption, params: dict[str, Any]) -> str:
    inner = ", ".join(f"{k}={v}" for k, v in params.items())
    return f"{option.model} ({inner})" if inner else option.model


def _reason(best: Trial, candidates: list[Trial]) -> str:
    others = sorted((t for t in candidates if t is not best), key=lambda t: -t.score)
    if not others:
        return f"the only candidate ({GATE_METRIC} {best.score:.4f} over {best.folds} folds)"
    runner = others[0]
    return (
        f"{best.label} has the best mean {GATE_METRIC} over {best.folds} validation folds, {best.score:.4f}, "
        f"of {len(candidates)} candidates (next: {runner.label}, {runner.score:.4f})"
    )
