"""`fusionrec evaluate`: train models on a benchmark split and print a leaderboard."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from fusionrec.cli.common import (
    EngineOption,
    JsonOption,
    UserError,
    emit_json,
    engine_settings,
    err,
    log,
    out,
    user_errors,
    work_progress,
)
from fusionrec.cli.train import BudgetOption, budget_seconds

if TYPE_CHECKING:
    from fusionrec.data.dataset import Dataset
    from fusionrec.engine import EngineSettings


def load_params(path: Path | None, overrides: list[str]) -> dict[str, dict[str, Any]]:
    """Hyperparameters per model from a TOML file (``[ease] l2 = 500``) and ``--set ease.l2=500``."""
    params: dict[str, dict[str, Any]] = {}
    if path is not None:
        params = {k: dict(v) for k, v in tomllib.loads(path.read_text()).items()}
    for item in overrides:
        key, sep, raw = item.partition("=")
        model, dot, name = key.partition(".")
        if not sep or not dot:
            raise UserError(f"--set expects model.param=value, got {item!r}")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        params.setdefault(model, {})[name] = value
    return params


def parse_ints(text: str, option: str) -> list[int]:
    """``"10,20"`` as ``[10, 20]``; anything but positive integers is a `UserError` naming ``option``."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserError(f"{option} expects comma-separated integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise UserError(f"{option} expects positive integers, got {text!r}")
    return values


def evaluate(
    dataset: Annotated[
        str,
        typer.Option(
            "--dataset",
            help="gowalla, amazon-beauty, movielens-100k, dunnhumby, diginetica-sample, synthetic, or FORMAT:PATH.",
        ),
    ],
    models: Annotated[str, typer.Option("--models", help="Comma-separated model names.")] = "most_popular",
    k: Annotated[str, typer.Option("--k", help="Cut-offs, comma-separated.")] = "10,20",
    params_file: Annotated[
        Path | None,
        typer.Option(
            "--params",
            help="TOML file of hyperparameters: a table per model, \\[ease] l2 = 500.",
            show_default="each model's defaults",
        ),
    ] = None,
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="model.param=value (repeatable).", show_default="none")
    ] = None,
    sampled: Annotated[
        int | None,
        typer.Option(
            "--sampled",
            help="Rank against N sampled negatives (labelled as such).",
            show_default="full ranking",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Random seed of the split and the models.")] = 0,
    markdown_path: Annotated[
        Path | None, typer.Option("--markdown", help="Write the table as Markdown.", show_default="no file")
    ] = None,
    plot_path: Annotated[
        Path | None,
        typer.Option("--plot", help="Bar chart PNG of the headline metric.", show_default="no plot"),
    ] = None,
    json_path: JsonOption = None,
    engine: EngineOption = None,
    refit: Annotated[
        bool,
        typer.Option(
            "--refit",
            help="Fit every model on train + validation before the test (early-stopped models are "
            "refit for the epochs they chose on validation), as the sequential benchmarks do.",
        ),
    ] = False,
    budget: BudgetOption = None,
) -> None:
    """Train each model and print a leaderboard beside the published numbers.

    Full ranking over all items with each user's training items masked (not for dunnhumby, where
    buying again is the point). Every result carries its protocol.

    Examples:

        fusionrec evaluate --dataset amazon-beauty --models most_popular,item_knn,ease
        fusionrec evaluate --dataset gowalla --models ease --set ease.l2=500 --json results.json
        fusionrec evaluate --dataset s3rec:/data/Toys_and_Games.txt --models ease --plot toys.png
        fusionrec evaluate --dataset amazon-beauty --models ease,sasrec,auto --budget 30m

    --budget is the time of the automatic search of the model `auto` (the same as `train`'s; it
    sees only the split's training part).

    With --engine duckdb|spark the training matrix is built by that engine's interactions job from
    the split's events (models that read the event log itself, such as sasrec, keep the in-memory
    data); the leaderboard's protocol names the engine.
    """
    from fusionrec.engine.dataset import needs_event_log
    from fusionrec.evaluation.benchmarks import load_benchmark, resolve_benchmark
    from fusionrec.evaluation.leaderboard import Leaderboard
    from fusionrec.evaluation.protocol import evaluate_model, full_protocol
    from fusionrec.models.registry import model_class
    from fusionrec.progress import step

    with user_errors():
        cutoffs = parse_ints(k, "--k")
        names = [m.strip() for m in models.split(",") if m.strip()]
        for name in names:
            model_class(name)  # fail fast on a typo or a missing extra, before loading data
        params = load_params(params_file, overrides or [])
        if budget is not None:
            params.setdefault("auto", {})["budget_seconds"] = budget_seconds(budget)
        benchmark = resolve_benchmark(dataset)
        if benchmark.horizon_days is not None:
            # The search validates on windows as long as the test's: the horizon it is judged on.
            params.setdefault("auto", {}).setdefault("window_days", benchmark.horizon_days)
        with err.status(f"loading {benchmark.name}"):
            split, description = load_benchmark(benchmark, seed=seed)
        settings = engine_settings(engine)
        protocol = full_protocol(description, cutoffs, seed, sampled)
        if refit:
            protocol["refit"] = "every model fit on train + validation before the test"
        engine_data = None
        if settings is not None:
            with err.status(f"building the training matrix on {settings.engine}"):
                engine_data = _engine_training_data(settings, split.train_full)
            protocol["engine"] = f"{settings.engine}: training matrix from the engine's interactions job"
        board = Leaderboard(benchmark, protocol)
        with work_progress():  # the automatic search reports its stages as steps here
            for done, name in enumerate(names):
                step("models", done, len(names), f"fitting and scoring {name}")
                log.info("fitting %s on %s", name, benchmark.name)
                result = evaluate_model(
                    name,
                    split,
                    params=params.get(name),
                    ks=cutoffs,
                    mask_seen=benchmark.mask_seen,
                    sampled=sampled,
                    seed=seed,
                    fit_data=None if needs_event_log(name) else engine_data,
                    refit=refit,
                )
                board.results.append(result)
            step("models", len(names), len(names), "done")
    out.print(board.rich_table())
    if markdown_path:
        markdown_path.write_text(board.markdown() + "\n")
    if plot_path:
        board.plot(plot_path)
        err.print(f"wrote {plot_path}")
    emit_json(board.to_dict(), json_path)


def _engine_training_data(settings: EngineSettings, dataset: Dataset) -> Dataset:
    """``dataset``'s matrix rebuilt by the engine the settings name (its events handed over as Arrow)."""
    from fusionrec.engine import get_engine
    from fusionrec.engine.dataset import engine_interactions

    with get_engine(settings, load=False) as batch_engine:
        return engine_interactions(batch_engine, dataset)
