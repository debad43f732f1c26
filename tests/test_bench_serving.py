"""The serving benchmark's harness at a tiny size: wrk against the static floor, the memory walk.

No timing is asserted: only that the pieces measure what they claim (requests counted, a pair
is two requests, CPU read from /proc, bytes sorted by the dimension they grow with).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def harness(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import bench_serving
    import serving_load
    import serving_memory

    yield bench_serving, serving_load, serving_memory
    for name in ("bench_serving", "serving_load", "serving_memory"):
        sys.modules.pop(name, None)


@pytest.mark.skipif(shutil.which("wrk") is None, reason="needs wrk")
def test_wrk_drives_the_floor_with_pairs(harness, tmp_path: Path) -> None:
    bench, load, _ = harness
    answers = {
        "recommendations": '{"items": [1, 2, 3]}',
        "events": '{"stored": 1}',
        "popular": "[]",
        "similar": "[]",
    }
    (tmp_path / "answers.json").write_text(json.dumps(answers))
    floor = bench.start_floor(tmp_path / "answers.json", workers=1)
    try:
        lines = bench.scenario_lines("live", ["u1", "u2"], ["i1"], "t")
        assert lines[0].startswith("/v1/recommendations?k=10&user_id=u1\t")
        assert json.loads(lines[0].split("\t")[1])["event_id"] == bench.EVENT_ID_PREFIX + "t-%N%"
        pairs = load.write_lines(tmp_path / "live.txt", lines)
        settings = load.WrkSettings(threads=1, connections=2, seconds=1)
        out = load.saturate(floor, pairs, "t", settings)
        assert out["requests"] > 10 and out["errors"] == 0 and out["degraded"] == 0
        assert out["server_cpu_ms_per_request"] > 0
        single = load.write_lines(tmp_path / "known.txt", bench.scenario_lines("known", ["u1"], ["i1"], "t"))
        assert load.saturate(floor, single, "t", settings)["errors"] == 0
    finally:
        floor.stop()


def test_unknown_scenario_is_one_clear_error(harness) -> None:
    bench, _, _ = harness
    with pytest.raises(ValueError, match="unknown scenario 'nope'"):
        bench.scenario_lines("nope", ["u"], ["i"], "t")


def test_memory_inventory_sorts_bytes_by_dimension(harness) -> None:
    _, _, memory = harness
    n_users, n_items = 7, 5

    class Holder:
        def __init__(self) -> None:
            self.user_factors = np.zeros((n_users, 3), dtype=np.float32)
            self.item_factors = np.zeros((n_items, 3), dtype=np.float32)
            self.weights = np.zeros((n_items, n_items), dtype=np.float32)
            self.seen = sp.random(n_users, n_items, density=0.5, format="csr", random_state=0)
            self.view = self.user_factors[:2]  # the same buffer: counted once
            self.index = {f"u{i}": i for i in range(n_users)}

    Holder.__module__ = "fusionrec.fake"
    kinds = memory.inventory([Holder()], n_users, n_items)
    assert kinds["user"] >= n_users * 3 * 4 and kinds["user"] < n_users * 3 * 4 + 2000  # factors + id map
    assert kinds["item"] == n_items * 3 * 4
    assert kinds["item_item"] == n_items * n_items * 4
    seen = Holder().seen
    assert kinds["interactions"] == seen.data.nbytes + seen.indices.nbytes + seen.indptr.nbytes


def test_median_of_runs_sums_errors(harness) -> None:
    bench, _, _ = harness
    runs = [
        {"a": {"rps": 1.0, "errors": 1}},
        {"a": {"rps": 3.0, "errors": 0}},
        {"a": {"rps": 2.0, "errors": 2}},
    ]
    assert bench.median_dicts(runs) == {"a": {"rps": 2.0, "errors": 3}}
