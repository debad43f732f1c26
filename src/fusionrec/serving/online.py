"""Real-time visitor state: recent items, seen and bought items, guest sessions and log-ins.

A visitor is ``u:<user_id>`` or ``s:<session_id>``; `POST /v1/identify` links a session to a user
and moves the session's history into the user's, and later session-only events follow the link.
Two implementations share the interface: `MemoryOnlineState` (one process, bounded LRU) and
`RedisOnlineState` (several workers or hosts; raises `RedisUnavailableError` when Redis is down, which
the service answers degraded).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections import OrderedDict, deque
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fusionrec.serving.redis_client import RedisGuard, RedisUnavailableError

__all__ = ["MemoryOnlineState", "OnlineState", "RedisOnlineState", "RedisUnavailableError", "VisitorState"]


@dataclass
class VisitorState:
    """What a visitor did recently (item ids; times are unix seconds)."""

    items: list[str] = field(default_factory=list)  # recent items, oldest first
    seen: dict[str, float] = field(default_factory=dict)  # item -> last interaction
    bought: dict[str, float] = field(default_factory=dict)  # item -> last purchase

    @property
    def empty(self) -> bool:
        return not (self.items or self.seen or self.bought)


def user_key(user_id: str) -> str:
    return f"u:{user_id}"


def session_key(session_id: str) -> str:
    return f"s:{session_id}"


@dataclass
class VisitorUpdate:
    """One visitor's new events, in time order (built once per batch, vectorised)."""

    visitor: str
    items: list[str]
    times: list[float]
    purchases: list[str]
    purchase_times: list[float]


def _text(values: np.ndarray) -> np.ndarray:
    """``values`` as an object array of str."""
    text = np.empty(len(values), dtype=object)
    text[:] = [str(value) for value in values]
    return text


def group_events(events: pd.DataFrame, links: dict[str, str]) -> list[VisitorUpdate]:
    """Group canonical events by visitor (sessions follow ``links`` to their user), time-ordered.

    Vectorised: one factorize and one sort; the remaining loop runs once per visitor over list
    slices, not once per event.
    """
    item = events["item_id"].to_numpy(dtype=object)
    user = events["user_id"].to_numpy(dtype=object)
    session = (
        events["session_id"].to_numpy(dtype=object)
        if "session_id" in events
        else np.full(len(events), None, object)
    )
    has_user, has_session = ~pd.isna(user), ~pd.isna(session)
    keep = ~pd.isna(item) & (has_user | has_session)
    if not keep.any():
        return []
    item, user, session, has_user = item[keep], user[keep], session[keep], has_user[keep]
    # object arrays of str, never fixed-width unicode (as wide as the longest id in every cell)
    key = _text(np.where(has_user, user, session))
    prefix = np.where(has_user, "u:", "s:").astype(object)
    if links:  # guests who logged in: their session-only events belong to the user
        linked = np.array([links.get(s) for s in session[~has_user]], dtype=object)
        moved = ~pd.isna(linked)
        index = np.flatnonzero(~has_user)[moved]
        key[index], prefix[index] = _text(linked[moved]), "u:"
    visitor = prefix + key
    epoch = pd.Timestamp(0, tz="UTC")
    ts = (pd.to_datetime(events["timestamp"], utc=True)[keep] - epoch).dt.total_seconds().to_numpy()
    purchase = (events["event_type"].to_numpy(dtype=object)[keep] == "purchase").astype(bool)
    codes, uniques = pd.factorize(visitor)
    order = np.lexsort((ts, codes))
    codes, items, times = codes[order], _text(item[order]).tolist(), ts[order].tolist()
    purchase = purchase[order]
    bounds = np.r_[0, np.flatnonzero(np.diff(codes)) + 1, len(codes)].tolist()
    bought_at = np.flatnonzero(purchase)
    first_bought = np.searchsorted(bought_at, bounds).tolist()
    bought_list = bought_at.tolist()
    updates = []
    for g in range(len(bounds) - 1):
        a, b = bounds[g], bounds[g + 1]
        mine = bought_list[first_bought[g] : first_bought[g + 1]]
        updates.append(
            VisitorUpdate(
                str(uniques[codes[a]]),
                items[a:b],
                times[a:b],
                [items[i] for i in mine],
                [times[i] for i in mine],
            )
        )
    return updates


class OnlineState(ABC):
    """The interface the service uses."""

    @abstractmethod
    def record(self, events: pd.DataFrame) -> list[str]:
        """Apply stored events; return the visitor keys that changed."""

    @abstractmethod
    def get(self, visitor: str) -> VisitorState: ...

    @abstractmethod
    def resolve(self, user_id: str | None, session_id: str | None) -> str:
        """The visitor key for a request (a logged-in session resolves to its user)."""

    @abstractmethod
    def identify(self, session_id: str, user_id: str) -> VisitorState:
        """Link the session to the user and merge the session's history into the user's."""

    @abstractmethod
    def erase_user(self, user_id: str) -> list[str]:
        """Forget the user and their linked sessions; return the visitor keys removed."""

    @abstractmethod
    def user_ids(self) -> list[str]:
        """Every user id holding live state: an erasure known only by its hash (made by another
        worker or `fusionrec erase`) is matched against these."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class MemoryOnlineState(OnlineState):
    """In-process state, least recently active visitors evicted beyond ``max_visitors``."""

    def __init__(self, history: int = 50, max_visitors: int = 1_000_000, max_seen: int = 500) -> None:
        self.history = history
        self.max_visitors = max_visitors
        self.max_seen = max_seen
        self._items: OrderedDict[str, deque[str]] = OrderedDict()
        self._seen: dict[str, dict[str, float]] = {}
        self._bought: dict[str, dict[str, float]] = {}
        self._links: dict[str, str] = {}  # session id -> user id
        self._sessions_of: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def record(self, events: pd.DataFrame) -> list[str]:
        with self._lock:
            updates = group_events(events, self._links)
            for update in updates:
                self._apply(
                    update.visitor, update.items, update.times, update.purchases, update.purchase_times
                )
            self._evict()
        return [u.visitor for u in updates]

    def _apply(
        self, visitor: str, items: list[str], times: list[float], bought: list[str], bought_times: list[float]
    ) -> None:
        recent = self._items.get(visitor)
        if recent is None:
            recent = self._items[visitor] = deque(maxlen=self.history)
        self._items.move_to_end(visitor)
        recent.extend(items)
        seen = self._seen.setdefault(visitor, {})
        seen.update(zip(items, times, strict=True))
        if len(seen) > self.max_seen:  # keep the most recent interactions
            newest = sorted(seen.items(), key=lambda kv: kv[1])[-self.max_seen :]
            self._seen[visitor] = dict(newest)
        if bought:
            self._bought.setdefault(visitor, {}).update(zip(bought, bought_times, strict=True))

    def _evict(self) -> None:
        while len(self._items) > self.max_visitors:
            visitor, _ = self._items.popitem(last=False)
            self._seen.pop(visitor, None)
            self._bought.pop(visitor, None)

    def get(self, visitor: str) -> VisitorState:
        with self._lock:
            return VisitorState(
                list(self._items.get(visitor, ())),
                dict(self._seen.get(visitor, {})),
                dict(self._bought.get(visitor, {})),
            )

    def resolve(self, user_id: str | None, session_id: str | None) -> str:
        if user_id is not None:
            return user_key(user_id)
        linked = self._links.get(session_id or "")
        return user_key(linked) if linked is not None else session_key(str(session_id))

    def identify(self, session_id: str, user_id: str) -> VisitorState:
        with self._lock:
            self._links[session_id] = user_id
            self._sessions_of.setdefault(user_id, set()).add(session_id)
            source, target = session_key(session_id), user_key(user_id)
            items = list(self._items.pop(source, ()))
            seen = self._seen.pop(source, {})
            bought = self._bought.pop(source, {})
            if items or seen or bought:
                # The guest's items happened now-ish: append them after the user's own history.
                times = [seen.get(i, 0.0) for i in items]
                self._apply(target, items, times, list(bought), list(bought.values()))
                self._seen[target].update(seen)
        return self.get(user_key(user_id))

    def erase_user(self, user_id: str) -> list[str]:
        with self._lock:
            sessions = self._sessions_of.pop(user_id, set())
            keys = [user_key(user_id), *(session_key(s) for s in sessions)]
            for key in keys:
                self._items.pop(key, None)
                self._seen.pop(key, None)
                self._bought.pop(key, None)
            for session in sessions:
                self._links.pop(session, None)
        return keys

    def user_ids(self) -> list[str]:
        with self._lock:
            return [key[2:] for key in self._items if key.startswith("u:")]


class RedisOnlineState(OnlineState):
    """The same state in Redis (lists and hashes per visitor, with a TTL), shared by all workers."""

    def __init__(
        self, guard: RedisGuard, history: int = 50, ttl_s: int = 30 * 86_400, max_seen: int = 500
    ) -> None:
        self.guard = guard
        self.history = history
        self.ttl_s = ttl_s
        self.max_seen = max_seen
        self.p = guard.prefix + "o:"

    def _keys(self, visitor: str) -> tuple[str, str, str]:
        return f"{self.p}i:{visitor}", f"{self.p}s:{visitor}", f"{self.p}b:{visitor}"

    def record(self, events: pd.DataFrame) -> list[str]:
        sessions = (
            events.loc[events["user_id"].isna(), "session_id"].dropna().astype(str).unique().tolist()
            if ("session_id" in events)
            else []
        )
        links = self._links(sessions)
        updates = group_events(events, links)
        if not updates:
            return []

        def write(r: object) -> None:
            pipe = r.pipeline(transaction=False)  # type: ignore[attr-defined]
            for u in updates:
                items_key, seen_key, bought_key = self._keys(u.visitor)
                pipe.rpush(items_key, *u.items)
                pipe.ltrim(items_key, -self.history, -1)
                pipe.hset(seen_key, mapping=dict(zip(u.items, u.times, strict=True)))
                if u.purchases:
                    pipe.hset(bought_key, mapping=dict(zip(u.purchases, u.purchase_times, strict=True)))
                for key in (items_key, seen_key, bought_key):
                    pipe.expire(key, self.ttl_s)
            pipe.execute()

        self.guard.call(write)
        return [u.visitor for u in updates]

    def _links(self, sessions: list[str]) -> dict[str, str]:
        if not sessions:
            return {}
        values = self.guard.call(lambda r: r.mget([f"{self.p}l:{s}" for s in sessions]))
        return {s: v for s, v in zip(sessions, values, strict=True) if v is not None}

    def get(self, visitor: str) -> VisitorState:
        items_key, seen_key, bought_key = self._keys(visitor)

        def read(r: object) -> list[object]:
            pipe = r.pipeline(transaction=False)  # type: ignore[attr-defined]
            pipe.lrange(items_key, 0, -1)
            pipe.hgetall(seen_key)
            pipe.hgetall(bought_key)
            return pipe.execute()

        items, seen, bought = self.guard.call(read)
        seen_map = {k: float(v) for k, v in seen.items()}  # type: ignore[union-attr]
        if len(seen_map) > self.max_seen:
            seen_map = dict(sorted(seen_map.items(), key=lambda kv: kv[1])[-self.max_seen :])
        return VisitorState(list(items), seen_map, {k: float(v) for k, v in bought.items()})  # type: ignore[union-attr,arg-type]

    def resolve(self, user_id: str | None, session_id: str | None) -> str:
        if user_id is not None:
            return user_key(user_id)
        linked = self.guard.call(lambda r: r.get(f"{self.p}l:{session_id}"))
        return user_key(linked) if linked is not None else session_key(str(session_id))

    def identify(self, session_id: str, user_id: str) -> VisitorState:
        source = self.get(session_key(session_id))
        target_items, target_seen, target_bought = self._keys(user_key(user_id))

        def merge(r: object) -> None:
            pipe = r.pipeline(transaction=True)  # type: ignore[attr-defined]
            pipe.set(f"{self.p}l:{session_id}", user_id, ex=self.ttl_s)
            pipe.sadd(f"{self.p}us:{user_id}", session_id)
            pipe.expire(f"{self.p}us:{user_id}", self.ttl_s)
            if source.items:
                pipe.rpush(target_items, *source.items)
                pipe.ltrim(target_items, -self.history, -1)
            if source.seen:
                pipe.hset(target_seen, mapping=source.seen)
            if source.bought:
                pipe.hset(target_bought, mapping=source.bought)
            for key in (target_items, target_seen, target_bought):
                pipe.expire(key, self.ttl_s)
            pipe.delete(*self._keys(session_key(session_id)))
            pipe.execute()

        self.guard.call(merge)
        return self.get(user_key(user_id))

    def erase_user(self, user_id: str) -> list[str]:
        sessions = self.guard.call(lambda r: r.smembers(f"{self.p}us:{user_id}"))
        keys = [user_key(user_id), *(session_key(s) for s in sessions)]
        redis_keys = [k for v in keys for k in self._keys(v)]
        redis_keys += [f"{self.p}l:{s}" for s in sessions] + [f"{self.p}us:{user_id}"]
        self.guard.call(lambda r: r.delete(*redis_keys))
        return keys

    def user_ids(self) -> list[str]:
        prefix = f"{self.p}i:u:"
        keys = self.guard.call(lambda r: list(r.scan_iter(match=f"{prefix}*", count=1000)))
        return [key[len(prefix) :] for key in keys]
