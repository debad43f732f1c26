"""Both engines on the same data (Spark in local mode): identical counts and statistics, KPIs
equal, Spark ALS within a stated Recall tolerance of `implicit`, batch top-N equal to `recommend`.

One Spark session serves the whole module (JVM start-up dominates); data stay tiny.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import scipy.sparse as sp

from fusionrec.analytics.queries import Filters
from fusionrec.data.dataset import Dataset
from fusionrec.data.store import open_store
from fusionrec.engine import EngineSettings, get_engine, jobs
from fusionrec.engine.duckdb_engine import DuckDBEngine
from fusionrec.engine.recommendations import read_recommendations
from fusionrec.evaluation.metrics import evaluate_rankings
from fusionrec.models.registry import create_model

pytestmark = pytest.mark.spark

JOB_KEYS = {
    "interactions": "user_id, item_id",
    "popularity": "item_id",
    "covisitation": "item_a, item_b",
    "candidates": "user_id, item_id",
    "features": "user_id, item_id",
}
# Sums of doubles in another order differ in the last bits only; counts and ids must be identical.
FLOAT_RTOL = 1e-9


@pytest.fixture(scope="module")
def both(shop: tuple[pa.Table, pa.Table], spark_settings: EngineSettings):
    """The same jobs run on DuckDB and on Spark over the same events."""
    events, items = shop
    engines = [DuckDBEngine(), get_engine_without_input(spark_settings)]
    for engine in engines:
        engine.register_arrow("events", events)
        engine.register_arrow("items", items)
        jobs.interactions(engine, half_life_days=7.0)
        jobs.item_popularity(engine)
        jobs.covisitation(engine, max_neighbours=50)
        jobs.candidates(engine, n=10)
        jobs.ranking_features(engine)
    yield engines
    for engine in engines:
        engine.close()


def get_engine_without_input(settings: EngineSettings):
    from fusionrec.engine.spark_engine import SparkEngine

    return SparkEngine(settings)


def assert_same(left: pd.DataFrame, right: pd.DataFrame) -> None:
    assert list(left.columns) == list(right.columns)
    assert len(left) == len(right)
    for column in left.columns:
        a, b = left[column], right[column]
        if pd.api.types.is_float_dtype(a) or pd.api.types.is_float_dtype(b):
            np.testing.assert_allclose(a.astype(float), b.astype(float), rtol=FLOAT_RTOL, err_msg=column)
        else:
            assert a.astype(str).tolist() == b.astype(str).tolist(), column


@pytest.mark.parametrize("relation", sorted(JOB_KEYS))
def test_jobs_give_identical_results_on_both_engines(both, relation: str) -> None:
    duck, spark = both
    left = duck.table(relation, order_by=JOB_KEYS[relation]).to_pandas()
    right = spark.table(relation, order_by=JOB_KEYS[relation]).to_pandas()
    assert len(left) > 0
    assert_same(left, right)


def test_kpis_identical_on_both_engines(both, shop: tuple[pa.Table, pa.Table]) -> None:
    duck, spark = both
    _, items = shop
    top = items["category"].to_pylist()[0].split(" > ")[0]
    for filters, grain in (
        (None, None),
        (Filters(start=date(2026, 1, 5), end=date(2026, 2, 20), category=top), "week"),
    ):
        left, right = duck.kpis(filters, grain), spark.kpis(filters, grain)
        for name in left:
            assert len(left[name]) > 0, name
            assert_same(left[name].reset_index(drop=True), right[name].reset_index(drop=True))


def test_parquet_input_from_settings(tmp_path: Path, shop: tuple[pa.Table, pa.Table], spark_settings) -> None:
    events, items = shop
    pq.write_table(events, tmp_path / "events.parquet")
    pq.write_table(items, tmp_path / "items.parquet")
    paths = {"events": str(tmp_path / "events.parquet"), "items": str(tmp_path / "items.parquet")}
    counts = []
    for settings in (EngineSettings(**paths), spark_settings.model_copy(update=paths)):
        with get_engine(settings) as engine:
            counts.append(len(engine.interactions()))
    expected = Dataset.from_frame(events).matrix().nnz
    assert counts == [expected, expected]


# --- Spark ALS --------------------------------------------------------------------------------------


def planted(n_users: int = 240, n_items: int = 80, clusters: int = 4, per_user: int = 10, seed: int = 5):
    """Users of cluster c use items of cluster c (a known low-rank answer); two held out per user."""
    rng = np.random.default_rng(seed)
    size = n_items // clusters
    rows = []
    for user in range(n_users):
        cluster = user % clusters
        chosen = rng.choice(
            size, per_user, replace=False, p=np.linspace(2, 1, size) / np.linspace(2, 1, size).sum()
        )
        rows += [(f"u{user:04d}", f"i{cluster * size + i:04d}", t) for t, i in enumerate(chosen)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "position"])
    frame["event_type"] = "click"
    frame["timestamp"] = pd.to_datetime(1_700_000_000 + frame["position"] * 60, unit="s", utc=True)
    dataset = Dataset.from_frame(frame)
    # The Dataset's log is time-ordered: source_row maps each event back to its frame row.
    held_out = frame["position"].to_numpy()[dataset.source_row] >= per_user - 2
    train, test = dataset.select(~held_out), dataset.select(held_out)
    return train, test


def recall(model, train: Dataset, test: Dataset, k: int = 10) -> float:
    users = np.arange(train.n_users)
    items, _ = model.recommend(users, k=k)
    return evaluate_rankings(items, sp.csr_matrix(test.matrix(binary=True)), ks=[k], metrics=["Recall"])[
        f"Recall@{k}"
    ]


def test_spark_als_matches_implicit_recall(spark_settings) -> None:
    train, test = planted()
    spark_als = create_model("spark_als", factors=8, iterations=10, regularization=0.01, blocks=2).fit(train)
    ials = create_model("ials", factors=8, iterations=10, regularization=0.1, num_threads=1).fit(train)
    popular = create_model("most_popular").fit(train)
    r_spark, r_ials, r_pop = (
        recall(spark_als, train, test),
        recall(ials, train, test),
        recall(popular, train, test),
    )
    print(f"Recall@10: spark_als {r_spark:.4f}, ials {r_ials:.4f}, most_popular {r_pop:.4f}")
    # Stated tolerance: 0.05 Recall@10 apart; both clearly above popularity.
    assert abs(r_spark - r_ials) <= 0.05, (r_spark, r_ials)
    assert r_spark > r_pop + 0.1, (r_spark, r_pop)


def test_batch_top_n_on_spark_equals_recommend_and_lands_in_the_store(tmp_path: Path, spark_settings) -> None:
    from fusionrec.engine.spark_als import recommend_all, save_all

    train, _ = planted()
    model = create_model("spark_als", factors=8, iterations=5, blocks=2).fit(train)
    frame = recommend_all(model, k=10, partitions=3)
    got = frame.toPandas().sort_values(["user_id", "rank"])
    users = np.arange(train.n_users)
    items, scores = model.recommend(users, k=10)
    assert len(got) == items.size
    assert got["user_id"].tolist() == np.repeat(model.user_ids_, 10).tolist()
    assert got["item_id"].tolist() == model.item_ids_[items.ravel()].tolist()
    np.testing.assert_allclose(got["score"].to_numpy(), scores.ravel(), rtol=1e-5, atol=1e-6)

    with open_store(f"duckdb:///{tmp_path / 'shop.duckdb'}") as store:
        assert save_all(frame, store, "spark_als", str(tmp_path / "staging")) == items.size
        stored = read_recommendations(store, "spark_als", model.user_ids_[3])
        assert stored["item_id"].to_pylist() == model.item_ids_[items[3]].tolist()
        assert stored["rank"].to_pylist() == list(range(1, 11))
