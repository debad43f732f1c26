"""Service settings: defaults, then the ``[serving]`` section of ``fusionrec.toml``, then environment.

Environment variables are prefixed ``FUSIONREC_SERVING_`` (nested keys with ``__``), e.g.
``FUSIONREC_SERVING_STORE_URL=postgresql://...`` or ``FUSIONREC_SERVING_API_KEYS='{"k1": ["read"]}'``.
Keyword arguments given to `load_settings` (the CLI's options) win over everything.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from fusionrec.data.import_options import event_aliases
from fusionrec.monitoring.alert_config import AlertConfig
from fusionrec.project import DEFAULT_STORE_URL
from fusionrec.serving.business_rules import RulesConfig
from fusionrec.serving.experiments import ExperimentConfig
from fusionrec.serving.security import PUBLISHABLE, normal_origin

# "events" is the publishable scope of a key a web page may hold: post events, from `cors_origins` only.
Scope = Literal["read", "write", "admin", "events"]
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
ORIGIN = re.compile(r"https?://[a-z0-9.\-\[\]:]+")  # scheme://host[:port], no path, no wildcard


class SettingsError(ValueError):
    """The settings file or environment is invalid; the message names the key."""


class ServingSettings(BaseSettings):
    """Everything `fusionrec serve` can be told."""

    model_config = SettingsConfigDict(
        env_prefix="FUSIONREC_SERVING_", env_nested_delimiter="__", extra="forbid"
    )

    store_url: str = DEFAULT_STORE_URL
    models_dir: Path = Path("models")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    # Multi-worker state: Redis for online state and caches (None = in-process).
    redis_url: str | None = None
    redis_prefix: str = "fr:"  # key prefix, so several shops (or tests) can share one Redis
    # Per Redis call: a slow Redis degrades the answer, never blocks it. 50 ms degraded 20 of 72
    # answers on a loaded machine with Redis up; 250 ms leaves room for a busy host.
    redis_timeout_s: float = Field(0.25, gt=0)
    redis_retry_s: float = Field(2.0, ge=0)  # after a Redis failure, skip it this long
    # Security: API key -> scopes. With none, reads stay open and writes and admin calls get 401.
    api_keys: dict[str, list[Scope]] = Field(default_factory=dict)
    # Web pages allowed to call the API from a browser (CORS), e.g. ["https://shop.example"]; empty:
    # CORS off. Keys with the publishable "events" scope post events from these origins only.
    cors_origins: list[str] = Field(default_factory=list)
    # Reads (recommendations, popular, similar) without a key; None = open only when no keys are set.
    public_read: bool | None = None
    # Every scope without a key, for local use (`fusionrec serve --dev`, `fusionrec demo`): the
    # service then listens on 127.0.0.1 only.
    dev: bool = False
    # The demo shop page at /demo-shop (a static page using the widget of /sdk/fusionrec.js);
    # `fusionrec demo` turns it on. A shop's own service has no use for it.
    demo_shop: bool = False
    # Signs the manifest of every version trained (HMAC-SHA256) and refuses, at activation, a
    # version that is unsigned or badly signed; None = versions are checked on their checksums alone.
    # Better in the environment (FUSIONREC_SERVING_SIGNING_KEY) than in the project file.
    signing_key: SecretStr | None = None
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1024)
    rate_limit_per_s: float = Field(0.0, ge=0)  # per API key (or client address); 0 = unlimited
    rate_burst: int = Field(200, ge=1)
    # Processes serving behind one port (`fusionrec serve --workers N`): each enforces 1/N of the
    # rate limit, so the limit above holds for the whole service while the kernel spreads connections.
    workers: int = Field(1, ge=1)
    # Recommendations.
    default_k: int = Field(10, ge=1, le=1000)
    max_k: int = Field(200, ge=1)
    max_offset: int = Field(1000, ge=0)
    candidates: int = Field(200, ge=10)  # model candidates the rules choose from (grows with offset+k)
    # Known users scored in batches at activation (answers without live events); 0 = off.
    precompute_users: int = Field(200_000, ge=0)
    # Then the answer of a guest whose one live item is each of the most popular items (a product
    # page's first view), for models that score live histories; 0 = off. About 3 KB per item
    # (2.9 KB at 2M events: ~180 candidates with their item's neighbours merged in).
    precompute_guest_items: int = Field(50_000, ge=0)
    # While those lists are scored at start-up (in the background), known users without live
    # events get the fallback, flagged "precomputing"; True scores each of them on request instead
    # (slower under load: every request then competes with the batch for the CPU).
    score_while_precomputing: bool = False
    # Once a version's lists are scored, exempt the objects then alive (the version, its id
    # dictionaries) from the cycle collector's full collections (`serving.heap`): each walked all
    # of them, pausing every request. Off where one process builds many services (the tests).
    freeze_heap: bool = True
    # Read the known users' lists from the store's recommendations_batch table (the label a
    # `train --engine spark` run wrote, e.g. "spark_als") instead of scoring them in the service.
    batch_lists: str | None = None
    online_history: int = Field(50, ge=1)  # recent items kept per visitor
    online_ttl_s: int = Field(30 * 86_400, ge=60)
    # Weight of item-to-item candidates from the last items, next to the model's normalised scores.
    # Three views in one category changed a median 7-8 of the default fused pipeline's top 10 (2M
    # synthetic events) at 0.3 or 0.7: its ranker re-scores the live history itself. A `blend` (no
    # ranker) moved far less (300k events: 1 at 0.3, 4 at 0.7), so 0.7 suits a shop serving one.
    realtime_weight: float = Field(0.3, ge=0)
    realtime_items: int = Field(3, ge=1)  # last items that seed those candidates
    cache_ttl_s: float = Field(30.0, ge=0)
    cache_max_entries: int = Field(100_000, ge=0)
    trending_days: float = Field(7.0, gt=0)
    trending_refresh_s: float = Field(300.0, gt=0)
    # New items (in the catalogue, unknown to the model: `serving.new_items`): mixed into answers
    # by rank at floor(n * (1 - affinity * prior)) when affinity * prior reaches new_item_min_score
    # (the prior: weighted live events against the category's median popularity); an item with no
    # events yet is an exploration slot for this share of the visitors who like its category.
    new_items: bool = True
    new_item_min_score: float = Field(0.15, ge=0, le=1)
    new_item_explore: float = Field(0.05, ge=0, le=1)
    new_items_per_page: int = Field(3, ge=0)
    new_item_similar_min: float = Field(0.3, ge=0, le=1)  # content cosine for a neighbour's similar list
    # Registry and gate.
    gate_metric: str = "NDCG@20"
    gate_tolerance: float = Field(0.05, ge=0, le=1)  # new metric >= active * (1 - tolerance)
    gate_users: int = Field(64, ge=1)
    # Retraining (POST /v1/models/train, and every retrain_every_s when set): a registered model name,
    # or a pipeline file (default: the default fused pipeline).
    train_model: str | None = None
    train_pipeline: Path | None = None
    retrain_every_s: float | None = Field(None, gt=0)  # scheduled retraining; None = only on request
    # Retraining on request starts at most once per this many seconds (429 before): a client, or a
    # fuzzer, cannot fill the disk with versions.
    retrain_min_interval_s: float = Field(300.0, ge=0)
    # Versions kept in the repository after a retraining (the newest; never the active one or
    # its rollback target).
    keep_versions: int = Field(10, ge=2)
    # Exposures and analytics.
    log_exposures: bool = True
    # The shop's currency (ISO 4217, e.g. "EUR"): the dashboard and `fusionrec report` show money in it.
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$")
    exposure_flush_s: float = Field(1.0, gt=0)
    # How often a worker takes in erasures made by another worker or `fusionrec erase`.
    erasure_refresh_s: float = Field(5.0, gt=0)
    # The catalogue is read again from the store this often, and taken in when it changed: an items
    # file ingested, or a PUT on another worker (new items then join the new-item index).
    catalogue_refresh_s: float = Field(10.0, gt=0)
    # Stream: consume a Redis stream in the service itself (redis://host:port/stream).
    stream_url: str | None = None
    rules: RulesConfig = Field(default_factory=RulesConfig)
    experiments: list[ExperimentConfig] = Field(default_factory=list)
    alerts: AlertConfig = Field(default_factory=AlertConfig)
    # Shared with the top-level sections of fusionrec.toml: the event types accepted (name ->
    # weight, over the canonical ones) and a shop's names for them (basket = "add_to_cart").
    event_types: dict[str, float] = Field(default_factory=dict)
    event_aliases: dict[str, str] = Field(default_factory=dict)
    # Unit of event timestamps sent as epoch numbers ([ingest] epoch_unit); None = ISO 8601 only.
    epoch_unit: Literal["s", "ms", "us", "ns"] | None = None

    @field_validator("event_aliases")
    @classmethod
    def _known_targets(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        return event_aliases(value, info.data.get("event_types"))

    @model_validator(mode="after")
    def _dev_is_local(self) -> ServingSettings:
        if self.dev and self.host not in LOOPBACK_HOSTS:
            raise ValueError(
                f"dev mode opens every scope to anyone, so it listens on 127.0.0.1 only, not {self.host!r}; "
                "configure api_keys to serve on other addresses"
            )
        return self

    @field_validator("api_keys")
    @classmethod
    def _long_keys(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        short = [k for k in value if len(k) < 16]
        if short:
            raise ValueError(f"{len(short)} API key(s) shorter than 16 characters; use long random keys")
        mixed = [k for k, scopes in value.items() if PUBLISHABLE & set(scopes) and set(scopes) != PUBLISHABLE]
        if mixed:  # a publishable key is public: it must not carry a secret key's powers
            raise ValueError(f"{len(mixed)} API key(s) mix the publishable 'events' scope with others")
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        cleaned = [normal_origin(origin) for origin in value]
        bad = [o for o in cleaned if not ORIGIN.fullmatch(o)]
        if bad:
            raise ValueError(
                f"{bad[0]!r} is not an origin: give scheme, host and optional port, e.g. https://shop.example"
            )
        return cleaned

    @model_validator(mode="after")
    def _publishable_keys_need_origins(self) -> ServingSettings:
        if not self.cors_origins and any(PUBLISHABLE & set(scopes) for scopes in self.api_keys.values()):
            raise ValueError(
                "an API key with the 'events' scope needs the web pages it serves in cors_origins"
            )
        return self

    @field_validator("signing_key")
    @classmethod
    def _long_signing_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("the signing key is shorter than 16 characters; use a long random key")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Explicit options, then environment, then the file section (passed in as `_file`).
        return (init_settings, env_settings, _FileSource(settings_cls))


class _FileSource(PydanticBaseSettingsSource):
    """The ``[serving]`` section handed over by `load_settings` (through a class attribute per call)."""

    section: dict[str, Any] = {}  # noqa: RUF012 - set for the duration of one load_settings call

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self.section.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.section)


def read_section(path: str | Path | None) -> dict[str, Any]:
    """The ``[serving]`` table of a fusionrec.toml (top-level ``rules``, ``experiments``,
    ``event_types`` and ``event_aliases`` are merged in,
    and ``[store] url`` is the default store URL). `fusionrec serve` validates the whole file first
    (`fusionrec.configuration`); here the values are checked by `ServingSettings`."""
    from fusionrec.project import ProjectFileError, read_project_file

    if path is None:
        return {}
    path = Path(path)
    if not path.is_file():
        raise SettingsError(f"{path}: file not found")
    try:
        data = read_project_file(path)
    except ProjectFileError as error:
        raise SettingsError(str(error)) from error
    section = dict(data.get("serving", {}))
    for shared in ("rules", "experiments", "event_types", "event_aliases"):
        if shared in data and shared not in section:
            section[shared] = data[shared]
    ingest = data.get("ingest")
    if isinstance(ingest, dict) and "epoch_unit" in ingest and "epoch_unit" not in section:
        section["epoch_unit"] = ingest["epoch_unit"]
    store = data.get("store")
    if isinstance(store, dict) and "store_url" not in section:
        section["store_url"] = store.get("url", DEFAULT_STORE_URL)
    return section


def load_settings(config: str | Path | None = None, **overrides: Any) -> ServingSettings:
    """Settings from ``config`` (a fusionrec.toml), the environment and ``overrides`` (None = unset)."""
    _FileSource.section = read_section(config)
    try:
        return ServingSettings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as error:
        where = f"{Path(config).name}:serving" if config else "serving settings"
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors(include_url=False)
        )
        raise SettingsError(f"{where}: {problems}") from error
    finally:
        _FileSource.section = {}
