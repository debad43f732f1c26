"""Batch jobs on a pluggable engine: DuckDB on one machine, Apache Spark when the data outgrows it.

``get_engine(settings, store)`` gives an `Engine` with the events loaded; `fusionrec.engine.jobs`
holds the jobs, written once as SQL. Spark parts import PySpark only when used.
"""

from fusionrec.engine.base import Engine, EngineError, get_engine
from fusionrec.engine.settings import EngineSettings, EngineSettingsError, SparkSettings

__all__ = ["Engine", "EngineError", "EngineSettings", "EngineSettingsError", "SparkSettings", "get_engine"]
