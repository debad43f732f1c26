"""The `Dataset` that models train on: id vocabularies, the time-ordered event log, item features.

Ids are mapped once, here, to dense ``int32`` indices; everything downstream works on indices.
The event log is kept as parallel numpy arrays, sorted by time, so splits are boolean masks and
every derived structure (the weighted user x item matrix, per-user sequences) is one vectorised
pass over it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp

from fusionrec.data.item_vectors import VECTORS_COLUMN, cell_mapping
from fusionrec.data.schema import ITEM_COLUMNS, USER_COLUMNS, EventTypes, normalise_event_type

if TYPE_CHECKING:
    from fusionrec.data.store.base import EventStore

SECONDS_PER_DAY = 86_400.0
ANONYMOUS_PREFIX = "session:"  # user key for events that only carry a session id
# Event columns that say where an event happened: a recommendation request names them too, and the
# fused ranker learns from them when the items taken differ between them (`fusion.request_context`).
CONTEXT_COLUMNS = ("channel", "device")


class DatasetError(ValueError):
    """The input cannot be turned into a Dataset (a required column is missing, ...)."""


class Vocabulary:
    """A bijection between external string ids and dense int32 indices ``0..n-1``.

    Ids are sorted: numerically when every id is an integer string (so Gowalla's "0".."40980"
    keep their order), lexicographically otherwise. Lower index therefore means lower id, which
    is the documented tie rule of top-k ranking.
    """

    def __init__(self, ids: Sequence[str] | np.ndarray | pa.Array) -> None:
        array = (
            ids if isinstance(ids, pa.Array) else pa.array(np.asarray(ids, dtype=object), type=pa.string())
        )
        array = pc.unique(array.cast(pa.string()).drop_null())
        self._ids = _sort_ids(array)
        self._lookup: pd.Index | None = None

    @property
    def ids(self) -> np.ndarray:
        """External ids in index order (object array of str)."""
        return self._ids.to_numpy(zero_copy_only=False)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, external_id: object) -> bool:
        return self.index([external_id])[0] >= 0  # type: ignore[list-item]

    def index(self, ids: Sequence[str] | np.ndarray | pa.Array | pa.ChunkedArray) -> np.ndarray:
        """Indices of ``ids`` (int32); unknown ids give -1."""
        values = (
            ids if isinstance(ids, (pa.Array, pa.ChunkedArray)) else pa.array(np.asarray(ids, dtype=object))
        )
        found = pc.index_in(values.cast(pa.string()), value_set=self._ids)
        return found.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int32)

    def id(self, indices: np.ndarray | Sequence[int]) -> np.ndarray:
        """External ids of ``indices`` (object array)."""
        return self.ids[np.asarray(indices, dtype=np.int64)]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self._ids.equals(other._ids)

    def __hash__(self) -> int:  # pragma: no cover - vocabularies are not used as dict keys
        return hash(len(self))


def _sort_ids(ids: pa.Array) -> pa.Array:
    if len(ids) == 0:
        return ids
    numeric = pc.all(pc.match_substring_regex(ids, r"^-?[0-9]{1,18}$")).as_py()
    if numeric:
        order = np.argsort(pc.cast(ids, pa.int64()).to_numpy(), kind="stable")
    else:
        order = pc.sort_indices(ids).to_numpy()
    return ids.take(pa.array(order))


@dataclass(frozen=True, eq=False)
class Dataset:
    """Vocabularies + time-ordered event log + item and user features.

    The log arrays are parallel, one entry per event that has an item (searches without an item
    and bot-flagged traffic are left out), sorted by (timestamp, input order).
    """

    users: Vocabulary
    items: Vocabulary
    event_types: EventTypes
    user_idx: np.ndarray  # int32
    item_idx: np.ndarray  # int32
    timestamp: np.ndarray  # int64, unix seconds
    event_code: np.ndarray  # int16, index into event_types.names
    weight: np.ndarray  # float32, signed event-type weight
    quantity: np.ndarray  # float32 (NaN when unknown; explicit ratings live here)
    price: np.ndarray  # float32 (NaN when unknown)
    source_row: np.ndarray  # int64, the event's row in the input (for fixed splits)
    item_features: pd.DataFrame  # row i describes item i
    user_features: pd.DataFrame  # row u describes user u
    session_idx: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # -1 = none
    # Where each event happened (`CONTEXT_COLUMNS` the events carry, as pandas categoricals, NA
    # where unknown): one row per event; no columns when the events carry none.
    event_context: pd.DataFrame = field(default_factory=pd.DataFrame)
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    # --- shape ---------------------------------------------------------------------------

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def n_events(self) -> int:
        return len(self.user_idx)

    def __len__(self) -> int:
        return self.n_events

    # --- derived structures ------------------------------------------------------------------

    def matrix(self, *, binary: bool = False, half_life_days: float | None = None) -> sp.csr_matrix:
        """The user x item matrix (float32): summed signed event weights, clipped at 0.

        ``half_life_days`` decays each event's weight by its age relative to the newest event;
        ``binary`` turns every positive cell into 1.
        """
        key = f"matrix:{binary}:{half_life_days}"
        if key not in self._cache:
            weights = self.weight.astype(np.float64)
            if half_life_days is not None and self.n_events:
                age_days = (self.timestamp.max() - self.timestamp) / SECONDS_PER_DAY
                weights = weights * np.power(0.5, age_days / half_life_days)
            matrix = sp.csr_matrix(
                (weights, (self.user_idx, self.item_idx)),
                shape=(self.n_users, self.n_items),
                dtype=np.float64,
            )
            matrix.sum_duplicates()
            matrix.data = np.clip(matrix.data, 0.0, None)
            matrix.eliminate_zeros()
            if binary:
                matrix.data = np.ones_like(matrix.data)
            matrix = matrix.astype(np.float32)
            matrix.sort_indices()
            self._cache[key] = matrix
        return self._cache[key]

    def sequences(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-user time-ordered item indices as ``(indptr int64[n_users+1], items int32)``.

        User ``u``'s sequence is ``items[indptr[u]:indptr[u+1]]``, oldest first.
        """
        if "sequences" not in self._cache:
            order = np.argsort(self.user_idx, kind="stable")  # the log is already time-ordered
            counts = np.bincount(self.user_idx, minlength=self.n_users)
            indptr = np.zeros(self.n_users + 1, dtype=np.int64)
            np.cumsum(counts, out=indptr[1:])
            self._cache["sequences"] = (indptr, self.item_idx[order])
        return self._cache["sequences"]

    def user_activity(self) -> np.ndarray:
        """Number of events per user (int64[n_users])."""
        return np.bincount(self.user_idx, minlength=self.n_users)

    def item_popularity(self) -> np.ndarray:
        """Number of distinct users per item (float32[n_items])."""
        return np.asarray(self.matrix(binary=True).sum(axis=0)).ravel().astype(np.float32)

    # --- subsets -----------------------------------------------------------------------------

    def select(self, mask: np.ndarray) -> Dataset:
        """The events where ``mask`` is true, with the same vocabularies and features."""
        mask = np.asarray(mask)
        if mask.dtype != bool or mask.shape != (self.n_events,):
            raise DatasetError(f"select() needs a boolean mask of length {self.n_events}")
        return replace(
            self,
            user_idx=self.user_idx[mask],
            item_idx=self.item_idx[mask],
            timestamp=self.timestamp[mask],
            event_code=self.event_code[mask],
            weight=self.weight[mask],
            quantity=self.quantity[mask],
            price=self.price[mask],
            source_row=self.source_row[mask],
            session_idx=self.session_idx[mask] if len(self.session_idx) else self.session_idx,
            event_context=(
                self.event_context[mask].reset_index(drop=True)
                if len(self.event_context.columns)
                else self.event_context
            ),
            _cache={},
        )

    def event_mask(self, *names: str) -> np.ndarray:
        """Boolean mask of the events whose type is one of ``names``."""
        codes = [self.event_types.code(name) for name in names if name in self.event_types]
        return np.isin(self.event_code, np.asarray(codes, dtype=np.int16))

    def describe(self) -> dict[str, Any]:
        """Counts and shape, for logs and `fusionrec stats`."""
        matrix = self.matrix(binary=True)
        cells = max(self.n_users * self.n_items, 1)
        return {
            "users": self.n_users,
            "items": self.n_items,
            "events": self.n_events,
            "interactions": int(matrix.nnz),
            "density": matrix.nnz / cells,
        }

    # --- construction ------------------------------------------------------------------------

    @classmethod
    def from_frame(
        cls,
        events: pd.DataFrame | pa.Table,
        items: pd.DataFrame | pa.Table | None = None,
        users: pd.DataFrame | pa.Table | None = None,
        *,
        event_types: EventTypes | None = None,
        anonymous: str = "session",
        include_bots: bool = False,
    ) -> Dataset:
        """Build from canonical events (pandas or Arrow), optional item and user tables.

        ``anonymous="session"`` keys events without a user id by their session
        (``"session:<id>"``), so session data trains too; ``"drop"`` leaves them out.
        Events of an unknown type raise `DatasetError` (ingestion quarantines them earlier).
        """
        event_types = event_types or EventTypes()
        table = _as_table(events)
        _require(table, ["user_id", "item_id", "event_type", "timestamp"], "events")
        table = table.append_column("__row", pa.array(np.arange(table.num_rows, dtype=np.int64)))
        table = _user_keys(table, anonymous)
        keep = pc.invert(pc.is_null(table["item_id"]))
        if "is_bot" in table.column_names and not include_bots:
            keep = pc.and_(keep, pc.invert(pc.fill_null(table["is_bot"], False)))
        if pc.sum(pc.invert(keep)).as_py():  # copying every column costs memory: only when needed
            table = table.filter(keep)

        item_table = _as_table(items) if items is not None else None
        user_table = _as_table(users) if users is not None else None
        # Dictionary-encode once: the vocabulary sorts only the distinct ids, and the event
        # indices are a remap of the dictionary codes (no second hash pass over every event).
        user_codes = _dictionary_encode(table["__user"])
        item_codes = _dictionary_encode(table["item_id"])
        user_vocab = Vocabulary(user_codes.dictionary)
        extra_items = [item_table["item_id"].cast(pa.string())] if item_table is not None else []
        item_vocab = Vocabulary(
            pa.chunked_array([item_codes.dictionary, *extra_items], type=pa.string()).combine_chunks()
        )
        user_idx = _remap(user_codes, user_vocab)
        item_idx = _remap(item_codes, item_vocab)

        timestamps = _unix_seconds(table["timestamp"])
        order = None if np.all(timestamps[1:] >= timestamps[:-1]) else np.argsort(timestamps, kind="stable")

        def ordered(values: np.ndarray) -> np.ndarray:
            return values if order is None else values[order]

        codes, signed = _event_codes(table["event_type"], event_types)
        sessions = (
            _factorize(table["session_id"])
            if "session_id" in table.column_names
            else np.full(table.num_rows, -1, dtype=np.int64)
        )
        return cls(
            users=user_vocab,
            items=item_vocab,
            event_types=event_types,
            user_idx=ordered(user_idx),
            item_idx=ordered(item_idx),
            timestamp=ordered(timestamps),
            event_code=ordered(codes),
            weight=ordered(signed),
            quantity=ordered(_float_column(table, "quantity")),
            price=ordered(_float_column(table, "price")),
            source_row=ordered(table["__row"].to_numpy()),
            item_features=feature_frame(item_table, "item_id", item_vocab, ITEM_COLUMNS),
            user_features=feature_frame(user_table, "user_id", user_vocab, USER_COLUMNS),
            session_idx=ordered(sessions),
            event_context=_event_context(table, order),
        )

    @classmethod
    def from_store(
        cls, store: EventStore, *, event_types: EventTypes | None = None, anonymous: str = "session"
    ) -> Dataset:
        """Build from everything in an `EventStore` (bot-flagged events excluded).

        Events come in the store's total order, (timestamp, event_id), not in the backend's
        storage order (arbitrary: DuckDB's deduplicating insert scrambles it on every ingest), so
        the same stored events give the same Dataset (order of equal timestamps, session codes,
        ``source_row``) in every process.
        """
        columns = [
            "user_id",
            "item_id",
            "event_type",
            "timestamp",
            "session_id",
            "quantity",
            "price",
            *CONTEXT_COLUMNS,
        ]
        # Read unsorted and sorted in Arrow: cheaper in memory than the store sorting every
        # column on a text key. No local name holds the read, so its columns are freed as sorted.
        return cls.from_frame(
            _in_store_order(
                store.events_arrow(columns=[*columns, "event_id"], exclude_bots=True, ordered=False)
            ),
            store.items_arrow(),
            store.users_arrow(),
            event_types=event_types,
            anonymous=anonymous,
        )


# --- helpers ---------------------------------------------------------------------------------


def _as_table(frame: pd.DataFrame | pa.Table) -> pa.Table:
    if isinstance(frame, pa.Table):
        return frame
    if isinstance(frame, pd.DataFrame):
        return pa.Table.from_pandas(frame, preserve_index=False)
    raise DatasetError(f"expected a pandas DataFrame or an Arrow table, got {type(frame).__name__}")


def _in_store_order(events: pa.Table) -> pa.Table:
    """``events`` sorted by (timestamp, event_id), the ``event_id`` column dropped.

    Copies one column at a time (each original column is freed once its sorted copy exists), so
    the peak is the table plus one column, not two tables.
    """
    order = pc.sort_indices(
        events.select(["timestamp", "event_id"]),
        sort_keys=[("timestamp", "ascending"), ("event_id", "ascending")],
    )
    events = events.drop_columns(["event_id"])
    names = events.column_names
    columns: list[pa.ChunkedArray | pa.Array] = list(events.columns)
    del events
    for i in range(len(columns)):
        columns[i] = columns[i].take(order)
    return pa.table(columns, names=names)


def _require(table: pa.Table, columns: list[str], what: str) -> None:
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise DatasetError(f"{what} lack required column(s): {', '.join(missing)}")


def _user_keys(table: pa.Table, anonymous: str) -> pa.Table:
    user = table["user_id"].cast(pa.string())
    if "session_id" in table.column_names and anonymous == "session":
        session_key = pc.binary_join_element_wise(ANONYMOUS_PREFIX, table["session_id"].cast(pa.string()), "")
        user = pc.coalesce(user, session_key)
    elif anonymous not in ("session", "drop"):
        raise DatasetError(f"anonymous must be 'session' or 'drop', not {anonymous!r}")
    table = table.append_column("__user", user)
    return table.filter(pc.invert(pc.is_null(table["__user"])))


def _event_codes(column: pa.ChunkedArray, event_types: EventTypes) -> tuple[np.ndarray, np.ndarray]:
    """Event-type codes and signed weights, via a dictionary encoding (a handful of distinct names)."""
    encoded = _dictionary_encode(column)
    names = [normalise_event_type(str(u)) for u in encoded.dictionary.to_pylist()]
    unknown = sorted(
        {raw for raw, n in zip(encoded.dictionary.to_pylist(), names, strict=True) if n not in event_types}
    )
    if unknown:
        raise DatasetError(f"unknown event type(s) {unknown}; configured: {event_types.names}")
    weights = event_types.signed_weights()
    indices = encoded.indices.to_numpy(zero_copy_only=False)
    codes = np.array([event_types.code(n) for n in names], dtype=np.int16)[indices]
    signed = np.array([weights[n] for n in names], dtype=np.float32)[indices]
    return codes, signed


def _remap(encoded: pa.DictionaryArray, vocab: Vocabulary) -> np.ndarray:
    """Vocabulary indices of dictionary-encoded ids."""
    dictionary_to_vocab = vocab.index(encoded.dictionary)
    return dictionary_to_vocab[encoded.indices.to_numpy(zero_copy_only=False)]


def _dictionary_encode(column: pa.ChunkedArray) -> pa.DictionaryArray:
    return column.cast(pa.string()).combine_chunks().dictionary_encode()


def _unix_seconds(column: pa.ChunkedArray) -> np.ndarray:
    if pa.types.is_timestamp(column.type):
        micros = column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64()).to_numpy()
        return micros // 1_000_000
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        return column.cast(pa.int64()).to_numpy()
    parsed = pd.to_datetime(column.to_pandas(), utc=True)
    return parsed.astype("int64").to_numpy() // 1_000_000_000


def _event_context(table: pa.Table, order: np.ndarray | None) -> pd.DataFrame:
    """The `CONTEXT_COLUMNS` that have a value somewhere, as categoricals in event order."""
    columns = {}
    for name in CONTEXT_COLUMNS:
        if name not in table.column_names or table[name].null_count == table.num_rows:
            continue
        encoded = _dictionary_encode(table[name].cast(pa.string()))
        values = pd.Categorical.from_codes(
            encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64),
            categories=pd.Index(encoded.dictionary.to_pylist(), dtype=object),
        )
        columns[name] = values if order is None else values[order]
    return pd.DataFrame(columns)


def _float_column(table: pa.Table, name: str) -> np.ndarray:
    if name not in table.column_names:
        return np.full(table.num_rows, np.nan, dtype=np.float32)
    return table[name].cast(pa.float64()).fill_null(np.nan).to_numpy().astype(np.float32)


def _factorize(column: pa.ChunkedArray) -> np.ndarray:
    """Dense codes of a string column; null gives -1."""
    return _dictionary_encode(column).indices.cast(pa.int64()).fill_null(-1).to_numpy()


def feature_frame(table: pa.Table | None, key: str, vocab: Vocabulary, columns: list[str]) -> pd.DataFrame:
    """One row per vocabulary entry, in index order; unknown rows are null."""
    wanted = [c for c in columns if c != key]
    if table is None or table.num_rows == 0:
        return pd.DataFrame(index=pd.RangeIndex(len(vocab)), columns=wanted)
    frame = table.to_pandas()
    frame[key] = frame[key].astype(str)
    if VECTORS_COLUMN in frame.columns:  # Arrow maps arrive as lists of pairs: plain dicts instead
        frame[VECTORS_COLUMN] = pd.Series([cell_mapping(c) for c in frame[VECTORS_COLUMN]], dtype=object)
    frame = frame.drop_duplicates(key, keep="last").set_index(key)
    frame = frame.reindex(
        columns=[c for c in wanted if c in frame.columns] + [c for c in frame.columns if c not in columns]
    )
    frame = frame.reindex(pd.Index(vocab.ids, name=key))
    return frame.reset_index(drop=True)
