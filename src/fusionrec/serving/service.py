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
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

import duckdb
import pandas as pd

from fusionrec.analytics.tables import ensure_analytics_tables, log_exposures
from fusionrec.data.import_options import ImportOptions
from fusionrec.data.ingest import IngestReport
from fusionrec.data.schema import EventTypes
from fusionrec.data.store import EventStore, open_store
from fusionrec.data.store.base import id_sha256
from fusionrec.data.validate import Batch, CheckedBatch, check_events
from fusionrec.monitoring.metrics import ServiceMetrics
from fusionrec.serving import heap
from fusionrec.serving.business_rules import RulesConfig
from fusionrec.serving.cache import AnswerCache, MemoryCache, RedisCache
from fusionrec.serving.catalogue import Catalogue, fingerprint
from fusionrec.serving.erasure import erase_stored
from fusionrec.serving.event_writes import EventRequest, GroupCommit, Written, groupable, stamped, write_group
from fusionrec.serving.experiments import ExposureBuffer
from fusionrec.serving.logs import printable
from fusionrec.serving.new_item_counters import MemoryNewItemCounters, NewItemCounters, RedisNewItemCounters
from fusionrec.serving.new_items import (
    EXTRAS_KEY,
    NewItemIndex,
    Tuning,
    build_for,
    evidence_of,
    put_into,
    refresh_index,
)
from fusionrec.serving.online import (
    LiveEvents,
    MemoryOnlineState,
    OnlineState,
    RedisOnlineState,
    session_key,
    user_key,
)
from fusionrec.serving.preparation import VersionPreparation
from fusionrec.serving.redis_client import RedisGuard, RedisUnavailableError
from fusionrec.serving.registry import LoadedVersion, VersionRegistry
from fusionrec.serving.retraining import Retrainer
from fusionrec.serving.security import ApiKeys
from fusionrec.serving.settings import ServingSettings

logger = logging.getLogger(__name__)


def _log_failure(what: str) -> Callable[[Future[Any]], None]:
    """A done-callback that logs a background task's failure (its future is awaited by nobody)."""

    def done(future: Future[Any]) -> None:
        error = future.exception()
        if error is not None:
            logger.warning("%s failed (%s: %s)", what, type(error).__name__, error)

    return done


T = TypeVar("T")
LIVE_COLUMNS = ["user_id", "session_id", "item_id", "event_type", "timestamp"]  # what the live state reads


class ItemVectorError(ValueError):
    """A PUT item's vector does not fit the catalogue (its length differs from the name's)."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"vectors.{name}: {problem}")
        self.name = name
        self.problem = problem


class Service:
    """Everything one serving process holds."""

    def __init__(self, settings: ServingSettings, store: EventStore | None = None) -> None:
        self.settings = settings
        self.metrics = ServiceMetrics()
        self.api_keys = ApiKeys(
            settings.api_keys,
            dev=settings.dev,
            public_read=settings.public_read,
            origins=settings.cors_origins,
        )
        # The configured types and a shop's names for them, for HTTP and stream events alike.
        self.event_types = EventTypes.from_weights(settings.event_types)
        self.event_aliases = settings.event_aliases
        self.import_options = ImportOptions(epoch_unit=settings.epoch_unit)
        self.writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fusionrec-store")
        self.store = store if store is not None else open_store(settings.store_url)
        self._hasher = duckdb.connect()  # vectorised md5 of missing event ids (used in the writer thread)
        self._event_writes: GroupCommit[EventRequest, Written] = GroupCommit(
            self.writer, self._write_events, key=lambda request: request.group_key
        )
        self.redis: RedisGuard | None = None
        self.online: OnlineState
        self.cache: AnswerCache
        self.new_item_counters: NewItemCounters = MemoryNewItemCounters()
        if settings.redis_url:
            self.redis = RedisGuard(
                settings.redis_url,
                timeout_s=settings.redis_timeout_s,
                retry_s=settings.redis_retry_s,
                prefix=settings.redis_prefix,
            )
            self.online = RedisOnlineState(self.redis, settings.online_history, settings.online_ttl_s)
            self.cache = RedisCache(self.redis, settings.cache_ttl_s)
            self.new_item_counters = RedisNewItemCounters(self.redis, settings.online_ttl_s)
        else:
            self.online = MemoryOnlineState(settings.online_history)
            self.cache = MemoryCache(settings.cache_ttl_s, settings.cache_max_entries)
        self.shared_cache = MemoryCache(settings.cache_ttl_s, 10_000)  # popular lists: per process is enough
        self.exposures = ExposureBuffer()
        self.catalogue = Catalogue()
        self._catalogue_print = ""  # `fingerprint` of the store's items when last read
        self.erased: set[str] = set()
        self._unpurged: set[str] = set()  # erased elsewhere, not yet matched in the live state
        self._erasure_lock = threading.Lock()
        self._rules_cache: dict[str, RulesConfig] = {}
        self._last_exposed: OrderedDict[str, set[str]] = OrderedDict()
        # The live state missed the events stored from this time on (Redis was down): they are
        # replayed from the store once it answers. ``_misses`` counts the misses, so a replay that
        # raced with a new one does not clear the mark.
        self._missed_since: datetime | None = None
        self._misses = 0
        self._replay_lock = threading.Lock()
        self._started = False
        self.registry = VersionRegistry(
            str(settings.models_dir),
            metric=settings.gate_metric,
            tolerance=settings.gate_tolerance,
            gate_users=settings.gate_users,
            prepare=self._prepare,
            on_swap=lambda loaded: self.preparation.on_swap(loaded),
            signing_key=settings.signing_key.get_secret_value() if settings.signing_key else None,
        )
        self.preparation = VersionPreparation(
            settings,
            self.store,
            self.on_writer,
            self.metrics,
            self.shared_cache,
            lambda: self.registry.active,
        )
        self.retrainer = Retrainer(
            self.registry,
            self.store,
            self.on_writer,
            model=settings.train_model,
            pipeline=settings.train_pipeline,
            min_interval_s=settings.retrain_min_interval_s,
            keep_versions=settings.keep_versions,
        )

    # --- lifetime --------------------------------------------------------------------------------

    def start(self) -> None:
        """Blocking start-up: analytics tables, catalogue, erased ids, trending, newest valid model."""
        if self._started:
            return
        self._started = True
        self.on_writer(lambda: ensure_analytics_tables(self.store))
        items = self.on_writer(self.store.items_arrow)
        self.catalogue, self._catalogue_print = Catalogue.from_arrow(items), fingerprint(items)
        self.erased = self.on_writer(self.store.erased_hashes)
        # What a live write checks (DuckDB: every stored event id) is read now, on the writer
        # thread, rather than by the first event (about 2 s at 2M events); a failure here leaves
        # that read to the first write.
        self.writer.submit(self.store.prepare_writes).add_done_callback(
            _log_failure("reading the stored ids")
        )
        self.preparation.refresh_trending()
        report = self.registry.activate_newest()
        self._seed_new_item_counters()
        if report is None:
            logger.warning(
                "no model version in %s passes the gate: serving fallbacks only", self.settings.models_dir
            )

    def _prepare(self, loaded: LoadedVersion) -> None:
        """What serving derives for a loaded version, and its index of new items."""
        self.preparation.prepare(loaded)
        if self.settings.new_items:
            s = self.settings
            tuning = Tuning(
                s.new_item_min_score, s.new_item_explore, s.new_items_per_page, s.new_item_similar_min
            )
            index = build_for(loaded, self.catalogue, tuning)
            if len(index):
                logger.info("version %s: %d catalogue items it does not know", loaded.version, len(index))

    def new_items(self, loaded: LoadedVersion | None) -> NewItemIndex | None:
        """``loaded``'s index of new items; None when it holds none (or the feature is off, or no
        version is loaded)."""
        index: NewItemIndex | None = loaded.extras.get(EXTRAS_KEY) if loaded is not None else None
        return index if index is not None and len(index) else None

    def close(self) -> None:
        self.flush_exposures()
        self.writer.shutdown(wait=True)
        self.store.close()
        self._hasher.close()
        self.online.close()
        if self.redis is not None:
            self.redis.close()
        if self.settings.freeze_heap:
            heap.release()

    def on_writer(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the store's writer thread and wait for it (call from a worker thread)."""
        return self.writer.submit(fn).result()

    async def on_writer_async(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.writer, fn)

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
        """Validate, store (one transaction) and apply to the online state; the same counts as ingest.

        Requests that arrive together share the validation pass, the transaction and the online
        update (`event_writes`); each returns once its events are committed and live.
        """
        started = time.perf_counter()
        # A live event without a time happened now: the server's clock stamps it (UTC).
        rows = stamped(rows, pd.Timestamp.now(tz="UTC").isoformat())
        written = self._event_writes.submit(EventRequest(rows, channel, groupable(rows)))
        report, group = written.report, written.group
        report.seconds = time.perf_counter() - started
        if not written.leader:
            group.applied.wait()  # the first request of the group applies its events to the live state
        else:
            try:
                if group.valid.num_rows:
                    events = LiveEvents.from_arrow(group.valid.select(LIVE_COLUMNS))
                    self.apply_online(events, stored_since=group.stored_since)
            finally:
                group.applied.set()
        self.metrics.events.labels("stored", channel).inc(report.stored)
        self.metrics.events.labels("duplicate", channel).inc(report.duplicates)
        self.metrics.events.labels("quarantined", channel).inc(report.quarantined)
        return report

    def _write_events(self, requests: list[EventRequest]) -> list[Written]:
        """On the writer thread: one group of requests' events, checked and stored together."""

        def check(batch: Batch, source: str) -> CheckedBatch:
            return check_events(
                batch,
                source=source,
                event_types=self.event_types,
                hasher=self._hasher,
                aliases=self.event_aliases,
                options=self.import_options,
            )

        return write_group(requests, check, self.store.write_rows, self.store.write_batch)

    def apply_online(self, events: LiveEvents, stored_since: datetime | None = None) -> None:
        """Feed stored events into the online state, invalidate the visitors' cached answers.

        ``stored_since``: a time before the events were stored. When the live state is down, the
        events stored from then on are replayed from the store once it is back (`replay_missed`).
        """
        if stored_since is not None and self._missed_since is not None and self.replay_missed():
            return  # the replay read these events from the store with the others it missed
        if not self._apply_live(events) and stored_since is not None:
            self._note_missed(stored_since)

    def _note_missed(self, stored_since: datetime) -> None:
        with self._replay_lock:
            self._misses += 1
            if self._missed_since is None:
                self._missed_since = stored_since

    def replay_missed(self) -> bool:
        """Once Redis answers again, apply the events stored while the live state was down; whether
        it replayed (false when nothing was missed, Redis is still down, or another call did it)."""
        with self._replay_lock:
            since, misses = self._missed_since, self._misses
        if since is None or self.redis is None or not self.redis.ping():
            return False
        with self._replay_lock:
            if self._missed_since != since:
                return False  # replayed meanwhile by another thread
            stored = self.on_writer(lambda: self.store.events_stored_since(since, LIVE_COLUMNS))
            missed = LiveEvents.from_arrow(stored)
            if not self._apply_live(missed):
                return False
            if self._misses == misses:  # no new miss during the replay, else keep the mark
                self._missed_since = None
        logger.info("live state: replayed %d events stored while Redis was unavailable", len(missed))
        return True

    def _apply_live(self, events: LiveEvents) -> bool:
        """Apply ``events`` to the online state; false when it is unavailable (Redis down)."""
        if self.erased:
            events = events.where([not self.is_erased(u) for u in events.user_id])
        if not len(events):
            return True
        self.metrics.event_lag.set(max(time.time() - max(events.times), 0.0))
        try:
            visitors = self.online.record(events)
            self.cache.invalidate(visitors)
        except RedisUnavailableError:
            self.metrics.degraded.labels("online_state").inc()
            logger.warning(
                "online state unavailable: %d events stored, applied live once it is back", len(events)
            )
            return False
        self._count_clicks(events)
        self._count_new_items(events)
        return True

    def _count_new_items(self, events: LiveEvents) -> None:
        """The active version's new items' events, weighted, into their live counters."""
        index = self.new_items(self.registry.active)
        if index is None:
            return
        evidence = evidence_of(events, index.position, self.event_types.signed_weights())
        try:
            self.new_item_counters.add(evidence)
        except RedisUnavailableError:
            logger.warning("new-item counters unavailable: %d items' events not counted", len(evidence))

    def _seed_new_item_counters(self) -> None:
        """At start-up, in-process counters start from the new items' stored events (Redis keeps
        its counters across restarts, so they are not counted twice there)."""
        index = self.new_items(self.registry.active)
        if index is None or not isinstance(self.new_item_counters, MemoryNewItemCounters):
            return
        stored = self.on_writer(lambda: self.store.item_event_counts(index.ids)).to_pandas()
        if len(stored):
            weight = stored["event_type"].map(self.event_types.signed_weights()).fillna(0.0) * stored["n"]
            self.new_item_counters.add(weight.groupby(stored["item_id"].astype(str)).sum().to_dict())

    def _count_clicks(self, events: LiveEvents) -> None:
        """Clicks on items the clicker was last shown, into the click-through metrics."""
        if not self._last_exposed:
            return
        clicks = hits = 0
        for user, session, item, kind, _ in events.rows():
            if kind == "click":
                clicks += 1
                visitor = user_key(str(user)) if user is not None else session_key(str(session))
                hits += str(item) in self._last_exposed.get(visitor, ())
        if clicks:
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
        except Exception as error:  # exposures must never take the service down; counted and logged
            logger.error(
                "could not write %d exposures: %s: %s", len(rows), type(error).__name__, printable(error)
            )
            self.exposures.dropped += len(rows)
            return 0

    # --- catalogue, identities, erasure ------------------------------------------------------------

    def put_item(self, item_id: str, values: dict[str, Any]) -> dict[str, Any]:
        """Create or change a catalogue item; ``vectors`` (when given) replaces all its vectors.

        Raises `ItemVectorError` when a vector's length differs from the catalogue's for its name.
        """
        dims = self.catalogue.vector_dims
        for name, vector in (values.get("vectors") or {}).items():
            if name in dims and len(vector) != dims[name]:
                raise ItemVectorError(
                    name, f"has {len(vector)} values, expected {dims[name]} as in the catalogue"
                )
        current = self.catalogue.get(item_id) or {"item_id": item_id}
        merged = {**current, **values, "item_id": item_id}
        row = pd.DataFrame([merged])
        self.on_writer(lambda: self.store.upsert_items(row))
        self.catalogue = self.catalogue.updated(item_id, values)
        for loaded in self.registry.loaded():  # a new item is recommendable from now on
            put_into(loaded, self.catalogue, item_id)
        self.shared_cache.clear()
        self.cache.clear()  # a hidden or sold-out item must vanish from every cached answer
        return self.catalogue.get(item_id) or merged

    def refresh_catalogue(self) -> bool:
        """Take in the store's catalogue when it changed since it was last read (an items file
        ingested, a PUT on another worker): the new items join each loaded version's index.
        Runs every ``catalogue_refresh_s``; whether it changed."""
        items = self.on_writer(self.store.items_arrow)
        printed = fingerprint(items)
        if printed == self._catalogue_print:
            return False
        catalogue = Catalogue.from_arrow(items)
        catalogue.revision = self.catalogue.revision + 1
        self.catalogue, self._catalogue_print = catalogue, printed
        for loaded in self.registry.loaded():
            refresh_index(loaded, catalogue)
        self.shared_cache.clear()
        self.cache.clear()
        return True

    def identify(self, session_id: str, user_id: str) -> dict[str, Any]:
        if self.is_erased(user_id):
            raise PermissionError(f"user {user_id!r} was erased")
        state = self.online.identify(session_id, user_id)
        self.cache.invalidate([session_key(session_id), user_key(user_id)])

        # The store learns the link too, so the next training sees the guest's events as the user's.
        linked = self.on_writer(lambda: self.store.link_session(session_id, user_id))
        return {
            "user_id": user_id,
            "session_id": session_id,
            "items": len(state.items),
            "linked_events": linked,
        }

    def _purge_live(self, user_id: str, sessions: list[str]) -> bool:
        """The user's (and their sessions') live state and cached answers gone; False when Redis
        was down (the caller must retry once it is back)."""
        keys = [user_key(user_id), *(session_key(s) for s in sessions)]
        purged = True
        try:
            keys = sorted({*keys, *self.online.erase_user(user_id)})
            self.cache.invalidate(keys)
        except RedisUnavailableError:
            purged = False
        for key in keys:
            self._last_exposed.pop(key, None)
        return purged

    def refresh_erased(self) -> list[str]:
        """Take in erasures made elsewhere (another worker, `fusionrec erase`), which the store
        records by the ids' SHA-256: those ids are refused from now on, and the ones this worker
        can still name (in a loaded model's lookups or the live state) lose them, their live
        state and cached answers. Runs every ``erasure_refresh_s``; returns the ids found."""
        with self._erasure_lock:  # the chore and a direct call never interleave
            return self._take_in_erasures()

    def _take_in_erasures(self) -> list[str]:
        new = self.on_writer(self.store.erased_hashes) - self.erased
        self.erased |= new
        found = self.registry.forget_hashed_users(new) if new else set()
        self._unpurged |= new
        if not self._unpurged:
            return []
        try:
            found |= {user for user in self.online.user_ids() if id_sha256(user) in self._unpurged}
        except RedisUnavailableError:
            return sorted(found)  # the live state is matched again on the next refresh
        purged = True
        for user in found:
            self.exposures.forget_user(user)
            purged &= self._purge_live(user, [])
        if purged:
            self._unpurged.clear()
        return sorted(found)

    def is_erased(self, user_id: str | None) -> bool:
        """Whether ``user_id`` was erased (the service keeps only the ids' SHA-256)."""
        return bool(self.erased) and user_id is not None and id_sha256(user_id) in self.erased

    def erase_user(self, user_id: str) -> dict[str, Any]:
        """Delete everything stored about the user (`erase_stored`: events by user and by linked
        session, exposures, batch lists ...), their rows in every saved model version, their
        online state and cached answers, those of their linked sessions too; remember the id's
        hash so that later writes are refused."""
        self.erased.add(id_sha256(user_id))  # first: an exposure buffered from now on is refused
        self.exposures.forget_user(user_id)
        sessions = self.on_writer(lambda: self.store.linked_sessions(user_id))
        deleted = self.on_writer(lambda: erase_stored(self.store, user_id))
        versions = self.registry.erase_user(user_id)
        online_purged = self._purge_live(user_id, sessions)
        return {
            "user_id": user_id,
            **deleted,
            "online_state_purged": online_purged,
            "model_versions": versions,
        }
