"""Scored candidates of one request, and which sources proposed each of them.

A request ranks a few hundred candidates but shows ``k`` of them, so `Provenance` keeps the
sources as the arrays they come in (a candidate table's ``proposed`` matrix, or one label for
a whole list) and turns them into label lists only for the items an answer shows: building a
dict of label lists for every candidate was the largest cost of a pre-scored answer.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fusionrec.serving.business_rules import normalise
from fusionrec.serving.similarity import ItemNeighbours

SESSION = "session"  # source label of live item-to-item candidates


@functools.cache
def _bit_values(n: int) -> np.ndarray:
    """``[1, 2, 4, ...]``: the value of each source's flag in a row's code."""
    return 1 << np.arange(n, dtype=np.int64)


@functools.lru_cache(maxsize=4096)
def _decoded(labels: tuple[str, ...], code: int) -> tuple[str, ...]:
    """The labels whose bits are set in ``code``, in their order."""
    return tuple(label for bit, label in enumerate(labels) if code >> bit & 1)


class Provenance:
    """The source labels of candidate items, resolved on demand (`labels`)."""

    def __init__(self, items: np.ndarray, labels: Sequence[str], proposed: np.ndarray | None = None) -> None:
        """``proposed``: bool[len(items), len(labels)], which label proposed which item; None when
        every label proposed every item (a single source's list)."""
        self._items = items
        self._labels = tuple(labels)
        self._proposed = proposed
        self._order: np.ndarray | None = None
        self._others: list[Provenance] = []

    @classmethod
    def empty(cls) -> Provenance:
        return cls(np.zeros(0, dtype=np.int64), ())

    def labels(self, items: np.ndarray) -> list[list[str]]:
        """The labels of the sources that proposed each of ``items`` (empty where none did)."""
        items = np.asarray(items, dtype=np.int64)
        out: list[list[str]] = [[] for _ in range(len(items))]
        if len(self._items) and len(items):
            if self._order is None:  # sorted once, on the first call
                self._order = np.argsort(self._items, kind="stable")
            ordered = self._items[self._order]
            at = np.minimum(np.searchsorted(ordered, items), len(ordered) - 1)
            found = ordered[at] == items
            rows = self._order[at]
            if self._proposed is None:
                for j in np.flatnonzero(found).tolist():
                    out[j] = list(self._labels)
            else:
                # Each item's row of flags as one integer, decoded by a cached table: a list
                # comprehension over every (item, source) pair was most of this call's time.
                codes = self._proposed[rows].astype(np.int64) @ _bit_values(len(self._labels))
                for j in np.flatnonzero(found).tolist():
                    out[j] = list(_decoded(self._labels, int(codes[j])))
        for other in self._others:
            for mine, theirs in zip(out, other.labels(items), strict=True):
                mine += theirs
        return out

    def merged(self, other: Provenance) -> Provenance:
        """This provenance and ``other``'s: an item's labels are both lists, this one's first."""
        out = Provenance(self._items, self._labels, self._proposed)
        out._order = self._order
        out._others = [*self._others, other]
        return out


@dataclass
class Scored:
    """Candidates of one request with their scores; ``fallback`` names the fallback that answered."""

    items: np.ndarray  # int64 candidate indices
    scores: np.ndarray  # float
    sources: Provenance
    fallback: str | None = None


def merge(personal: Scored, session: Scored, weight: float) -> Scored:
    """Union of both candidate sets; score = normalised model score + weight x normalised session score."""
    items = np.union1d(personal.items, session.items)
    score = np.zeros(len(items))
    score[np.searchsorted(items, personal.items)] += normalise(personal.scores)
    score[np.searchsorted(items, session.items)] += weight * normalise(session.scores)
    return Scored(items, score, personal.sources.merged(session.sources))


def session_candidates(neighbours: ItemNeighbours, recent: list[int]) -> Scored | None:
    """The live item-to-item candidates of the ``recent`` items (newest last), labelled
    `SESSION`; None when they have no neighbours."""
    items, scores = neighbours.from_history(recent)
    if not len(items):
        return None
    return Scored(items, scores.astype(np.float64), Provenance(items, (SESSION,)))


def top(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` best finite scores, best first (ties: lower index first)."""
    n = min(n, len(scores))
    best = np.argpartition(-scores, n - 1)[:n] if n < len(scores) else np.arange(len(scores))
    best = best[np.isfinite(scores[best])]
    return best[np.lexsort((best, -scores[best]))].astype(np.int64)
