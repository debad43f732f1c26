"""The one training path: `fusionrec train`, `fusionrec demo` and the service's (scheduled) retraining.

`train_version` first chooses the pipeline by the automatic search (`fusionrec.tuning.auto`) on the
days before the last ``valid_days`` unless one is declared, then scores it on those last days (fit
on the days before), beside a popularity baseline and the reference version's pipeline refit on the
same window, refits it on all the data and adds the version with its typed manifest
(`fusionrec.versions.VersionManifest`) and its pipeline file. The deploy gate later reads that
comparison.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fusionrec.project import PROJECT_FILE
from fusionrec.versions import GATE_METRIC, Candidate, Evaluation, Reference, VersionManifest, newest_accepted

if TYPE_CHECKING:
    from fusionrec.data.dataset import Dataset
    from fusionrec.engine.training import BatchRun
    from fusionrec.fusion.artifacts import ModelRepository
    from fusionrec.models.base import Recommender
    from fusionrec.tuning.auto import Progress, Selection

log = logging.getLogger("fusionrec")

BASELINE_MODEL = "most_popular"  # what every version's metrics are read against
AUTO_REFERENCE = "newest accepted"
AUTO_MODEL = "auto"  # the automatic search (`fusionrec.tuning.auto`): what trains when nothing is declared
PIPELINE_FILE = "pipeline.toml"  # the version's pipeline, for `fusionrec train --config`


@dataclass(frozen=True)
class TrainingSpec:
    """What to train: a registered model name with its parameters, and where that choice came from."""

    model: str
    params: dict[str, Any] = field(default_factory=dict)
    origin: str = ""

    def record(self) -> dict[str, Any]:
        """As a manifest records it (enough to train it again)."""
        return {"model": self.model, "config": self.params}

    @classmethod
    def of_manifest(cls, manifest: VersionManifest) -> TrainingSpec:
        return cls(manifest.pipeline["model"], dict(manifest.pipeline.get("config", {})), manifest.version)

    def toml(self) -> str:
        """The pipeline as a file `fusionrec train --config` reads."""
        from fusionrec.fusion.config import parse_pipeline, pipeline_to_toml

        header = f"# {self.origin}\n" if self.origin else ""
        return header + pipeline_to_toml(parse_pipeline({"model": self.model, "config": self.params}))


def auto_spec(
    budget_seconds: float | None = None, *, folds: int = 3, seed: int = 0, horizon_days: float = 7.0
) -> TrainingSpec:
    """The automatic search within ``budget_seconds`` (None: scaled with the data), validating on
    windows as long as the ``horizon_days`` the version is judged on (its report window)."""
    params: dict[str, Any] = {"folds": folds, "seed": seed, "window_days": horizon_days}
    if budget_seconds is not None:
        params["budget_seconds"] = budget_seconds
    return TrainingSpec(AUTO_MODEL, params, "automatic search")


def resolve_pipeline(
    config: Path | None, project: Path = PROJECT_FILE, *, auto: TrainingSpec | None = None
) -> TrainingSpec:
    """``config`` (a pipeline file), else the project file's ``[pipeline]``, else ``auto`` (the
    automatic search), else the packaged default pipeline."""
    from fusionrec.fusion.config import default_pipeline, load_pipeline, parse_pipeline
    from fusionrec.project import read_project_file

    if config is not None:
        pipeline, origin = load_pipeline(config), str(config)
    elif (declared := read_project_file(project).get("pipeline")) is not None:
        pipeline, origin = parse_pipeline(declared, where=f"{project.name}:pipeline"), f"{project}:[pipeline]"
    elif auto is not None:
        return auto
    else:
        pipeline, origin = default_pipeline(), "default pipeline"
    return TrainingSpec(pipeline.model, pipeline.model_params(), origin)


def before_report_window(dataset: Dataset, valid_days: float) -> Dataset:
    """The events before the last ``valid_days`` days, which a version reports its metrics on
    (all of ``dataset`` when nothing is held back or nothing comes before)."""
    from fusionrec.data.split import temporal_split

    if valid_days <= 0:
        return dataset
    before = temporal_split(dataset, test_days=valid_days).train
    return before if before.n_events else dataset


def choose_pipeline(
    spec: TrainingSpec, dataset: Dataset, valid_days: float, progress: Progress | None = None
) -> tuple[Selection, TrainingSpec]:
    """Run the automatic search on the days before the last ``valid_days`` (the window the
    version's metrics are reported on is never used to choose); the search and the spec it chose."""
    from fusionrec.tuning.auto import select_pipeline
    from fusionrec.tuning.auto_model import AutoConfig

    settings = AutoConfig(**spec.params)
    selection = select_pipeline(
        before_report_window(dataset, valid_days),
        budget_seconds=settings.budget_seconds,
        folds=settings.folds,
        window_days=settings.window_days,
        seed=settings.seed,
        models=settings.models,
        progress=progress,
    )
    origin = f"automatic search: {selection.record.chosen}"
    return selection, TrainingSpec(selection.model, selection.params, origin)


def evaluate_on_window(
    spec: TrainingSpec,
    dataset: Dataset,
    valid_days: float,
    reference: VersionManifest | None = None,
    *,
    guardrail: bool = True,
    mask_seen: bool = True,
) -> tuple[Evaluation | None, TrainingSpec]:
    """Score ``spec`` on the last ``valid_days`` days (fit on the days before) beside the baseline
    and ``reference``; the evaluation and the spec to ship. None when the window or the days before
    it hold no events (then ``spec`` ships as it is).

    With ``guardrail``, each source of a fused pipeline is scored on the same days too (the sources
    the fused model fit on those days, so it costs no extra training), and for a ``fusion`` the blend
    of the same sources (fit on those days); the best candidate on `GATE_METRIC` ships: a fused
    model that loses to the blend or to one of its own sources is never shipped. ``mask_seen``:
    each user's earlier items are left out of the ranking (not where customers buy again).
    """
    from fusionrec.data.split import temporal_split
    from fusionrec.models.registry import create_model
    from fusionrec.tuning.search import Fold, score_fitted

    if valid_days <= 0:
        return None, spec
    split = temporal_split(dataset, test_days=valid_days)
    if not (split.train.n_events and split.test.n_events):
        return None, spec
    fold = Fold(split.train, split.test, mask_seen)

    def score(model: Recommender) -> dict[str, float]:
        return {k: v for k, v in score_fitted(model, fold).items() if "@" in k}

    def fit_and_score(name: str, params: dict[str, Any]) -> dict[str, float]:
        return score(create_model(name, **params).fit(fold.train))

    log.info("scoring %s on the last %g days", spec.model, valid_days)
    fitted = create_model(spec.model, **spec.params).fit(fold.train)
    leaderboard = [Candidate(label=spec.model, model=spec.model, config=spec.params, metrics=score(fitted))]
    if guardrail and fitted.combines_sources:
        for source in fitted.config.sources:  # type: ignore[attr-defined]
            model = fitted.source_models[source.label]  # type: ignore[attr-defined]
            params = {"seed": fitted.config.seed, **source.params}  # type: ignore[attr-defined]
            leaderboard.append(
                Candidate(
                    label=f"source {source.label}", model=source.model, config=params, metrics=score(model)
                )
            )
    if guardrail and spec.model == "fusion":  # the same sources, blended instead of ranked
        blend = {k: v for k, v in spec.params.items() if k != "ranker"}
        leaderboard.append(
            Candidate(label="blend", model="blend", config=blend, metrics=fit_and_score("blend", blend))
        )
    best = max(leaderboard, key=lambda c: c.metrics.get(GATE_METRIC, 0.0))  # the first on a tie
    if best is leaderboard[0]:
        chosen = spec
        reason = (
            f"{spec.model} is the best of {len(leaderboard)} candidates on {GATE_METRIC}"
            if len(leaderboard) > 1
            else "the only candidate"
        )
    else:
        chosen = TrainingSpec(best.model, best.config, f"{spec.origin}, {best.label} (guardrail)")
        reason = (
            f"{best.label} ({GATE_METRIC} {best.metrics.get(GATE_METRIC, 0.0):.4f}) beats the fused "
            f"{spec.model} ({leaderboard[0].metrics.get(GATE_METRIC, 0.0):.4f}) and every other "
            "candidate on the validation days"
        )
    log.info("shipping %s: %s", best.label, reason)
    compared = None
    if reference is not None:
        log.info("scoring the reference version %s on the same days", reference.version)
        previous = TrainingSpec.of_manifest(reference)
        compared = Reference(
            version=reference.version, metrics=fit_and_score(previous.model, previous.params)
        )
    baseline = fit_and_score(BASELINE_MODEL, {})
    evaluation = Evaluation(
        protocol=f"temporal: last {valid_days:g} days held out, full ranking, "
        + ("seen items masked" if mask_seen else "seen items rankable (customers buy again)"),
        metrics=best.metrics,
        baseline_model=BASELINE_MODEL,
        baseline_metrics=baseline,
        reference=compared,
        leaderboard=leaderboard,
        chosen=best.label,
        reason=reason,
    )
    return evaluation, chosen


def train_version(
    dataset: Dataset,
    repository: ModelRepository,
    spec: TrainingSpec,
    *,
    trained_by: str,
    valid_days: float = 7.0,
    reference: VersionManifest | str | None = AUTO_REFERENCE,
    batch: BatchRun | None = None,
    guardrail: bool = True,
    progress: Progress | None = None,
) -> tuple[Recommender, VersionManifest]:
    """Evaluate, refit on all of ``dataset`` and add the version; the fitted model and its manifest.

    ``spec`` ``auto`` (`auto_spec`) first chooses the pipeline by the automatic search on the data
    before the validation days (`choose_pipeline`), whose guardrail replaces the one below.
    ``reference``: the version to compare with on the same window; by default the repository's
    newest accepted version (what a freshly started service would serve), None for no comparison.
    ``guardrail``: ship the best of the pipeline and its sources on the validation days
    (`evaluate_on_window`); without it, the pipeline ships as given.
    """
    from fusionrec.fusion.source_cache import reuse_fitted_sources
    from fusionrec.models.registry import create_model

    if isinstance(reference, str):
        if reference != AUTO_REFERENCE:
            raise ValueError(f"reference must be a manifest, None or {AUTO_REFERENCE!r}, not {reference!r}")
        reference = newest_accepted(repository.manifests())
    # The search's folds, the validation days' fit and the final fit's label windows are often
    # the same events: each source is fit once for all of them.
    with reuse_fitted_sources():
        selection = None
        mask_seen = True
        if spec.model == AUTO_MODEL:
            selection, spec = choose_pipeline(spec, dataset, valid_days, progress)
            guardrail = False  # the search chose among the fusion, the blend and every source already
            mask_seen = selection.plan.exclude_seen
        evaluation, spec = evaluate_on_window(
            spec, dataset, valid_days, reference, guardrail=guardrail, mask_seen=mask_seen
        )
        if selection is not None and evaluation is not None:
            evaluation = evaluation.model_copy(
                update={
                    "protocol": f"{evaluation.protocol}; chosen on {selection.record.plan['folds']} validation "
                    "folds before these days",
                    "leaderboard": selection.leaderboard,
                    "chosen": selection.record.chosen,
                    "reason": selection.record.reason,
                }
            )
        log.info("fitting %s on all %s events", spec.model, f"{dataset.n_events:,}")
        model = create_model(spec.model, **spec.params).fit(dataset)
    record: dict[str, Any] = {
        "trained_by": trained_by,
        "pipeline": spec.record(),
        "pipeline_origin": spec.origin,
        "data": {**dataset.describe(), **_time_span(dataset)},
        "evaluation": evaluation,
        "search": selection.record if selection is not None else None,
        "timings": getattr(model, "timings_", {}),
    }
    extra = None
    if batch is not None:
        record["batch_jobs"] = batch.summary()
        extra = {"batch": batch.outputs}
    return model, repository.add_version(model, record, extra=extra, texts={PIPELINE_FILE: spec.toml()})


def _time_span(dataset: Dataset) -> dict[str, str]:
    if dataset.n_events == 0:
        return {}
    first, last = (
        datetime.fromtimestamp(int(t), UTC).isoformat()
        for t in (dataset.timestamp.min(), dataset.timestamp.max())
    )
    return {"first_event": first, "last_event": last}
