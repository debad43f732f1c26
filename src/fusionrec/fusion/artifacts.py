"""The on-disk model repository behind ``fusionrec train --out DIR``: numbered, checksummed versions.

Layout::

    DIR/
      v0001/model/...        the saved pipeline (its own manifest and checksums)
      v0001/manifest.json    a `fusionrec.versions.VersionManifest`: pipeline, data, evaluation, checksums
      v0002/...

Versions are written to a temporary folder and renamed into place, so a crashed `train` never
leaves a half-written version. Serving activates and rolls back versions by number; `load`
verifies every checksum first and never unpickles anything.

With a signing key the manifest is signed (HMAC-SHA256, `VersionManifest.signed`), so its
checksums authenticate the files: an edited model whose sums were recomputed is refused, and so
is an unsigned version. Without a key versions are accepted on their checksums alone. Either way
only regular files inside the version folder that its manifest lists are ever opened: a version
folder or file that is a link, and a file the manifest does not list, are refused.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from fusionrec.models.base import CONFIG_FILE, Recommender, sha256_file
from fusionrec.models.erasure import erase_user_from_saved, rehash
from fusionrec.versions import (
    MANIFEST,
    VERSION_PATTERN,
    ArtifactError,
    SampleAnswers,
    VersionManifest,
    read_manifests,
    version_names,
)

__all__ = ["MANIFEST", "MODEL_DIR", "ArtifactError", "ModelRepository", "VersionManifest"]

MODEL_DIR = "model"
SAMPLE_USERS = 16  # users whose answers a version records, spread over its user index
SAMPLE_K = 10


class ModelRepository:
    """Versions of trained pipelines in one folder."""

    def __init__(self, directory: str | Path, signing_key: str | None = None) -> None:
        self.directory = Path(directory)
        self.signing_key = signing_key or None

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
                sample_answers=SampleAnswers(k=SAMPLE_K, answers=sample_answers(model)),
                **record,
            )
            manifest = self._sign(manifest)
            manifest.write(staging)
            os.replace(staging, self.directory / version)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return manifest

    def erase_user(self, user_id: str) -> dict[str, str]:
        """Remove ``user_id`` from every version's files (`fusionrec.models.erasure`; rows of
        Parquet batch outputs too), re-hashed and signed again, so that no rollback brings the
        user back; per version: "erased", "absent", or "skipped: <why>" (a version that fails
        verification is never signed again)."""
        outcome = {}
        for version in self.versions():
            try:
                outcome[version] = self._erase_user_from(version, user_id)
            except (ArtifactError, OSError, ValueError, KeyError) as error:
                outcome[version] = f"skipped: {error}"
        return outcome

    def _erase_user_from(self, version: str, user_id: str) -> str:
        self.verify(version)
        manifest = self.manifest(version)
        if manifest.signature is not None and self.signing_key is None:
            raise ArtifactError(f"{version} is signed, and no signing key is configured to sign it again")
        root = self._path(version)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.directory))
        try:
            shutil.copytree(root, staging, dirs_exist_ok=True)
            if not _erase_user_from_files(staging, user_id):
                shutil.rmtree(staging)
                return "absent"
            files = {name: sha256_file(staging / name) for name in manifest.files}
            update = {"files": files, "signature": None, "sample_answers": _without(manifest, user_id)}
            self._sign(manifest.model_copy(update=update)).write(staging)
            # Swap: the old folder renamed away first (a reader sees one version or the other).
            old = root.rename(self.directory / f".erasing-{version}")
            os.replace(staging, root)
            shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return "erased"

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
        """Raise `ArtifactError` unless the manifest's signature holds (when a key is set), the
        folder holds exactly the regular files it lists, and every file matches its checksum."""
        root = self._path(version)
        manifest = self.manifest(version)
        self.check_signature(manifest)
        if manifest.version != version:  # a signed manifest copied under another label
            raise ArtifactError(f"{version}: its manifest is the manifest of {manifest.version}")
        present = set(_regular_files(root, version))
        unlisted = sorted(present - set(manifest.files) - {MANIFEST})
        if unlisted:
            raise ArtifactError(f"{version}: {unlisted[0]} is not listed in its {MANIFEST}")
        for name, digest in manifest.files.items():
            path = root / name
            if name not in present:  # only names found inside the folder: no "../" escapes
                raise ArtifactError(f"{version}: {name} is missing")
            if sha256_file(path) != digest:
                raise ArtifactError(f"{version}: {name} does not match its checksum")

    def check_signature(self, manifest: VersionManifest) -> None:
        """With a signing key, refuse a manifest that is unsigned or signed with another key (or
        edited after signing); without one, accept it."""
        status = manifest.signature_status(self.signing_key)
        if self.signing_key is not None and status != "verified":
            raise ArtifactError(
                f"{manifest.version}: its manifest is {status}, and a signing key is configured"
                if status == "unsigned"
                else f"{manifest.version}: its manifest's signature is {status} under the configured signing key"
            )

    def signature_status(self, manifest: VersionManifest) -> str:
        """What ``GET /v1/models`` shows of a version's signature under this repository's key."""
        return manifest.signature_status(self.signing_key)

    def _sign(self, manifest: VersionManifest) -> VersionManifest:
        return manifest.signed(self.signing_key) if self.signing_key is not None else manifest

    def load(self, version: str | None = None) -> Recommender:
        """The model of ``version`` (default: the latest), checksums verified first."""
        version = version or self.latest()
        if version is None:
            raise ArtifactError(f"{self.directory} holds no model version")
        self.verify(version)
        return Recommender.load(self._path(version) / MODEL_DIR)

    def _path(self, version: str) -> Path:
        """The folder of ``version``: a plain name, a real folder directly inside the repository."""
        if not VERSION_PATTERN.match(version):
            raise ArtifactError(f"{version!r} is not a version name (v0001, v0002, ...)")
        path = self.directory / version
        if not path.is_dir():
            raise ArtifactError(f"version {version} not found in {self.directory}; have {self.versions()}")
        if path.is_symlink() or path.resolve().parent != self.directory.resolve():
            raise ArtifactError(f"version {version} is a link out of the model repository")
        return path


def sample_answers(
    model: Recommender, user_ids: list[str] | None = None, k: int = SAMPLE_K
) -> dict[str, list[str]]:
    """Top-``k`` item ids of ``user_ids`` (default: `SAMPLE_USERS` spread over the model's users);
    users the model does not know (an erased one) are left out."""
    ids = np.asarray(model.user_ids_, dtype=object)
    if user_ids is None:
        picks = np.unique(np.linspace(0, len(ids) - 1, min(SAMPLE_USERS, len(ids))).astype(np.int64))
    else:
        lookup = {user: row for row, user in enumerate(ids.tolist())}
        picks = np.asarray([lookup[user] for user in user_ids if user in lookup], dtype=np.int64)
    if not len(picks):
        return {}
    items, _ = model.recommend(picks, k)
    return {
        str(ids[user]): [str(model.item_ids_[i]) for i in row if i >= 0]
        for user, row in zip(picks.tolist(), items, strict=True)
    }


def answer_agreement(recorded: dict[str, list[str]], now: dict[str, list[str]]) -> float | None:
    """Mean share of each user's recorded items found again (order aside: near-ties may swap);
    None when no user is in both."""
    shared = [user for user in recorded if user in now]
    if not shared:
        return None
    shares = [len(set(recorded[u]) & set(now[u])) / max(len(recorded[u]), 1) for u in shared]
    return float(np.mean(shares))


def _without(manifest: VersionManifest, user_id: str) -> SampleAnswers | None:
    """The manifest's recorded answers without ``user_id``'s (the smoke test skips them anyway)."""
    recorded = manifest.sample_answers
    if recorded is None:
        return None
    return recorded.model_copy(
        update={"answers": {u: a for u, a in recorded.answers.items() if u != user_id}}
    )


def _erase_user_from_files(root: Path, user_id: str) -> bool:
    """Remove ``user_id`` from every saved model under ``root`` and from the rows of its Parquet
    files; whether anything changed. Models are re-hashed deepest first, since a fused model's
    manifest lists its sources' files."""
    model_dirs = sorted((p.parent for p in root.rglob(CONFIG_FILE)), key=lambda p: -len(p.parts))
    changed = [erase_user_from_saved(folder, user_id) for folder in model_dirs]
    changed += [_drop_user_rows(path, user_id) for path in sorted(root.rglob("*.parquet"))]
    if any(changed):
        for folder in model_dirs:
            rehash(folder)
    return any(changed)


def _drop_user_rows(path: Path, user_id: str) -> bool:
    """Rewrite a Parquet file without ``user_id``'s rows (a batch output); whether it had any."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if "user_id" not in pq.read_schema(path).names:
        return False
    table = pq.read_table(path)
    theirs = pc.fill_null(pc.equal(table.column("user_id"), user_id), False)
    if not pc.any(theirs).as_py():
        return False
    pq.write_table(table.filter(pc.invert(theirs)), path)
    return True


def _regular_files(root: Path, version: str) -> list[str]:
    """Every file under ``root`` (relative paths); a link anywhere in it is an `ArtifactError`:
    following one would open a file the manifest's checksums never covered."""
    found = []
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            if path.is_symlink():
                raise ArtifactError(f"{version}: {path.relative_to(root)} is a link")
        found += [str((Path(folder) / name).relative_to(root)) for name in files]
    return found
