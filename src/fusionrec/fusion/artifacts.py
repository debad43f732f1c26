"""The on-disk model repository behind ``fusionrec train --out DIR``: numbered, checksummed versions.

Layout::

    DIR/
      v0001/model/...        the saved pipeline (its own manifest and checksums)
      v0001/manifest.json    a `fusionrec.versions.VersionManifest`: pipeline, data, evaluation, checksums
      v0002/...

Versions are written to a temporary folder and renamed into place, so a crashed `train` never
leaves a half-written version. Serving activates and rolls back versions by number; `load`
verifies every checksum first and never unpickles anything.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fusionrec.models.base import Recommender, sha256_file
from fusionrec.versions import (
    MANIFEST,
    VERSION_PATTERN,
    ArtifactError,
    VersionManifest,
    read_manifests,
    version_names,
)

__all__ = ["MANIFEST", "MODEL_DIR", "ArtifactError", "ModelRepository", "VersionManifest"]

MODEL_DIR = "model"


class ModelRepository:
    """Versions of trained pipelines in one folder."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def versions(self) -> list[str]:
        """Version names, oldest first (``v0001``, ``v0002`` ...)."""
        return version_names(self.directory)

    def latest(self) -> str | None:
        versions = self.versions()
        return versions[-1] if versions else None

    def add_version(
        self,
        model: Recommender,
        record: dict[str, Any],
        extra: Mapping[str, Path] | None = None,
        texts: Mapping[str, str] | None = None,
    ) -> VersionManifest:
        """Save ``model`` as the next version; its manifest, from ``record`` (the `VersionManifest`
        fields other than version, model, created_at and files), is validated before anything moves.

        ``extra``: folders copied into the version under the given names (a training run's batch
        outputs), hashed in the manifest like the model's files. ``texts``: small files written into
        the version by name (its pipeline as TOML), hashed too.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        latest = self.latest()
        number = int(latest[1:]) + 1 if latest else 1
        version = f"v{number:04d}"
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.directory))
        try:
            model.save(staging / MODEL_DIR)
            for name, folder in (extra or {}).items():
                if name == MODEL_DIR or "/" in name:
                    raise ValueError(f"extra folder name {name!r} is reserved or not a plain name")
                shutil.copytree(folder, staging / name)
            for name, text in (texts or {}).items():
                if name == MODEL_DIR or "/" in name:
                    raise ValueError(f"file name {name!r} is reserved or not a plain name")
                (staging / name).write_text(text)
            files = {
                str(path.relative_to(staging)): sha256_file(path)
                for path in sorted(staging.rglob("*"))
                if path.is_file()
            }
            manifest = VersionManifest(
                version=version,
                model=model.name,
                created_at=datetime.now(UTC),
                files=files,
                **record,
            )
            manifest.write(staging)
            os.replace(staging, self.directory / version)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return manifest

    def remove(self, version: str) -> None:
        """Delete a version folder (renamed away first, so no reader sees it half deleted)."""
        doomed = self._path(version).rename(self.directory / f".removing-{version}")
        shutil.rmtree(doomed, ignore_errors=True)

    def manifest(self, version: str) -> VersionManifest:
        return VersionManifest.read(self._path(version))

    def manifests(self) -> list[VersionManifest]:
        """Every version's manifest, oldest first (unreadable ones left out)."""
        return read_manifests(self.directory)

    def verify(self, version: str) -> None:
        """Raise `ArtifactError` unless every file matches the version's manifest."""
        root = self._path(version)
        for name, digest in self.manifest(version).files.items():
            path = root / name
            if not path.is_file():
                raise ArtifactError(f"{version}: {name} is missing")
            if sha256_file(path) != digest:
                raise ArtifactError(f"{version}: {name} does not match its checksum")

    def load(self, version: str | None = None) -> Recommender:
        """The model of ``version`` (default: the latest), checksums verified first."""
        version = version or self.latest()
        if version is None:
            raise ArtifactError(f"{self.directory} holds no model version")
        self.verify(version)
        return Recommender.load(self._path(version) / MODEL_DIR)

    def _path(self, version: str) -> Path:
        if not VERSION_PATTERN.match(version):
            raise ArtifactError(f"{version!r} is not a version name (v0001, v0002, ...)")
        path = self.directory / version
        if not path.is_dir():
            raise ArtifactError(f"version {version} not found in {self.directory}; have {self.versions()}")
        return path
