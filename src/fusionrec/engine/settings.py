"""The ``[engine]`` section of ``fusionrec.toml``: which engine runs the batch jobs, and Spark's resources.

```toml
[engine]
engine = "spark"                          # "duckdb" (default, one machine) or "spark"
events = "s3a://shop-lake/events/"        # Parquet events at any path Spark reads; empty = the store
items = "s3a://shop-lake/items/"          # optional catalogue Parquet (analytics needs categories)

[engine.spark]
master = "yarn"                           # local[2] here; yarn, k8s://..., spark://host:7077 on a cluster
driver_memory = "8g"
executor_memory = "16g"
executor_cores = 4
executor_instances = 50
shuffle_partitions = 2000

[engine.spark.conf]                       # any other Spark setting, passed through unchanged
"spark.hadoop.fs.s3a.aws.credentials.provider" = "com.amazonaws.auth.DefaultAWSCredentialsProviderChain"
```

Cloud object stores need their Hadoop connector on Spark's class path (``hadoop-aws`` for ``s3a://``,
``gcs-connector`` for ``gs://``, ``hadoop-azure`` for ``abfss://``): install the jars with the
cluster image, or name them in ``conf`` (``spark.jars``). docs/scale.md lists the settings.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

_MEMORY = re.compile(r"^[0-9]+[kmgt]?$", re.IGNORECASE)


class EngineSettingsError(ValueError):
    """The ``[engine]`` settings are invalid; the message names the key."""


class SparkSettings(BaseModel):
    """Spark session settings (each maps to one ``spark.*`` key, see `spark_session.spark_conf`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    master: str = "local[2]"
    app_name: str = "fusionrec"
    driver_memory: str = "2g"
    executor_memory: str = "2g"
    executor_cores: int | None = Field(default=None, ge=1)
    executor_instances: int | None = Field(default=None, ge=1)
    shuffle_partitions: int = Field(default=8, ge=1)
    ui_enabled: bool = False
    local_dir: str | None = None  # shuffle spill directory (spark.local.dir)
    conf: dict[str, str] = Field(default_factory=dict)  # any other spark.* setting

    @field_validator("driver_memory", "executor_memory")
    @classmethod
    def _memory(cls, value: str) -> str:
        if not _MEMORY.match(value.strip()):
            raise ValueError(f"{value!r} is not a JVM memory size such as 512m, 4g")
        return value.strip().lower()

    @field_validator("master")
    @classmethod
    def _master(cls, value: str) -> str:
        if not value.strip():
            raise ValueError(
                "master is empty: use local[2], yarn, k8s://https://host:443 or spark://host:7077"
            )
        return value.strip()


class EngineSettings(BaseModel):
    """Which engine runs the batch jobs and where its input lives."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    engine: Literal["duckdb", "spark"] = "duckdb"
    events: str | None = None  # Parquet file, directory or glob of canonical events; None = the store
    items: str | None = None  # Parquet catalogue (optional)
    duckdb_threads: int | None = Field(default=None, ge=1)  # None = all cores
    duckdb_memory_limit: str | None = None  # e.g. "16GB"; None = DuckDB's default (80% of RAM)
    duckdb_temp_directory: str | None = None  # where DuckDB spills past its memory limit; None = system temp
    spark: SparkSettings = Field(default_factory=SparkSettings)

    @classmethod
    def from_mapping(cls, data: dict[str, Any] | None, where: str = "engine") -> EngineSettings:
        """Validate an ``[engine]`` table; errors name the key (``engine.spark.driver_memory: ...``)."""
        try:
            return cls(**(data or {}))
        except ValidationError as error:
            problems = "; ".join(
                ".".join([where, *(str(p) for p in item["loc"])]) + ": " + item["msg"]
                for item in error.errors()
            )
            raise EngineSettingsError(problems) from error

    @classmethod
    def from_toml(cls, path: str | Path) -> EngineSettings:
        """The ``[engine]`` section of a ``fusionrec.toml`` (defaults when the section is absent)."""
        path = Path(path)
        if not path.is_file():
            raise EngineSettingsError(f"{path}: file not found")
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as error:
            raise EngineSettingsError(f"{path}: not valid TOML ({error})") from error
        return cls.from_mapping(data.get("engine"), where=f"{path.name}:engine")

    def with_engine(self, engine: str | None) -> EngineSettings:
        """These settings with the engine overridden (the CLI's ``--engine``); None keeps it."""
        if engine is None:
            return self
        return self.from_mapping({**self.model_dump(), "engine": engine})


def command_settings(
    engine: str | None, section: dict[str, Any] | None, where: str = "fusionrec.toml:engine"
) -> EngineSettings | None:
    """The engine settings for ``train``/``evaluate``/``report``: the project file's ``[engine]``
    ``section`` with ``--engine`` on top; None when neither asks for an engine (in process)."""
    if engine is None and section is None:
        return None
    return EngineSettings.from_mapping(section, where=where).with_engine(engine)
