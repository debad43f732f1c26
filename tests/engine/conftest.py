"""Shared data and the Spark engine for the engine tests (Spark in local mode, started once per module)."""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator

import pyarrow as pa
import pytest

from conftest import skip_or_fail
from fusionrec.data.synthetic import generate_frames
from fusionrec.engine.settings import EngineSettings, SparkSettings

# Small and quick: one JVM, two cores at most, four shuffle partitions, no UI.
TEST_SPARK = SparkSettings(master="local[2]", shuffle_partitions=4, driver_memory="1g", ui_enabled=False)


def spark_available() -> None:
    """Skip (or fail in CI) when PySpark or Java is missing."""
    if importlib.util.find_spec("pyspark") is None:
        skip_or_fail("PySpark is not installed (pip install 'fusionrec[spark]')")
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        skip_or_fail("Java is not installed (the Spark engine needs Java 17)")


@pytest.fixture(scope="session")
def shop() -> tuple[pa.Table, pa.Table]:
    """A small generated shop: events in store order (timestamp, event_id) and the catalogue."""
    events, items, _ = generate_frames(n_events=4000, seed=11)
    return events.sort_by([("timestamp", "ascending"), ("event_id", "ascending")]), items


@pytest.fixture(scope="module")
def spark_settings() -> Iterator[EngineSettings]:
    """Engine settings for Spark; the session is stopped when the module's tests are done."""
    spark_available()
    yield EngineSettings(engine="spark", spark=TEST_SPARK)
    from pyspark.sql import SparkSession

    session = SparkSession.getActiveSession()
    if session is not None:
        session.stop()
