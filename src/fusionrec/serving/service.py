"""The service's state and its blocking operations (run off the event loop by the routes).

`Service` owns the store (through one writer thread: DuckDB allows one writer, and one thread
keeps writes ordered for PostgreSQL too), the model registry, the catalogue, the online state,
the caches, the exposure buffer and the metrics. Routes stay thin: they validate, call a method
here in a worker thread, and shape the answer.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import scipy.sparse as sp

from fusionrec.analytics.tables import ensure_analytics_tables, log_exposures
from fusionrec.data.ingest import IngestReport
from fusionrec.data.schema import EVENT_COLUMNS, EventTypes
from fusionrec.data.store import EventStore, open_store
from fusionrec.data.validate import check_events
from fusionrec.models.base import Recommender
from fusionrec.monitoring.metrics import ServiceMetrics
from fusionrec.serving.business_rules import RulesConfig
from fusionrec.serving.cache import AnswerCache, MemoryCache, RedisCache
from fusionrec.serving.catalogue import Catalogue
from fusionrec.serving.experiments import ExposureBuffer
from fusionrec.serving.online import MemoryOnlineState, OnlineState, RedisOnlineState, session_key, user_key
from fusionrec.serving.redis_client import RedisGuard, RedisUnavailableError
from fusionrec.serving.registry import LoadedVersion, VersionRegistry
from fusionrec.serving.security import ApiKeys
from fusionrec.serving.settings import ServingSettings
from fusionrec.serving.similarity import Cooccurrence, ItemNeighbours, NeighbourLookup

logger = logging.getLogger(__name__)
T = TypeVar("T")

TRENDING_SQL = """
WITH last AS (SELECT max("timestamp") AS t FROM events)
SELECT e.item_id AS item_id,
       CAST(count(*) FILTER (WHERE e."timestamp" > last.t - CAST(:recent AS INTERVAL)) AS DOUBLE PRECISION) AS recent,
       CAST(count(*) FILTER (WHERE e."timestamp" <= last.t - CAST(:recent AS INTERVAL)) AS DOUBLE PRECISION) AS previous
FROM events AS e, last
WHERE e.item_id IS NOT NULL AND e."timestamp" > last.t - CAST(:both AS INTERVAL) AND NOT coalesce(e.is_bot, FALSE)
GROUP BY e.item_id
"""
PURCHASES_SQL = """
SELECT user_id, coalesce(session_id, user_id) AS basket, item_id,
       CAST(EXTRACT(EPOCH FROM max("timestamp")) AS DOUBLE PRECISION) AS ts
FROM events WHERE event_type = 'purchase' AND item_id IS NOT NULL AND NOT coalesce(is_bot, FALSE)
GROUP BY user_id, coalesce(session_id, user_id), item_id
"""


class Service:
    """Everything one serving process holds."""

    def __init__(self, settings: ServingSettings, store: EventStore | None = None) -> None:
        self.settings = settings
        self.metrics = ServiceMetrics()
        self.api_keys = ApiKeys(settings.api_keys)
        self.event_types = EventTypes()
        self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fusionrec-store")
        self.store = store if store is not None else open_store(settings.store_url)
        self._hasher = duckdb.connect()  # vectorised md5 of missing event ids (used in the writer thread)
        self.redis: RedisGuard | None = None
        self.online: OnlineState
        self.cache: AnswerCache
        if settings.redis_url:
            self.redis = RedisGuard(
                settings.redis_url,
                timeout_s=settings.redis_timeout_s,
                retry_s=settings.redis_retry_s,
                prefix=settings.redis_prefix,
            )
            self.online = RedisOnlineState(self.redis, settings.online_history, settings.online_ttl_s)
            self.cache = RedisCache(self.redis, settings.cache_ttl_s)
        else:
            self.online = MemoryOnlineState(settings.online_history)
            self.cache = MemoryCache(settings.cache_ttl_s, settings.cache_max_entries)
        self.shared_cache = MemoryCache(settings.cache_ttl_s, 10_000)  # popular lists: per process is enough
        self.exposures = ExposureBuffer()
        self.catalogue = Catalogue()
        self.erased: set[str] = set()
        self.trending_frame = pd.DataFrame({"recent": [], "previous": []})
        self._rules_cache: dict[str, RulesConfig] = {}
        self._last_exposed: OrderedDict[str, set[str]] = OrderedDict()
        self.training: dict[str, Any] = {"state": "idle"}
        self._train_lock = threading.Lock()
        self._started = False
        self.registry = VersionRegistry(
            str(settings.models_dir),
            metric=settings.gate_metric,
            tolerance=settings.gate_tolerance,
            gate_users=settings.gate_users,
            prepare=self.prepare_version,
            on_swap=self._on_swap,
        )

    # --- lifetime --------------------------------------------------------------------------------

    def start(self) -> None:
        """Blocking start-up: analytics tables, catalogue, erased ids, trending, newest valid model."""
        if self._started:
            return
        self._started = True
        self.on_writer(lambda: ensure_analytics_tables(self.store))
        self.catalogue = Catalogue.from_arrow(self.on_writer(self.store.items_arrow))
        self.erased = set(self.on_writer(self.store.erased_users))
        self.refresh_trending()
        report = self.registry.activate_newest()
        if report is None:
            logger.warning(
                "no model version in %s passes the gate: serving fallbacks only", self.settings.models_dir
            )

    def close(self) -> None:
        self.flush_exposures()
        self.writer.shutdown(wait=True)
        self.store.close()
        self._hasher.close()
        self.online.close()
        if self.redis is not None:
            self.redis.close()

    def on_writer(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the store's writer thread and wait for it (call from a worker thread)."""
        return self.writer.submit(fn).result()

    async def on_writer_async(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.writer, fn)

    # --- model versions --------------------------------------------------------------------------

    def prepare_version(self, loaded: LoadedVersion) -> None:
        """Attach what serving derives for a version: neighbours, purchases, trending, popularity."""
        model = loaded.model
        purchases = self.on_writer(lambda: self.store.query_arrow(PURCHASES_SQL)).to_pandas()
        n_items = len(loaded.item_ids)
        item = pd.Series(purchases["item_id"].astype(str)).map(loaded.item_index)
        known = item.notna().to_numpy()
        purchases, item_idx = purchases[known], item[known].to_numpy(np.int64)
        users = purchases["user_id"].map(loaded.user_index)
        by_user = users.notna().to_numpy()
        loaded.extras["purchases"] = sp.csr_matrix(
            (
                purchases["ts"].to_numpy(np.float64)[by_user],
                (users[by_user].to_numpy(np.int64), item_idx[by_user]),
            ),
            shape=(len(loaded.user_index), n_items),
        )
        basket_codes, _ = pd.factorize(purchases["basket"])
        valid = basket_codes >= 0
        baskets = sp.csr_matrix(
            (np.ones(valid.sum(), dtype=np.float32), (basket_codes[valid], item_idx[valid])),
            shape=(int(basket_codes.max(initial=-1)) + 1, n_items),
        )
        bought_together = model.bought_together if model.lists_bought_together else None  # type: ignore[attr-defined]
        loaded.extras["bought_together"] = ItemNeighbours(bought_together, Cooccurrence(baskets))
        loaded.extras["neighbours"] = ItemNeighbours(_similar_items(model), Cooccurrence(model.seen_))
        popularity = np.asarray(model.popularity_, dtype=np.float64)
        loaded.extras["popularity"] = popularity / max(popularity.max(initial=0.0), 1.0)
        self._attach_trending(loaded)

    def _attach_trending(self, loaded: LoadedVersion) -> None:
        frame = self.trending_frame.reindex(loaded.item_ids)
        recent = frame["recent"].fillna(0.0).to_numpy()
        previous = frame["previous"].fillna(0.0).to_numpy()
        growth = np.sqrt((recent + 5.0) / (previous + 5.0))
        # Hot items: recent volume scaled by growth; all-time popularity breaks ties (and ranks the rest).
        loaded.extras["trending"] = recent * growth + 1e-3 * loaded.extras["popularity"]

    def refresh_trending(self) -> None:
        days = self.settings.trending_days
        params = {"recent": f"{days * 86400:.0f} seconds", "both": f"{2 * days * 86400:.0f} seconds"}
        table = self.on_writer(lambda: self.store.query_arrow(TRENDING_SQL, params))
        frame = table.to_pandas()
        self.trending_frame = frame.assign(item_id=frame["item_id"].astype(str)).set_index("item_id")
        for loaded in [v for v in (self.registry.active,) if v is not None]:
            self._attach_trending(loaded)
        self.shared_cache.clear()

    def _on_swap(self, loaded: LoadedVersion) -> None:
        self.metrics.set_active(loaded.version)
        self.shared_cache.clear()
        limit = self.settings.precompute_users
        if (limit or self.settings.batch_lists) and "precomputed" not in loaded.extras:
            threading.Thread(
                target=self._precompute, args=(loaded, limit), name="fusionrec-precompute", daemon=True
            ).start()

    def _precompute(self, loaded: LoadedVersion, limit: int) -> None:
        from fusionrec.serving.precompute import from_batch_table, precompute

        label = self.settings.batch_lists
        try:
            if label is not None:  # lists a batch engine wrote: read them, score nobody here
                from fusionrec.engine.recommendations import read_all_recommendations

                table = self.on_writer(lambda: read_all_recommendations(self.store, label))
                loaded.extras["precomputed"] = from_batch_table(
                    table, loaded.user_index, loaded.item_index, label
                )
                return
            n_users = min(len(loaded.user_index), limit)
            loaded.extras["precomputed"] = precompute(loaded.model, n_users, self.settings.candidates)
        except Exception as error:  # the live path still answers every request
            logger.error("precomputing %s failed: %s: %s", loaded.version, type(error).__name__, error)

    # --- rules -----------------------------------------------------------------------------------

    def rules_for(self, overrides: dict[str, Any] | None) -> RulesConfig:
        if not overrides:
            return self.settings.rules
        key = repr(sorted(overrides.items()))
        rules = self._rules_cache.get(key)
        if rules is None:
            rules = RulesConfig(**{**self.settings.rules.model_dump(), **overrides})
            self._rules_cache[key] = rules
        return rules

    # --- events ----------------------------------------------------------------------------------

    def ingest(self, rows: list[dict[str, Any]], channel: str = "http") -> IngestReport:
        """Validate, store (one transaction) and apply to the online state; the same counts as ingest."""
        frame = pd.DataFrame.from_records(rows) if rows else pd.DataFrame(columns=EVENT_COLUMNS)
        for column in ("event_id", "user_id", "session_id", "item_id", "event_type", "timestamp"):
            if column not in frame.columns:
                frame[column] = None
        frame["row_number"] = np.arange(1, len(frame) + 1)
        report = IngestReport(source=channel)
        started = time.perf_counter()

        def write() -> pa.Table:
            checked = check_events(frame, source=channel, event_types=self.event_types, hasher=self._hasher)
            result = self.store.write_batch(checked.valid, checked.quarantine)
            report.add_batch(checked, result.stored, result.duplicates, result.erased_skipped)
            return checked.valid

        valid = self.on_writer(write)
        report.seconds = time.perf_counter() - started
        self.metrics.events.labels("stored", channel).inc(report.stored)
        self.metrics.events.labels("duplicate", channel).inc(report.duplicates)
        self.metrics.events.labels("quarantined", channel).inc(report.quarantined)
        if valid.num_rows:
            self.apply_online(
                valid.select(["user_id", "session_id", "item_id", "event_type", "timestamp"]).to_pandas()
            )
        return report

    def apply_online(self, events: pd.DataFrame) -> None:
        """Feed stored events into the online state, invalidate the visitors' cached answers."""
        if self.erased:
            events = events[~events["user_id"].isin(self.erased)]
        if events.empty:
            return
        newest = pd.to_datetime(events["timestamp"], utc=True).max()
        self.metrics.event_lag.set(max(time.time() - newest.timestamp(), 0.0))
        try:
            visitors = self.online.record(events)
            self.cache.invalidate(visitors)
        except RedisUnavailableError:
            self.metrics.degraded.labels("online_state").inc()
            logger.warning("online state unavailable: %d events stored but not applied live", len(events))
            return
        self._count_clicks(events)

    def _count_clicks(self, events: pd.DataFrame) -> None:
        clicks = events[events["event_type"] == "click"]
        if clicks.empty or not self._last_exposed:
            return
        keys = np.where(
            clicks["user_id"].notna(),
            "u:" + clicks["user_id"].astype(str),
            "s:" + clicks["session_id"].astype(str),
        )
        hits = sum(
            1
            for key, item in zip(keys, clicks["item_id"].astype(str), strict=True)
            if item in self._last_exposed.get(key, ())
        )
        self.metrics.clicked(hits)

    def remember_exposure(self, visitor: str, items: list[str]) -> None:
        self._last_exposed[visitor] = set(items)
        self._last_exposed.move_to_end(visitor)
        while len(self._last_exposed) > 100_000:
            self._last_exposed.popitem(last=False)
        self.metrics.exposed()

    def flush_exposures(self) -> int:
        rows = self.exposures.drain()
        if not rows or not self.settings.log_exposures:
            return 0
        try:
            return self.on_writer(lambda: log_exposures(self.store, rows, create=False))  # ensured at start
        except Exception:  # exposures must never take the service down; counted and logged
            logger.exception("could not write %d exposures", len(rows))
            self.exposures.dropped += len(rows)
            return 0

    # --- catalogue, identities, erasure ------------------------------------------------------------

    def put_item(self, item_id: str, values: dict[str, Any]) -> dict[str, Any]:
        current = self.catalogue.get(item_id) or {"item_id": item_id}
        merged = {**current, **values, "item_id": item_id}
        row = pd.DataFrame([merged])
        self.on_writer(lambda: self.store.upsert_items(row))
        self.catalogue = self.catalogue.updated(item_id, values)
        self.shared_cache.clear()
        self.cache.clear()  # a hidden or sold-out item must vanish from every cached answer
        return self.catalogue.get(item_id) or merged

    def identify(self, session_id: str, user_id: str) -> dict[str, Any]:
        if user_id in self.erased:
            raise PermissionError(f"user {user_id!r} was erased")
        state = self.online.identify(session_id, user_id)
        self.cache.invalidate([session_key(session_id), user_key(user_id)])

        def link() -> int:
            # The store learns the link too, so the next training sees the guest's events as the user's.
            return self.store.execute(
                "UPDATE events SET user_id = :u WHERE session_id = :s AND user_id IS NULL",
                {"u": user_id, "s": session_id},
            )

        linked = max(self.on_writer(link), 0)
        return {
            "user_id": user_id,
            "session_id": session_id,
            "items": len(state.items),
            "linked_events": linked,
        }

    def erase_user(self, user_id: str) -> dict[str, Any]:
        """Delete the user's events, exposures, online state and cached answers; remember the id."""

        def erase() -> int:
            deleted = self.store.erase_user(user_id)
            self.store.execute("DELETE FROM exposures WHERE user_id = :u", {"u": user_id})
            return deleted

        self.erased.add(user_id)
        self.exposures.forget_user(user_id)
        deleted = self.on_writer(erase)
        keys = [user_key(user_id)]
        online_purged = True
        try:
            keys = self.online.erase_user(user_id)
            self.cache.invalidate(keys)
        except RedisUnavailableError:
            online_purged = False  # reported: the caller must retry once Redis is back
        for key in keys:
            self._last_exposed.pop(key, None)
        return {"user_id": user_id, "events_deleted": deleted, "online_state_purged": online_purged}

    # --- retraining ------------------------------------------------------------------------------

    def start_training(self, model_name: str | None = None) -> dict[str, Any]:
        """Retrain in a background thread; the new version goes through the gate and the swap."""
        from fusionrec.models.registry import MODEL_PATHS

        name = model_name or self.settings.train_model
        if name is not None and name not in MODEL_PATHS:
            raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(MODEL_PATHS))}")
        with self._train_lock:
            if self.training.get("state") == "running":
                raise RuntimeError("a training run is already in progress")
            self.training = {"state": "running", "model": name or "pipeline", "started_at": time.time()}
        threading.Thread(target=self._train, args=(name,), name="fusionrec-train", daemon=True).start()
        return dict(self.training)

    def scheduled_training(self) -> None:
        """The ``retrain_every_s`` tick: start a run unless one is still going (then skip this tick)."""
        try:
            self.start_training()
            logger.info("scheduled retraining started")
        except RuntimeError:
            logger.info("scheduled retraining skipped: the previous run is still going")

    def _train(self, name: str | None) -> None:
        """One run of `fusionrec.training.train_version` on the store's events; the new version is
        compared with the active one on the same window, then gated and swapped in if it holds up."""
        from fusionrec.data.dataset import Dataset
        from fusionrec.training import AUTO_REFERENCE, TrainingSpec, resolve_pipeline, train_version

        started = time.time()
        try:
            if name is not None:
                spec = TrainingSpec(name, {}, f"model {name}")
            else:
                spec = resolve_pipeline(self.settings.train_pipeline)
            dataset = self.on_writer(lambda: Dataset.from_store(self.store))
            active = self.registry.active
            _, manifest = train_version(
                dataset,
                self.registry.repository,
                spec,
                trained_by="service",
                reference=active.manifest if active is not None else AUTO_REFERENCE,
            )
            report = self.registry.activate(manifest.version)
            self.training = {
                "state": "done",
                "version": manifest.version,
                "gate": report.to_dict(),
                "events": dataset.n_events,
                "seconds": round(time.time() - started, 1),
            }
        except Exception as error:  # reported through GET /v1/models, never raised into the service
            logger.error("training failed: %s: %s", type(error).__name__, error)
            self.training = {"state": "failed", "error": f"{type(error).__name__}: {error}"}


def _similar_items(model: Recommender) -> NeighbourLookup | None:
    """`similar_items` of the model or, for a fused model, of its first item-to-item source."""
    sources = model.source_models.values() if model.combines_sources else ()  # type: ignore[attr-defined]
    for candidate in (model, *sources):
        if candidate.item_to_item:
            return candidate.similar_items  # type: ignore[attr-defined, no-any-return]
    return None
