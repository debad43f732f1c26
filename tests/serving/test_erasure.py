"""Erasure that means it (issue 24, finding 7), on DuckDB with in-process state and on PostgreSQL
with Redis: one call deletes every trace of a user, and later writes for the id are refused.

Before: guest-session events sent after identify stayed (erasure deleted by user_id only), the
next recommendation request wrote a new exposure row for the erased id, Spark's batch lists
stayed, the erased id itself was kept in clear, and there was no `erase` / `export` command.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from data.conftest import drop_schema, fresh_postgres_url
from fusionrec.cli import app as cli
from fusionrec.data.ingest import ingest_frame
from fusionrec.data.store import open_store
from fusionrec.engine.recommendations import write_recommendations
from fusionrec.serving.app import create_app
from fusionrec.serving.erasure import export_user
from serving.conftest import make_settings

T = "2026-03-01T10:00:00Z"
SESSION = "guest-session-1"


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.redis])])
def backend(
    request: pytest.FixtureRequest, shop: tuple[pa.Table, pa.Table], tmp_path: Path
) -> Iterator[tuple[str, dict]]:
    """A store holding the shop (DuckDB, or PostgreSQL in a fresh schema) and the service settings
    that go with it (Redis for online state and caches beside PostgreSQL)."""
    events, items = shop
    if request.param == "duckdb":
        url, extra, cleanup = f"duckdb:///{tmp_path / 'shop.duckdb'}", {}, None
    else:
        base = request.getfixturevalue("postgres_url")
        url, schema = fresh_postgres_url(base)
        prefix = f"fr:erasure-{uuid.uuid4().hex[:8]}:"
        extra = {"redis_url": request.getfixturevalue("redis_url"), "redis_prefix": prefix}
        cleanup = (base, schema)
    with open_store(url) as store:
        ingest_frame(store, events)
        store.upsert_items(items)
    try:
        yield url, extra
    finally:
        if cleanup is not None:
            drop_schema(*cleanup)


def traces(url: str, user: str) -> dict:
    """What the store still holds about ``user`` (the export), and the guest session's events."""
    with open_store(url) as store:
        found = export_user(store, user)
        guest = store.query_arrow("SELECT count(*) AS n FROM events WHERE session_id = :s", {"s": SESSION})
        erased = store.query_arrow("SELECT * FROM erased_ids").to_pylist()
    return {**found, "guest_events": guest.column(0)[0].as_py(), "erased_rows": erased}


def test_one_erase_call_removes_every_trace_and_later_writes_are_refused(
    backend: tuple[str, dict], models_dir: Path, known_user: str
) -> None:
    url, extra = backend
    with open_store(url) as store:  # a Spark run's precomputed lists
        lists = pa.table({"user_id": [known_user, "someone-else"], "rank": [1, 1], "item_id": ["i1", "i1"]})
        write_recommendations(store, [lists.append_column("score", pa.array([1.0, 1.0]))], "spark_als")
    with TestClient(create_app(make_settings(url, models_dir, **extra))) as client:
        svc = client.app.state.service
        guest = {"session_id": SESSION, "item_id": "i1", "event_type": "view", "timestamp": T}
        assert client.post("/v1/events", json={**guest, "event_id": "before"}).json()["stored"] == 1
        assert (
            client.post("/v1/identify", json={"session_id": SESSION, "user_id": known_user}).status_code
            == 200
        )
        # The guest keeps browsing on the same session, without the user id, after signing in.
        assert client.post("/v1/events", json={**guest, "event_id": "after"}).json()["stored"] == 1
        client.get("/v1/recommendations", params={"user_id": known_user, "k": 5})
        client.get("/v1/recommendations", params={"session_id": SESSION, "k": 5})
        svc.flush_exposures()
        before = traces(url, known_user)
        assert before["events"] and before["exposures"] and before["recommendations_batch"]
        assert before["sessions"] == [SESSION] and before["guest_events"] == 2

        result = client.delete(f"/v1/users/{known_user}").json()
        assert result["events_deleted"] == len(before["events"]) and result["online_state_purged"]

        # The next request is answered, but writes nothing about the user; their writes are refused.
        answer = client.get("/v1/recommendations", params={"user_id": known_user, "k": 5}).json()
        assert answer["fallback"] is not None and answer["exposure_id"] is None
        svc.flush_exposures()
        again = client.post("/v1/events", json={**guest, "user_id": known_user, "event_id": "later"}).json()
        assert (again["stored"], again["erased_skipped"]) == (0, 1)
        assert (
            client.post("/v1/identify", json={"session_id": "s2", "user_id": known_user}).status_code == 409
        )
        assert svc.online.get(f"u:{known_user}").empty and svc.online.get(f"s:{SESSION}").empty
    after = traces(url, known_user)
    assert after["guest_events"] == 0
    for kind in ("events", "exposures", "recommendations_batch", "sessions", "profile", "quarantine"):
        assert after[kind] == [], kind
    assert after["erased"] is True
    assert [row["user_sha256"] for row in after["erased_rows"]] == [
        hashlib.sha256(known_user.encode()).hexdigest()
    ]
    assert known_user not in json.dumps(after["erased_rows"], default=str)
    with open_store(url) as store:  # someone else's batch list stays
        assert export_user(store, "someone-else")["recommendations_batch"]


def test_a_user_erased_through_another_process_gets_no_exposure_and_no_link(
    backend: tuple[str, dict], models_dir: Path, known_user: str
) -> None:
    """With several workers only the one asked learns of an erasure in memory: the store itself
    refuses the others' writes for the id (exposures, session links, events)."""
    from fusionrec.serving.erasure import erase_stored

    url, extra = backend
    with TestClient(create_app(make_settings(url, models_dir, **extra))) as client:
        svc = client.app.state.service
        erase_stored(svc.store, known_user)  # as another worker, or `fusionrec erase`, would
        assert not svc.is_erased(known_user)  # this process has not heard of it
        client.get("/v1/recommendations", params={"user_id": known_user, "k": 5})
        svc.flush_exposures()
        assert (
            client.post("/v1/identify", json={"session_id": SESSION, "user_id": known_user}).status_code
            == 200
        )
        guest = {
            "session_id": SESSION,
            "user_id": known_user,
            "item_id": "i1",
            "event_type": "view",
            "timestamp": T,
        }
        assert client.post("/v1/events", json=guest).json()["erased_skipped"] == 1
    after = traces(url, known_user)
    assert after["exposures"] == [] and after["sessions"] == [] and after["events"] == []


def test_export_and_erase_commands(backend: tuple[str, dict], known_user: str, tmp_path: Path) -> None:
    url, _ = backend
    with open_store(url) as store:
        store.link_session(SESSION, known_user)
        n_events = len(export_user(store, known_user)["events"])
    runner = CliRunner()
    exported = runner.invoke(cli, ["export", known_user, "--store", url])
    assert exported.exit_code == 0, exported.output
    record = json.loads(exported.stdout)
    assert record["user_id"] == known_user and len(record["events"]) == n_events > 0
    assert record["sessions"] == [SESSION] and record["erased"] is False

    erased = runner.invoke(cli, ["erase", known_user, "--store", url, "--json", str(tmp_path / "erase.json")])
    assert erased.exit_code == 0, erased.output
    assert json.loads((tmp_path / "erase.json").read_text())["events_deleted"] == n_events
    after = json.loads(runner.invoke(cli, ["export", known_user, "--store", url]).stdout)
    assert after["erased"] is True and after["events"] == [] and after["sessions"] == []

    missing = runner.invoke(cli, ["erase", known_user, "--store", f"duckdb:///{tmp_path / 'nope.duckdb'}"])
    assert (
        missing.exit_code == 2 and missing.output.startswith("error:") and "Traceback" not in missing.output
    )


KEY = "erasure-signing-key-0123456789"


@pytest.fixture(scope="module")
def signed_models(shop: tuple[pa.Table, pa.Table], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """v0001 = ease, v0002 = a fused pipeline (sources in sub-folders, per-user features), signed."""
    from fusionrec.data.dataset import Dataset
    from fusionrec.fusion.artifacts import ModelRepository
    from fusionrec.training import TrainingSpec, train_version

    dataset = Dataset.from_frame(*shop)
    repo = ModelRepository(tmp_path_factory.mktemp("signed-models"), signing_key=KEY)
    fused = {"sources": [{"model": "item_knn"}, {"model": "most_popular"}]}
    for spec in (TrainingSpec("ease"), TrainingSpec("fusion", fused)):
        train_version(dataset, repo, spec, trained_by="tests", valid_days=0)
    return repo.directory


def saved_user_ids(version: Path) -> list[set[str]]:
    """The user ids of every saved model (the pipeline and each of its sources) of a version."""
    from fusionrec.models.base import unpack_strings

    found = []
    for path in sorted(version.rglob("arrays.npz")):
        with np.load(path, allow_pickle=False) as saved:
            found.append(set(unpack_strings(saved["user_ids___utf8"], saved["user_ids___offsets"]).tolist()))
    return found


def test_erasure_removes_the_user_from_every_saved_version_and_signs_them_again(
    backend: tuple[str, dict], signed_models: Path, known_user: str, tmp_path: Path
) -> None:
    from fusionrec.fusion.artifacts import ModelRepository

    url, extra = backend
    models = Path(shutil.copytree(signed_models, tmp_path / "models"))
    versions = ModelRepository(models).versions()
    assert all(known_user in ids for v in versions for ids in saved_user_ids(models / v))
    settings = make_settings(url, models, signing_key=KEY, **extra)
    with TestClient(create_app(settings)) as client:
        result = client.delete(f"/v1/users/{known_user}").json()
        assert result["model_versions"] == dict.fromkeys(versions, "erased")
        # No rollback brings the user back: the older version, activated again, does not know them.
        activated = client.post("/v1/models/v0001/activate")  # the rewritten version passes the gate
        assert activated.status_code == 200, activated.text
        assert activated.json()["checks"]["answers"].startswith(("ok", "skipped"))
        answer = client.get("/v1/recommendations", params={"user_id": known_user, "k": 5}).json()
        assert answer["model_version"] == "v0001" and answer["fallback"] is not None
    repo = ModelRepository(models, signing_key=KEY)
    for version in versions:
        model = repo.load(version)  # checksums and signature hold after the rewrite
        assert all(known_user not in ids for ids in saved_user_ids(models / version))
        row = [i for i, u in enumerate(model.user_ids_) if u.startswith("\x00erased")]
        assert len(row) == 1 and model.seen_[row[0]].nnz == 0
    fused = repo.load("v0002")
    assert not fused._context.user_stats[row[0]].any() and fused._context.viewed[row[0]].nnz == 0


def test_erase_command_rewrites_the_model_repository(
    backend: tuple[str, dict],
    signed_models: Path,
    known_user: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fusionrec.fusion.artifacts import ModelRepository

    url, _ = backend
    monkeypatch.chdir(tmp_path)
    models = Path(shutil.copytree(signed_models, tmp_path / "models"))
    args = ["erase", known_user, "--store", url, "--models", str(models), "--json", "-"]
    unsigned = CliRunner().invoke(cli, args)  # signed versions are never left unsigned or re-signed blind
    assert unsigned.exit_code == 0, unsigned.output
    assert all(
        o.startswith("skipped:") and "signing key" in o
        for o in json.loads(unsigned.stdout)["model_versions"].values()
    )
    env = {"FUSIONREC_SERVING_SIGNING_KEY": KEY}
    result = CliRunner().invoke(cli, args, env=env)
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.stdout)["model_versions"].values()) == {"erased"}
    repo = ModelRepository(models, signing_key=KEY)
    for version in repo.versions():
        repo.verify(version)
        assert all(known_user not in ids for ids in saved_user_ids(models / version))
    # A user whose answers the manifests recorded for the smoke test leaves them too.
    sampled = next(iter(repo.manifest("v0001").sample_answers.answers))
    again = CliRunner().invoke(cli, ["erase", sampled, "--store", url, "--models", str(models)], env=env)
    assert again.exit_code == 0, again.output
    for version in repo.versions():
        repo.verify(version)
        assert sampled not in repo.manifest(version).sample_answers.answers
        assert all(sampled not in ids for ids in saved_user_ids(models / version))


def test_an_erasure_made_elsewhere_reaches_a_running_worker(
    backend: tuple[str, dict], models_dir: Path, known_user: str
) -> None:
    """`fusionrec erase` (or another worker) erases in the store; this worker's refresh chore then
    refuses the id, drops it from the loaded model's lookups and purges its live state and cached
    answers, without a restart. Before: it served the user from memory until it restarted."""
    from fusionrec.serving.erasure import erase_stored

    url, extra = backend
    with TestClient(create_app(make_settings(url, models_dir, **extra))) as client:
        svc = client.app.state.service
        event = {"user_id": known_user, "item_id": "i1", "event_type": "view", "timestamp": T}
        assert client.post("/v1/events", json=event).json()["stored"] == 1
        personal = client.get("/v1/recommendations", params={"user_id": known_user, "k": 5}).json()
        assert personal["fallback"] is None and not svc.online.get(f"u:{known_user}").empty
        erase_stored(svc.store, known_user)  # as `fusionrec erase` would, from another process

        assert svc.refresh_erased() == [known_user]
        assert svc.is_erased(known_user) and svc.online.get(f"u:{known_user}").empty
        assert all(known_user not in v.user_index for v in [svc.registry.active])
        answer = client.get("/v1/recommendations", params={"user_id": known_user, "k": 5}).json()
        assert answer["fallback"] is not None and answer["exposure_id"] is None
        assert svc.refresh_erased() == []  # nothing new: the chore is a cheap read
    svc.flush_exposures()
    assert traces(url, known_user)["exposures"] == []
