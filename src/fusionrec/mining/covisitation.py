"""Time-windowed, event-type-weighted co-visitation ("viewed together").

`covisitation_matrix` gives item x item weights of items used close together in time by the same
session (or user), each pair weighted by the event type of its target event; the SQL job
`fusionrec.engine.jobs.covisitation` computes the same table on an engine, with the same
`covisitation_type_weights`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import scipy.sparse as sp

from fusionrec.data.dataset import SECONDS_PER_DAY, Dataset
from fusionrec.data.schema import EventTypes
from fusionrec.mining.neighbours import prune_rows

_PAIR_CHUNK = 4_000_000  # co-visitation pairs materialised at once (bounds memory)


def covisitation_type_weights(
    event_types: EventTypes, type_weights: Mapping[str, float] | None = None
) -> dict[str, float]:
    """Weight per event type name: the configured weight, overridden by ``type_weights``.

    Negative types (``remove_from_cart``) weigh 0: they never make items related. Shared by the
    in-memory co-visitation here and the SQL job of `fusionrec.engine.jobs`.
    """
    weights = {t.name: (t.weight if t.positive else 0.0) for t in event_types.types}
    for name, value in (type_weights or {}).items():
        if name not in weights:
            raise ValueError(f"type_weights names unknown event type {name!r}; known: {sorted(weights)}")
        if value < 0:
            raise ValueError(f"type_weights[{name!r}] is {value}: weights must be >= 0")
        weights[name] = float(value)
    return weights


def event_type_weights(dataset: Dataset, type_weights: Mapping[str, float] | None = None) -> np.ndarray:
    """Weight per event code of ``dataset`` (see `covisitation_type_weights`)."""
    weights = covisitation_type_weights(dataset.event_types, type_weights)
    return np.array([weights[name] for name in dataset.event_types.names], dtype=np.float64)


def covisitation_matrix(
    dataset: Dataset,
    window_seconds: float = SECONDS_PER_DAY,
    type_weights: Mapping[str, float] | None = None,
    *,
    group: str = "session",
    max_span_events: int | None = 30,
    symmetric: bool = True,
    collapse_repeats: bool = True,
    normalise: str = "none",
    max_neighbours: int | None = None,
    gap_decay: bool = False,
) -> sp.csr_matrix:
    """Item x item co-visitation weights (CSR float32).

    Two events of the same group (``"session"``, falling back to the user where an event has no
    session, or ``"user"``) are a pair when the later one is at most ``window_seconds`` after the
    earlier one and at most ``max_span_events`` events later. Pair ``a -> b`` adds the type weight of
    ``b``'s event (``symmetric`` also adds ``b -> a`` with ``a``'s weight). Types of weight 0 are
    ignored. ``collapse_repeats`` merges back-to-back events on the same item (a run of reloads)
    into one with the run's highest weight. ``gap_decay`` divides a pair's weight by how many
    events apart its two events are (1 for neighbours), as the sequential rules of Ludewig and
    Jannach (2018) do: what comes right after an item says more about it than what comes later.

    ``normalise``: ``"none"`` (summed weights), ``"row"`` (each row sums to 1) or ``"cosine"``
    (divided by ``sqrt(w_a * w_b)``, the items' total event weights). ``max_neighbours`` keeps the
    largest entries of each row.
    """
    if window_seconds <= 0:
        raise ValueError(f"window_seconds must be > 0, got {window_seconds}")
    if normalise not in ("none", "row", "cosine"):
        raise ValueError(f"normalise must be 'none', 'row' or 'cosine', not {normalise!r}")
    if group not in ("session", "user"):
        raise ValueError(f"group must be 'session' or 'user', not {group!r}")
    n_items = dataset.n_items
    code_weight = event_type_weights(dataset, type_weights)
    weight = code_weight[dataset.event_code]
    keep = weight > 0
    users = dataset.user_idx[keep].astype(np.int64)
    if group == "session" and len(dataset.session_idx):
        sessions = dataset.session_idx[keep]
        groups = np.where(sessions >= 0, sessions, -1 - users)
    else:
        groups = users
    times, items, weight = dataset.timestamp[keep], dataset.item_idx[keep].astype(np.int64), weight[keep]
    order = np.lexsort((np.arange(len(groups)), times, groups))
    groups, times, items, weight = groups[order], times[order], items[order], weight[order]
    if collapse_repeats and len(items):
        starts = np.nonzero(np.r_[True, (groups[1:] != groups[:-1]) | (items[1:] != items[:-1])])[0]
        weight = np.maximum.reduceat(weight, starts)
        groups, times, items = groups[starts], times[starts], items[starts]

    result = sp.csr_matrix((n_items, n_items), dtype=np.float64)
    if len(items) > 1:
        # One sortable key: groups are laid out one after another on the time axis, further apart
        # than the window, so a single searchsorted finds every event's window end.
        rank = np.unique(groups, return_inverse=True)[1].ravel().astype(np.int64)
        span = int(times.max() - times.min()) + int(np.ceil(window_seconds)) + 1
        key = rank * span + (times - times.min())
        end = np.searchsorted(key, key + int(window_seconds), side="right")
        partners = end - np.arange(len(key)) - 1
        if max_span_events is not None:
            partners = np.minimum(partners, max_span_events)
        result = _accumulate_pairs(items, weight, partners, n_items, symmetric, gap_decay)

    if normalise == "row":
        sums = np.asarray(result.sum(axis=1)).ravel()
        result = sp.diags(np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)) @ result
    elif normalise == "cosine":
        totals = np.bincount(items, weights=weight, minlength=n_items)
        inv = np.divide(1.0, np.sqrt(totals), out=np.zeros_like(totals), where=totals > 0)
        result = sp.diags(inv) @ result @ sp.diags(inv)
    result = prune_rows(sp.csr_matrix(result).astype(np.float32), max_neighbours)
    result.eliminate_zeros()
    return result


def _accumulate_pairs(
    items: np.ndarray,
    weight: np.ndarray,
    partners: np.ndarray,
    n_items: int,
    symmetric: bool,
    gap_decay: bool = False,
) -> sp.csr_matrix:
    """Sum the pair weights of event ``i`` with its next ``partners[i]`` events, chunk by chunk
    (divided by their distance in events with ``gap_decay``)."""
    total = sp.csr_matrix((n_items, n_items), dtype=np.float64)
    cumulative = np.cumsum(partners)
    bounds = np.searchsorted(
        cumulative, np.arange(_PAIR_CHUNK, int(cumulative[-1]) + _PAIR_CHUNK, _PAIR_CHUNK)
    )
    start = 0
    for stop in np.unique(np.r_[bounds + 1, len(partners)].clip(max=len(partners))):
        counts = partners[start:stop]
        if counts.sum() > 0:
            source = np.repeat(np.arange(start, stop), counts)
            offset = np.arange(len(source)) - np.repeat(np.cumsum(counts) - counts, counts)
            target = source + 1 + offset
            a, b = items[source], items[target]
            different = a != b
            decay = 1.0 / (offset[different] + 1) if gap_decay else 1.0
            rows, cols, values = a[different], b[different], weight[target][different] * decay
            if symmetric:
                rows = np.r_[rows, b[different]]
                cols = np.r_[cols, a[different]]
                values = np.r_[values, weight[source][different] * decay]
            total = total + sp.csr_matrix((values, (rows, cols)), shape=(n_items, n_items))
        start = stop
    return total
