"""Authenticated artefacts (issue 24, finding 5): a signed manifest, verified at activation; files
opened only inside the version folder; a scoring smoke test against answers recorded at training.

Before: a model edited with its sha256 sums recomputed was served, and a version folder or file
linked out of the models folder was activated.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from fusionrec.cli import app as cli
from fusionrec.data.dataset import Dataset
from fusionrec.fusion.artifacts import ArtifactError, ModelRepository
from fusionrec.models.base import sha256_file
from fusionrec.serving.app import create_app
from fusionrec.training import TrainingSpec, train_version
from serving.conftest import make_settings

KEY = "k" * 32
OTHER_KEY = "o" * 32


@pytest.fixture(scope="module")
def signed_models(shop: tuple[pa.Table, pa.Table], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """v0001 = most_popular, v0002 = ease, both signed with KEY by the real training path."""
    events, items = shop
    dataset = Dataset.from_frame(events, items)
    directory = tmp_path_factory.mktemp("signed")
    repo = ModelRepository(directory, signing_key=KEY)
    for name in ("most_popular", "ease"):
        train_version(dataset, repo, TrainingSpec(name), trained_by="tests", valid_days=0)
    return directory


def copy_of(models: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(models, tmp_path / "models"))


def zero_weights_and_rehash(version: Path) -> None:
    """What an attacker with write access does: zero every float array of the model, then
    recompute the sha256 sums in both manifests so that the checksums match again."""
    arrays_path = version / "model" / "arrays.npz"
    with np.load(arrays_path, allow_pickle=False) as saved:
        arrays = {k: np.zeros_like(v) if v.dtype.kind == "f" else v for k, v in saved.items()}
    np.savez(arrays_path, **arrays)
    for folder in (version / "model", version):  # the model's own manifest first: it is hashed too
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["files"] = {name: sha256_file(folder / name) for name in manifest["files"]}
        (folder / "manifest.json").write_text(json.dumps(manifest))


def test_versions_trained_with_a_key_verify_and_list_as_verified(signed_models: Path, store_url: str) -> None:
    repo = ModelRepository(signed_models, signing_key=KEY)
    for version in repo.versions():
        repo.verify(version)
        assert repo.manifest(version).signature
    with pytest.raises(ArtifactError, match="signature is invalid"):
        ModelRepository(signed_models, signing_key=OTHER_KEY).verify("v0002")
    with TestClient(create_app(make_settings(store_url, signed_models, signing_key=KEY))) as client:
        listing = client.get("/v1/models").json()
    assert listing["active"] == "v0002"
    assert [v["signature"] for v in listing["versions"]] == ["verified", "verified"]


def test_an_edited_model_with_recomputed_checksums_is_refused_with_a_key(
    signed_models: Path, store_url: str, tmp_path: Path
) -> None:
    models = copy_of(signed_models, tmp_path)
    zero_weights_and_rehash(models / "v0002")
    ModelRepository(models).verify("v0002")  # the checksums alone no longer tell
    with pytest.raises(ArtifactError, match="v0002: its manifest's signature is invalid"):
        ModelRepository(models, signing_key=KEY).load("v0002")
    with TestClient(create_app(make_settings(store_url, models, signing_key=KEY))) as client:
        assert client.get("/readyz").json()["model_version"] == "v0001"  # v0002 skipped at start-up
        refused = client.post("/v1/models/v0002/activate", params={"force": True})
        assert refused.status_code == 404 and "signature is invalid" in refused.json()["detail"]
        signatures = {v["version"]: v["signature"] for v in client.get("/v1/models").json()["versions"]}
    assert signatures == {"v0001": "verified", "v0002": "invalid"}


def test_a_model_edited_behind_its_checksums_gives_other_answers_and_is_refused_without_a_key(
    models_dir: Path, store_url: str, tmp_path: Path
) -> None:
    models = copy_of(models_dir, tmp_path)
    assert ModelRepository(models).manifest("v0002").sample_answers.answers  # recorded at training
    zero_weights_and_rehash(models / "v0002")
    ModelRepository(models).verify("v0002")  # the checksums hold, and no key is configured
    with TestClient(create_app(make_settings(store_url, models))) as client:
        assert client.get("/readyz").json()["model_version"] == "v0001"  # v0002 failed at start-up
        refused = client.post("/v1/models/v0002/activate")
        assert refused.status_code == 409
        assert "answers agree" in refused.json()["detail"]["checks"]["answers"]
    with TestClient(create_app(make_settings(store_url, models_dir))) as client:  # the intact copy
        report = client.post("/v1/models/v0001/activate", params={"force": True}).json()
        assert report["checks"]["answers"].startswith("ok (16 users answer 100%")


def test_unsigned_versions_are_refused_with_a_key_and_flagged_without(
    models_dir: Path, store_url: str
) -> None:
    with TestClient(create_app(make_settings(store_url, models_dir, signing_key=KEY))) as client:
        assert client.get("/readyz").json()["model_version"] is None
        refused = client.post("/v1/models/v0002/activate")
        assert refused.status_code == 404 and "unsigned" in refused.json()["detail"]
    with TestClient(create_app(make_settings(store_url, models_dir))) as client:
        listing = client.get("/v1/models").json()
    assert listing["active"] == "v0002"
    assert {v["signature"] for v in listing["versions"]} == {"unsigned"}


def test_a_version_folder_linked_out_of_the_repository_is_refused(
    models_dir: Path, store_url: str, tmp_path: Path
) -> None:
    models = copy_of(models_dir, tmp_path)
    outside = Path(shutil.copytree(models / "v0002", tmp_path / "elsewhere" / "v0003"))
    manifest = json.loads((outside / "manifest.json").read_text())
    (outside / "manifest.json").write_text(json.dumps({**manifest, "version": "v0003"}))
    (models / "v0003").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ArtifactError, match="link out of the model repository"):
        ModelRepository(models).load("v0003")
    for label in ("../v0002", "v0002/..", "v0002/model"):
        with pytest.raises(ArtifactError, match="not a version name"):
            ModelRepository(models).load(label)
    with TestClient(create_app(make_settings(store_url, models))) as client:
        assert client.get("/readyz").json()["model_version"] == "v0002"
        refused = client.post("/v1/models/v0003/activate", params={"force": True})
    assert refused.status_code == 404 and "link out" in refused.json()["detail"]


def test_files_linked_out_or_not_listed_are_refused(models_dir: Path, tmp_path: Path) -> None:
    models = copy_of(models_dir, tmp_path)
    arrays = models / "v0002" / "model" / "arrays.npz"
    outside = Path(shutil.copy(arrays, tmp_path / "arrays.npz"))  # same bytes: the checksum matches
    arrays.unlink()
    arrays.symlink_to(outside)
    with pytest.raises(ArtifactError, match=r"model/arrays\.npz is a link"):
        ModelRepository(models).load("v0002")
    (models / "v0001" / "model" / "extra.bin").write_bytes(b"not in the manifest")
    with pytest.raises(ArtifactError, match=r"model/extra\.bin is not listed"):
        ModelRepository(models).load("v0001")


def test_fusionrec_train_signs_with_the_configured_key(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no project file here: the key comes from the environment
    pipeline = tmp_path / "pipeline.toml"
    pipeline.write_text('[pipeline]\nmodel = "fusion"\n[[pipeline.config.sources]]\nmodel = "most_popular"\n')
    out = tmp_path / "trained"
    args = ["train", "--store", store_url, "--out", str(out), "--config", str(pipeline), "--valid-days", "0"]
    result = CliRunner().invoke(cli, args, env={"FUSIONREC_SERVING_SIGNING_KEY": KEY})
    assert result.exit_code == 0, result.output
    ModelRepository(out, signing_key=KEY).verify("v0001")
    with pytest.raises(ArtifactError, match="signature is invalid"):
        ModelRepository(out, signing_key=OTHER_KEY).verify("v0001")
    short = CliRunner().invoke(cli, args, env={"FUSIONREC_SERVING_SIGNING_KEY": "short"})
    assert short.exit_code == 2 and "signing_key" in short.output and "Traceback" not in short.output
