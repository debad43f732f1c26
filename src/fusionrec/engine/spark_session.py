"""A Spark session built from `SparkSettings`, the same code in local mode and on a cluster."""

from __future__ import annotations

import os
import shutil
import socket
import sys
from typing import TYPE_CHECKING

from fusionrec.engine.base import EngineError
from fusionrec.engine.settings import SparkSettings
from fusionrec.extras import require

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


class SparkUnavailableError(EngineError):
    """Java is missing, or the Spark master cannot be reached."""


def check_master_reachable(master: str, timeout_s: float = 3.0) -> None:
    """For a standalone ``spark://host:port[,host:port]`` master, fail at once when no listed host
    accepts a connection (Spark itself retries for over a minute, printing Java stack traces)."""
    if not master.startswith("spark://"):
        return  # local[N] needs no server; yarn and k8s masters are reached through their own config
    errors = []
    for address in master.removeprefix("spark://").split(","):
        host, _, port = address.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=timeout_s):
                return
        except (OSError, ValueError) as error:
            errors.append(f"{address}: {error}")
    raise SparkUnavailableError(f"cannot reach the Spark master {master} ({'; '.join(errors)})")


def spark_conf(settings: SparkSettings) -> dict[str, str]:
    """Every ``spark.*`` key the settings set (``conf`` entries win over the named fields)."""
    conf = {
        "spark.app.name": settings.app_name,
        "spark.driver.memory": settings.driver_memory,
        "spark.executor.memory": settings.executor_memory,
        "spark.sql.shuffle.partitions": str(settings.shuffle_partitions),
        "spark.ui.enabled": str(settings.ui_enabled).lower(),
        "spark.ui.showConsoleProgress": "false",  # progress bars would fill the logs
        # Timestamps are UTC everywhere in fusionrec: days, weeks and epochs must not shift.
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        # Results come back through Arrow; keep a failed Arrow conversion loud, not a slow fallback.
        "spark.sql.execution.arrow.pyspark.fallback.enabled": "false",
    }
    if settings.executor_cores is not None:
        conf["spark.executor.cores"] = str(settings.executor_cores)
    if settings.executor_instances is not None:
        conf["spark.executor.instances"] = str(settings.executor_instances)
    if settings.local_dir:
        conf["spark.local.dir"] = settings.local_dir
    conf.update(settings.conf)
    return conf


def spark_session(settings: SparkSettings | None = None) -> SparkSession:
    """Get (or create) the process's Spark session with ``settings``.

    Memory settings only apply when this call starts the JVM; a session already running keeps its
    own (Spark allows one per process), while its SQL settings are updated.
    """
    settings = settings or SparkSettings()
    SparkSession = require("pyspark.sql", "the Spark engine").SparkSession
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        raise SparkUnavailableError("the Spark engine needs Java 17 (set JAVA_HOME or put java on PATH)")
    check_master_reachable(settings.master)
    # Python workers must run this interpreter (the one with fusionrec, numpy and pyarrow).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.master(settings.master)
    for key, value in spark_conf(settings).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    for key in ("spark.sql.shuffle.partitions", "spark.sql.session.timeZone"):
        session.conf.set(key, spark_conf(settings)[key])  # take effect on a reused session too
    return session
