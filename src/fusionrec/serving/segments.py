"""The cold-start answer for visitors the model has no history of but whose attributes are known.

A user registered with attributes (``users.parquet`` ingested into the store: age band, region,
...) but without events the model trained on gets the items popular among the training users
who share those attributes (`fusionrec.data.user_attributes.SegmentLift`, the `popular_segment`
model's scoring), not the site-wide trending list. Built per loaded version from the store's
users table and the version's training matrix; attributes that do not separate tastes in the
training data are left out by the estimate, so a shop whose attributes say nothing keeps its
trending fallback.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import scipy.sparse as sp

from fusionrec.data.user_attributes import AttributeEncoder, SegmentLift, parse_attributes

LABEL = "popular_in_segment"  # the fallback's name in answers and metrics


@dataclass
class SegmentFallback:
    """Segment popularity of one version, and the attributes of the users it has no history of."""

    encoder: AttributeEncoder
    segments: SegmentLift
    attributes: dict[str, str] = field(default_factory=dict)  # user id -> attributes JSON

    def scores(self, user_id: str) -> np.ndarray | None:
        """``float32[n_items]`` for a user in at least one informative segment, else None."""
        raw = self.attributes.get(user_id)
        if raw is None:
            return None
        codes = self.encoder.encode([raw])
        informative = np.isfinite(self.segments.shrinkage)
        if not (codes[0][informative] >= 0).any():
            return None
        return self.segments.scores(codes)[0]

    def refresh(self, users: pa.Table, user_index: dict[str, int], seen: sp.csr_matrix) -> None:
        """Re-read the attributes of the users without training history (new sign-ups since)."""
        self.attributes = cold_attributes(users, user_index, seen)


def build_segment_fallback(
    users: pa.Table, user_index: dict[str, int], seen: sp.csr_matrix
) -> SegmentFallback | None:
    """The fallback of a version whose training users are ``user_index`` with items ``seen``;
    None when no attribute of the training users separates their tastes."""
    if users.num_rows == 0 or "attributes" not in users.column_names:
        return None
    ids = users.column("user_id").cast(pa.string()).to_pylist()
    raw = users.column("attributes").to_pylist()
    rows = np.array([user_index.get(i, -1) for i in ids], dtype=np.int64)
    trained = rows >= 0
    if not trained.any():
        return None
    frame = parse_attributes([raw[i] for i in np.flatnonzero(trained)])
    encoder = AttributeEncoder.fit(frame)
    if encoder.n_attributes == 0:
        return None
    codes = np.full((seen.shape[0], encoder.n_attributes), -1, dtype=np.int32)
    codes[rows[trained]] = encoder.encode(frame)
    segments = SegmentLift.build(codes, seen, encoder.sizes())
    if not np.isfinite(segments.shrinkage).any():
        return None
    return SegmentFallback(encoder, segments, cold_attributes(users, user_index, seen))


def cold_attributes(users: pa.Table, user_index: dict[str, int], seen: sp.csr_matrix) -> dict[str, str]:
    """Attributes of the users the version has no training items of (a guest's are never here)."""
    if users.num_rows == 0 or "attributes" not in users.column_names:
        return {}
    ids = users.column("user_id").cast(pa.string()).to_pylist()
    raw = users.column("attributes").to_pylist()
    items = np.diff(seen.indptr)
    return {
        i: a
        for i, a in zip(ids, raw, strict=True)
        if a and (i not in user_index or items[user_index[i]] == 0)
    }
