"""Which item-to-item answers are cheap enough for the event loop: measured per provider."""

from __future__ import annotations

import time

import numpy as np
from fastapi.testclient import TestClient

from fusionrec.serving.recommend import related, related_inline
from fusionrec.serving.similarity import CHEAP_AFTER, ItemNeighbours


def _listed(items: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    return (items[:, None] + np.arange(1, k + 1)[None, :]).astype(np.int32), np.ones(
        (len(items), k), np.float32
    )


def _slow(items: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    started = time.thread_time()
    while time.thread_time() - started < 0.002:  # 2 ms of CPU per row, like a dense pass
        pass
    return _listed(items, k)


def test_a_provider_is_cheap_once_its_rows_have_been_cheap_to_compute() -> None:
    fast, slow = ItemNeighbours(_listed, None, k=5), ItemNeighbours(_slow, None, k=5)
    for provider in (fast, slow):
        assert not provider.cheap(1000)  # nothing measured yet: a worker thread answers
        for item in range(CHEAP_AFTER):
            provider.neighbours(item)
        assert provider.cheap(0)  # memoised
    assert fast.cheap(1000)
    assert not slow.cheap(1000)


def test_an_inline_similar_answer_is_the_threads_answer(client: TestClient) -> None:
    service = client.app.state.service
    items = [str(i) for i in service.registry.active.item_ids[: CHEAP_AFTER + 5]]
    for item in items[:CHEAP_AFTER]:
        related(service, item, 5, "similar")
    for item in items[CHEAP_AFTER:]:
        inline = related_inline(service, item, 5, "similar")
        assert inline is not None  # the test model's neighbour rows are cheap
        service.shared_cache.clear()
        assert related(service, item, 5, "similar") == inline
    assert related_inline(service, "no-such-item", 5, "similar") is None
