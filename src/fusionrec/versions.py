"""What a model version records: one typed manifest, written by the model repository when a version
is added, and read by the deploy gate, ``GET /v1/models``, the dashboard and the report.

A version's offline evaluation holds its metrics on a validation window, a popularity baseline on
the same window, and (when the repository already had an accepted version) that reference
version's pipeline refit and scored on the *same* window. The deploy gate compares those two:
metrics of versions trained on different data windows are not comparable.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MANIFEST = "manifest.json"
VERSION_PATTERN = re.compile(r"^v(\d{4,})$")
GATE_METRIC = "NDCG@20"
GATE_TOLERANCE = 0.05  # a new version may score at most this share below its reference
SignatureStatus = Literal["verified", "unsigned", "invalid", "not verified (no signing key)"]


class ArtifactError(RuntimeError):
    """A missing version, files that do not match their manifest, or an unreadable manifest."""


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Reference(_Record):
    """The version a new one was compared with, refit and scored on the new version's window."""

    version: str
    metrics: dict[str, float]


class Candidate(_Record):
    """One model scored on the validation data while a version was chosen (the guardrail)."""

    label: str  # "fusion" for the pipeline itself, "source ease" for one of its sources
    model: str
    config: dict[str, Any]
    metrics: dict[str, float]
    seconds: float | None = None  # fitting and scoring it, over every validation fold


class Trial(_Record):
    """One fit-and-score of the automatic search (`fusionrec.tuning.auto`): metrics are the mean
    over the validation folds it was scored on."""

    stage: str  # screen, confirm, fusion, ranker, blend
    label: str
    model: str
    config: dict[str, Any]
    metrics: dict[str, float]
    folds: int
    seconds: float

    @property
    def score(self) -> float:
        return self.metrics.get(GATE_METRIC, 0.0)


class SearchRecord(_Record):
    """How the automatic search chose a version's pipeline: the data profile, the plan it led to
    (and why), the sources left out (and why), the budget, every trial and the verdict."""

    profile: dict[str, Any]
    plan: dict[str, Any]
    reasons: dict[str, str] = Field(default_factory=dict)
    skipped: dict[str, str] = Field(default_factory=dict)
    budget_seconds: float
    seconds: float
    seed: int
    trials: list[Trial] = Field(default_factory=list)
    chosen: str = ""
    reason: str = ""


class Evaluation(_Record):
    """Offline metrics on a validation window, with the baseline's and the reference's on it.

    ``leaderboard``: every candidate scored on the window (the pipeline and each of its sources);
    the version ships ``chosen``, the best of them on the gate metric, for the ``reason`` given.
    """

    protocol: str
    metrics: dict[str, float]
    baseline_model: str
    baseline_metrics: dict[str, float]
    reference: Reference | None = None
    leaderboard: list[Candidate] = Field(default_factory=list)
    chosen: str = ""
    reason: str = ""


class SampleAnswers(_Record):
    """The top-``k`` item ids of a few users, recorded when the version was written: activation
    computes them again, so a model whose files were edited (checksums recomputed) or that loads
    differently from how it trained is refused."""

    k: int
    answers: dict[str, list[str]]


class VersionManifest(_Record):
    """``manifest.json`` of a version folder."""

    version: str
    model: str
    created_at: datetime
    trained_by: str = Field(description="what trained it: `fusionrec train`, `fusionrec demo`, the service")
    pipeline: dict[str, Any] = Field(description="model name and config: enough to train it again")
    pipeline_origin: str = ""
    data: dict[str, Any] = Field(default_factory=dict, description="the training data: size, time span")
    evaluation: Evaluation | None = None
    search: SearchRecord | None = Field(None, description="the automatic search, when it chose the pipeline")
    timings: dict[str, float] = Field(default_factory=dict)
    batch_jobs: dict[str, Any] | None = None
    files: dict[str, str] = Field(default_factory=dict, description="relative path -> sha256")
    sample_answers: SampleAnswers | None = None
    signature: str | None = Field(
        None, description="HMAC-SHA256 (hex) of the rest of the manifest, when a signing key was set"
    )

    @property
    def metrics(self) -> dict[str, float]:
        """The offline metrics (empty when the version was trained without a validation window)."""
        return dict(self.evaluation.metrics) if self.evaluation is not None else {}

    def metric(self, name: str) -> float | None:
        return self.metrics.get(name)

    def summary(self) -> dict[str, Any]:
        """What ``GET /v1/models`` and the dashboard show of a version."""
        evaluation = self.evaluation
        return {
            "version": self.version,
            "model": self.model,
            "created_at": self.created_at.isoformat(),
            "trained_by": self.trained_by,
            "metrics": self.metrics,
            "baseline_metrics": evaluation.baseline_metrics if evaluation else {},
            "reference": evaluation.reference.model_dump() if evaluation and evaluation.reference else None,
            "protocol": evaluation.protocol if evaluation else None,
            "chosen": evaluation.chosen if evaluation else None,
            "reason": evaluation.reason if evaluation else None,
            "leaderboard": [c.model_dump() for c in evaluation.leaderboard] if evaluation else [],
        }

    def signed(self, key: str) -> VersionManifest:
        """This manifest with its signature: the checksums it holds then authenticate every file."""
        return self.model_copy(update={"signature": self._mac(key)})

    def signature_status(self, key: str | None) -> SignatureStatus:
        """What the signature says under ``key``; without a key nothing can be verified."""
        if key is None:
            return "unsigned" if self.signature is None else "not verified (no signing key)"
        if self.signature is None:
            return "unsigned"
        return "verified" if hmac.compare_digest(self.signature, self._mac(key)) else "invalid"

    def _mac(self, key: str) -> str:
        # Canonical JSON of every field but the signature: stable across a write and a read.
        body = self.model_dump(mode="json", exclude={"signature"})
        payload = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        return hmac.new(key.encode(), payload, hashlib.sha256).hexdigest()

    @classmethod
    def read(cls, folder: Path) -> VersionManifest:
        path = folder / MANIFEST
        if not path.is_file():
            raise ArtifactError(f"{folder.name}: {MANIFEST} is missing in {folder.parent}")
        try:
            return cls.model_validate(json.loads(path.read_text()))
        except (ValueError, ValidationError) as error:
            raise ArtifactError(f"{folder.name}: {MANIFEST} is not a valid manifest: {error}") from error

    def write(self, folder: Path) -> None:
        (folder / MANIFEST).write_text(self.model_dump_json(indent=2) + "\n")


def compare_with_reference(
    manifest: VersionManifest, metric: str = GATE_METRIC, tolerance: float = GATE_TOLERANCE
) -> tuple[bool | None, str]:
    """Whether ``manifest`` holds up against its own reference on the same window: (verdict, reason).

    The verdict is None when there is nothing to compare (no reference, or the metric is missing).
    """
    evaluation = manifest.evaluation
    if evaluation is None or evaluation.reference is None:
        return None, "no reference version scored on the same window"
    return _judge(
        evaluation.metrics.get(metric),
        evaluation.reference.metrics.get(metric),
        manifest.version,
        evaluation.reference.version,
        metric,
        tolerance,
    )


def compare_for_activation(
    candidate: VersionManifest,
    active: VersionManifest | None,
    metric: str = GATE_METRIC,
    tolerance: float = GATE_TOLERANCE,
) -> tuple[bool | None, str]:
    """The deploy gate's metric check: the candidate against the active version on a window both
    were scored on (either one's evaluation may hold the other as its reference), else against the
    candidate's own reference. The verdict is None when no common window exists."""
    if active is not None and active.version != candidate.version:
        mine, theirs = candidate.evaluation, active.evaluation
        if mine is not None and mine.reference is not None and mine.reference.version == active.version:
            return compare_with_reference(candidate, metric, tolerance)
        if (
            theirs is not None
            and theirs.reference is not None
            and theirs.reference.version == candidate.version
        ):
            new, old = theirs.reference.metrics.get(metric), theirs.metrics.get(metric)
            return _judge(new, old, candidate.version, active.version, metric, tolerance)
    return compare_with_reference(candidate, metric, tolerance)


def _judge(
    new: float | None, old: float | None, version: str, reference: str, metric: str, tolerance: float
) -> tuple[bool | None, str]:
    if new is None or old is None:
        return None, f"{metric} is missing from the evaluation"
    if new < old * (1.0 - tolerance):
        return (
            False,
            f"{metric} {new:.4f} of {version} < {reference}'s {old:.4f} x (1 - {tolerance:g}) on the same window",
        )
    return True, f"{metric} {new:.4f} of {version} vs {reference}'s {old:.4f} on the same window"


def newest_accepted(
    manifests: list[VersionManifest], metric: str = GATE_METRIC, tolerance: float = GATE_TOLERANCE
) -> VersionManifest | None:
    """The newest version (of ``manifests``, oldest first) that did not lose to its own reference:
    what a freshly started service activates, and so what the next version must beat."""
    for manifest in reversed(manifests):
        verdict, _ = compare_with_reference(manifest, metric, tolerance)
        if verdict is not False:
            return manifest
    return None


def version_names(directory: Path) -> list[str]:
    """The version folders of a model repository, oldest first (``v0001``, ``v0002`` ...)."""
    if not directory.is_dir():
        return []
    found = [p.name for p in directory.iterdir() if p.is_dir() and VERSION_PATTERN.match(p.name)]
    return sorted(found, key=lambda name: int(name[1:]))


def read_manifests(directory: Path) -> list[VersionManifest]:
    """Every readable manifest of a model repository, oldest first (no model file is opened)."""
    out = []
    for name in version_names(directory):
        try:
            out.append(VersionManifest.read(directory / name))
        except ArtifactError:
            continue
    return out
