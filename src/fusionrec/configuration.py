"""``fusionrec.toml`` as one typed model, validated when it loads: an unknown section or key anywhere
is an error that names the file, the section and the key.

Each section is validated by the model of the part that owns it (`PipelineFile`, `EngineSettings`,
`ServingSettings`, `RulesConfig`, `ExperimentConfig`); the CLI and the service load the file through
`load_project`, so a typo fails every command the same way, in one line.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from fusionrec.data.import_options import ImportOptions, event_aliases
from fusionrec.fusion.config import describe_problem
from fusionrec.project import DEFAULT_STORE_URL, PROJECT_FILE, ProjectFileError, read_project_file

__all__ = ["ProjectConfig", "ProjectFileError", "StoreSection", "load_project"]


def section_owners() -> dict[str, type[BaseModel]]:
    """Section -> the model that validates it: its owner's own settings class (imported on use)."""
    from fusionrec.engine.settings import EngineSettings
    from fusionrec.fusion.config import PipelineFile
    from fusionrec.serving.business_rules import RulesConfig
    from fusionrec.serving.settings import ServingSettings

    return {
        "pipeline": PipelineFile,
        "engine": EngineSettings,
        "serving": ServingSettings,
        "rules": RulesConfig,
    }


class StoreSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = DEFAULT_STORE_URL
    # Events (and rejected rows, exposures) older than this many days are deleted by
    # `fusionrec retention`; None = kept for ever.
    retention_days: float | None = Field(None, gt=0)


class ProjectConfig(BaseModel):
    """Every section of ``fusionrec.toml``; all optional, none unknown."""

    model_config = ConfigDict(extra="forbid")

    store: StoreSection = Field(default_factory=StoreSection)
    pipeline: dict[str, Any] | None = None  # a `PipelineFile`; its model config checked on load too
    engine: dict[str, Any] | None = None  # `EngineSettings`
    serving: dict[str, Any] = Field(default_factory=dict)  # `ServingSettings` keys
    rules: dict[str, Any] | None = None  # `RulesConfig`, shared by serving
    experiments: list[dict[str, Any]] = Field(default_factory=list)  # `ExperimentConfig` each
    event_types: dict[str, float] = Field(default_factory=dict)  # event type -> weight
    # How `fusionrec ingest` reads a shop's files: column maps, delimiter, decimal mark, times.
    ingest: ImportOptions = Field(default_factory=ImportOptions)
    # A shop's event type names -> known types (basket = "add_to_cart"), for files, HTTP and streams.
    event_aliases: dict[str, str] = Field(default_factory=dict)

    @field_validator("pipeline", "engine", "serving", "rules")
    @classmethod
    def _owned(cls, value: dict[str, Any] | None, info: ValidationInfo) -> dict[str, Any] | None:
        """A section is checked by the model of the part that owns it (imported only here)."""
        if value is not None:
            section_owners()[info.field_name].model_validate(value)
        return value

    @field_validator("event_aliases")
    @classmethod
    def _aliases_point_at_known_types(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        """Each alias names a canonical type or one of ``[event_types]`` (checked before); normalised."""
        return event_aliases(value, info.data.get("event_types"))

    @field_validator("experiments")
    @classmethod
    def _experiments(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from pydantic import TypeAdapter

        from fusionrec.serving.experiments import ExperimentConfig

        TypeAdapter(list[ExperimentConfig]).validate_python(value)
        return value


def load_project(path: Path = PROJECT_FILE) -> ProjectConfig:
    """The project file, validated (defaults when there is none); `ProjectFileError` names the key."""
    path = Path(path)
    if not path.is_file():
        return ProjectConfig()
    stamp = path.stat().st_mtime_ns
    return _load(path.resolve(), stamp)


@lru_cache(maxsize=8)
def _load(path: Path, stamp: int) -> ProjectConfig:  # the file's mtime keys the cache
    data = read_project_file(path)
    try:
        project = ProjectConfig.model_validate(data)
    except ValidationError as error:
        raise ProjectFileError(f"{path.name}:{describe(error)}") from error
    if project.pipeline is not None:
        from fusionrec.fusion.config import PipelineConfigError, parse_pipeline

        try:  # the pipeline's model config, each source's and the ranker's parameters
            parse_pipeline(project.pipeline, where="pipeline")
        except PipelineConfigError as error:
            raise ProjectFileError(f"{path.name}:{error}") from error
    return project


def describe(error: ValidationError) -> str:
    """The first problem as ``section.key: what is wrong`` (an unknown section lists the known ones).

    A section validator raises its owner model's own error; its key path continues the section's.
    """
    problem = _first(error)
    location = [str(part) for part in problem["loc"]]
    inner = problem.get("ctx", {}).get("error")
    if isinstance(inner, ValidationError):
        problem = _first(inner)
        location += [str(part) for part in problem["loc"]]
    if problem["type"] == "extra_forbidden" and len(location) == 1:
        return f"{location[0]}: unknown section (the sections are {', '.join(ProjectConfig.model_fields)})"
    return describe_problem({**problem, "loc": location})


def _first(error: ValidationError) -> dict[str, Any]:
    """The problem to show: an unknown key first (a typo also explains a "missing" one), else the first."""
    problems = error.errors(include_url=False)
    return next((p for p in problems if p["type"] == "extra_forbidden"), problems[0])
