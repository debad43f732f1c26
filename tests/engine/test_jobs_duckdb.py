"""The jobs' SQL on DuckDB equals the in-memory computations it replaces (Dataset, models)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pytest

from fusionrec.data.dataset import Dataset
from fusionrec.data.schema import EventTypes
from fusionrec.engine import EngineError, jobs
from fusionrec.engine.duckdb_engine import DuckDBEngine
from fusionrec.mining.covisitation import covisitation_matrix
from fusionrec.models.popular import MostPopular


@pytest.fixture
def engine(shop: tuple[pa.Table, pa.Table]) -> Iterator[DuckDBEngine]:
    events, items = shop
    with DuckDBEngine() as engine:
        engine.register_arrow("events", events)
        engine.register_arrow("items", items)
        yield engine


@pytest.fixture(scope="module")
def dataset(shop: tuple[pa.Table, pa.Table]) -> Dataset:
    return Dataset.from_frame(*shop)


def cells(matrix, dataset: Dataset, table: pa.Table, rows: str, cols: str) -> np.ndarray:
    r = dataset.users.index(table[rows]) if rows == "user_id" else dataset.items.index(table[rows])
    c = dataset.items.index(table[cols])
    assert (r >= 0).all() and (c >= 0).all()
    return np.asarray(matrix[r, c]).ravel()


@pytest.mark.parametrize("half_life", [None, 7.0])
def test_interactions_equal_dataset_matrix(engine: DuckDBEngine, dataset: Dataset, half_life) -> None:
    jobs.interactions(engine, half_life_days=half_life)
    table = engine.table("interactions")
    matrix = dataset.matrix(half_life_days=half_life)
    assert table.num_rows == matrix.nnz
    np.testing.assert_allclose(
        table["weight"].to_numpy(), cells(matrix, dataset, table, "user_id", "item_id"), rtol=1e-6
    )


@pytest.mark.parametrize(("symmetric", "span", "window"), [(True, 30, 86_400), (False, 3, 600)])
def test_covisitation_equals_the_models_matrix(
    engine: DuckDBEngine, dataset: Dataset, symmetric: bool, span: int, window: int
) -> None:
    jobs.covisitation(engine, window_seconds=window, max_span_events=span, symmetric=symmetric)
    table = engine.table("covisitation")
    matrix = covisitation_matrix(dataset, window, max_span_events=span, symmetric=symmetric)
    assert table.num_rows == matrix.nnz > 0
    np.testing.assert_allclose(
        table["weight"].to_numpy(), cells(matrix, dataset, table, "item_a", "item_b"), rtol=1e-6
    )


def test_popularity_and_popular_candidates_equal_most_popular(engine: DuckDBEngine, dataset: Dataset) -> None:
    counts = jobs.run_all(engine, n=5)
    assert counts["candidates"] > 0
    popularity = engine.table("popularity")
    model = MostPopular().fit(dataset)
    index = dataset.items.index(popularity["item_id"])
    np.testing.assert_array_equal(popularity["users"].to_numpy(), model.item_scores_[index])
    windows = popularity.to_pandas()
    assert (windows["users_1d"] <= windows["users_7d"]).all() and (
        windows["users_7d"] <= windows["users_30d"]
    ).all()

    cands = engine.query(
        "SELECT user_id, item_id FROM candidates WHERE pop_rank IS NOT NULL ORDER BY user_id, pop_rank"
    ).to_pandas()
    users = dataset.users.index(cands["user_id"].unique())
    expected, _ = model.recommend(users, k=5)
    got = dataset.items.index(cands["item_id"]).reshape(len(users), 5)
    np.testing.assert_array_equal(got, expected)


def test_unknown_event_type_is_named(shop: tuple[pa.Table, pa.Table]) -> None:
    events, _ = shop
    bad = events.set_column(
        events.schema.get_field_index("event_type"),
        "event_type",
        pa.array(["teleport", *events["event_type"].to_pylist()[1:]]),
    )
    with DuckDBEngine() as engine:
        engine.register_arrow("events", bad)
        with pytest.raises(EngineError, match="teleport"):
            jobs.interactions(engine, event_types=EventTypes())


def test_jobs_need_their_inputs(engine: DuckDBEngine) -> None:
    with pytest.raises(EngineError, match="interactions"):
        jobs.item_popularity(engine)
    with pytest.raises(ValueError, match="half_life_days"):
        jobs.interactions(engine, half_life_days=0)


def test_interactions_dataset_has_the_same_matrix(shop: tuple[pa.Table, pa.Table], dataset: Dataset) -> None:
    from fusionrec.engine.dataset import interactions_dataset

    events, items = shop
    with DuckDBEngine() as engine:
        engine.register_arrow("events", events)
        compact = interactions_dataset(engine, items=items)
    full = dataset.matrix().tocoo()
    got = compact.matrix()
    rows = compact.users.index(dataset.users.id(full.row))
    cols = compact.items.index(dataset.items.id(full.col))
    assert got.nnz == full.nnz and (rows >= 0).all() and (cols >= 0).all()
    np.testing.assert_allclose(np.asarray(got[rows, cols]).ravel(), full.data, rtol=1e-6)
    assert compact.n_items == dataset.n_items  # catalogue items without events are kept


def test_outputs_are_written_as_parquet(engine: DuckDBEngine, tmp_path) -> None:
    import pyarrow.parquet as pq

    counts = jobs.run_all(engine, n=3)
    written = jobs.write_outputs(engine, str(tmp_path / "out"))
    assert set(written) == set(counts)
    for name, path in written.items():
        assert pq.read_metadata(path).num_rows == counts[name]


def test_ranking_features_match_a_pandas_computation(
    engine: DuckDBEngine, shop: tuple[pa.Table, pa.Table]
) -> None:
    _, items = shop
    jobs.run_all(engine, n=5)
    features = engine.table("features", order_by="user_id, item_id").to_pandas()
    candidates = engine.table("candidates").to_pandas()
    pairs = engine.table("interactions").to_pandas()
    assert len(features) == len(candidates) > 0
    catalogue = items.to_pandas().set_index("item_id")[["category", "price"]]
    used = pairs.join(catalogue, on="item_id")
    per_user = used.groupby("user_id").agg(
        user_items=("item_id", "size"), user_events=("events", "sum"), user_mean_price=("price", "mean")
    )
    sample = features.sample(200, random_state=0) if len(features) > 200 else features
    for row in sample.itertuples():
        user = per_user.loc[row.user_id]
        category = catalogue.loc[row.item_id, "category"]
        mine = used[used.user_id == row.user_id]
        assert row.user_items == user.user_items and row.user_events == user.user_events
        assert row.user_category_share == pytest.approx((mine.category == category).sum() / user.user_items)
        assert row.item_price == pytest.approx(catalogue.loc[row.item_id, "price"])
        assert row.price_ratio == pytest.approx(row.item_price / user.user_mean_price)
        assert row.n_sources == (not np.isnan(row.pop_rank)) + (not np.isnan(row.covis_rank))
    newest = pairs.last_ts.max()
    idle = (newest - pairs.groupby("user_id").last_ts.max()).dt.total_seconds() // 1 / 86_400
    got = features.drop_duplicates("user_id").set_index("user_id").user_idle_days
    np.testing.assert_allclose(got.to_numpy(), idle.loc[got.index].to_numpy(), atol=1 / 86_400)
