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
    parse_duration,
    signing_key,
    store_url,
    user_errors,
    work_progress,
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
BudgetOption = Annotated[
    str | None,
    typer.Option(
        "--budget",
        help=(
            "Time for the automatic search and its final fit: 90s, 30m, 1h30m. The search takes about"
            " 80 %; the fused ranker is tried only where its estimate ends the fit within a tenth"
            " (at least a minute) past the budget."
        ),
        show_default="scaled with the data: 40 s for 20k events, 20 min from 2M events",
    ),
]


def budget_seconds(budget: str | None) -> float | None:
    """The --budget option in seconds; None leaves the budget to scale with the data."""
    return parse_duration(budget, "--budget") if budget is not None else None


def train(
    store: StoreOption = None,
    out: Annotated[
        Path, typer.Option("--out", help="Model repository folder: a new version is added.")
    ] = Path("models"),
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="Pipeline TOML file (a [pipeline] table), e.g. a version's pipeline.toml: trains it "
            "instead of searching.",
            show_default="fusionrec.toml's [pipeline], else the automatic search",
        ),
    ] = None,
    budget: BudgetOption = None,
    folds: Annotated[
        int, typer.Option("--folds", help="Validation folds of the automatic search (1 or more).")
    ] = 3,
    seed: Annotated[
        int,
        typer.Option("--seed", help="Seed of the search and the models: same data and seed, same choice."),
    ] = 0,
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
    """Choose, train and record the pipeline for a store's events; add it to the model repository.

    Without --config (or a \\[pipeline] in fusionrec.toml) the automatic search runs within
    --budget: it profiles the data, screens a portfolio of sources on --folds validation windows
    before the last --valid-days days, grows a fused ranker one source at a time, tunes it, and
    ships the best of the fused ranker, the blend and every single source (a fused model that loses
    to one of its sources is never shipped). The version records the profile, every trial and the
    choice, and its pipeline as pipeline.toml: `fusionrec train --config models/v0001/pipeline.toml`
    trains the same pipeline again.

    With --config, the guardrail scores that pipeline, each of its sources and their blend on the
    last --valid-days days and ships the best (--no-guardrail ships it as given).

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
        if folds < 1:
            raise UserError(f"--folds must be 1 or more, got {folds}")
        manifest, result = train_from_store(
            store,
            out,
            config=config,
            valid_days=valid_days,
            engine=engine,
            trained_by="fusionrec train",
            guardrail=guardrail,
            budget_seconds=budget_seconds(budget),
            folds=folds,
            seed=seed,
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
    budget_seconds: float | None = None,
    folds: int = 3,
    seed: int = 0,
) -> tuple[VersionManifest, dict[str, Any]]:
    """Run the batch jobs if an engine is configured, train the resolved pipeline on the store's
    events (`fusionrec.training.train_version`) into the repository ``out``; the version's manifest,
    and the command's JSON result (the manifest, plus ``recommendations_batch_rows`` after Spark)."""
    from fusionrec.data.dataset import Dataset
    from fusionrec.data.store import open_store
    from fusionrec.fusion.artifacts import ModelRepository
    from fusionrec.training import auto_spec, resolve_pipeline, train_version

    horizon = valid_days if valid_days > 0 else 7.0
    spec = resolve_pipeline(
        config, auto=auto_spec(budget_seconds, folds=folds, seed=seed, horizon_days=horizon)
    )
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
        with work_progress() as progress:
            model, manifest = train_version(
                dataset,
                ModelRepository(out, signing_key=signing_key()),
                spec,
                trained_by=trained_by,
                valid_days=valid_days,
                batch=batch,
                guardrail=guardrail,
                progress=progress,
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
        where = "validation folds" if result.get("search") else "validation days"
        board = Table(title=f"candidates on the {where} ({metric})")
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
    folds: Annotated[
        int, typer.Option("--folds", help="Validation folds, metrics averaged (1 or more).")
    ] = 3,
    valid_days: Annotated[
        float,
        typer.Option(
            help="Days `train` reports its metrics on: the folds come before them (0 = none held back)."
        ),
    ] = 7.0,
) -> None:
    """Search hyperparameters and fusion weights on validation data; write the best pipeline.

    Each trial is scored on the same validation folds as `train`'s automatic search (shaped by
    the data: the latest weeks of a shop, each user's last item, or each session's last item),
    all before the last --valid-days days, which `train` reports on.

    Example: `fusionrec tune --store duckdb:///shop.duckdb --space space.toml --out best.toml`
    """
    from fusionrec.data.dataset import Dataset
    from fusionrec.training import before_report_window, resolve_pipeline
    from fusionrec.tuning.auto import planned_folds
    from fusionrec.tuning.search import best_pipeline_toml
    from fusionrec.tuning.search import tune as run_tune

    with user_errors():
        if sampler not in ("tpe", "grid"):
            raise UserError(f"--sampler must be tpe or grid, not {sampler!r}")
        spec = resolve_pipeline(config)
        try:
            search_space = _read_space(space)
        except (OSError, ValueError) as error:
            raise UserError(f"{space}: {error}") from error
        if folds < 1:
            raise UserError(f"--folds must be 1 or more, got {folds}")
        with open_existing_store(store) as event_store:
            dataset = Dataset.from_store(event_store)
        _, plan, validation = planned_folds(
            before_report_window(dataset, valid_days), folds=folds, window_days=7.0
        )
        err.print(f"validating on {len(validation)} fold(s): {plan.reasons['validation']}", highlight=False)
        with work_progress():
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
                folds=validation,
            )
        best_pipeline_toml(result, out)
    err.print(f"best {metric} = {result.best_value:.4f} after {len(result.trials)} trials; wrote {out}")
