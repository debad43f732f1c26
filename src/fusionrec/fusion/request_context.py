"""Where a list is shown (the request's ``device`` and ``channel``) as ranking features.

Events carry the device and channel they happened on (`Dataset.event_context`). When the items
taken on one device differ from those taken on another by more than chance, the fused ranker gets,
per such column, the candidate's log lift on the request's value: how much more the item is taken
there than overall (`SegmentLift`, with every visit a member of its device's and channel's
segment). The same user can then get a different list on the app than on the web. Columns whose
values take the same items, as far as the data can tell (`fit_encoder`), give no feature at all,
so a shop whose devices do not differ pays nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import scipy.sparse as sp

from fusionrec.data.dataset import CONTEXT_COLUMNS, Dataset
from fusionrec.data.user_attributes import AttributeEncoder, SegmentLift

MIN_EVENTS = 50  # a device or channel value with fewer events is not a segment of its own
LIFT_SUFFIX = "_lift"  # feature name: the column, then this (``device_lift``)


def context_feature_names(columns: tuple[str, ...] | list[str]) -> list[str]:
    """The feature names of these context columns (none for none)."""
    return [f"{column}{LIFT_SUFFIX}" for column in columns]


def is_context_feature(name: str) -> bool:
    """Whether ``name`` is one of the data-dependent request-context features."""
    return name in context_feature_names(list(CONTEXT_COLUMNS))


def fit_encoder(dataset: Dataset) -> AttributeEncoder:
    """The context columns whose values take different items, each with its values (those with
    `MIN_EVENTS` events or more, by frequency); empty when the events carry none that differ.
    Fitted on the visits (`_visits`), with the beta-binomial estimate of how much more the values'
    item shares differ than sampling makes them (`estimate_shrinkage`)."""
    frame = dataset.event_context
    names, values = [], []
    for column in CONTEXT_COLUMNS:
        if column not in frame.columns:
            continue
        counts = frame[column].value_counts()
        kept = sorted((str(v) for v, n in counts.items() if n >= MIN_EVENTS), key=lambda v: (-counts[v], v))
        if len(kept) >= 2:
            names.append(column)
            values.append(tuple(kept))
    encoder = AttributeEncoder(tuple(names), tuple(values))
    if not names:
        return encoder
    codes, taken = _visits(dataset, encoder)
    shrinkage = SegmentLift.build(codes, taken, encoder.sizes()).shrinkage
    # A column counts when its largest value's own visits outweigh the prior (m pseudo-visits): its
    # lifts then keep more than half of what the data shows. A larger m is a difference chance
    # alone makes likely, and only gives the ranker noise.
    largest = [np.bincount(codes[:, a][codes[:, a] >= 0]).max(initial=0) for a in range(len(names))]
    return encoder.restrict(
        [n for n, m, most in zip(encoder.names, shrinkage, largest, strict=True) if m < most]
    )


def event_codes(frame: pd.DataFrame, encoder: AttributeEncoder) -> np.ndarray:
    """``int32[n_events, n_columns]``: each event's value code per encoder column (-1: unknown)."""
    codes = np.full((len(frame), encoder.n_attributes), -1, dtype=np.int32)
    for a, (column, vocabulary) in enumerate(zip(encoder.names, encoder.values, strict=True)):
        if column not in frame.columns:
            continue
        values = frame[column]
        if not isinstance(values.dtype, pd.CategoricalDtype):
            values = values.astype("category")
        categorical = values.cat
        lookup = {value: code for code, value in enumerate(vocabulary)}
        of_category = np.array(
            [lookup.get(str(c), -1) for c in categorical.categories] + [-1], dtype=np.int32
        )
        # Categorical codes are -1 for NA, which indexes the trailing -1.
        codes[:, a] = of_category[categorical.codes.to_numpy()]
    return codes


def request_codes(context: Mapping[str, str | None] | None, encoder: AttributeEncoder) -> np.ndarray:
    """``int32[n_columns]``: a request's value codes (-1 for a column it does not name, or a value
    the training data did not have)."""
    context = context or {}
    return np.array(
        [
            {value: code for code, value in enumerate(vocabulary)}.get(str(context.get(column)), -1)
            if context.get(column) is not None
            else -1
            for column, vocabulary in zip(encoder.names, encoder.values, strict=True)
        ],
        dtype=np.int32,
    )


def latest_codes(window: Dataset, encoder: AttributeEncoder) -> np.ndarray:
    """``int32[n_users, n_columns]``: per user the context of their latest event in ``window``
    (the label window a ranker learns from: where the user took what it is labelled by)."""
    codes = np.full((window.n_users, encoder.n_attributes), -1, dtype=np.int32)
    if window.n_events == 0 or encoder.n_attributes == 0:
        return codes
    events = event_codes(window.event_context, encoder)
    # Events are in time order: the last write per user wins.
    codes[window.user_idx] = events
    return codes


def context_segments(dataset: Dataset, encoder: AttributeEncoder) -> SegmentLift:
    """Per context column and value, each item's log lift over the visits (`_visits`): segment
    row ``offsets[a] + code`` is ``base[row] + lift[row, item]``."""
    codes, taken = _visits(dataset, encoder)
    return SegmentLift.build(codes, taken, encoder.sizes())


def _visits(dataset: Dataset, encoder: AttributeEncoder) -> tuple[np.ndarray, sp.csr_matrix]:
    """Each session (a user's events where there is none) on each value is one member, taking each
    of its items once: ``(int32[n_members, n_columns] codes, members x items)``. Members are
    visits, not events: a visit's items share its device and its taste (one category browsed), and
    counted one by one they would look like a device effect on any data."""
    codes = event_codes(dataset.event_context, encoder)
    has_session = len(dataset.session_idx) == dataset.n_events
    sessions = dataset.session_idx if has_session else np.full(dataset.n_events, -1, dtype=np.int64)
    unit = np.where(sessions >= 0, sessions, int(sessions.max(initial=-1)) + 1 + dataset.user_idx)
    keys = np.column_stack([unit, codes]).astype(np.int64)
    members, first, member_of_event = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    taken = sp.csr_matrix(
        (np.ones(dataset.n_events, dtype=np.float32), (member_of_event.ravel(), dataset.item_idx)),
        shape=(len(members), dataset.n_items),
    )
    return codes[first], taken
