"""Answer caches: per visitor (invalidated by their events and erasure) and shared (popular lists).

Keys carry the model version and the catalogue revision, so a swap or an item update never serves
a stale answer. `MemoryCache` is one process's LRU with a TTL; `RedisCache` shares answers between
workers (one hash per visitor) and treats a Redis failure as a miss. Both keep an answer as its
JSON and give back a new copy of it on each hit: in memory, as one bytes object, because an
answer of ten items kept as dicts and lists is 24 objects that Python's cycle collector walks on
every full collection; with up to 100,000 visitors' answers cached, those walks paused the server
for hundreds of milliseconds (`serving.heap` has the rest of that story).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from typing import Any

import orjson

from fusionrec.serving.redis_client import RedisGuard, RedisUnavailableError


class AnswerCache(ABC):
    @abstractmethod
    def get(self, visitor: str, key: str) -> Any | None: ...

    @abstractmethod
    def put(self, visitor: str, key: str, value: Any) -> None: ...

    @abstractmethod
    def invalidate(self, visitors: list[str]) -> None: ...

    @abstractmethod
    def clear(self) -> None: ...


class MemoryCache(AnswerCache):
    """LRU over visitors, each holding its answers by request key, with a TTL."""

    def __init__(self, ttl_s: float = 30.0, max_entries: int = 100_000) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._data: OrderedDict[str, dict[str, tuple[float, bytes]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, visitor: str, key: str) -> Any | None:
        if self.ttl_s <= 0:
            return None
        with self._lock:
            entries = self._data.get(visitor)
            hit = entries.get(key) if entries else None
            if hit is None:
                return None
            if hit[0] < time.monotonic():
                del entries[key]  # type: ignore[union-attr]
                return None
            self._data.move_to_end(visitor)
            stored = hit[1]
        return orjson.loads(stored)

    def put(self, visitor: str, key: str, value: Any) -> None:
        if self.ttl_s <= 0 or self.max_entries <= 0:
            return
        stored = orjson.dumps(value)
        with self._lock:
            entries = self._data.setdefault(visitor, {})
            if len(entries) > 32:  # a visitor paging through many variants: keep it bounded
                entries.clear()
            entries[key] = (time.monotonic() + self.ttl_s, stored)
            self._data.move_to_end(visitor)
            while len(self._data) > self.max_entries:
                self._data.popitem(last=False)

    def invalidate(self, visitors: list[str]) -> None:
        with self._lock:
            for visitor in visitors:
                self._data.pop(visitor, None)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


class RedisCache(AnswerCache):
    """Answers as JSON in one Redis hash per visitor (expiring with the TTL)."""

    def __init__(self, guard: RedisGuard, ttl_s: float = 30.0) -> None:
        self.guard = guard
        self.ttl_s = max(round(ttl_s), 1) if ttl_s > 0 else 0
        self.p = guard.prefix + "c:"

    def get(self, visitor: str, key: str) -> Any | None:
        if not self.ttl_s:
            return None
        try:
            raw = self.guard.call(lambda r: r.hget(self.p + visitor, key))
        except RedisUnavailableError:
            return None
        return json.loads(raw) if raw is not None else None

    def put(self, visitor: str, key: str, value: Any) -> None:
        if not self.ttl_s:
            return

        def write(r: Any) -> None:
            pipe = r.pipeline(transaction=False)
            pipe.hset(self.p + visitor, key, json.dumps(value))
            pipe.expire(self.p + visitor, self.ttl_s)
            pipe.execute()

        with contextlib.suppress(RedisUnavailableError):  # a cache that cannot write is only slower
            self.guard.call(write)

    def invalidate(self, visitors: list[str]) -> None:
        if visitors:
            self.guard.call(lambda r: r.delete(*(self.p + v for v in visitors)))

    def clear(self) -> None:
        def scan_delete(r: Any) -> None:
            batch = []
            for key in r.scan_iter(match=self.p + "*", count=1000):
                batch.append(key)
                if len(batch) >= 1000:
                    r.delete(*batch)
                    batch = []
            if batch:
                r.delete(*batch)

        # Keys carry the catalogue revision and model version: stale ones are never read anyway.
        with contextlib.suppress(RedisUnavailableError):
            self.guard.call(scan_delete)
