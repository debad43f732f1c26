"""Live counters of new items' events (the evidence `serving.new_items`' prior reads): in memory
for one worker, or in Redis so that every worker sees every worker's events.

The service adds each event weighted by its type (a purchase counts more than a view); cached
answers are keyed on `revision`, which moves in doubling steps of an item's evidence, not on every
event.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from fusionrec.serving.redis_client import RedisGuard, RedisUnavailableError


def _bucket(evidence: float) -> int:
    """Doubling steps of evidence: cached answers are keyed on these, not on every event."""
    return int(np.floor(np.log2(1.0 + max(evidence, 0.0))))


class NewItemCounters(ABC):
    """Weighted events of new items since they appeared (what the prior reads)."""

    @abstractmethod
    def add(self, evidence: Mapping[str, float]) -> None:
        """Add weighted events per item id."""

    @abstractmethod
    def evidence(self, ids: Sequence[str]) -> np.ndarray:
        """float64[len(ids)]: the weighted events of each item (0 for none)."""

    def refresh(self) -> None:  # noqa: B027 - only a shared store has anything to read
        """Read other workers' counts when due (off the event loop: it may wait on Redis)."""

    @property
    @abstractmethod
    def revision(self) -> int:
        """Changes when some item's evidence passes a doubling step (part of cached answers' keys:
        an answer cached before the item's first purchases is not served after them)."""


class MemoryNewItemCounters(NewItemCounters):
    """One process's counters."""

    def __init__(self) -> None:
        self._values: dict[str, float] = {}
        self._revision = 0
        self._changes = 0  # every add
        self._cached: tuple[Sequence[str], int, np.ndarray] | None = None
        self._lock = threading.Lock()

    def add(self, evidence: Mapping[str, float]) -> None:
        if not evidence:
            return
        with self._lock:
            for item, weight in evidence.items():
                before = self._values.get(item, 0.0)
                self._values[item] = before + weight
                if _bucket(before) != _bucket(before + weight):
                    self._revision += 1
            self._changes += 1

    def evidence(self, ids: Sequence[str]) -> np.ndarray:
        cached = self._cached
        if cached is not None and cached[0] is ids and cached[1] == self._changes:
            return cached[2]  # no event since: the array of the last request (read-only use)
        changes, values = self._changes, self._values
        out = np.fromiter((values.get(i, 0.0) for i in ids), dtype=np.float64, count=len(ids))
        self._cached = (ids, changes, out)
        return out

    @property
    def revision(self) -> int:
        return self._revision


class RedisNewItemCounters(NewItemCounters):
    """Counters in Redis (``INCRBYFLOAT`` per item), read back at most every ``refresh_s`` per
    worker: every worker sees every worker's events within that time, and a request does not pay
    a Redis round trip."""

    def __init__(self, guard: RedisGuard, ttl_s: int = 30 * 86_400, refresh_s: float = 1.0) -> None:
        self.guard = guard
        self.ttl_s = ttl_s
        self.refresh_s = refresh_s
        self.p = guard.prefix + "ni:"
        self._local: dict[str, float] = {}
        self._read_at = 0.0
        self._read_ids: tuple[str, ...] = ()
        self._revision = 0
        self._lock = threading.Lock()

    def add(self, evidence: Mapping[str, float]) -> None:
        if not evidence:
            return

        def write(r: Any) -> None:
            pipe = r.pipeline(transaction=False)
            for item, weight in evidence.items():
                pipe.incrbyfloat(f"{self.p}{item}", float(weight))
                pipe.expire(f"{self.p}{item}", self.ttl_s)
            pipe.execute()

        self.guard.call(write)
        self._read_at = 0.0  # read-your-writes on this worker: the next request reads again

    def evidence(self, ids: Sequence[str]) -> np.ndarray:
        ids = tuple(ids)
        now = time.monotonic()
        if ids != self._read_ids or now - self._read_at > self.refresh_s:
            try:
                values = self.guard.call(lambda r: r.mget([f"{self.p}{i}" for i in ids])) if ids else []
            except RedisUnavailableError:  # Redis down: the last values read
                values = None
            if values is not None:
                fresh = {i: float(v) for i, v in zip(ids, values, strict=True) if v is not None}
                with self._lock:
                    if {i: _bucket(v) for i, v in fresh.items()} != {
                        i: _bucket(v) for i, v in self._local.items()
                    }:
                        self._revision += 1
                    self._local, self._read_ids, self._read_at = fresh, ids, now
        local = self._local
        return np.fromiter((local.get(i, 0.0) for i in ids), dtype=np.float64, count=len(ids))

    def refresh(self) -> None:
        if self._read_ids and time.monotonic() - self._read_at > self.refresh_s:
            self.evidence(self._read_ids)  # other workers' events: read at most every refresh_s

    @property
    def revision(self) -> int:
        return self._revision
