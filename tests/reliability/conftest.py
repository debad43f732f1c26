"""The reliability suite of issue 24: crash tests, the auth matrix, schemathesis with keys on and
off, and the bad-input corpus, all against real servers and subprocesses.

Every test adds its counts to ``FIGURES`` (cases tried, failures, server errors, events lost...);
at the end of the session they are written as JSON to $FUSIONREC_RELIABILITY_JSON when it is set
(``benchmarks/bench_reliability.py`` sets it), so the published figures come from the same run
that passed, not from a second bookkeeping."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from reliability.figures import FIGURES
from serving.conftest import models_dir, shop, store_url, trained_models  # noqa: F401 (fixtures)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:  # `pytest -m reliability` selects the suite wherever it is run from
        if "reliability" in item.nodeid.split("::")[0]:
            item.add_marker(pytest.mark.reliability)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    target = os.environ.get("FUSIONREC_RELIABILITY_JSON")
    if target and FIGURES:
        data = {part: dict(values) for part, values in sorted(FIGURES.items())}
        Path(target).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
