"""Live behaviour reaches a fused pipeline's answers, through the real service.

The version served is the default fused pipeline (``fusion``: EASE, RP3beta and item-kNN ranked
by LightGBM), not a single model: its answers must follow the visitor's live events, for known
users (served from pre-scored lists until their first live event) and for guests alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from unittest.mock import ANY

import numpy as np
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from fusionrec.data.dataset import Dataset
from fusionrec.fusion.artifacts import ModelRepository
from fusionrec.serving.precompute import Precomputed
from fusionrec.training import TrainingSpec, train_version
from serving.conftest import precomputed_client

FUSED_SOURCES = {"ease", "rp3beta", "item_knn"}  # the default pipeline's source labels


@pytest.fixture(scope="module")
def fused_models(shop: tuple[pa.Table, pa.Table], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One version: the default fused pipeline, shipped as it is (no guardrail swap to a source)."""
    events, items = shop
    directory = tmp_path_factory.mktemp("fused-models")
    dataset = Dataset.from_frame(events, items)
    train_version(
        dataset, ModelRepository(directory), TrainingSpec("fusion"), trained_by="tests", guardrail=False
    )
    return directory


@pytest.fixture
def client(store_url: str, fused_models: Path) -> Iterator[TestClient]:
    yield from precomputed_client(store_url, fused_models)


def top(client: TestClient, **params: str) -> dict:
    response = client.get("/v1/recommendations", params={"k": 10, **params})
    assert response.status_code == 200, response.text
    return response.json()


def ids(answer: dict) -> list[str]:
    return [entry["item_id"] for entry in answer["items"]]


def view(client: TestClient, item_id: str, **who: str) -> None:
    response = client.post("/v1/events", json={**who, "item_id": item_id, "event_type": "view"})
    assert response.status_code == 202 and response.json()["stored"] == 1, response.text


def items_by_category(client: TestClient) -> dict[str, list[str]]:
    service = client.app.state.service
    loaded = service.registry.active
    categories = service.catalogue.view(loaded.item_ids).category
    grouped: dict[str, list[str]] = {}
    for item_id, category in zip(loaded.item_ids.tolist(), categories.tolist(), strict=True):
        if isinstance(category, str):
            grouped.setdefault(category, []).append(str(item_id))
    return grouped


def test_the_service_serves_the_fused_pipeline(client: TestClient, known_user: str) -> None:
    answer = top(client, user_id=known_user)
    assert answer["fallback"] is None and len(answer["items"]) == 10
    assert all(set(entry["sources"]) & FUSED_SOURCES for entry in answer["items"])


def test_an_event_changes_the_next_answer(client: TestClient, known_user: str) -> None:
    before = top(client, user_id=known_user)
    shown = set(ids(before))
    viewed = next(item for items in items_by_category(client).values() for item in items if item not in shown)
    view(client, viewed, user_id=known_user)
    after = top(client, user_id=known_user)
    assert ids(after) != ids(before)
    assert viewed not in ids(after)  # seen: filtered by policy
    # The visitor's answer was scored now, by the fused pipeline, not read from the batch list.
    assert any(set(entry["sources"]) & FUSED_SOURCES for entry in after["items"])


def test_three_views_in_one_category_change_at_least_3_of_the_top_10(
    client: TestClient, shop: tuple[pa.Table, pa.Table]
) -> None:
    rng = np.random.default_rng(11)
    users = sorted(set(shop[0].column("user_id").drop_null().to_pylist()))
    grouped = {c: items for c, items in items_by_category(client).items() if len(items) >= 3}
    categories = sorted(grouped)
    changed = []
    for user in rng.choice(users, size=9, replace=False).tolist():
        before = set(ids(top(client, user_id=user)))
        category = categories[int(rng.integers(len(categories)))]
        for item in rng.choice(grouped[category], size=3, replace=False).tolist():
            view(client, item, user_id=user)
        changed.append(10 - len(before & set(ids(top(client, user_id=user)))))
    assert np.median(changed) >= 3, changed


def test_a_guest_gets_a_fused_personal_answer_from_the_first_event(client: TestClient) -> None:
    cold = top(client, session_id="guest-1")
    assert cold["fallback"] == "trending"  # no event yet: nothing to personalise with
    grouped = items_by_category(client)
    category = max(grouped, key=lambda c: len(grouped[c]))
    view(client, grouped[category][0], session_id="guest-1")
    first = top(client, session_id="guest-1")
    assert first["fallback"] is None and len(first["items"]) == 10
    # Ranked by the fused pipeline from the guest's history, not only the viewed item's neighbours.
    assert any(set(entry["sources"]) & FUSED_SOURCES for entry in first["items"])
    other = top(client, session_id="guest-2")
    assert ids(first) != ids(other)


def test_a_guests_first_view_is_answered_from_its_items_pre_scored_list_as_the_live_path_scores_it(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A guest's first view is the commonest live request; its answer depends on that one item,
    so every used item's guest list is scored ahead in batches, its live item-to-item neighbours
    merged in. Each list holds what scoring the guest on request gives, and the service answers
    from it."""
    import fusionrec.serving.recommend as recommend_module
    from fusionrec.serving.precompute import precompute_guests
    from fusionrec.serving.recommend import _guest_lists, _score_live
    from fusionrec.serving.scored import Scored, merge, session_candidates

    service = client.app.state.service
    loaded = service.registry.active
    guests = loaded.extras["precomputed_guests"]
    assert guests.with_session
    items = np.flatnonzero(np.diff(guests.indptr) > 0)
    assert len(items) == len(loaded.item_ids)  # the limit (50,000 most popular items) holds them all
    wanted, weight = service.settings.candidates, service.settings.realtime_weight
    checked = items[:: max(len(items) // 40, 1)]
    scored_ahead = precompute_guests(loaded.model.answering, checked, len(loaded.item_ids), wanted)
    for item in checked.tolist():
        ahead = scored_ahead.get(item)
        live = _score_live(loaded, -1, [item], wanted)
        assert ahead is not None and live is not None
        ahead_items, ahead_scores, ahead_sources = ahead
        order = np.lexsort((live.items, -live.scores))[:wanted]
        assert ahead_items.tolist() == live.items[order].tolist()
        np.testing.assert_allclose(ahead_scores, live.scores[order], rtol=1e-5, atol=1e-6)
        assert ahead_sources.labels(ahead_items) == live.sources.labels(live.items[order])
        # Served: that list merged with the item's neighbours, as a request merges them.
        near = session_candidates(loaded.extras["neighbours"], [item])
        merged = Scored(*ahead) if near is None else merge(Scored(*ahead), near, weight)
        listed_items, listed_scores, listed_sources = _guest_lists(loaded, -1, [item]).get(item)
        assert listed_items.tolist() == merged.items.tolist()
        assert listed_scores.tolist() == merged.scores.tolist()
        assert listed_sources.labels(listed_items) == merged.sources.labels(merged.items)
    # Through the service: the same answer with the lists and, once they are dropped, scored live.
    viewed = str(loaded.item_ids[items[0]])
    view(client, viewed, session_id="listed-guest")
    with monkeypatch.context() as patched:  # scoring or merging now would fail: the answer is the list's

        def no_scoring(*args: object) -> None:
            raise AssertionError("the guest was scored on request")

        patched.setattr(recommend_module, "_score_live", no_scoring)
        patched.setattr(recommend_module, "merge", no_scoring)
        from_list = top(client, session_id="listed-guest")
    assert from_list["degraded"] is False
    loaded.extras.pop("precomputed_guests")
    view(client, viewed, session_id="scored-guest")
    scored = top(client, session_id="scored-guest")
    assert ids(from_list) == ids(scored) and from_list["fallback"] is None
    assert [e["sources"] for e in from_list["items"]] == [e["sources"] for e in scored["items"]]
    assert any("session" in e["sources"] for e in from_list["items"])  # the neighbours are in it


def test_a_guest_on_a_product_page_is_answered_on_the_event_loop_from_that_items_list(
    client: TestClient,
) -> None:
    """A page's context is one more live item: a guest with no events on a known item's page has
    that item's pre-scored list, answered without a worker thread, as the scoring path answers."""
    from fusionrec.serving.recommend import RecQuery, recommend, recommend_inline

    service = client.app.state.service
    loaded = service.registry.active
    page = str(loaded.item_ids[0])
    inline = recommend_inline(service, RecQuery(session_id="page-guest-1", context=page))
    assert inline is not None and inline["degraded"] is False and inline["fallback"] is None
    assert page not in ids(inline)  # the page's own item is not recommended on it
    loaded.extras.pop("precomputed_guests")
    service.shared_cache.clear()  # the page's answer, shared by its guests (see the test below)
    assert recommend_inline(service, RecQuery(session_id="page-guest-2", context=page)) is None
    scored = recommend(service, RecQuery(session_id="page-guest-2", context=page))
    assert ids(inline) == ids(scored)
    assert [e["sources"] for e in inline["items"]] == [e["sources"] for e in scored["items"]]
    # An item the model does not know: scored in a worker thread, never answered inline.
    assert recommend_inline(service, RecQuery(session_id="page-guest-3", context="no-such-item")) is None


def test_guests_with_no_history_on_one_page_share_its_answer_each_with_its_own_exposure(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fusionrec.serving import recommend as module
    from fusionrec.serving.recommend import RecQuery, recommend, recommend_inline

    service = client.app.state.service
    assert service.new_items(service.registry.active) is None  # new items' picks draw per visitor
    page = str(service.registry.active.item_ids[1])
    first = recommend_inline(service, RecQuery(session_id="share-1", context=page))
    assert first is not None and first["cached"] is False
    logged = len(service.exposures.drain())

    def scored_again(*args: object, **kwargs: object) -> None:
        raise AssertionError("a shared answer is not scored again")

    with monkeypatch.context() as patched:
        patched.setattr(module, "_score", scored_again)
        second = recommend_inline(service, RecQuery(session_id="share-2", context=page))
        assert second is not None and second["cached"] is True and ids(second) == ids(first)
        assert second["exposure_id"] != first["exposure_id"] and logged == 1
        assert [row["session_id"] for row in service.exposures.drain()] == ["share-2"]
        landing = recommend_inline(service, RecQuery(session_id="share-3"))  # no page: not scored yet
        assert landing is None
    home = recommend(service, RecQuery(session_id="share-3"))
    assert recommend_inline(service, RecQuery(session_id="share-4")) == {
        **home,
        "cached": True,
        "exposure_id": ANY,
    }
    # An answer flagged degraded (the model failed: the fallback answered) is not shared.
    other = str(service.registry.active.item_ids[3])
    with monkeypatch.context() as patched:
        patched.setattr(Precomputed, "get", scored_again)
        failed = recommend(service, RecQuery(session_id="share-6", context=other))
        assert failed["degraded"] is True
    assert recommend(service, RecQuery(session_id="share-7", context=other))["cached"] is False
    # A guest with an event has an answer of their own, even on that page.
    view(client, str(service.registry.active.item_ids[2]), session_id="share-5")
    own = recommend(service, RecQuery(session_id="share-5", context=page))
    assert own["cached"] is False and ids(own) != ids(first)


def test_identify_carries_the_guest_session_into_the_users_answer(client: TestClient) -> None:
    grouped = items_by_category(client)
    category = max(grouped, key=lambda c: len(grouped[c]))
    for item in grouped[category][:3]:
        view(client, item, session_id="guest-3")
    as_guest = ids(top(client, session_id="guest-3"))
    response = client.post("/v1/identify", json={"session_id": "guest-3", "user_id": "new-user-3"})
    assert response.status_code == 200 and response.json()["items"] == 3
    as_user = top(client, user_id="new-user-3")
    assert as_user["fallback"] is None
    assert ids(as_user) == as_guest  # the same live history, now the user's
