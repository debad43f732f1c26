"""Which event ids and erased users a DuckDB store holds, answered in memory.

DuckDB keeps no index on ``event_id`` (see `sql.create_statements`), so looking a live event's id
up among the stored ones scans that column. Its min and max prune the scan only when new ids sort
outside the stored ones; a shop's UUIDs spread over the whole range, and then every event scans
every stored id (5 ms per look-up at 2M events, growing with the store). `KnownIds` holds a hash
of every stored id: an id whose hash it lacks is new for certain, and only the others are looked
up in the store. Two ids sharing a hash cost a look-up, never a wrong answer.

Python's ``hash`` of a str is fixed within a process, so the filter lives in memory only: built
from the store when first asked (about 0.25 µs and 8 bytes per stored event), then kept current
by every write. The erased users' hashes are kept beside it (`StoredKeys`), so a live event of a
user never erased is stored without any look-up; one whose hash is there is confirmed in the
store. DuckDB lets one process write a file and shares one database among the connections that
process opens on it, so the stores open on one file share one `StoredKeys` (`Holder`): each sees
the others' writes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pyarrow as pa

MERGE_AT = 1 << 16  # hashes added since the build, kept in a set until there are this many


class KnownIds:
    """A superset of the event ids a store holds, as hashes (ids deleted since stay: harmless)."""

    def __init__(self, stored: Iterable[pa.Array]) -> None:
        parts = [_hashes(chunk.to_pylist()) for chunk in stored]
        self._sorted = np.unique(np.concatenate(parts)) if parts else np.empty(0, np.int64)
        self._added: set[int] = set()
        self._lock = threading.Lock()  # stores on one file share the filter: a merge must not lose an add

    def __len__(self) -> int:
        return len(self._sorted) + len(self._added)

    def maybe_known(self, ids: Sequence[str]) -> list[str]:
        """The ids of ``ids`` the store may hold; it holds none of the others."""
        hashes = _hashes(ids)
        with self._lock:
            return self._among(ids, hashes)

    def _among(self, ids: Sequence[str], hashes: np.ndarray) -> list[str]:
        at = np.minimum(np.searchsorted(self._sorted, hashes), max(len(self._sorted) - 1, 0))
        found = self._sorted[at] == hashes if len(self._sorted) else np.zeros(len(ids), bool)
        return [
            i
            for i, h, hit in zip(ids, hashes.tolist(), found.tolist(), strict=True)
            if hit or h in self._added
        ]

    def add(self, ids: Sequence[str]) -> None:
        """Note ids written (or possibly written) to the store."""
        hashes = _hashes(ids)
        with self._lock:
            if len(ids) >= MERGE_AT:
                self._sorted = np.union1d(self._sorted, hashes)
                return
            self._added.update(hashes.tolist())
            if len(self._added) >= MERGE_AT:
                self._sorted = np.union1d(self._sorted, np.fromiter(self._added, np.int64, len(self._added)))
                self._added.clear()


def _hashes(ids: Sequence[str | None]) -> np.ndarray:
    return np.fromiter(map(hash, ids), np.int64, count=len(ids))


class StoredKeys:
    """What a store holds that a write must check: its event ids (`KnownIds`) and the hashes of
    its erased users (every one; an erasure rolled back leaves one more, which the store's
    look-up then clears)."""

    def __init__(self, event_ids: KnownIds, erased: Iterable[str]) -> None:
        self.event_ids = event_ids
        self._erased = set(erased)

    def erased_among(self, hashes: Iterable[str]) -> list[str]:
        return [h for h in hashes if h in self._erased]

    def add_erased(self, hash_: str) -> None:
        self._erased.add(hash_)


class _Shared:
    """The keys of one database file, read once, with how many stores hold them."""

    def __init__(self) -> None:
        self.keys: StoredKeys | None = None
        self.holders = 0


_lock = threading.Lock()
_by_path: dict[str, _Shared] = {}


class Holder:
    """A store's share of its file's `StoredKeys`; `release` when the store closes."""

    def __init__(self, path: str | None) -> None:
        self._path = path
        self._own = _Shared() if path is None else None  # an in-memory database: its own keys
        if path is not None:
            with _lock:
                shared = _by_path.setdefault(path, _Shared())
                shared.holders += 1

    def _shared(self) -> _Shared:
        return self._own if self._own is not None else _by_path[self._path]  # type: ignore[index]

    def get(self, read: Callable[[], StoredKeys]) -> StoredKeys:
        """The keys, read by ``read`` on first use (call under the store's write lock)."""
        shared = self._shared()
        if shared.keys is None:
            shared.keys = read()
        return shared.keys

    def read_already(self) -> StoredKeys | None:
        """The keys if they were read (writes before that are in what the read finds)."""
        return self._shared().keys

    def release(self) -> None:
        if self._path is None:
            return
        with _lock:
            shared = _by_path.get(self._path)
            if shared is not None:
                shared.holders -= 1
                if shared.holders <= 0:  # the last store on the file closed: another process may write it
                    del _by_path[self._path]
            self._path = None
