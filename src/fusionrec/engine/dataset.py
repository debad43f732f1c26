"""A compact `Dataset` built from the engine's ``interactions`` job, for the matrix models.

At scale the event log does not fit in memory, but the aggregated user x item matrix usually
does (10M users x 20 items is 200M cells, about 2.4 GB as CSR). This builds a `Dataset` holding
one pseudo-event per (user, item) pair, weighted by the pair's aggregated weight and timed at its
newest event, so ``matrix()`` equals the full Dataset's matrix (same half-life) exactly. It carries no
per-event types or order: sequential, session and basket models need the full `Dataset`.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fusionrec.data.dataset import Dataset, Vocabulary, feature_frame
from fusionrec.data.schema import EVENT_SCHEMA, ITEM_COLUMNS, USER_COLUMNS, EventTypes
from fusionrec.engine import jobs
from fusionrec.engine.base import Engine
from fusionrec.models.registry import model_class

PSEUDO_EVENT = "view"  # the type code stored for each pair (its weight is the pair's own)


def needs_event_log(model: str) -> bool:
    """Whether the model registered as ``model`` reads the event log itself (order, sessions,
    baskets, time windows: its class's `Recommender.needs_event_log`): the compact Dataset has one
    pseudo-event per pair, so such a model must train on the full Dataset instead."""
    return model_class(model).needs_event_log


def interactions_dataset(
    engine: Engine,
    *,
    half_life_days: float | None = None,
    event_types: EventTypes | None = None,
    items: pa.Table | None = None,
    like: Dataset | None = None,
    rebuild: bool = True,
) -> Dataset:
    """Run `jobs.interactions` on ``engine`` and return its matrix as a compact `Dataset`
    (``rebuild=False``: read the ``interactions`` relation a caller already defined).

    ``like``: reuse that Dataset's user and item vocabularies and item features (every pair's ids
    must be in them), so the result lines up with a split built in memory.
    """
    event_types = event_types or EventTypes()
    if rebuild or not engine.has_relation("interactions"):
        jobs.interactions(engine, half_life_days=half_life_days, event_types=event_types)
    pairs = engine.query(
        "SELECT user_id, item_id, weight, last_ts FROM interactions ORDER BY last_ts, user_id, item_id"
    )
    if like is not None:
        users, item_vocab = like.users, like.items
    else:
        users = Vocabulary(pairs["user_id"])
        item_ids = [pairs["item_id"].combine_chunks()]
        if items is not None:  # catalogue items nobody used yet still get an index
            item_ids.append(items["item_id"].cast(pa.string()).combine_chunks())
        item_vocab = Vocabulary(pa.concat_arrays(item_ids))
    user_idx, item_idx = users.index(pairs["user_id"]), item_vocab.index(pairs["item_id"])
    if (user_idx < 0).any() or (item_idx < 0).any():
        raise ValueError("interactions hold ids outside the given vocabularies")
    n = pairs.num_rows
    micros = pc.cast(pc.cast(pairs["last_ts"], pa.timestamp("us", tz="UTC")), pa.int64()).to_numpy()
    return Dataset(
        users=users,
        items=item_vocab,
        event_types=event_types,
        user_idx=user_idx.astype(np.int32),
        item_idx=item_idx.astype(np.int32),
        timestamp=micros // 1_000_000,
        event_code=np.full(n, event_types.code(PSEUDO_EVENT), dtype=np.int16),
        weight=pairs["weight"].to_numpy().astype(np.float32),
        quantity=np.full(n, np.nan, dtype=np.float32),
        price=np.full(n, np.nan, dtype=np.float32),
        source_row=np.arange(n, dtype=np.int64),
        item_features=(
            like.item_features
            if like is not None
            else feature_frame(items, "item_id", item_vocab, ITEM_COLUMNS)
        ),
        user_features=(
            like.user_features if like is not None else feature_frame(None, "user_id", users, USER_COLUMNS)
        ),
        session_idx=np.full(n, -1, dtype=np.int64),
    )


def dataset_events(dataset: Dataset) -> pa.Table:
    """A Dataset's events back in the canonical event schema, for handing them to an engine.

    Users keep their Dataset key (anonymous ones ``session:<id>``), so the engine's user keys
    equal the Dataset's. Event ids are the events' positions.
    """
    n = dataset.n_events
    names = np.asarray(dataset.event_types.names, dtype=object)
    columns = {
        "event_id": pa.array(np.arange(n).astype(str)),
        "user_id": pa.array(dataset.users.id(dataset.user_idx), pa.string()),
        "item_id": pa.array(dataset.items.id(dataset.item_idx), pa.string()),
        "event_type": pa.array(names[dataset.event_code]),
        "timestamp": pa.array(dataset.timestamp * 1_000_000, pa.int64()).cast(pa.timestamp("us", tz="UTC")),
    }
    return pa.table(
        {name: columns.get(name, pa.nulls(n, EVENT_SCHEMA.field(name).type)) for name in EVENT_SCHEMA.names},
        schema=EVENT_SCHEMA,
    )


def engine_interactions(engine: Engine, dataset: Dataset) -> Dataset:
    """``dataset``'s user x item matrix rebuilt by ``engine``'s ``interactions`` job, as a compact
    Dataset with ``dataset``'s vocabularies (what ``fusionrec evaluate --engine`` trains on)."""
    from fusionrec.data.schema import ITEM_SCHEMA

    engine.register_arrow("events", dataset_events(dataset))
    if not engine.has_relation("items"):
        engine.register_arrow("items", ITEM_SCHEMA.empty_table())
    return interactions_dataset(engine, event_types=dataset.event_types, like=dataset)
