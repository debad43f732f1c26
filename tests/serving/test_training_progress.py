"""The retrainer's progress and run history, read by the dashboard's training panel (issue 25)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from serving.conftest import make_settings


def test_a_runs_progress_steps_and_its_outcome_are_kept(
    store_url: str, models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fusionrec.training
    from fusionrec.progress import step
    from fusionrec.serving.app import create_app
    from fusionrec.serving.dashboard_panels import training_status

    seen = []

    def fake_train_version(*args, **kwargs):
        step("fake epochs", 2, 5, "loss 0.42")
        seen.append(dict(service.retrainer.state))
        raise RuntimeError("stopped by the test")

    monkeypatch.setattr(fusionrec.training, "train_version", fake_train_version)
    with TestClient(create_app(make_settings(store_url, models_dir, retrain_min_interval_s=0))) as client:
        service = client.app.state.service  # type: ignore[attr-defined]
        assert client.post("/v1/models/train", params={"model": "most_popular"}).status_code == 202
        deadline = time.monotonic() + 120
        while service.retrainer.state.get("state") == "running":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        status = training_status(service)
    assert seen and seen[0]["state"] == "running"
    progress = seen[0]["progress"]
    assert (progress["task"], progress["done"], progress["total"], progress["detail"]) == (
        "fake epochs",
        2,
        5,
        "loss 0.42",
    )
    assert status["training"]["state"] == "failed" and "stopped by the test" in status["training"]["error"]
    (run,) = status["history"]
    assert run["state"] == "failed" and run["trigger"] == "request" and run["model"] == "most_popular"
    assert [v["version"] for v in status["versions"]] == ["v0001", "v0002"]
    assert status["active"] == "v0002"
