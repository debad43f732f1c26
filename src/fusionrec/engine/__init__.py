"""Batch jobs on a pluggable engine: DuckDB on one machine, Apache Spark when the data outgrows it.

``get_engine(settings, store)`` gives an `Engine` with the events loaded; `fusionrec.engine.jobs`
holds the jobs, written once as SQL. Spark parts import PySpark only when used. Importing the
package registers the `spark_als` model with `fusionrec.models.registry`.
"""

from fusionrec.engine.base import Engine, EngineError, get_engine
from fusionrec.engine.settings import EngineSettings, EngineSettingsError, SparkSettings
from fusionrec.models.registry import register_models

register_models({"spark_als": "fusionrec.engine.spark_als:SparkALS"})

__all__ = ["Engine", "EngineError", "EngineSettings", "EngineSettingsError", "SparkSettings", "get_engine"]
