"""Rejected rows grouped by reason: counts and one sample row each, for the console and exports.

A quarantined row's ``reason`` joins its problems with "; " ("missing item_id; negative price"):
each problem is its own group here, so a row with two problems counts in both.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

REASON_SEPARATOR = "; "
SAMPLE_FIELDS = ("source", "row_number", "raw")


@dataclass(frozen=True)
class ReasonGroup:
    """One reason: how many rows it rejected and the first of them."""

    reason: str
    count: int
    sample: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "count": self.count, "sample": self.sample}


def first_row_per_reason(quarantine: pa.Table) -> dict[str, dict[str, Any]]:
    """Each reason (split on "; ") -> the first row holding it (source, row_number, raw).

    Only the first row of each distinct reason string is turned into Python, so a batch with
    many rejected rows costs one dictionary encoding.
    """
    if not quarantine.num_rows:
        return {}
    encoded = pc.dictionary_encode(quarantine.column("reason").combine_chunks())
    indices = encoded.indices.to_numpy(zero_copy_only=False)
    samples: dict[str, dict[str, Any]] = {}
    for code, combined in enumerate(encoded.dictionary.to_pylist()):
        first = int((indices == code).argmax())
        row = {name: quarantine.column(name)[first].as_py() for name in SAMPLE_FIELDS}
        for reason in (combined or "").split(REASON_SEPARATOR):
            samples.setdefault(reason, row)
    return samples


def reason_counts(reasons: pa.Array | pa.ChunkedArray) -> Counter[str]:
    """Rows per single reason (a row with two problems counts in both)."""
    counts = pc.value_counts(reasons.combine_chunks() if isinstance(reasons, pa.ChunkedArray) else reasons)
    out: Counter[str] = Counter()
    for combined, n in zip(
        counts.field("values").to_pylist(), counts.field("counts").to_pylist(), strict=True
    ):
        for reason in (combined or "").split(REASON_SEPARATOR):
            out[reason] += n
    return out


def group_by_reason(quarantine: pa.Table) -> list[ReasonGroup]:
    """The quarantine's reasons, most frequent first, each with its count and a sample row."""
    if not quarantine.num_rows:
        return []
    samples = first_row_per_reason(quarantine)
    counts = reason_counts(quarantine.column("reason"))
    return [ReasonGroup(reason, n, samples[reason]) for reason, n in counts.most_common()]


def groups_from_counts(counts: Counter[str], samples: dict[str, dict[str, Any]]) -> list[ReasonGroup]:
    """Groups from an ingestion report's reason counts and samples, most frequent first."""
    return [ReasonGroup(reason, n, samples.get(reason, {})) for reason, n in counts.most_common()]
