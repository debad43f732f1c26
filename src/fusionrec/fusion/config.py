"""The fused pipeline's declared configuration (the ``[pipeline]`` section of ``fusionrec.toml``).

Everything is a pydantic model with unknown keys rejected, so a typo in a TOML file is an error
that names the key, not a silently ignored setting. `load_pipeline` reads a pipeline on its own (a
file holding a ``[pipeline]`` table, or the pipeline's keys at top level); the whole project file is
`fusionrec.configuration.load_project`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fusionrec.models.base import ModelConfig

DEFAULT_PIPELINE_RESOURCE = "default_pipeline.toml"

# Graded relevance of the label window, per event type (highest event of a user-item pair wins).
DEFAULT_GAINS: dict[str, int] = {
    "purchase": 4,
    "add_to_cart": 2,
    "favorite": 2,
    "rating": 1,
    "click": 1,
    "view": 1,
}


# Names of the extra candidate lists (in features, reports and traces).
REPEAT, POPULAR_IN_CATEGORY = "repeat", "popular_in_category"


class PipelineConfigError(ValueError):
    """A pipeline or project file is missing, not TOML, or invalid; the message names the key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SourceConfig(_Strict):
    """One candidate source: a registered model, its hyperparameters and its quota."""

    model: str
    name: str | None = None  # label used in features and reports; defaults to the model name
    params: dict[str, Any] = Field(default_factory=dict)
    n: int = Field(100, ge=1)  # candidates this source proposes per user (its quota)
    # Items scored at or below this are not proposed (e.g. 0 for kNN sources, whose zero-score
    # padding says "no evidence"); None keeps the whole top-n.
    min_score: float | None = None

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str) -> str:
        from fusionrec.models.registry import MODEL_PATHS

        if value not in MODEL_PATHS:
            raise ValueError(f"unknown model {value!r}; available: {', '.join(sorted(MODEL_PATHS))}")
        if value in FUSION_MODELS:  # a fused model inside a fused model would fit twice over
            raise ValueError(f"{value!r} is a fusion model and cannot be a candidate source")
        return value

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str | None) -> str | None:
        if value is not None and not value.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"source name {value!r} may hold only letters, digits, '_' and '-'")
        return value

    @property
    def label(self) -> str:
        return self.name or self.model

    @model_validator(mode="after")
    def _valid_params(self) -> SourceConfig:
        """The source's ``params`` are that model's hyperparameters: checked by its own Config."""
        from fusionrec.models.registry import model_class

        try:
            model_class(self.model).Config(**self.params)
        except ValidationError as error:
            raise ValueError(f"params of {self.model}: {first_problem(error)}") from None
        return self


def first_problem(error: ValidationError) -> str:
    """A pydantic error's first problem in one line: ``key: what is wrong``."""
    return describe_problem(error.errors(include_url=False)[0])


def describe_problem(problem: Mapping[str, Any], prefix: Sequence[str] = ()) -> str:
    """One pydantic problem as ``key.path: what is wrong``: an unknown key says so, and pydantic's
    "Value error, " prefix of our own validators' messages is dropped."""
    where = ".".join(str(part) for part in (*prefix, *problem["loc"]) if part != "") or "value"
    message = "unknown key" if problem["type"] == "extra_forbidden" else problem["msg"]
    return f"{where}: {message.removeprefix('Value error, ')}"


FUSION_MODELS = frozenset({"fusion", "blend", "rrf", "stack"})


class HoldoutConfig(_Strict):
    """How the ranker's label window is cut from the training data (no leakage into features).

    ``last``: each user's last ``items`` distinct items (leave-one-out data); ``random``: a seeded
    random ``fraction`` of each user's items (randomly split data such as Gowalla's); ``days``:
    every event of the last ``days`` days (temporal data). With ``windows`` > 1 the sources are
    fit once per window, each on the data before it (see `fusion.pipeline.label_windows`).
    """

    mode: Literal["last", "random", "days"] = "last"
    items: int = Field(1, ge=1)
    fraction: float = Field(0.2, gt=0.0, lt=1.0)
    days: float = Field(7.0, gt=0.0)
    min_history: int = Field(2, ge=1)  # users with fewer items keep all of them before the window
    # Label windows stacked into the ranker's training data (more groups, less dependence on
    # one window): ``days`` / ``last`` step back one window at a time, ``random`` redraws.
    windows: int = Field(1, ge=1)


class RankerConfig(_Strict):
    """The learning-to-rank model and its parameters (passed to the library as given)."""

    kind: Literal["lightgbm", "xgboost", "catboost", "linear"] = "lightgbm"
    params: dict[str, Any] = Field(default_factory=dict)
    threads: int = Field(1, ge=1)
    # Seed averaging: this many models, trained with seeds seed, seed + 1, ..., score the rows
    # by their mean. Pair it with subsampling in ``params`` (LightGBM ``bagging_fraction`` with
    # ``bagging_by_query``), or the members differ only by their feature sampling.
    bags: int = Field(1, ge=1, le=16)

    @model_validator(mode="after")
    def _known_params(self) -> RankerConfig:
        """LightGBM parameters are checked by LightGBM itself (its own names and aliases)."""
        if self.kind == "lightgbm" and self.params:
            from fusionrec.fusion.ranker import unknown_lightgbm_params

            unknown = unknown_lightgbm_params(self.params)
            if unknown:
                raise ValueError(f"params: unknown LightGBM parameter(s) {', '.join(unknown)}")
        return self


class ExtraCandidates(_Strict):
    """Candidates besides the model sources."""

    repeat: int = Field(0, ge=0)  # the user's own most frequent past items (repurchase)
    popular_in_category: int = Field(0, ge=0)  # top items of the user's favourite category


class FusionSettings(_Strict):
    """Knobs shared by every fusion model: sources, candidates, label window, labels, features."""

    sources: list[SourceConfig] = Field(min_length=1)
    extra: ExtraCandidates = Field(default_factory=ExtraCandidates)
    holdout: HoldoutConfig = Field(default_factory=HoldoutConfig)
    gains: dict[str, int] = Field(default_factory=lambda: dict(DEFAULT_GAINS))
    revenue_weighting: bool = False  # weight each training group by the revenue of its labels
    train_users: int = Field(20_000, ge=1)  # label-window users sampled (seeded) to train the combiner
    exclude_seen: bool = True  # candidates never include the user's training items
    recent_items: int = Field(5, ge=1)  # the "last items" of user x item co-visitation features
    covisit_window: int = Field(3, ge=1)  # positions apart that count as co-visited
    covisit_neighbours: int = Field(50, ge=1)  # co-visited items kept per item
    # Ranking features left out, by name (`fusionrec.fusion.features`), e.g. the time features
    # on data whose times are synthetic (the Gowalla benchmark files carry none).
    drop_features: list[str] = Field(default_factory=list)
    # Scale-free features: each source's score divided by that source's best score for the user,
    # counts (item popularity, user activity) divided by their mean. The ranker learns on data
    # without the label window and serves on all of it; raw counts and scores grow in between.
    relative_features: bool = False
    # Every source scores every candidate, not only the items it proposed (their ranks stay
    # missing): the ranker sees, say, GF-CF's view of an item that only iALS proposed.
    score_all_candidates: bool = False
    # Ranking features from the users' attributes (users.parquet), when the training users have
    # any: each attribute's value and the candidate's lift in the user's segment of it. Off by
    # default: on the synthetic shop with a planted relation and on dunnhumby they gave users with
    # a history no gain (docs/benchmarks.md); a user's own history already shows their taste.
    user_attributes: bool = False

    def source_labels(self) -> list[str]:
        """The candidate lists' names: the sources, then the extra lists that are switched on."""
        labels = [s.label for s in self.sources]
        if self.extra.repeat:
            labels.append(REPEAT)
        if self.extra.popular_in_category:
            labels.append(POPULAR_IN_CATEGORY)
        return labels

    @model_validator(mode="after")
    def _unique_labels(self) -> FusionSettings:
        labels = [s.label for s in self.sources]
        duplicates = sorted({x for x in labels if labels.count(x) > 1})
        if duplicates:
            raise ValueError(f"sources: duplicate source names {duplicates}; give each a distinct `name`")
        if self.extra.repeat and self.exclude_seen:
            raise ValueError("extra.repeat proposes the user's own past items: set exclude_seen = false")
        from fusionrec.fusion.features import FeatureContext, is_attribute_feature
        from fusionrec.fusion.request_context import is_context_feature

        known = FeatureContext.feature_names(
            self.source_labels(), vectors=True
        )  # vectors: if the catalogue has them
        # The attribute and context features depend on the data (checked when the context exists).
        unknown = [
            name
            for name in self.drop_features
            if name not in known and not is_attribute_feature(name) and not is_context_feature(name)
        ]
        if unknown:
            raise ValueError(f"drop_features: unknown features {unknown}; available: {', '.join(known)}")
        if len(set(self.drop_features)) >= len(known):
            raise ValueError("drop_features: every feature is dropped; keep at least one")
        return self


class FusionConfig(ModelConfig, FusionSettings):
    """Config of the `fusion` model: the shared settings plus the ranker."""

    ranker: RankerConfig = Field(default_factory=RankerConfig)
    sources: list[SourceConfig] = Field(default_factory=lambda: default_pipeline().sources)


class PipelineFile(_Strict):
    """A pipeline as declared in TOML: the model (a fused one, or any registered model, as the
    automatic search may ship a single source) and its config.

    What serves users the pipeline cannot score is the service's fallback chain, and business rules
    are the ``[rules]`` section: neither is part of a pipeline."""

    model: str = "fusion"
    config: dict[str, Any] = Field(default_factory=dict)

    @field_validator("model")
    @classmethod
    def _trainable_model(cls, value: str) -> str:
        from fusionrec.models.registry import MODEL_PATHS

        if value == "auto":
            raise ValueError("'auto' is the search itself: leave [pipeline] out to run it")
        if value not in MODEL_PATHS:
            raise ValueError(f"unknown model {value!r}; available: {', '.join(sorted(MODEL_PATHS))}")
        return value

    @property
    def sources(self) -> list[SourceConfig]:
        return [SourceConfig(**s) for s in self.config.get("sources", [])]

    def model_params(self) -> dict[str, Any]:
        """Parameters for `create_model(self.model, **params)` (validated by that model's Config)."""
        return dict(self.config)


def _format_errors(error: ValidationError, prefix: str) -> str:
    return "; ".join(describe_problem(item, (prefix,)) for item in error.errors(include_url=False))


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise PipelineConfigError(f"{path}: file not found")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as error:
        raise PipelineConfigError(f"{path}: not valid TOML ({error})") from error


def parse_pipeline(data: dict[str, Any], where: str = "pipeline") -> PipelineFile:
    """Validate a pipeline table; the model's own config is validated too, errors name the key."""
    from fusionrec.models.registry import model_class

    try:
        pipeline = PipelineFile(**data)
    except ValidationError as error:
        raise PipelineConfigError(_format_errors(error, where)) from error
    try:
        model_class(pipeline.model).Config(**pipeline.config)
    except ValidationError as error:
        raise PipelineConfigError(_format_errors(error, f"{where}.config")) from error
    return pipeline


def load_pipeline(path: str | Path) -> PipelineFile:
    """A pipeline file: a ``[pipeline]`` table, or a file whose top level is the pipeline."""
    path = Path(path)
    data = _read_toml(path)
    table = data.get("pipeline", data)
    return parse_pipeline(table, where=f"{path.name}:pipeline")


def default_pipeline() -> PipelineFile:
    """The packaged default pipeline (``fusion/default_pipeline.toml``)."""
    text = resources.files("fusionrec.fusion").joinpath(DEFAULT_PIPELINE_RESOURCE).read_text()
    data = tomllib.loads(text)
    return PipelineFile(**data["pipeline"])


def pipeline_to_toml(pipeline: PipelineFile) -> str:
    """Serialise a pipeline as TOML (a ``[pipeline]`` table), e.g. the best one a tuning run found."""
    return _to_toml({"pipeline": pipeline.model_dump(mode="json", exclude_defaults=False)})


def _to_toml(data: dict[str, Any], prefix: str = "") -> str:
    """Minimal TOML writer for nested dicts, lists of tables and scalars (what pipelines hold)."""
    scalars, tables, arrays = [], [], []
    for key, value in data.items():
        if value is None:  # TOML has no null: a missing key means the default
            continue
        if isinstance(value, dict):
            tables.append((key, value))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            arrays.append((key, value))
        else:
            scalars.append(f"{key} = {_toml_value(value)}")
    lines: list[str] = []
    if prefix and (scalars or not (tables or arrays)):
        lines.append(f"[{prefix}]")
    lines.extend(scalars)
    for key, value in tables:
        lines.append("")
        lines.append(_to_toml(value, f"{prefix}.{key}" if prefix else key).rstrip())
    for key, items in arrays:
        name = f"{prefix}.{key}" if prefix else key
        for item in items:
            lines.append("")
            inner = {k: v for k, v in item.items() if not isinstance(v, dict) and v is not None}
            lines.append(f"[[{name}]]")
            lines.extend(f"{k} = {_toml_value(v)}" for k, v in inner.items())
            for k, v in item.items():
                if isinstance(v, dict):
                    lines.append(f"{k} = {_toml_value(v)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if value is None:
        raise PipelineConfigError("TOML cannot hold None; leave the key out instead")
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    raise PipelineConfigError(f"cannot write {type(value).__name__} to TOML")
