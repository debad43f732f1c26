"""The suite's figures, added up by the tests and written out by the conftest's session hook."""

from __future__ import annotations

from collections import defaultdict

FIGURES: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))


def count(part: str, **figures: int) -> None:
    """Add ``figures`` to the totals of ``part`` (e.g. ``count("auth", cells=12, failures=0)``)."""
    for name, value in figures.items():
        FIGURES[part][name] += int(value)
