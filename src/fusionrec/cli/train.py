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
    engine_settings,
    err,
    log,
    open_existing_store,
    signing_key,
    store_url,
    user_errors,
)

if TYPE_CHECKING:
    from fusionrec.engine.settings import EngineSettings
    from fusionrec.engine.training import BatchRun
    from fusionrec.versions import VersionManifest

PipelineOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        help="Pipeline TOML file (a [pipeline] table).",
        show_default="fusionrec.toml's [pipeline], else the default fused pipeline",
    ),
]


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
    guardrail: Annotated[
        bool,
        typer.Option(
            "--guardrail/--no-guardrail",
            help="Score each source of the fused pipeline and their blend on the validation days too "
            "and ship the best of them and the fused model (--no-guardrail ships the pipeline as given).",
        ),
    ] = True,
) -> None:
    """Train the fused pipeline on a store's events and add it to the model repository.

    The guardrail scores the fused pipeline, each of its sources and their blend on the last
    --valid-days days and ships the best: a fused model that loses to one of its sources is never shipped; the version
    records every candidate's metrics and says why it chose.

    The new version records its offline metrics on the last --valid-days days beside a popularity
    baseline scored on the same days.

    With --engine (or an \\[engine] section in fusionrec.toml) the batch jobs run on that engine
    first and write their outputs into the version. With \\[engine] events in Parquet the pipeline
    trains on the engine's interactions (matrix sources only). On spark, each spark_als source
    also writes every user's top 50 to the store's recommendations_batch table.

    With a signing key (FUSIONREC_SERVING_SIGNING_KEY, or \\[serving] signing_key) the version's
    manifest is signed, and a service with the same key refuses versions that are not.

    Example: `fusionrec train --store duckdb:///shop.duckdb --out models/`
    """
    with user_errors():
        manifest, result = train_from_store(
            store,
            out,
            config=config,
            valid_days=valid_days,
            engine=engine,
            trained_by="fusionrec train",
            guardrail=guardrail,
        )
    print_metrics(result)
    err.print(f"added {result['version']} to {out} ({result['model']}, from {result['pipeline_origin']})")
    from fusionrec.versions import compare_with_reference

    verdict, reason = compare_with_reference(manifest)
    if verdict is False:
        err.print(
            f"[bold yellow]warning:[/] {result['version']} is worse than its reference ({reason}): "
            "the service's deploy gate will not activate it unless forced",
            highlight=False,
        )
    emit_json(result, json_path)


def train_from_store(
    store: str | None,
    out: Path,
    *,
    trained_by: str,
    config: Path | None = None,
    valid_days: float = 7.0,
    engine: str | None = None,
    guardrail: bool = True,
) -> tuple[VersionManifest, dict[str, Any]]:
    """Run the batch jobs if an engine is configured, train the resolved pipeline on the store's
    events (`fusionrec.training.train_version`) into the repository ``out``; the version's manifest,
    and the command's JSON result (the manifest, plus ``recommendations_batch_rows`` after Spark)."""
    from fusionrec.data.dataset import Dataset
    from fusionrec.data.store import open_store
    from fusionrec.fusion.artifacts import ModelRepository
    from fusionrec.training import resolve_pipeline, train_version

    spec = resolve_pipeline(config)
    settings = engine_settings(engine)
    # Events from the engine's Parquet: the store only receives outputs, so it may be new.
    events_elsewhere = settings is not None and settings.events is not None
    with ExitStack() as stack:
        event_store = stack.enter_context(open_store(store_url(store), create=events_elsewhere))
        batch = _batch_jobs(settings, event_store, spec.params, stack) if settings is not None else None
        dataset = batch.dataset if batch is not None and batch.dataset is not None else None
        if dataset is None:
            dataset = Dataset.from_store(event_store)
        if dataset.n_events == 0:
            raise UserError(f"the store {store_url(store)} holds no events; add some with `fusionrec ingest`")
        model, manifest = train_version(
            dataset,
            ModelRepository(out, signing_key=signing_key()),
            spec,
            trained_by=trained_by,
            valid_days=valid_days,
            batch=batch,
            guardrail=guardrail,
        )
        result = {"repository": str(out), **manifest.model_dump(mode="json")}
        if settings is not None and settings.engine == "spark":
            from fusionrec.engine.training import publish_top_n

            result["recommendations_batch_rows"] = publish_top_n(model, event_store)
    return manifest, result


def print_metrics(result: dict[str, Any], cutoff: int = 20) -> None:
    """The version's offline metrics at ``cutoff`` beside the baseline's (and the reference
    version's, on the same window), then the guardrail's candidates and why one shipped, on
    standard error."""
    from rich.table import Table

    evaluation = result.get("evaluation") or {}
    metrics = evaluation.get("metrics", {})
    names = [name for name in metrics if name.endswith(f"@{cutoff}")]
    if not names:
        return
    columns = {
        result["model"]: metrics,
        f"baseline ({evaluation['baseline_model']})": evaluation["baseline_metrics"],
    }
    reference = evaluation.get("reference")
    if reference:
        columns[f"reference ({reference['version']})"] = reference["metrics"]
    table = Table(title=f"{result['version']}: {evaluation['protocol']}")
    table.add_column("metric", style="bold")
    for title in columns:
        table.add_column(title, justify="right")
    table.add_column("vs baseline", justify="right")
    baseline = evaluation["baseline_metrics"]
    for name in names:
        cells = [f"{values[name]:.4f}" if name in values else "-" for values in columns.values()]
        change = f"{metrics[name] / baseline[name] - 1:+.0%}" if baseline.get(name) else "-"
        table.add_row(name, *cells, change)
    err.print(table)
    leaderboard = evaluation.get("leaderboard", [])
    if len(leaderboard) > 1:
        metric = f"NDCG@{cutoff}"
        board = Table(title=f"candidates on the validation days ({metric})")
        board.add_column("candidate", style="bold")
        board.add_column(metric, justify="right")
        board.add_column("shipped", justify="center")
        for candidate in sorted(leaderboard, key=lambda c: -c["metrics"].get(metric, 0.0)):
            shipped = "yes" if candidate["label"] == evaluation["chosen"] else ""
            board.add_row(candidate["label"], f"{candidate['metrics'].get(metric, 0.0):.4f}", shipped)
        err.print(board)
    if evaluation.get("reason"):
        err.print(f"shipped {evaluation['chosen']}: {evaluation['reason']}", highlight=False)


def _batch_jobs(
    settings: EngineSettings, event_store: Any, params: dict[str, Any], stack: ExitStack
) -> BatchRun:
    """Run the batch jobs on the configured engine; its outputs live in a temporary folder until
    the version copies them."""
    from fusionrec.engine import get_engine
    from fusionrec.engine.training import check_matrix_only, run_batch_jobs

    outputs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fusionrec-batch-"))) / "batch"
    from_parquet = settings.events is not None
    if from_parquet:
        check_matrix_only(params)
    engine = stack.enter_context(get_engine(settings, event_store))
    log.info("running the batch jobs on %s", settings.engine)
    return run_batch_jobs(engine, outputs=outputs, build_dataset=from_parquet)


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
    from fusionrec.training import resolve_pipeline
    from fusionrec.tuning.search import Fold, best_pipeline_toml
    from fusionrec.tuning.search import tune as run_tune

    with user_errors():
        if sampler not in ("tpe", "grid"):
            raise UserError(f"--sampler must be tpe or grid, not {sampler!r}")
        spec = resolve_pipeline(config)
        try:
            search_space = _read_space(space)
        except (OSError, ValueError) as error:
            raise UserError(f"{space}: {error}") from error
        with open_existing_store(store) as event_store:
            dataset = Dataset.from_store(event_store)
        split = temporal_split(dataset, test_days=valid_days)
        result = run_tune(
            spec.model,
            dataset,
            search_space,
            base_params=spec.params,
            metric=metric,
            n_trials=trials,
            sampler=sampler,  # type: ignore[arg-type]
            storage=storage,
            study_name=study,
            fold=Fold(split.train, split.test),
        )
        best_pipeline_toml(result, out)
    err.print(f"best {metric} = {result.best_value:.4f} after {len(result.trials)} trials; wrote {out}")
