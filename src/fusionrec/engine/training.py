"""The batch half of ``fusionrec train --engine duckdb|spark``: the jobs that run before the fit.

`run_batch_jobs` runs the recommendation jobs on an engine that has the events (the store's, or
``[engine] events`` Parquet): `jobs.run_all` (interactions, item popularity, co-visitation,
candidates for every user and their ranking features), writing their outputs as Parquet into the new model version. With the
events in a store the pipeline then trains on them; with the events only in Parquet it trains on
the engine's ``interactions`` (a compact `Dataset`), so its sources must be matrix models
(`check_matrix_only`). `publish_top_n` scores every user of each Spark ALS source on Spark into the
store's ``recommendations_batch`` table.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fusionrec.engine import jobs
from fusionrec.engine.base import Engine, EngineError
from fusionrec.engine.dataset import interactions_dataset, needs_event_log

if TYPE_CHECKING:
    from fusionrec.data.dataset import Dataset
    from fusionrec.data.store.base import EventStore
    from fusionrec.models.base import Recommender

log = logging.getLogger(__name__)


@dataclass
class BatchRun:
    """What the engine did for one training run."""

    engine: str
    rows: dict[str, int]  # output relation -> row count
    outputs: Path  # folder holding each output as Parquet
    seconds: dict[str, float] = field(default_factory=dict)
    dataset: Dataset | None = None  # the engine-built matrix, for models that need nothing else

    def summary(self) -> dict[str, Any]:
        """JSON-able record for the version's manifest."""
        return {
            "engine": self.engine,
            "rows": self.rows,
            "seconds": self.seconds,
            "trained_on": "engine interactions" if self.dataset is not None else "store events",
        }


def run_batch_jobs(
    engine: Engine, *, outputs: Path, n_candidates: int = 50, build_dataset: bool = False
) -> BatchRun:
    """Run every recommendation job on ``engine`` (events loaded) and write the outputs to ``outputs``;
    with ``build_dataset``, also return the engine's interactions as a compact `Dataset`."""
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    rows = jobs.run_all(engine, n=n_candidates)
    seconds["jobs"] = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    jobs.write_outputs(engine, str(outputs))
    seconds["write_outputs"] = round(time.perf_counter() - started, 2)
    dataset = None
    if build_dataset:
        started = time.perf_counter()
        items = engine.table("items") if engine.has_relation("items") else None
        dataset = interactions_dataset(engine, items=items, rebuild=False)  # run_all built it
        seconds["interactions_dataset"] = round(time.perf_counter() - started, 2)
    log.info("%s engine: %s in %.1fs", engine.name, rows, sum(seconds.values()))
    return BatchRun(engine.name, rows, outputs, seconds, dataset)


def check_matrix_only(pipeline_params: dict[str, Any]) -> None:
    """Raise `EngineError` when a pipeline source reads the event log: with events only in Parquet
    the pipeline trains on the engine's interactions (one pseudo-event per user x item pair)."""
    readers = sorted(
        {source["model"] for source in pipeline_params.get("sources", []) if needs_event_log(source["model"])}
    )
    if readers:
        raise EngineError(
            f"source(s) {', '.join(readers)} read the event log (order, sessions or baskets), but with "
            "[engine] events in Parquet the pipeline trains on the engine's interactions; use matrix "
            "sources (ease, ials, item_knn, rp3beta, spark_als, ...) or ingest the events into a store"
        )


def publish_top_n(model: Recommender, store: EventStore, k: int = 50) -> dict[str, int]:
    """Score every user of each Spark ALS model on Spark (the model itself, or the fused model's
    ``spark_als`` sources) and replace its lists in the store's ``recommendations_batch`` table,
    named by the source's label. Returns label -> rows written."""
    from fusionrec.engine.spark_als import SparkALS, recommend_all, save_all

    sources = model.source_models if model.combines_sources else {model.name: model}  # type: ignore[attr-defined]
    written = {}
    for label, source in sources.items():
        if isinstance(source, SparkALS):
            with tempfile.TemporaryDirectory(prefix="fusionrec-topn-") as staging:
                frame = recommend_all(source, k)
                written[label] = save_all(frame, store, label, str(Path(staging) / "lists"))
    return written
