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
from fusionrec.versions import Evaluation, Reference, VersionManifest, newest_accepted

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
    spec: TrainingSpec, dataset: Dataset, valid_days: float, reference: VersionManifest | None = None
) -> Evaluation | None:
    """Metrics of ``spec``, the baseline and ``reference`` on the last ``valid_days`` days (each fit
    on the days before); None when the window or the days before it hold no events."""
    from fusionrec.data.split import temporal_split
    from fusionrec.tuning.search import Fold, score_on_fold

    if valid_days <= 0:
        return None
    split = temporal_split(dataset, test_days=valid_days)
    if not (split.train.n_events and split.test.n_events):
        return None
    fold = Fold(split.train, split.test)

    def score(model: str, params: dict[str, Any]) -> dict[str, float]:
        return {k: v for k, v in score_on_fold(model, params, fold).items() if "@" in k}

    log.info("scoring %s on the last %g days", spec.model, valid_days)
    metrics = score(spec.model, spec.params)
    compared = None
    if reference is not None:
        log.info("scoring the reference version %s on the same days", reference.version)
        previous = TrainingSpec.of_manifest(reference)
        compared = Reference(version=reference.version, metrics=score(previous.model, previous.params))
    return Evaluation(
        protocol=f"temporal: last {valid_days:g} days held out, full ranking, seen items masked",
        metrics=metrics,
        baseline_model=BASELINE_MODEL,
        baseline_metrics=score(BASELINE_MODEL, {}),
        reference=compared,
    )


def train_version(
    dataset: Dataset,
    repository: ModelRepository,
    spec: TrainingSpec,
    *,
    trained_by: str,
    valid_days: float = 7.0,
    reference: VersionManifest | str | None = AUTO_REFERENCE,
    batch: BatchRun | None = None,
) -> tuple[Recommender, VersionManifest]:
    """Evaluate, refit on all of ``dataset`` and add the version; the fitted model and its manifest.

    ``reference``: the version to compare with on the same window; by default the repository's
    newest accepted version (what a freshly started service would serve), None for no comparison.
    """
    from fusionrec.models.registry import create_model

    if isinstance(reference, str):
        if reference != AUTO_REFERENCE:
            raise ValueError(f"reference must be a manifest, None or {AUTO_REFERENCE!r}, not {reference!r}")
        reference = newest_accepted(repository.manifests())
    evaluation = evaluate_on_window(spec, dataset, valid_days, reference)
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
