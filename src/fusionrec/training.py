"""The one training path: `fusionrec train`, `fusionrec demo` and the service's (scheduled) retraining.

`train_version` scores the pipeline on a validation window (the last ``valid_days`` days, fit on
the days before), beside a popularity baseline and the reference version's pipeline refit on the
same window, then refits the pipeline on all the data and adds the version with its typed manifest
(`fusionrec.versions.VersionManifest`). The deploy gate later reads that comparison.
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

log = logging.getLogger("fusionrec")

BASELINE_MODEL = "most_popular"  # what every version's metrics are read against
AUTO_REFERENCE = "newest accepted"


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


def resolve_pipeline(config: Path | None, project: Path = PROJECT_FILE) -> TrainingSpec:
    """``config`` (a pipeline file), else the project file's ``[pipeline]``, else the packaged default."""
    from fusionrec.fusion.config import default_pipeline, load_pipeline, parse_pipeline
    from fusionrec.project import read_project_file

    if config is not None:
        pipeline, origin = load_pipeline(config), str(config)
    elif (declared := read_project_file(project).get("pipeline")) is not None:
        pipeline, origin = parse_pipeline(declared, where=f"{project.name}:pipeline"), f"{project}:[pipeline]"
    else:
        pipeline, origin = default_pipeline(), "default pipeline"
    return TrainingSpec(pipeline.model, pipeline.model_params(), origin)


def evaluate_on_window(
    spec: TrainingSpec,
    dataset: Dataset,
    valid_days: float,
    reference: VersionManifest | None = None,
    *,
    guardrail: bool = True,
) -> tuple[Evaluation | None, TrainingSpec]:
    """Score ``spec`` on the last ``valid_days`` days (fit on the days before) beside the baseline
    and ``reference``; the evaluation and the spec to ship. None when the window or the days before
    it hold no events (then ``spec`` ships as it is).

    With ``guardrail``, each source of a fused pipeline is scored on the same days too (the sources
    the fused model fit on those days, so it costs no extra training), and for a ``fusion`` the blend
    of the same sources (fit on those days); the best candidate on `GATE_METRIC` ships: a fused
    model that loses to the blend or to one of its own sources is never shipped.
    """
    from fusionrec.data.split import temporal_split
    from fusionrec.models.registry import create_model
    from fusionrec.tuning.search import Fold, score_fitted

    if valid_days <= 0:
        return None, spec
    split = temporal_split(dataset, test_days=valid_days)
    if not (split.train.n_events and split.test.n_events):
        return None, spec
    fold = Fold(split.train, split.test)

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
        protocol=f"temporal: last {valid_days:g} days held out, full ranking, seen items masked",
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
) -> tuple[Recommender, VersionManifest]:
    """Evaluate, refit on all of ``dataset`` and add the version; the fitted model and its manifest.

    ``reference``: the version to compare with on the same window; by default the repository's
    newest accepted version (what a freshly started service would serve), None for no comparison.
    ``guardrail``: ship the best of the pipeline and its sources on the validation days
    (`evaluate_on_window`); without it, the pipeline ships as given.
    """
    from fusionrec.models.registry import create_model

    if isinstance(reference, str):
        if reference != AUTO_REFERENCE:
            raise ValueError(f"reference must be a manifest, None or {AUTO_REFERENCE!r}, not {reference!r}")
        reference = newest_accepted(repository.manifests())
    evaluation, spec = evaluate_on_window(spec, dataset, valid_days, reference, guardrail=guardrail)
    log.info("fitting %s on all %s events", spec.model, f"{dataset.n_events:,}")
    model = create_model(spec.model, **spec.params).fit(dataset)
    record: dict[str, Any] = {
        "trained_by": trained_by,
        "pipeline": spec.record(),
        "pipeline_origin": spec.origin,
        "data": {**dataset.describe(), **_time_span(dataset)},
        "evaluation": evaluation,
        "timings": getattr(model, "timings_", {}),
    }
    extra = None
    if batch is not None:
        record["batch_jobs"] = batch.summary()
        extra = {"batch": batch.outputs}
    return model, repository.add_version(model, record, extra=extra)


def _time_span(dataset: Dataset) -> dict[str, str]:
    if dataset.n_events == 0:
        return {}
    first, last = (
        datetime.fromtimestamp(int(t), UTC).isoformat()
        for t in (dataset.timestamp.min(), dataset.timestamp.max())
    )
    return {"first_event": first, "last_event": last}
