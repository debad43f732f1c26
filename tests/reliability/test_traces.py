"""Erasure and artefacts for the reliability figures (issue 24): after an erasure, no trace of the
user in the store, Redis (live state, answer cache, links), the worker's memory or any saved
version's files; a tampered, unsigned or linked-out version is never served.

The behaviour is tested case by case in `tests/serving/test_erasure.py` and
`tests/serving/test_artefacts.py`; here it runs on PostgreSQL with Redis, as a production
service does, and every trace and every version served is counted."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from data.conftest import drop_schema, fresh_postgres_url
from fusionrec.data.ingest import ingest_frame
from fusionrec.data.store import open_store
from fusionrec.serving.app import create_app
from fusionrec.serving.erasure import erase_stored
from reliability.figures import count
from serving.conftest import make_settings
from serving.test_artefacts import zero_weights_and_rehash
from serving.test_erasure import KEY, saved_user_ids, signed_models, traces  # noqa: F401 (fixture)

T = "2026-03-01T10:00:00Z"


@pytest.fixture
def production(
    shop: tuple[pa.Table, pa.Table], postgres_url: str, redis_url: str
) -> Iterator[tuple[str, dict]]:
    """The shop in a fresh PostgreSQL schema, and Redis settings under a prefix of this test's own."""
    url, schema = fresh_postgres_url(postgres_url)
    events, items = shop
    with open_store(url) as store:
        ingest_frame(store, events)
        store.upsert_items(items)
    try:
        yield url, {"redis_url": redis_url, "redis_prefix": f"fr:traces-{uuid.uuid4().hex[:8]}:"}
    finally:
        drop_schema(postgres_url, schema)


def redis_traces(client: object, prefix: str, user: str) -> int:
    """Keys under ``prefix`` naming ``user``, or string values holding it (session links)."""
    redis = client.app.state.service.redis.client  # type: ignore[attr-defined]
    found = 0
    for key in redis.scan_iter(match=f"{prefix}*", count=1000):
        found += user in key or (redis.type(key) == "string" and user in (redis.get(key) or ""))
    return found


def file_traces(models: Path, user: str) -> int:
    """Saved versions still holding ``user``: in a model's id arrays, or in a text file (a short id's
    bytes occur by chance inside binary arrays, so those are read as arrays)."""
    in_arrays = sum(user in ids for version in models.iterdir() for ids in saved_user_ids(version))
    texts = [path for path in models.rglob("*") if path.is_file() and path.suffix != ".npz"]
    in_bytes = sum(user.encode() in path.read_bytes() for path in texts)
    return in_arrays + in_bytes


def store_traces(url: str, user: str) -> int:
    found = traces(url, user)
    kinds = ("events", "exposures", "recommendations_batch", "sessions", "profile", "quarantine")
    return (
        sum(len(found[kind]) for kind in kinds)
        + found["guest_events"]
        + (user in json.dumps(found["erased_rows"], default=str))
    )


def test_no_trace_of_an_erased_user_in_any_store_cache_or_saved_version(
    production: tuple[str, dict],
    signed_models: Path,  # noqa: F811 (the fixture)
    shop: tuple[pa.Table, pa.Table],
    tmp_path: Path,
) -> None:
    """Two users erased on a PostgreSQL + Redis service: one through `DELETE /v1/users/{id}`, one
    as another worker or `fusionrec erase` does (in the store, then taken in by the refresh)."""
    url, extra = production
    models = Path(shutil.copytree(signed_models, tmp_path / "models"))
    users = shop[0].column("user_id").drop_null().to_pylist()
    by_call, elsewhere = sorted(set(users), key=users.count)[-2:]
    settings = make_settings(url, models, signing_key=KEY, **extra)
    with TestClient(create_app(settings)) as client:
        svc = client.app.state.service
        for user in (by_call, elsewhere):  # live state, a session link, cached answers, exposures
            session = f"guest-of-{user}"
            event = {"session_id": session, "item_id": "i1", "event_type": "view", "timestamp": T}
            assert client.post("/v1/events", json=event).json()["stored"] == 1
            assert (
                client.post("/v1/identify", json={"session_id": session, "user_id": user}).status_code == 200
            )
            assert client.post("/v1/events", json={**event, "user_id": user}).json()["stored"] == 1
            client.get("/v1/recommendations", params={"user_id": user, "k": 5})
            client.get("/v1/recommendations", params={"session_id": session, "k": 5})
        svc.flush_exposures()
        before = {u: redis_traces(client, extra["redis_prefix"], u) for u in (by_call, elsewhere)}
        assert all(before.values()) and all(store_traces(url, u) for u in (by_call, elsewhere))

        assert client.delete(f"/v1/users/{by_call}").status_code == 200
        erase_stored(svc.store, elsewhere)  # with --models, `fusionrec erase` rewrites the files too
        svc.registry.repository.erase_user(elsewhere)
        assert svc.refresh_erased() == [elsewhere]
        for user in (by_call, elsewhere):  # the next requests write nothing about them
            client.get("/v1/recommendations", params={"user_id": user, "k": 5})
        svc.flush_exposures()
        found = {
            user: {
                "store": store_traces(url, user),
                "redis": redis_traces(client, extra["redis_prefix"], user),
                "memory": sum(user in v.user_index for v in [svc.registry.active] if v is not None),
                "model_files": file_traces(models, user),
            }
            for user in (by_call, elsewhere)
        }
    total = sum(sum(where.values()) for where in found.values())
    count("erasure", users_erased=2, places_checked=4 * 2, traces_left=total)
    assert total == 0, found


def test_tampered_unsigned_or_linked_versions_are_never_served(
    store_url: str,
    signed_models: Path,  # noqa: F811 (the fixture)
    tmp_path: Path,
) -> None:
    """Each way of slipping a version in, against a service with the signing key: refused at
    start-up and on activation, with the reason."""
    cases: dict[str, Path] = {}
    for case in ("rehashed", "unsigned", "linked_folder", "linked_file"):
        models = Path(shutil.copytree(signed_models, tmp_path / case))
        target = models / "v0002"
        if case == "rehashed":  # weights zeroed and the sha256 sums recomputed
            zero_weights_and_rehash(target)
        elif case == "unsigned":
            manifest = json.loads((target / "manifest.json").read_text())
            (target / "manifest.json").write_text(json.dumps({**manifest, "signature": None}))
        elif case == "linked_folder":
            outside = Path(shutil.move(target, tmp_path / f"outside-{case}"))
            target.symlink_to(outside, target_is_directory=True)
        else:
            arrays = target / "model" / "arrays.npz"
            outside = Path(shutil.copy(arrays, tmp_path / "arrays.npz"))  # same bytes, same checksum
            arrays.unlink()
            arrays.symlink_to(outside)
        cases[case] = models
    served, failures = 0, []
    for case, models in cases.items():
        with TestClient(create_app(make_settings(store_url, models, signing_key=KEY))) as client:
            started = client.get("/readyz").json()["model_version"]
            activated = client.post("/v1/models/v0002/activate", params={"force": True})
            rollback_label = client.post("/v1/models/..%2Fv0002/activate", params={"force": True})
        hit = (started == "v0002") + (activated.status_code == 200) + (rollback_label.status_code == 200)
        served += hit
        if hit or activated.status_code >= 500:
            failures.append(
                f"{case}: start-up {started}, activate {activated.status_code} {activated.text[:120]}"
            )
    count("artefacts", versions_tried=len(cases), versions_served=served, failures=len(failures))
    assert not failures, failures
