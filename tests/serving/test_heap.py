"""What the cycle collector walks in a long-running server: neither a loaded version's objects
nor the cached answers (`serving.heap`, `serving.cache`)."""

from __future__ import annotations

import gc
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from fusionrec.serving.app import create_app
from fusionrec.serving.cache import MemoryCache
from serving.conftest import make_settings


def _answer(n: int) -> dict[str, Any]:
    items = [
        {"item_id": f"i{n}-{j}", "score": 1.0 / (j + 1), "sources": ["ease", "rp3beta"]} for j in range(10)
    ]
    return {"items": items, "model_version": "v0001", "degraded": False, "fallback": None, "cached": False}


def test_a_cached_answer_is_a_snapshot_each_hit_a_copy_of_its_own() -> None:
    cache = MemoryCache(ttl_s=30.0)
    answer = _answer(1)
    cache.put("u:1", "key", answer)
    answer["items"].clear()  # the caller goes on with its answer
    first, second = cache.get("u:1", "key"), cache.get("u:1", "key")
    assert first == second == _answer(1)
    first["items"].clear()  # a request adds its own fields to its copy
    assert cache.get("u:1", "key") == _answer(1)


def test_cached_answers_add_next_to_nothing_for_the_collector_to_walk() -> None:
    cache = MemoryCache(ttl_s=30.0)
    gc.collect()
    before = len(gc.get_objects())
    for n in range(1000):
        cache.put(f"u:{n}", "key", _answer(n))
    gc.collect()
    grown = len(gc.get_objects()) - before
    # Kept as dicts and lists, each answer would be 22 tracked objects (answer, list, 10 items,
    # 10 source lists); kept as its JSON, a visitor costs at most its entries' dict.
    assert grown < 2 * 1000, grown
    assert cache.get("u:999", "key") == _answer(999)


def test_a_version_leaves_the_collectors_walks_once_its_lists_are_in(
    store_url: str, models_dir: Path, known_user: str
) -> None:
    settings = make_settings(store_url, models_dir, precompute_users=100_000, freeze_heap=True)
    assert gc.get_freeze_count() == 0
    with TestClient(create_app(settings)) as client:
        deadline = time.time() + 120
        while gc.get_freeze_count() == 0:
            assert time.time() < deadline, "the heap was not settled after pre-scoring"
            time.sleep(0.1)
        loaded = client.app.state.service.registry.active
        assert "precomputed" in loaded.extras
        walked = {id(o) for o in gc.get_objects()}
        assert id(loaded) not in walked and id(loaded.extras) not in walked
        answer = client.get("/v1/recommendations", params={"user_id": known_user, "k": 10}).json()
        assert len(answer["items"]) == 10 and not answer["degraded"]
    assert gc.get_freeze_count() == 0  # closed: the objects are the collector's again
