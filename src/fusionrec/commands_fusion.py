"""`fusionrec train` and `fusionrec tune`: Typer functions the lead registers in `cli.py`.

    app.command("train")(commands_fusion.train)
    app.command("tune")(commands_fusion.tune)

``train`` reads the events from a store, fits the pipeline (``--config`` file, else the
``[pipeline]`` of ``fusionrec.toml`` when present, else the packaged default), scores it on a
temporal validation cut, refits on everything and adds a version to the ``--out`` repository.
``tune`` searches a space (JSON or TOML file) on validation data and writes the best pipeline.
"""

from __future__ import annotations

import json
import logging
import tempfile
import tomllib
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fusionrec.engine.settings import EngineSettings, EngineSettingsError, command_settings
from fusionrec.fusion.config import (
    PipelineConfigError,
    PipelineFile,
    default_pipeline,
    load_pipeline,
    load_project_config,
)

if TYPE_CHECKING:
    from fusionrec.data.dataset import Dataset
    from fusionrec.engine.training import BatchRun
    from fusionrec.models.base import Recommender

log = logging.getLogger("fusionrec")
PROJECT_FILE = Path("fusionrec.toml")


def resolve_pipeline(config: Path | None) -> tuple[PipelineFile, str]:
    """``--config`` file, else ``fusionrec.toml``'s ``[pipeline]``, else the packaged default."""
    if config is not None:
        return load_pipeline(config), str(config)
    if PROJECT_FILE.is_file():
        project = load_project_config(PROJECT_FILE)
        if project.pipeline is not None:
            return project.pipeline, f"{PROJECT_FILE}:[pipeline]"
    return default_pipeline(), "default pipeline"


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def train(
    store: Annotated[str, typer.Option("--store", envvar="FUSIONREC_STORE", help="Event store URL.")],
    out: Annotated[Path, typer.Option("--out", help="Model repository folder: a new version is added.")],
    config: Annotated[Path | None, typer.Option("--config", help="Pipeline TOML file.")] = None,
    valid_days: Annotated[
        float, typer.Option(help="Days held out to report offline metrics (0 = skip).")
    ] = 7.0,
    json_path: Annotated[
        str | None, typer.Option("--json", help="Write the result as JSON ('-' = stdout).")
    ] = None,
    engine: Annotated[
        str | None,
        typer.Option(
            "--engine",
            help="Run the batch jobs (interactions, popularity, co-visitation, candidates, ranking "
            "features) on duckdb or spark first, with fusionrec.toml's [engine] settings; outputs go "
            "into the version.",
        ),
    ] = None,
) -> None:
    """Train the fused pipeline on a store's events and add it to the model repository.

    With --engine (or an [engine] section in fusionrec.toml) the batch jobs run on that engine
    first and write their outputs into the version. With [engine] events in Parquet the pipeline
    trains on the engine's interactions (matrix sources only). On spark, each spark_als source
    also writes every user's top 50 to the store's recommendations_batch table.
    """
    from fusionrec.data.dataset import Dataset
    from fusionrec.data.store import open_store

    try:
        pipeline, origin = resolve_pipeline(config)
        settings = command_settings(engine)
    except (PipelineConfigError, EngineSettingsError) as error:
        _fail(str(error))
    with ExitStack() as stack:
        event_store = stack.enter_context(open_store(store))
        batch = _batch_jobs(settings, event_store, pipeline, stack) if settings is not None else None
        dataset = batch.dataset if batch is not None and batch.dataset is not None else None
        if dataset is None:
            dataset = Dataset.from_store(event_store)
        if dataset.n_events == 0:
            _fail(f"the store {store} holds no events")
        model, result = _train_and_add(pipeline, origin, dataset, out, valid_days, batch)
        if settings is not None and settings.engine == "spark":
            from fusionrec.engine.training import publish_top_n

            result["recommendations_batch_rows"] = publish_top_n(model, event_store)
    typer.echo(f"added {result['version']} to {out} ({pipeline.model}, from {origin})", err=True)
    if json_path:
        text = json.dumps(result, indent=2, default=str)
        if json_path == "-":
            typer.echo(text)
        else:
            Path(json_path).write_text(text + "\n")


def _batch_jobs(
    settings: EngineSettings, event_store: Any, pipeline: PipelineFile, stack: ExitStack
) -> BatchRun:
    """Run the batch jobs on the configured engine; its outputs live in a temporary folder until
    the version copies them."""
    from fusionrec.engine import get_engine
    from fusionrec.engine.base import EngineError
    from fusionrec.engine.training import check_matrix_only, run_batch_jobs

    outputs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fusionrec-batch-"))) / "batch"
    from_parquet = settings.events is not None
    try:
        if from_parquet:
            check_matrix_only(pipeline.model_params())
        engine = stack.enter_context(get_engine(settings, event_store))
        log.info("running the batch jobs on %s", settings.engine)
        return run_batch_jobs(engine, outputs=outputs, build_dataset=from_parquet)
    except EngineError as error:
        _fail(str(error))
        raise  # unreachable: _fail exits


def _train_and_add(
    pipeline: PipelineFile,
    origin: str,
    dataset: Dataset,
    out: Path,
    valid_days: float,
    batch: BatchRun | None,
) -> tuple[Recommender, dict[str, Any]]:
    """Score on a temporal validation cut, refit on everything, add the version; the model and its record."""
    from fusionrec.data.split import temporal_split
    from fusionrec.fusion.artifacts import ModelRepository
    from fusionrec.models.registry import create_model
    from fusionrec.tuning.search import Fold, score_on_fold

    metrics: dict[str, float] = {}
    if valid_days > 0:
        split = temporal_split(dataset, test_days=valid_days)
        if split.train.n_events and split.test.n_events:
            log.info("scoring %s on the last %.0f days", pipeline.model, valid_days)
            metrics = score_on_fold(pipeline.model, pipeline.model_params(), Fold(split.train, split.test))
    model = create_model(pipeline.model, **pipeline.model_params()).fit(dataset)
    metadata = {
        "pipeline": pipeline.model_dump(mode="json"),
        "pipeline_origin": origin,
        "offline_metrics": {k: v for k, v in metrics.items() if "@" in k},
        "offline_protocol": f"temporal: last {valid_days:g} days held out, full ranking, seen items masked",
        "data": dataset.describe(),
        "timings": getattr(model, "timings_", {}),
    }
    extra = None
    if batch is not None:
        metadata["batch_jobs"] = batch.summary()
        extra = {"batch": batch.outputs}
    version = ModelRepository(out).add_version(model, metadata, extra=extra)
    return model, {"version": version, "repository": str(out), **metadata}


def _read_space(path: Path) -> dict[str, Any]:
    text = path.read_text()
    return tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)


def tune(
    store: Annotated[str, typer.Option("--store", envvar="FUSIONREC_STORE", help="Event store URL.")],
    space: Annotated[Path, typer.Option("--space", help="Search space: JSON or TOML, dotted path -> spec.")],
    out: Annotated[Path, typer.Option("--out", help="Where the best pipeline TOML is written.")],
    config: Annotated[Path | None, typer.Option("--config", help="Pipeline TOML to start from.")] = None,
    trials: Annotated[
        int, typer.Option(help="Trials in total (a resumed study counts its earlier ones).")
    ] = 20,
    sampler: Annotated[str, typer.Option(help="tpe or grid.")] = "tpe",
    storage: Annotated[str | None, typer.Option(help="Optuna storage, e.g. sqlite:///study.db.")] = None,
    study: Annotated[str | None, typer.Option(help="Study name (resumed when it exists).")] = None,
    metric: Annotated[str, typer.Option(help="Metric to maximise.")] = "NDCG@20",
    valid_days: Annotated[float, typer.Option(help="Validation window: the last days of the data.")] = 7.0,
) -> None:
    """Search hyperparameters and fusion weights on validation data; write the best pipeline."""
    from fusionrec.data.dataset import Dataset
    from fusionrec.data.split import temporal_split
    from fusionrec.data.store import open_store
    from fusionrec.tuning.search import Fold, best_pipeline_toml
    from fusionrec.tuning.search import tune as run_tune

    if sampler not in ("tpe", "grid"):
        _fail(f"--sampler must be tpe or grid, not {sampler!r}")
    try:
        pipeline, _ = resolve_pipeline(config)
        search_space = _read_space(space)
    except (PipelineConfigError, OSError, ValueError) as error:
        _fail(str(error))
    with open_store(store) as event_store:
        dataset = Dataset.from_store(event_store)
    split = temporal_split(dataset, test_days=valid_days)
    result = run_tune(
        pipeline.model,
        dataset,
        search_space,
        base_params=pipeline.model_params(),
        metric=metric,
        n_trials=trials,
        sampler=sampler,  # type: ignore[arg-type]
        storage=storage,
        study_name=study,
        fold=Fold(split.train, split.test),
    )
    best_pipeline_toml(result, out, template=pipeline)
    typer.echo(
        f"best {metric} = {result.best_value:.4f} after {len(result.trials)} trials; wrote {out}", err=True
    )
