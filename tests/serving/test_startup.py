"""Start-up does not wait for the known users' pre-scored lists: answers meanwhile are flagged."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fusionrec.serving import precompute as precompute_module
from fusionrec.serving.app import create_app
from serving.conftest import make_settings


@pytest.fixture
def held_precompute(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Pre-scoring that waits until the test sets the event (then scores as usual)."""
    release = threading.Event()
    real: Callable[..., Any] = precompute_module.precompute

    def held(*args: Any, **kwargs: Any) -> Any:
        assert release.wait(60), "the test never released the pre-scoring"
        return real(*args, **kwargs)

    monkeypatch.setattr(precompute_module, "precompute", held)
    yield release
    release.set()


def recommend(client: TestClient, user: str) -> dict[str, Any]:
    response = client.get("/v1/recommendations", params={"user_id": user, "k": 5})
    assert response.status_code == 200, response.text
    return response.json()


def wait_for_lists(client: TestClient) -> None:
    deadline = time.time() + 60
    while not client.get("/readyz").json()["precomputed"]:
        assert time.time() < deadline, "the lists never came"
        time.sleep(0.05)


def test_known_users_get_a_flagged_fallback_while_their_lists_are_scored(
    store_url: str, models_dir: Path, known_user: str, held_precompute: threading.Event
) -> None:
    settings = make_settings(store_url, models_dir, precompute_users=100_000)
    with TestClient(create_app(settings)) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["precomputed"] is False
        early = recommend(client, known_user)
        assert early["fallback"] == "trending" and len(early["items"]) == 5
        assert early["degraded"] is True and early["degraded_causes"] == ["precomputing"]
        held_precompute.set()
        wait_for_lists(client)
        later = recommend(client, known_user)  # not the cached early answer
        assert later["fallback"] is None and later["degraded"] is False
        assert later["items"][0]["sources"] == ["item_knn"]


def test_scoring_on_request_while_precomputing_when_configured(
    store_url: str, models_dir: Path, known_user: str, held_precompute: threading.Event
) -> None:
    settings = make_settings(store_url, models_dir, precompute_users=100_000, score_while_precomputing=True)
    with TestClient(create_app(settings)) as client:
        assert client.get("/readyz").json()["precomputed"] is False
        early = recommend(client, known_user)
        assert early["fallback"] is None and early["degraded"] is False


def test_a_later_swap_scores_known_users_on_request(
    store_url: str, models_dir: Path, known_user: str, held_precompute: threading.Event
) -> None:
    held_precompute.set()  # start-up's lists come at once
    settings = make_settings(store_url, models_dir, precompute_users=100_000)
    with TestClient(create_app(settings)) as client:
        wait_for_lists(client)
        held_precompute.clear()  # the next version's lists wait
        swapped = client.post("/v1/models/v0001/activate", params={"force": True})
        assert swapped.status_code == 200, swapped.text
        assert client.get("/readyz").json()["precomputed"] is False
        answer = recommend(client, known_user)
        assert answer["degraded"] is False and answer["model_version"] == "v0001"
        held_precompute.set()
