"""`fusionrec train` and `fusionrec tune`.

``train`` reads the events from a store, fits the pipeline (``--config`` file, else the
``[pipeline]`` of ``fusionrec.toml`` when present, else the packaged default), scores it and a
popularity baseline on a temporal validation cut, refits on everything and adds a version to the
``--out`` repository. ``tune`` searches a space (JSON or TOML file) on validation data and writes
the best pipeline.
"""

from __future__ import annotations

import json
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fusionrec.cli.common import (
    JsonOption,
    StoreOption,
    UserError,
    emit_json,
    err,
    log,
    open_existing_store,
    store_url,
    user_errors,
)

if TYPE_CHECKING:
    from fusionrec.data.dataset import Dataset
    from fusionrec.engine.settings import EngineSettings
    from fusionrec.engine.training import BatchRun
    from fusionrec.fusion.config import PipelineFile
    from fusionrec.models.base import Recommender

PipelineOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="Pipeline TOML file (a [pipeline] table).",
        show_default="fusionrec.toml's [pipeline], else the default fused pipeline",
    ),
]
BASELINE_MODEL = "most_popular"  # what every trained version's metrics are read against


def resolve_pipeline(config: Path | None) -> tuple[PipelineFile, str]:
    """``--config`` file, else ``fusionrec.toml``'s ``[pipeline]``, else the packaged default."""
    from fusionrec.fusion.config import default_pipeline, load_pipeline, load_project_config
    from fusionrec.project import PROJECT_FILE

    if config is not None:
        return load_pipeline(config), str(config)
    if PROJECT_FILE.is_file():
        project = load_project_config(PROJECT_FILE)
        if project.pipeline is not None:
            return project.pipeline, f"{PROJECT_FILE}:[pipeline]"
    return default_pipeline(), "default pipeline"


def train(
    store: StoreOption = None,
    out: Annotated[
        Path, typer.Option("--out", help="Model repository folder: a new version is added.")
    ] = Path("models"),
    config: PipelineOption = None,
    valid_days: Annotated[
        float, typer.Option(help="Days held out to report offline metrics (0 = skip).")
    ] = 7.0,
    json_path: JsonOption = None,
    engine: Annotated[
        str | None,
        typer.Option(
            "--engine",
            show_default="fusionrec.toml's [engine] section, else in process",
            help="Run the batch jobs (interactions, popularity, co-visitation, candidates, ranking "
            "features) on duckdb or spark first, with fusionrec.toml's \\[engine] settings; outputs go "
            "into the version.",
        ),
    ] = None,
) -> None:
    """Train the fused pipeline on a store's events and add it to the model repository.

    The new version records its offline metrics on the last --valid-days days beside a popularity
    baseline scored on the same days.

    With --engine (or an \\[engine] section in fusionrec.toml) the batch jobs run on that engine
    first and write their outputs into the version. With \\[engine] events in Parquet the pipeline
    trains on the engine's interactions (matrix sources only). On spark, each spark_als source
    also writes every user's top 50 to the store's recommendations_batch table.

    Example: `fusionrec train --store duckdb:///shop.duckdb --out models/`
    """
    with user_errors():
        result = train_version(store, out, config=config, valid_days=valid_days, engine=engine)
    print_metrics(result)
    err.print(
        f"added {result['version']} to {out} ({result['pipeline']['model']}, from {result['pipeline_origin']})"
    )
    emit_json(result, json_path)


def train_version(
    store: str | None,
    out: Path,
    *,
    config: Path | None = None,
    valid_days: float = 7.0,
    engine: str | None = None,
) -> dict[str, Any]:
    """Fit the resolved pipeline on the store's events, add a version to ``out``; its record."""
    from fusionrec.data.dataset import Dataset
    from fusionrec.data.store import open_store
    from fusionrec.engine.settings import command_settings

    pipeline, origin = resolve_pipeline(config)
    settings = command_settings(engine)
    # Events from the engine's Parquet: the store only receives outputs, so it may be new.
    events_elsewhere = settings is not None and settings.events is not None
    with ExitStack() as stack:
        event_store = stack.enter_context(open_store(store_url(store), create=events_elsewhere))
        batch = _batch_jobs(settings, event_store, pipeline, stack) if settings is not None else None
        dataset = batch.dataset if batch is not None and batch.dataset is not None else None
        if dataset is None:
            dataset = Dataset.from_store(event_store)
        if dataset.n_events == 0:
            raise UserError(f"the store {store_url(store)} holds no events; add some with `fusionrec ingest`")
        model, result = _train_and_add(pipeline, origin, dataset, out, valid_days, batch)
        if settings is not None and settings.engine == "spark":
            from fusionrec.engine.training import publish_top_n

            result["recommendations_batch_rows"] = publish_top_n(model, event_store)
    return result


def print_metrics(result: dict[str, Any], cutoff: int = 20) -> None:
    """The version's offline metrics at ``cutoff`` beside the popularity baseline's, as one table."""
    from rich.table import Table

    metrics = result.get("offline_metrics", {})
    baseline = result.get("baseline_metrics", {})
    names = [name for name in metrics if name.endswith(f"@{cutoff}")]
    if not names:
        return
    table = Table(title=f"{result['version']}: {result['offline_protocol']}")
    table.add_column("metric", style="bold")
    table.add_column(result["pipeline"]["model"], justify="right")
    table.add_column(f"baseline ({BASELINE_MODEL})", justify="right")
    table.add_column("change", justify="right")
    for name in names:
        base = baseline.get(name)
        change = f"{metrics[name] / base - 1:+.0%}" if base else "-"
        table.add_row(name, f"{metrics[name]:.4f}", f"{base:.4f}" if base is not None else "-", change)
    err.print(table)


def _batch_jobs(
    settings: EngineSettings, event_store: Any, pipeline: PipelineFile, stack: ExitStack
) -> BatchRun:
    """Run the batch jobs on the configured engine; its outputs live in a temporary folder until
    the version copies them."""
    from fusionrec.engine import get_engine
    from fusionrec.engine.training import check_matrix_only, run_batch_jobs

    outputs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fusionrec-batch-"))) / "batch"
    from_parquet = settings.events is not None
    if from_parquet:
        check_matrix_only(pipeline.model_params())
    engine = stack.enter_context(get_engine(settings, event_store))
    log.info("running the batch jobs on %s", settings.engine)
    return run_batch_jobs(engine, outputs=outputs, build_dataset=from_parquet)


def _train_and_add(
    pipeline: PipelineFile,
    origin: str,
    dataset: Dataset,
    out: Path,
    valid_days: float,
    batch: BatchRun | None,
) -> tuple[Recommender, dict[str, Any]]:
    """Score the pipeline and the baseline on a temporal validation cut, refit on everything, add the
    version; the model and its record."""
    from fusionrec.data.split import temporal_split
    from fusionrec.fusion.artifacts import ModelRepository
    from fusionrec.models.registry import create_model
    from fusionrec.tuning.search import Fold, score_on_fold

    metrics: dict[str, float] = {}
    baseline: dict[str, float] = {}
    if valid_days > 0:
        split = temporal_split(dataset, test_days=valid_days)
        if split.train.n_events and split.test.n_events:
            fold = Fold(split.train, split.test)
            log.info("scoring %s on the last %g days", pipeline.model, valid_days)
            metrics = score_on_fold(pipeline.model, pipeline.model_params(), fold)
            baseline = score_on_fold(BASELINE_MODEL, {}, fold)
    log.info("fitting %s on all %s events", pipeline.model, f"{dataset.n_events:,}")
    model = create_model(pipeline.model, **pipeline.model_params()).fit(dataset)
    metadata = {
        "pipeline": pipeline.model_dump(mode="json"),
        "pipeline_origin": origin,
        "offline_metrics": {k: v for k, v in metrics.items() if "@" in k},
        "offline_protocol": f"temporal: last {valid_days:g} days held out, full ranking, seen items masked",
        "baseline_model": BASELINE_MODEL,
        "baseline_metrics": {k: v for k, v in baseline.items() if "@" in k},
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
    import tomllib

    text = path.read_text()
    return tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)


def tune(
    space: Annotated[
        Path, typer.Option("--space", help="Search space: JSON or TOML file, dotted path -> spec.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Where the best pipeline TOML is written.")],
    store: StoreOption = None,
    config: PipelineOption = None,
    trials: Annotated[
        int, typer.Option(min=1, help="Trials in total (a resumed study counts its earlier ones).")
    ] = 20,
    sampler: Annotated[str, typer.Option(help="tpe or grid.")] = "tpe",
    storage: Annotated[
        str | None, typer.Option(help="Optuna storage, e.g. sqlite:///study.db.", show_default="in memory")
    ] = None,
    study: Annotated[
        str | None, typer.Option(help="Study name (resumed when it exists).", show_default="a new study")
    ] = None,
    metric: Annotated[str, typer.Option(help="Metric to maximise.")] = "NDCG@20",
    valid_days: Annotated[float, typer.Option(help="Validation window: the last days of the data.")] = 7.0,
) -> None:
    """Search hyperparameters and fusion weights on validation data; write the best pipeline.

    Example: `fusionrec tune --store duckdb:///shop.duckdb --space space.toml --out best.toml`
    """
    from fusionrec.data.dataset import Dataset
    from fusionrec.data.split import temporal_split
    from fusionrec.tuning.search import Fold, best_pipeline_toml
    from fusionrec.tuning.search import tune as run_tune

    with user_errors():
        if sampler not in ("tpe", "grid"):
            raise UserError(f"--sampler must be tpe or grid, not {sampler!r}")
        pipeline, _ = resolve_pipeline(config)
        try:
            search_space = _read_space(space)
        except (OSError, ValueError) as error:
            raise UserError(f"{space}: {error}") from error
        with open_existing_store(store) as event_store:
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
    err.print(f"best {metric} = {result.best_value:.4f} after {len(result.trials)} trials; wrote {out}")
