"""Group commit of live events: concurrent POST /v1/events requests written in one transaction,
each answered with its own report, as if it had been written alone."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from fusionrec.serving.service import Service

T = "2024-03-01T12:00:00Z"


def _view(event_id: str, user: str, item: str = "i1", **extra: Any) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "user_id": user,
        "item_id": item,
        "event_type": "view",
        "timestamp": T,
        **extra,
    }


def _post_together(client: TestClient, bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """POST ``bodies`` at once while the store's writer is held busy, so that they all queue, then
    let the writer go: it takes the queue in one drain. Each body's answer, in order."""
    service: Service = client.app.state.service
    release, holding = threading.Event(), threading.Event()

    def hold() -> None:
        holding.set()
        release.wait(30)

    service.writer.submit(hold)
    assert holding.wait(10)
    with ThreadPoolExecutor(len(bodies)) as pool:
        answers = []
        for queued, body in enumerate(bodies, start=1):
            answers.append(pool.submit(client.post, "/v1/events", json=body))
            # Each request waits in the queue before the next is sent: the queue's order is the
            # bodies' order (threads started together would queue in any order).
            deadline = time.time() + 30
            while len(service._event_writes._queue) < queued:
                assert time.time() < deadline, "the requests did not all queue for the writer"
                time.sleep(0.005)
        release.set()
        responses = [answer.result(timeout=60) for answer in answers]
    assert all(response.status_code == 202 for response in responses), [r.text for r in responses]
    return [response.json() for response in responses]


def _counts(body: dict[str, Any]) -> tuple[int, int, int, int]:
    return body["stored"], body["duplicates"], body["quarantined"], body["erased_skipped"]


def test_concurrent_requests_are_written_together_each_with_its_own_report(client: TestClient) -> None:
    service: Service = client.app.state.service
    assert client.post("/v1/events", json=_view("known-1", "u-before")).json()["stored"] == 1
    assert client.post("/v1/events", json=_view("gone-0", "u-erased")).json()["stored"] == 1
    assert client.delete("/v1/users/u-erased").status_code == 200
    bad = {**_view("bad-1", "u-d"), "event_type": "teleport"}
    bodies = [
        {"events": [_view("a-1", "u-a"), _view("a-2", "u-a", "i2")]},  # two new events
        {"events": [_view("known-1", "u-before"), _view("b-1", "u-b")]},  # one stored before
        {"events": [_view("a-1", "u-a"), _view("c-1", "u-c"), _view("c-1", "u-c")]},  # repeats
        {"events": [_view("d-1", "u-d"), bad]},  # a bad row beside a good one
        {"events": [_view("e-1", "u-erased"), _view("e-2", "u-e")]},  # an erased user
    ]
    answers = _post_together(client, bodies)
    assert [_counts(answer) for answer in answers] == [
        (2, 0, 0, 0),
        (1, 1, 0, 0),
        (1, 2, 0, 0),  # a-1 came first in the group's earlier request; c-1 twice in its own
        (1, 0, 1, 0),
        (1, 0, 0, 1),
    ]
    assert answers[3]["reasons"] == {"unknown event_type": 1}
    assert [answer["reasons"] for answer in answers[:3] + answers[4:]] == [{}, {}, {}, {}]
    example = answers[3]["examples"][0]
    assert example["row_number"] == 2 and example["reason"] == "unknown event_type"
    # Stored once each; every answer came after its events were committed and live.
    stored = service.on_writer(lambda: service.store.query_arrow("SELECT event_id FROM events"))
    ids = stored.column(0).to_pylist()
    group_ids = ["a-1", "a-2", "b-1", "bad-1", "c-1", "d-1", "e-1", "e-2"]
    assert sorted(i for i in ids if i in group_ids) == ["a-1", "a-2", "b-1", "c-1", "d-1", "e-2"]
    assert len(ids) == len(set(ids))
    for user, items in {"u-a": {"i1", "i2"}, "u-b": {"i1"}, "u-e": {"i1"}}.items():
        assert set(service.online.get(f"u:{user}").items) == items
    assert service.online.get("u:u-erased").empty
    # The rejected row is the one the request alone would have stored: posting it again alone
    # finds it in the quarantine (its id is a hash of the row's number, reason and JSON).
    quarantined = service.on_writer(lambda: service.store.counts()["quarantine"])
    again = client.post("/v1/events", json=bodies[3]).json()
    assert _counts(again) == (0, 1, 1, 0) and again["examples"] == answers[3]["examples"]
    assert service.on_writer(lambda: service.store.counts()["quarantine"]) == quarantined == 1


def test_a_request_whose_columns_would_read_otherwise_beside_others_is_written_alone(
    client: TestClient,
) -> None:
    """A price of ``true`` beside a JSON number in another request: checked together, the column
    would read as numbers and ``true`` as 1.0; alone it is refused. So that request is written in
    its own transaction, and gets the answer it gets alone."""
    bodies = [
        {"events": [_view("p-1", "u-p", price=12.5)]},
        {"events": [_view("p-2", "u-q", price=True)]},
        {"events": [_view("p-3", "u-r", timestamp=None)]},  # stamped by the server, grouped
    ]
    answers = _post_together(client, bodies)
    assert [_counts(answer) for answer in answers] == [(1, 0, 0, 0), (0, 0, 1, 0), (1, 0, 0, 0)]
    assert answers[1]["reasons"] == {"price is not a number": 1}
    service: Service = client.app.state.service
    stored = service.on_writer(
        lambda: service.store.query_arrow(
            "SELECT event_id, price, timestamp FROM events WHERE event_id LIKE 'p-%' ORDER BY event_id"
        )
    ).to_pylist()
    assert [(row["event_id"], row["price"]) for row in stored] == [("p-1", 12.5), ("p-3", None)]
    assert abs(stored[1]["timestamp"].timestamp() - time.time()) < 60


def test_a_lone_event_is_stored_and_live_at_once(client: TestClient) -> None:
    service: Service = client.app.state.service
    answer = client.post("/v1/events", json=_view("solo-1", "u-solo", "i9")).json()
    assert _counts(answer) == (1, 0, 0, 0)
    assert service.online.get("u:u-solo").items == ["i9"]
    assert _counts(client.post("/v1/events", json=_view("solo-1", "u-solo", "i9")).json()) == (0, 1, 0, 0)


def test_grouped_rows_are_checked_as_their_request_alone_would_be() -> None:
    """Every row of the bad-input corpus that may join a group: checked from Arrow columns beside
    another request's rows, it gets what checking its own request's pandas frame gives it."""
    from data.test_ingest import BAD_INPUT, GOOD_EVENT
    from fusionrec.data.schema import EventTypes
    from fusionrec.data.validate import check_events
    from fusionrec.serving.event_writes import arrow_rows, event_frame, groupable
    from reliability.test_bad_input import JSON_ONLY

    def check(batch: Any) -> Any:
        return check_events(batch, source="http", event_types=EventTypes())

    other = [{**GOOD_EVENT, "price": 3, "session_id": "s9"}, {**GOOD_EVENT, "quantity": 2.5}]
    grouped = 0
    for change, _ in [*BAD_INPUT, *JSON_ONLY, ({"price": 12.5}, ""), ({"quantity": None}, "")]:
        rows = [{**GOOD_EVENT, "item_id": "g"}, {**GOOD_EVENT, **change}]
        if not groupable(rows):
            continue
        grouped += 1
        alone = check(event_frame(rows))
        together = check(arrow_rows([*other, *rows], np.array([1, 2, 1, 2]))).part(2, 4)
        assert together.valid.to_pylist() == alone.valid.to_pylist(), change
        assert together.reasons == alone.reasons, change
        assert together.quarantine.drop_columns("raw").equals(alone.quarantine.drop_columns("raw")), change
    assert grouped >= 10
