"""`fusionrec train` / `tune` (Typer functions in `fusionrec.cli.train`), on a real DuckDB store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from conftest import synthetic_store
from fusionrec.cli import train as train_commands
from fusionrec.fusion.artifacts import ModelRepository
from fusionrec.fusion.config import load_pipeline

PIPELINE = """
[pipeline]
model = "fusion"
[pipeline.config]
train_users = 300
[[pipeline.config.sources]]
model = "item_knn"
n = 20
min_score = 0.0
params = { neighbours = 20 }
[[pipeline.config.sources]]
model = "most_popular"
n = 10
[pipeline.config.ranker]
params = { n_estimators = 10, min_data_in_leaf = 10, num_leaves = 7 }
"""


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return synthetic_store(tmp_path_factory.mktemp("store") / "shop.duckdb", n_events=6_000, seed=2)


@pytest.fixture()
def app() -> typer.Typer:
    app = typer.Typer()
    app.command("train")(train_commands.train)
    app.command("tune")(train_commands.tune)
    return app


def test_train_adds_versions_with_metrics(app: typer.Typer, store_url: str, tmp_path: Path) -> None:
    config = tmp_path / "pipeline.toml"
    config.write_text(PIPELINE)
    out = tmp_path / "registry"
    args = ["train", "--store", store_url, "--out", str(out), "--config", str(config), "--json", "-"]
    args.append("--no-guardrail")  # the pipeline as given: this test is about versions
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["version"] == "v0001"
    assert CliRunner().invoke(app, args).exit_code == 0
    repo = ModelRepository(out)
    assert repo.versions() == ["v0001", "v0002"]
    manifest = repo.manifest("v0002")
    assert "NDCG@20" in manifest.metrics and manifest.trained_by == "fusionrec train"
    assert manifest.evaluation.reference.version == "v0001"  # scored beside v0001 on the same days
    assert set(manifest.evaluation.reference.metrics) == set(manifest.metrics)
    assert repo.load("v0001").name == "fusion"


def test_train_rejects_a_bad_pipeline_with_the_key(app: typer.Typer, store_url: str, tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[pipeline]\n[pipeline.config]\ntrain_user = 1\n")
    result = CliRunner().invoke(
        app, ["train", "--store", store_url, "--out", str(tmp_path), "--config", str(config)]
    )
    assert result.exit_code == 2 and "pipeline.config.train_user" in result.output


def test_tune_writes_a_loadable_pipeline(app: typer.Typer, store_url: str, tmp_path: Path) -> None:
    config = tmp_path / "pipeline.toml"
    config.write_text(
        PIPELINE.replace('model = "fusion"', 'model = "rrf"', 1).split("[pipeline.config.ranker]")[0]
    )
    space = tmp_path / "space.toml"
    space.write_text('[k]\ntype = "categorical"\nchoices = [10.0, 60.0]\n')
    out = tmp_path / "best.toml"
    args = ["tune", "--store", store_url, "--space", str(space), "--out", str(out), "--config", str(config)]
    result = CliRunner().invoke(app, [*args, "--trials", "2", "--sampler", "grid"])
    assert result.exit_code == 0, result.output
    best = load_pipeline(out)
    assert best.model == "rrf" and best.config["k"] in (10.0, 60.0)


# Three candidates from each source cannot fill a top 20.
WEAK_FUSION = PIPELINE.replace("n = 20", "n = 3").replace("n = 10", "n = 3")


def test_the_guardrail_ships_a_source_that_beats_the_fused_model(
    app: typer.Typer, store_url: str, tmp_path: Path
) -> None:
    """Six candidates per user cannot fill a top 20: item-kNN alone, scored on the same days, is
    clearly better, so `train` ships it and says why."""
    assert WEAK_FUSION.count("n = 3") == 2
    config = tmp_path / "weak.toml"
    config.write_text(WEAK_FUSION)
    out = tmp_path / "registry"
    args = ["train", "--store", store_url, "--out", str(out), "--config", str(config), "--json", "-"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout[result.stdout.index("{") :])
    board = {c["label"]: c["metrics"]["NDCG@20"] for c in record["evaluation"]["leaderboard"]}
    assert set(board) == {"fusion", "blend", "source item_knn", "source most_popular"}
    assert board["source item_knn"] > max(board["fusion"], board["blend"])
    assert record["evaluation"]["chosen"] == "source item_knn" == max(board, key=board.get)
    assert record["model"] == "item_knn" and record["pipeline"]["model"] == "item_knn"
    assert "beats the fused fusion" in record["evaluation"]["reason"]
    assert "shipped source item_knn" in " ".join(result.stderr.split())
    assert ModelRepository(out).load("v0001").name == "item_knn"
    # Without the guardrail the pipeline ships as given.
    plain = CliRunner().invoke(app, [*args, "--no-guardrail"])
    assert plain.exit_code == 0, plain.output
    assert ModelRepository(out).manifest("v0002").model == "fusion"


def test_train_searches_by_default_and_its_pipeline_file_trains_the_same_model_again(
    app: typer.Typer, store_url: str, tmp_path: Path
) -> None:
    """No pipeline declared: `train` runs the automatic search, records it, and writes the chosen
    pipeline into the version; `--config` with that file trains the same pipeline again."""
    out = tmp_path / "registry"
    args = [
        "train",
        "--store",
        store_url,
        "--out",
        str(out),
        "--budget",
        "10m",
        "--folds",
        "2",
        "--json",
        "-",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout[result.stdout.index("{") :])
    search = record["search"]
    assert search["profile"]["events"] > 0 and search["plan"]["folds"] == 2
    assert {t["stage"] for t in search["trials"]} >= {"screen", "confirm"}
    board = record["evaluation"]["leaderboard"]
    assert board[0]["label"] == record["evaluation"]["chosen"] == search["chosen"]
    assert all(c["seconds"] > 0 for c in board)
    assert "candidates on the validation folds" in result.stderr
    assert record["pipeline_origin"].startswith("automatic search")
    pipeline_file = out / "v0001" / "pipeline.toml"
    shipped = load_pipeline(pipeline_file)
    assert (shipped.model, shipped.config) == (record["pipeline"]["model"], record["pipeline"]["config"])

    again = CliRunner().invoke(
        app,
        ["train", "--store", store_url, "--out", str(out), "--config", str(pipeline_file), "--no-guardrail"],
    )
    assert again.exit_code == 0, again.output
    second = ModelRepository(out).manifest("v0002")
    assert second.search is None and second.pipeline == record["pipeline"]
    assert second.metrics == record["evaluation"]["metrics"]  # the same model on the same days


def test_train_refuses_a_bad_budget_in_one_line(app: typer.Typer, store_url: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["train", "--store", store_url, "--out", str(tmp_path), "--budget", "soon"]
    )
    assert result.exit_code == 2 and "--budget expects a duration such as 90s, 30m or 1h30m" in result.output
    assert not (tmp_path / "v0001").exists()
