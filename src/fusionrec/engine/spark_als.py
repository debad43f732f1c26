"""Spark MLlib ALS (implicit feedback) as the ``spark_als`` model, and top-N for every user on Spark.

`SparkALS` fits ``pyspark.ml.recommendation.ALS(implicitPrefs=True)`` (Hu, Koren & Volinsky 2008,
the same objective as `implicit`'s iALS: confidence ``1 + alpha * r``) on the Dataset's user x item
matrix and keeps the factors as numpy arrays, so it saves, loads and serves like any other
`Recommender`. One difference from `implicit`: Spark scales the L2 penalty of each user and item by
its number of ratings (ALS-WR), so equal ``regularization`` values are not equally strong.

`recommend_all` scores every user on Spark: users' factors and seen items are a DataFrame, the
item factors a broadcast variable, and a pandas function (``mapInPandas``) does one matrix product
and a vectorised top-k per chunk of users, so no Python loop runs per user.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from fusionrec.data.dataset import Dataset
from fusionrec.models.base import ModelConfig, ModelError, Recommender, top_k

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

SCORE_CELLS = 1 << 25  # users x items scores computed at once inside a task (128 MiB of float32)
RECOMMENDATION_SCHEMA = "user_id string, rank int, item_id string, score double"


class SparkALSConfig(ModelConfig):
    factors: int = Field(default=64, ge=1)  # ALS rank
    regularization: float = Field(default=0.01, ge=0)  # regParam (scaled per user/item by Spark)
    iterations: int = Field(default=15, ge=1)  # maxIter
    alpha: float = Field(default=1.0, gt=0)  # confidence = 1 + alpha * r
    binary: bool = True  # presence (True) or summed event weights (False) as the signal
    blocks: int | None = Field(default=None, ge=1)  # numUserBlocks = numItemBlocks; None = Spark's 10
    nonnegative: bool = False


def active_session() -> SparkSession:
    """The running Spark session, else a local one from default `SparkSettings`."""
    from pyspark.sql import SparkSession

    from fusionrec.engine.spark_session import spark_session

    return SparkSession.getActiveSession() or spark_session()


class SparkALS(Recommender):
    """Implicit-feedback matrix factorisation by Spark MLlib's block ALS."""

    name = "spark_als"
    Config = SparkALSConfig
    config: SparkALSConfig

    def _fit(self, dataset: Dataset) -> None:
        from pyspark.ml.recommendation import ALS

        cfg = self.config
        spark = active_session()
        ratings = interactions_frame(spark, dataset, binary=cfg.binary)
        blocks = cfg.blocks or 10
        als = ALS(
            rank=cfg.factors,
            maxIter=cfg.iterations,
            regParam=cfg.regularization,
            alpha=cfg.alpha,
            implicitPrefs=True,
            nonnegative=cfg.nonnegative,
            numUserBlocks=blocks,
            numItemBlocks=blocks,
            userCol="user",
            itemCol="item",
            ratingCol="rating",
            seed=cfg.seed,
        )
        fitted = als.fit(ratings)
        self.user_factors_ = factors_array(fitted.userFactors, dataset.n_users, cfg.factors)
        self.item_factors_ = factors_array(fitted.itemFactors, dataset.n_items, cfg.factors)

    def _score_users(self, users: np.ndarray) -> np.ndarray:
        return self.user_factors_[users] @ self.item_factors_.T


def interactions_frame(spark: SparkSession, dataset: Dataset, *, binary: bool) -> DataFrame:
    """The Dataset's user x item matrix as a Spark DataFrame ``(user int, item int, rating float)``."""
    coo = dataset.matrix(binary=binary).tocoo()
    table = pa.table(
        {
            "user": pa.array(coo.row.astype(np.int32)),
            "item": pa.array(coo.col.astype(np.int32)),
            "rating": pa.array(coo.data.astype(np.float32)),
        }
    )
    return spark.createDataFrame(table)


def factors_array(frame: DataFrame, n_rows: int, rank: int) -> np.ndarray:
    """ALS's ``(id, features)`` factor DataFrame as ``float32[n_rows, rank]`` (rows it lacks are 0)."""
    table = frame.toArrow()
    out = np.zeros((n_rows, rank), dtype=np.float32)
    if table.num_rows:
        ids = table.column("id").to_numpy().astype(np.int64)
        flat = pc.list_flatten(table.column("features")).to_numpy(zero_copy_only=False)
        out[ids] = flat.reshape(len(ids), rank).astype(np.float32)
    return out


# --- batch top-N on Spark ---------------------------------------------------------------------------


def users_frame(spark: SparkSession, model: Recommender, partitions: int | None = None) -> DataFrame:
    """``(user_id, factors array<float>, seen array<int>)`` for every user the model can score."""
    users = np.flatnonzero(model.known_users(np.arange(model.n_users_)))
    seen = model.seen_[users]
    offsets = pa.array(seen.indptr.astype(np.int32))
    rank = model.user_factors_.shape[1]
    factors = np.ascontiguousarray(model.user_factors_[users], dtype=np.float32).ravel()
    table = pa.table(
        {
            "user_id": pa.array(model.user_ids_[users].astype(object), type=pa.string()),
            "factors": pa.FixedSizeListArray.from_arrays(pa.array(factors), rank).cast(
                pa.list_(pa.float32())
            ),
            "seen": pa.ListArray.from_arrays(offsets, pa.array(seen.indices.astype(np.int32))),
        }
    )
    frame = spark.createDataFrame(table)
    return frame.repartition(partitions) if partitions else frame


def recommend_all(
    model: Recommender,
    k: int = 20,
    *,
    spark: SparkSession | None = None,
    partitions: int | None = None,
    exclude_seen: bool = True,
) -> DataFrame:
    """Top-``k`` for every known user of a factor model (``user_factors_``, ``item_factors_``:
    `SparkALS`, `IALS`, ...), computed on Spark; a DataFrame of `RECOMMENDATION_SCHEMA` rows,
    ranks from 1, ties to the lower item id (as `Recommender.recommend`)."""
    for attribute in ("user_factors_", "item_factors_"):
        if not hasattr(model, attribute):
            raise ModelError(f"{model.name} has no {attribute}: recommend_all needs a factor model")
    spark = spark or active_session()
    shared = spark.sparkContext.broadcast(
        (
            np.ascontiguousarray(model.item_factors_, dtype=np.float32),
            np.asarray(model.item_ids_, dtype=object),
        )
    )
    k = min(int(k), model.n_items_)

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import pandas as pd

        item_factors, item_ids = shared.value
        chunk = max(1, SCORE_CELLS // max(item_factors.shape[0], 1))
        for batch in batches:
            for start in range(0, len(batch), chunk):  # bounded memory per task, not one step per user
                part = batch.iloc[start : start + chunk]
                scores = np.stack(part["factors"].to_numpy()).astype(np.float32) @ item_factors.T
                if exclude_seen:
                    lengths = part["seen"].map(len).to_numpy()
                    if lengths.sum():
                        rows = np.repeat(np.arange(len(part)), lengths)
                        scores[rows, np.concatenate(part["seen"].to_numpy()).astype(np.int64)] = -np.inf
                items, best = top_k(scores, k)
                valid = items >= 0
                yield pd.DataFrame(
                    {
                        "user_id": np.repeat(part["user_id"].to_numpy(), k)[valid.ravel()],
                        "rank": np.tile(np.arange(1, k + 1, dtype=np.int32), len(part))[valid.ravel()],
                        "item_id": item_ids[items[valid]],
                        "score": best[valid].astype(np.float64),
                    }
                )

    return users_frame(spark, model, partitions).mapInPandas(score, schema=RECOMMENDATION_SCHEMA)


def save_all(frame: DataFrame, store: Any, model_name: str, staging: str) -> int:
    """Write a `recommend_all` result to the store's ``recommendations_batch`` (replacing the
    model's lists): Spark writes Parquet to ``staging`` (a local directory), the store loads it
    batch by batch in one transaction. Returns rows written."""
    import pyarrow.dataset as ds

    from fusionrec.engine.recommendations import write_recommendations

    frame.write.mode("overwrite").parquet(staging)
    dataset = ds.dataset(staging, format="parquet")
    return write_recommendations(store, dataset.to_batches(batch_size=500_000), model_name)
