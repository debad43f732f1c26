"""End-to-end API behaviour against a real DuckDB store and saved model versions."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.testclient import TestClient

from fusionrec.serving.app import create_app
from serving.conftest import make_settings

T = "2026-03-01T10:00:00Z"


def ids(answer: dict) -> list[str]:
    return [entry["item_id"] for entry in answer["items"]]


def test_ready_and_newest_version_active(client: TestClient) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/readyz").json() == {"ready": True, "model_version": "v0002", "precomputed": True}


def test_known_user_gets_personal_answer_without_seen_items(
    client: TestClient, shop, known_user: str
) -> None:
    answer = client.get("/v1/recommendations", params={"user_id": known_user, "k": 10}).json()
    assert len(answer["items"]) == 10
    assert answer["model_version"] == "v0002" and answer["fallback"] is None and not answer["degraded"]
    assert all("item_knn" in entry["sources"] for entry in answer["items"])
    events = shop[0].to_pandas()
    seen = set(events.loc[events["user_id"] == known_user, "item_id"])
    assert not seen & set(ids(answer))
    scores = [entry["score"] for entry in answer["items"]]
    assert scores == sorted(scores, reverse=True)


def test_guest_gets_trending_then_an_event_changes_the_next_answer(client: TestClient) -> None:
    cold = client.get("/v1/recommendations", params={"session_id": "guest-1", "k": 5}).json()
    assert cold["fallback"] == "trending" and len(cold["items"]) == 5
    viewed = ids(cold)[0]
    event = {"session_id": "guest-1", "item_id": viewed, "event_type": "view", "timestamp": T}
    assert client.post("/v1/events", json=event).status_code == 202
    warm = client.get("/v1/recommendations", params={"session_id": "guest-1", "k": 5}).json()
    assert warm["fallback"] is None
    assert viewed not in ids(warm)  # seen items are excluded by policy
    assert any("session" in entry["sources"] for entry in warm["items"])
    assert ids(warm) != ids(cold)


def test_events_are_idempotent_and_bad_rows_quarantined_with_reasons(
    client: TestClient, store_url: str
) -> None:
    batch = {
        "events": [
            {
                "event_id": "e-1",
                "user_id": "new-user",
                "item_id": "i1",
                "event_type": "purchase",
                "timestamp": T,
            },
            {
                "event_id": "e-2",
                "user_id": "new-user",
                "item_id": "i2",
                "event_type": "teleport",
                "timestamp": T,
            },
        ]
    }
    first = client.post("/v1/events", json=batch)
    assert first.status_code == 202
    body = first.json()
    assert (body["stored"], body["duplicates"], body["quarantined"]) == (1, 0, 1)
    assert body["reasons"] == {"unknown event_type": 1}
    again = client.post("/v1/events", json=batch).json()
    assert (again["stored"], again["duplicates"]) == (0, 1)


def test_validation_errors_name_the_field(client: TestClient) -> None:
    missing = client.get("/v1/recommendations", params={"k": 5})
    assert missing.status_code == 422 and missing.json()["detail"][0]["loc"] == ["query", "user_id"]
    bad_k = client.get("/v1/recommendations", params={"user_id": "u1", "k": 0})
    assert bad_k.status_code == 422 and bad_k.json()["detail"][0]["loc"] == ["query", "k"]
    json_type = {"Content-Type": "application/json"}
    assert client.post("/v1/events", content=b"{not json", headers=json_type).status_code == 400
    assert client.post("/v1/events", json={"events": 3}).status_code == 422


def test_pagination_never_repeats(client: TestClient, known_user: str) -> None:
    pages = [
        ids(client.get("/v1/recommendations", params={"user_id": known_user, "k": 5, "offset": o}).json())
        for o in (0, 5, 10)
    ]
    flat = [item for page in pages for item in page]
    assert len(flat) == 15 and len(set(flat)) == 15
    whole = ids(client.get("/v1/recommendations", params={"user_id": known_user, "k": 15}).json())
    assert flat == whole


def test_category_exclude_and_hidden_items(client: TestClient, known_user: str, shop) -> None:
    items = shop[1].to_pandas().set_index("item_id")
    top = client.get("/v1/recommendations", params={"user_id": known_user, "k": 10}).json()
    category = items.loc[ids(top)[0], "category"].split(" > ")[0]
    inside = client.get(
        "/v1/recommendations", params={"user_id": known_user, "k": 5, "category": category}
    ).json()
    assert inside["items"] and all(items.loc[i, "category"].startswith(category) for i in ids(inside))
    first = ids(top)[0]
    excluded = client.get(
        "/v1/recommendations", params={"user_id": known_user, "k": 10, "exclude": first}
    ).json()
    assert first not in ids(excluded)
    assert client.put(f"/v1/items/{first}", json={"hidden": True}).status_code == 200
    after = client.get("/v1/recommendations", params={"user_id": known_user, "k": 10}).json()
    assert first not in ids(after)  # the cached answer was dropped with the catalogue change
    assert first not in ids(client.get("/v1/popular", params={"k": 50}).json())


def test_similar_bought_together_popular(client: TestClient, shop) -> None:
    popular = client.get("/v1/popular", params={"k": 5}).json()
    assert len(popular["items"]) == 5
    item = ids(popular)[0]
    similar = client.get(f"/v1/items/{item}/similar", params={"k": 5}).json()
    assert similar["items"] and item not in ids(similar)
    together = client.get(f"/v1/items/{item}/bought-together", params={"k": 5})
    assert together.status_code == 200 and item not in ids(together.json())
    assert client.get("/v1/items/no-such-item/similar").status_code == 404
    category = shop[1].column("category").to_pylist()[0].split(" > ")[0]
    in_category = client.get("/v1/popular", params={"k": 5, "category": category}).json()
    items = shop[1].to_pandas().set_index("item_id")
    assert all(items.loc[i, "category"].startswith(category) for i in ids(in_category))


def test_identify_moves_guest_history_to_user(client: TestClient, store_url: str) -> None:
    cold = client.get("/v1/recommendations", params={"session_id": "s-login", "k": 3}).json()
    item = ids(cold)[0]
    client.post(
        "/v1/events", json={"session_id": "s-login", "item_id": item, "event_type": "view", "timestamp": T}
    )
    linked = client.post("/v1/identify", json={"session_id": "s-login", "user_id": "brand-new-user"}).json()
    assert linked["items"] == 1 and linked["linked_events"] == 1
    answer = client.get("/v1/recommendations", params={"user_id": "brand-new-user", "k": 5}).json()
    assert answer["fallback"] is None and item not in ids(answer)


def test_erasure_purges_events_state_and_cache(client: TestClient, known_user: str) -> None:
    before = client.get("/v1/recommendations", params={"user_id": known_user, "k": 5}).json()
    assert before["fallback"] is None
    result = client.delete(f"/v1/users/{known_user}").json()
    assert result["events_deleted"] > 0 and result["online_state_purged"]
    after = client.get("/v1/recommendations", params={"user_id": known_user, "k": 5}).json()
    assert after["fallback"] == "trending"  # the model's memory of the user is not used any more
    again = client.post(
        "/v1/events", json={"user_id": known_user, "item_id": "i1", "event_type": "view", "timestamp": T}
    ).json()
    assert again["erased_skipped"] == 1 and again["stored"] == 0


def test_models_activate_gate_and_rollback(client: TestClient) -> None:
    listing = client.get("/v1/models").json()
    assert listing["active"] == "v0002" and [v["version"] for v in listing["versions"]] == ["v0001", "v0002"]
    # v0002's evaluation scored v0001 on the same window, lower: the gate says no to going back.
    refused = client.post("/v1/models/v0001/activate")
    assert refused.status_code == 409 and "on the same window" in refused.json()["detail"]["checks"]["metric"]
    assert client.get("/readyz").json()["model_version"] == "v0002"
    forced = client.post("/v1/models/v0001/activate", params={"force": True})
    assert forced.status_code == 200 and client.get("/readyz").json()["model_version"] == "v0001"
    assert client.post("/v1/models/rollback").json()["version"] == "v0002"
    assert client.post("/v1/models/v0099/activate").status_code == 404


def test_exposures_are_logged(client: TestClient, known_user: str) -> None:
    answer = client.get(
        "/v1/recommendations", params={"user_id": known_user, "k": 4, "placement": "home"}
    ).json()
    service = client.app.state.service
    assert service.flush_exposures() >= 1
    rows = service.on_writer(
        lambda: service.store.query_arrow(
            "SELECT user_id, placement, model_version, items FROM exposures WHERE exposure_id = :x",
            {"x": answer["exposure_id"]},
        ).to_pylist()
    )
    assert rows == [
        {"user_id": known_user, "placement": "home", "model_version": "v0002", "items": ids(answer)}
    ]


def test_metrics_endpoint(client: TestClient, known_user: str) -> None:
    client.get("/v1/recommendations", params={"user_id": known_user})
    text = client.get("/metrics").text
    assert 'fusionrec_request_seconds_bucket{endpoint="/v1/recommendations"' in text
    assert 'fusionrec_active_model_version{version="v0002"} 1.0' in text


def test_failing_model_falls_back_degraded(client: TestClient, known_user: str) -> None:
    model = client.app.state.service.registry.active.model

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    model.score = broken  # instance attribute: only this loaded copy breaks
    answer = client.get("/v1/recommendations", params={"user_id": known_user, "k": 5}).json()
    assert answer["degraded"] and answer["degraded_causes"] == ["model"] and answer["fallback"] == "trending"
    assert len(answer["items"]) == 5


def test_no_model_version_serves_degraded(store_url: str, tmp_path: Path) -> None:
    with TestClient(create_app(make_settings(store_url, tmp_path / "empty"))) as client:
        assert client.get("/readyz").status_code == 503
        answer = client.get("/v1/recommendations", params={"user_id": "u1"}).json()
        assert answer["degraded"] and answer["items"] == []


def test_precomputed_lists_match_live_scoring(store_url: str, models_dir: Path, known_user: str) -> None:
    settings = make_settings(store_url, models_dir, precompute_users=100_000)
    with TestClient(create_app(settings)) as client:
        service = client.app.state.service
        for _ in range(200):
            if "precomputed" in service.registry.active.extras:
                break
            time.sleep(0.05)
        fast = client.get("/v1/recommendations", params={"user_id": known_user, "k": 10}).json()
        service.registry.active.extras.pop("precomputed")
        service.cache.clear()
        live = client.get("/v1/recommendations", params={"user_id": known_user, "k": 10}).json()
    assert ids(fast) == ids(live) and len(ids(fast)) == 10


def wait_for(condition, seconds: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.2)


def test_training_on_request_adds_a_gated_version(store_url: str, models_dir: Path, tmp_path: Path) -> None:
    import shutil

    registry = shutil.copytree(models_dir, tmp_path / "models")
    settings = make_settings(store_url, registry, train_model="item_knn", gate_tolerance=1.0)
    with TestClient(create_app(settings)) as client:
        started = client.post("/v1/models/train")
        assert started.status_code == 202 and started.json()["state"] == "running"
        assert client.post("/v1/models/train").status_code == 409  # one run at a time
        assert client.post("/v1/models/train", params={"model": "nope"}).status_code in (409, 422)
        service = client.app.state.service  # type: ignore[attr-defined]
        wait_for(lambda: service.retrainer.state.get("state") != "running")
        assert service.retrainer.state["state"] == "done", service.retrainer.state
        assert service.retrainer.state["version"] == "v0003"
        assert client.get("/readyz").json()["model_version"] == "v0003"


def test_scheduled_retraining_swaps_without_a_request(
    store_url: str, models_dir: Path, tmp_path: Path
) -> None:
    import shutil

    registry = shutil.copytree(models_dir, tmp_path / "models")
    settings = make_settings(
        store_url, registry, train_model="most_popular", gate_tolerance=1.0, retrain_every_s=0.5
    )
    with TestClient(create_app(settings)) as client:
        service = client.app.state.service  # type: ignore[attr-defined]
        wait_for(lambda: service.retrainer.state.get("state") == "done")
        assert client.get("/readyz").json()["model_version"] == service.retrainer.state["version"] != "v0002"
        assert client.get("/v1/recommendations", params={"user_id": "nobody", "k": 3}).status_code == 200


def test_lists_from_the_batch_table_answer_known_users(
    store_url: str, models_dir: Path, known_user: str, shop
) -> None:
    """A batch engine's lists in ``recommendations_batch`` (what `train --engine spark` writes) are
    what the service answers a known visitor with, in their stored order, labelled by their model."""
    import pyarrow as pa

    from fusionrec.data.store import open_store
    from fusionrec.engine.recommendations import write_recommendations

    events, items = shop
    seen = set(events.filter(pa.compute.equal(events["user_id"], known_user))["item_id"].to_pylist())
    chosen = [i for i in items["item_id"].to_pylist() if i not in seen][50:62][::-1]  # not model order
    lists = pa.table(
        {
            "user_id": [known_user] * len(chosen) + ["stranger"],
            "rank": [*list(range(1, len(chosen) + 1)), 1],
            "item_id": [*chosen, chosen[0]],
            "score": [float(len(chosen) - r) for r in range(len(chosen))] + [1.0],
        }
    )
    with open_store(store_url) as store:
        assert write_recommendations(store, [lists], "spark_als") == len(chosen) + 1
    settings = make_settings(store_url, models_dir, batch_lists="spark_als")
    with TestClient(create_app(settings)) as client:
        wait_for(lambda: client.get("/readyz").json()["precomputed"])
        answer = client.get("/v1/recommendations", params={"user_id": known_user, "k": 10}).json()
    assert ids(answer) == chosen[:10]
    assert all(entry["sources"] == ["spark_als"] for entry in answer["items"])


def test_bad_rows_in_a_batch_are_quarantined_never_a_server_error(client: TestClient) -> None:
    """Year 0001 (once a 500 after the commit), a 1 MB id and a NUL byte beside 20 good events."""
    good = [
        {"user_id": "u-batch", "item_id": f"i{n}", "event_type": "view", "timestamp": T} for n in range(20)
    ]
    bad = [
        {**good[0], "timestamp": "0001-01-01T00:00:00Z"},
        {**good[0], "user_id": "x" * 1_000_000},
        {**good[0], "item_id": "nul\x00item"},
    ]
    answer = client.post("/v1/events", json={"events": [*good, *bad]})
    assert answer.status_code == 202, answer.text
    body = answer.json()
    assert body["stored"] == 20 and body["quarantined"] == 3
    assert {
        "timestamp before 1990",
        "user_id longer than 256 characters",
        "item_id holds control characters",
    } <= set(body["reasons"])
    assert client.get("/v1/recommendations", params={"user_id": "u-batch", "k": 3}).status_code == 200


def test_an_event_without_a_time_is_stamped_by_the_server(client: TestClient) -> None:
    event = {"user_id": "u-clock", "item_id": "i1", "event_type": "view"}
    answer = client.post("/v1/events", json={"events": [event, {**event, "item_id": "i2", "timestamp": ""}]})
    assert answer.status_code == 202 and answer.json()["stored"] == 2 and answer.json()["quarantined"] == 0
    service = client.app.state.service
    stored = (
        service.on_writer(
            lambda: service.store.query_arrow("SELECT timestamp FROM events WHERE user_id = 'u-clock'")
        )
        .column(0)
        .to_pylist()
    )
    assert len(stored) == 2 and all(abs(time.time() - t.timestamp()) < 60 for t in stored)


def test_retraining_on_request_is_rate_limited_and_old_versions_are_pruned(
    store_url: str, models_dir: Path, tmp_path: Path
) -> None:
    import shutil

    registry = shutil.copytree(models_dir, tmp_path / "models")
    settings = make_settings(
        store_url, registry, train_model="item_knn", retrain_min_interval_s=3600, keep_versions=2
    )
    with TestClient(create_app(settings)) as client:
        assert client.post("/v1/models/train").status_code == 202
        service = client.app.state.service  # type: ignore[attr-defined]
        wait_for(lambda: service.retrainer.state.get("state") != "running")
        again = client.post("/v1/models/train")
        assert again.status_code == 429 and int(again.headers["retry-after"]) > 3000
        assert service.retrainer.state["state"] == "done", service.retrainer.state
        versions = [v["version"] for v in client.get("/v1/models").json()["versions"]]
    active = service.retrainer.state["version"]
    assert versions == ["v0002", "v0003"] and active == "v0003"  # v0001 pruned, keep 2
    assert not (Path(registry) / "v0001").exists()


def test_a_click_on_an_item_just_shown_counts_as_a_click_through(client: TestClient, known_user: str) -> None:
    def clicks() -> float:
        line = next(
            x
            for x in client.get("/metrics").text.splitlines()
            if x.startswith("fusionrec_exposure_clicks_total")
        )
        return float(line.split()[-1])

    shown = ids(client.get("/v1/recommendations", params={"user_id": known_user, "k": 5}).json())
    before = clicks()
    for item, who in ((shown[0], {"user_id": known_user}), ("never-shown", {"user_id": known_user})):
        response = client.post("/v1/events", json={**who, "item_id": item, "event_type": "click"})
        assert response.status_code == 202, response.text
    guest = ids(client.get("/v1/recommendations", params={"session_id": "clicker", "k": 5}).json())
    response = client.post(
        "/v1/events", json={"session_id": "clicker", "item_id": guest[0], "event_type": "click"}
    )
    assert response.status_code == 202, response.text
    assert clicks() == before + 2  # the shown item, by the user and by the guest; not the other
