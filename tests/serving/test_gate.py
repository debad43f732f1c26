"""The deploy gate on versions made by the real training path (`fusionrec train` and the service's
own retraining), never by hand-written manifests: a worse second version is refused.

v0001 is the default fused pipeline; the worse pipeline fuses popularity alone. Both are scored
on the same last 7 days when the second one is trained, which is what the gate compares.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from conftest import synthetic_store
from fusionrec.cli import app as cli
from fusionrec.fusion.artifacts import ModelRepository
from fusionrec.serving.app import create_app
from serving.conftest import make_settings

WORSE = """
[pipeline]
model = "fusion"
[[pipeline.config.sources]]
model = "most_popular"
n = 50
"""


@pytest.fixture(scope="module")
def shop_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return synthetic_store(tmp_path_factory.mktemp("gate") / "shop.duckdb", n_events=20_000, seed=8)


def train(store: str, out: Path, *args: str) -> tuple[dict, str]:
    """`fusionrec train --json -`: its record, and everything it printed."""
    result = CliRunner().invoke(cli, ["train", "--store", store, "--out", str(out), "--json", "-", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout[result.stdout.index("{") :]), result.output


@pytest.fixture(scope="module")
def good_version(shop_url: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("registry")
    first, _ = train(shop_url, out)
    assert first["version"] == "v0001" and first["evaluation"]["reference"] is None
    return out


@pytest.fixture
def registry_and_worse(good_version: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the repository holding the good v0001, and the worse pipeline's file."""
    import shutil

    worse = tmp_path / "worse.toml"
    worse.write_text(WORSE)
    return Path(shutil.copytree(good_version, tmp_path / "models")), worse


def test_the_gate_refuses_a_worse_version_trained_by_fusionrec_train(
    shop_url: str, registry_and_worse: tuple[Path, Path]
) -> None:
    out, worse = registry_and_worse
    second, printed = train(shop_url, out, "--config", str(worse))
    assert "will not activate it" in " ".join(printed.split())  # train says so at once
    reference = second["evaluation"]["reference"]
    assert second["version"] == "v0002" and reference["version"] == "v0001"
    assert second["evaluation"]["metrics"]["NDCG@20"] < 0.95 * reference["metrics"]["NDCG@20"]

    with TestClient(create_app(make_settings(shop_url, out))) as client:
        listing = client.get("/v1/models").json()
        assert listing["active"] == "v0001"  # start-up passed over the newer, worse version
        metrics = {v["version"]: v["metrics"] for v in listing["versions"]}
        assert metrics["v0002"]["NDCG@20"] == second["evaluation"]["metrics"]["NDCG@20"]
        refused = client.post("/v1/models/v0002/activate")
        assert refused.status_code == 409
        assert "v0001" in refused.json()["detail"]["checks"]["metric"]
        forced = client.post("/v1/models/v0002/activate", params={"force": True})
        assert forced.status_code == 200 and client.get("/readyz").json()["model_version"] == "v0002"


def test_the_gate_refuses_a_worse_version_trained_by_the_service(
    shop_url: str, registry_and_worse: tuple[Path, Path]
) -> None:
    out, worse = registry_and_worse
    with TestClient(create_app(make_settings(shop_url, out, train_pipeline=worse))) as client:
        assert client.post("/v1/models/train").status_code == 202
        service = client.app.state.service  # type: ignore[attr-defined]
        deadline = time.monotonic() + 300
        while service.retrainer.state.get("state") == "running":
            assert time.monotonic() < deadline, "training did not finish"
            time.sleep(0.2)
        assert service.retrainer.state["state"] == "done", service.retrainer.state
        assert service.retrainer.state["version"] == "v0002"
        assert service.retrainer.state["gate"]["passed"] is False
        assert client.get("/readyz").json()["model_version"] == "v0001"
    manifest = ModelRepository(out).manifest("v0002")
    assert manifest.trained_by == "service" and manifest.pipeline_origin == str(worse)
    assert manifest.evaluation is not None and manifest.evaluation.reference is not None
    assert manifest.evaluation.reference.version == "v0001"
