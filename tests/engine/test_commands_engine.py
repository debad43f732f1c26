"""``--engine`` on ``train``, ``evaluate`` and ``report``: the batch work on DuckDB or Spark (local mode)
gives the same results as the in-process path."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from conftest import synthetic_store
from fusionrec.analytics.report import build_payload
from fusionrec.cli import app
from fusionrec.data.dataset import Dataset
from fusionrec.data.split import leave_last_out
from fusionrec.data.store import open_store
from fusionrec.data.synthetic import generate_frames
from fusionrec.engine import get_engine
from fusionrec.engine.dataset import engine_interactions
from fusionrec.engine.recommendations import read_recommendations
from fusionrec.engine.sql_source import EngineSource
from fusionrec.fusion.artifacts import ModelRepository

PROJECT = """
[engine]
engine = "{engine}"
[engine.spark]
master = "local[2]"
shuffle_partitions = 4
driver_memory = "1g"
"""


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return synthetic_store(tmp_path_factory.mktemp("store") / "shop.duckdb", n_events=5_000, seed=4)


def project_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: str) -> Path:
    """A working folder whose fusionrec.toml names ``engine`` (Spark kept small)."""
    (tmp_path / "fusionrec.toml").write_text(PROJECT.format(engine=engine))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def invoke(args: list[str]) -> str:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("engine", ["duckdb", "spark"])
def test_engine_matrix_equals_the_in_memory_matrix(engine: str, spark_settings, store_url: str) -> None:
    with open_store(store_url) as store:
        split = leave_last_out(Dataset.from_store(store))
    settings = spark_settings if engine == "spark" else spark_settings.with_engine("duckdb")
    with get_engine(settings, load=False) as batch_engine:
        rebuilt = engine_interactions(batch_engine, split.train_full)
    assert rebuilt.n_users == split.train_full.n_users and rebuilt.n_items == split.train_full.n_items
    expected, got = split.train_full.matrix(), rebuilt.matrix()
    assert expected.nnz > 0
    assert abs(expected - got).max() < 1e-4


def test_evaluate_with_engine_gives_the_same_leaderboard(tmp_path: Path, monkeypatch, spark_settings) -> None:
    project_dir(tmp_path, monkeypatch, "spark")
    args = ["evaluate", "--dataset", "movielens-100k", "--models", "ease,most_popular", "--json"]
    invoke([*args, "duckdb.json", "--engine", "duckdb"])  # the flag overrides the file
    invoke([*args, "spark.json"])  # [engine] from fusionrec.toml
    plain, on_spark = (json.loads((tmp_path / f"{name}.json").read_text()) for name in ("duckdb", "spark"))
    assert "spark" in on_spark["protocol"]["engine"] and "duckdb" in plain["protocol"]["engine"]
    for left, right in zip(plain["results"], on_spark["results"], strict=True):
        assert left["model"] == right["model"]
        for metric, value in left["metrics"].items():
            assert right["metrics"][metric] == pytest.approx(value, abs=1e-9), (left["model"], metric)


def pipeline_file(folder: Path, *sources: str) -> Path:
    """A small fused pipeline over ``sources`` (``model`` or ``model:{params}``)."""
    lines = ['[pipeline]\nmodel = "fusion"\n[pipeline.config]\ntrain_users = 300']
    for source in sources:
        model, _, params = source.partition(":")
        lines.append(f'[[pipeline.config.sources]]\nmodel = "{model}"\nn = 20\nparams = {{{params}}}')
    lines.append(
        "[pipeline.config.ranker]\nparams = { n_estimators = 10, min_data_in_leaf = 10, num_leaves = 7 }"
    )
    path = folder / "pipeline.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_train_on_spark_writes_batch_outputs_and_spark_als_lists(
    tmp_path: Path, monkeypatch, spark_settings, store_url: str
) -> None:
    folder = project_dir(tmp_path, monkeypatch, "spark")
    config = pipeline_file(folder, "spark_als:factors = 8, iterations = 3", "most_popular")
    out = folder / "models"
    record = json.loads(
        invoke(["train", "--store", store_url, "--out", str(out), "--config", str(config), "--json", "-"])
    )
    batch = record["batch_jobs"]
    assert batch["engine"] == "spark" and batch["trained_on"] == "store events"
    assert min(batch["rows"].values()) > 0
    candidates = pq.read_table(out / record["version"] / "batch" / "candidates")
    assert candidates.num_rows == batch["rows"]["candidates"]
    ModelRepository(out).verify(record["version"])  # batch outputs are hashed in the manifest
    assert record["recommendations_batch_rows"]["spark_als"] > 0
    als = ModelRepository(out).load(record["version"]).source_models["spark_als"]
    user = str(als.user_ids_[0])
    with open_store(store_url) as store:
        stored = read_recommendations(store, "spark_als", user, k=5)
    expected = [item for item, _ in als.recommend_ids([user], 5)[0]]
    assert stored["item_id"].to_pylist() == expected


def test_train_from_parquet_uses_engine_interactions(tmp_path: Path, monkeypatch, store_url: str) -> None:
    folder = project_dir(tmp_path, monkeypatch, "duckdb")
    events, _, _ = generate_frames(n_events=3_000, seed=1)
    pq.write_table(events, folder / "events.parquet")
    (folder / "fusionrec.toml").write_text(
        f'[engine]\nengine = "duckdb"\nevents = "{folder / "events.parquet"}"\n'
    )
    empty_store = f"duckdb:///{folder / 'empty.duckdb'}"
    args = ["train", "--store", empty_store, "--out", str(folder / "m"), "--json", "-", "--valid-days", "0"]
    record = json.loads(invoke([*args, "--config", str(pipeline_file(folder, "item_knn", "most_popular"))]))
    assert record["batch_jobs"]["trained_on"] == "engine interactions"
    assert record["data"]["users"] == Dataset.from_frame(events).n_users
    result = CliRunner().invoke(app, [*args, "--config", str(pipeline_file(folder, "covisitation", "ease"))])
    assert result.exit_code == 2
    assert "covisitation read the event log" in result.output


def assert_same_json(got: object, expected: object, where: str) -> None:
    """Equal JSON values, numbers within 1e-9 relative (the engines sum in different orders and
    hand back whole numbers as integers or floats)."""
    if isinstance(expected, dict):
        assert isinstance(got, dict) and sorted(got) == sorted(expected), where
        for key in expected:
            assert_same_json(got[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(got, list) and len(got) == len(expected), where
        for i, (left, right) in enumerate(zip(got, expected, strict=True)):
            assert_same_json(left, right, f"{where}[{i}]")
    elif isinstance(expected, int | float) and not isinstance(expected, bool):
        assert got == pytest.approx(expected, rel=1e-9), where
    else:
        assert got == expected, where


def test_report_on_spark_equals_the_store_report(
    tmp_path: Path, monkeypatch, spark_settings, store_url: str
) -> None:
    with open_store(store_url) as store:
        expected = build_payload(store)
        with get_engine(spark_settings, store) as batch_engine:
            got = build_payload(EngineSource(batch_engine))  # type: ignore[arg-type]
    for key in ("cube", "users", "user_series", "retention", "segments", "rules", "bounds", "categories"):
        assert_same_json(got[key], expected[key], key)
    project_dir(tmp_path, monkeypatch, "spark")
    invoke(["report", "--store", store_url, "--out", "report.html"])
    assert (tmp_path / "report.html").stat().st_size > 10_000
