"""The serving side of the model repository: active version, validation gate, atomic swap, rollback.

Versions live in a `fusionrec.fusion.artifacts.ModelRepository` (``fusionrec train --out DIR``).
A version becomes active only after the gate: it loads (checksums, and the signature when a
signing key is set, verified), scores a sample of users without NaN, gives the sample users the
answers its manifest recorded at training (at least `MIN_AGREEMENT` of their items), and its
offline metric is within a tolerance of its reference version's, both
scored on the same validation window when it was trained (`fusionrec.versions`). The swap
replaces one reference: each request reads it once and keeps that version to the end, so no
request sees half a swap and none is dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fusionrec.data.store.base import id_sha256
from fusionrec.fusion.artifacts import ArtifactError, ModelRepository, answer_agreement, sample_answers
from fusionrec.models.base import Recommender
from fusionrec.versions import GATE_METRIC, GATE_TOLERANCE, VersionManifest, compare_for_activation

logger = logging.getLogger(__name__)
MIN_AGREEMENT = 0.8  # share of the sample users' recorded items the loaded model must give again


class RegistryError(RuntimeError):
    """No such version, or a version failed the validation gate."""


@dataclass
class LoadedVersion:
    """A loaded model version and what serving derives from it (id lookups, neighbours, ...)."""

    version: str
    model: Recommender
    manifest: VersionManifest
    item_ids: np.ndarray
    item_index: dict[str, int]
    user_index: dict[str, int]
    loaded_at: float = field(default_factory=time.time)
    extras: dict[str, Any] = field(default_factory=dict)  # attached by the service (neighbours, purchases)

    @classmethod
    def of(cls, version: str, model: Recommender, manifest: VersionManifest) -> LoadedVersion:
        # object arrays, as Recommender.fit builds them (older versions saved fixed-width ones)
        item_ids = np.asarray(model.item_ids_, dtype=object)
        user_ids = np.asarray(model.user_ids_, dtype=object)
        return cls(
            version,
            model,
            manifest,
            item_ids,
            dict(zip(item_ids.tolist(), range(len(item_ids)), strict=True)),
            dict(zip(user_ids.tolist(), range(len(user_ids)), strict=True)),
        )

    def metric(self, name: str) -> float | None:
        return self.manifest.metric(name)

    def user_items(self, user: int) -> np.ndarray:
        """The user's training items (indices) as the model saw them."""
        seen = self.model.seen_
        if not 0 <= user < seen.shape[0]:
            return np.zeros(0, dtype=np.int32)
        return seen.indices[seen.indptr[user] : seen.indptr[user + 1]]


@dataclass
class GateReport:
    version: str
    passed: bool
    checks: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "passed": self.passed, "checks": self.checks}


def _check_answers(candidate: LoadedVersion) -> tuple[str, bool]:
    """The scoring smoke test: the sample users' answers against those the manifest recorded."""
    recorded = candidate.manifest.sample_answers
    if recorded is None or not recorded.answers:
        return "skipped (no answers recorded)", True
    try:
        now = sample_answers(candidate.model, list(recorded.answers), recorded.k)
    except Exception as error:  # any failure to answer is a failed gate, reported by name
        return f"answering failed: {type(error).__name__}: {error}", False
    agreement = answer_agreement(recorded.answers, now)
    if agreement is None:
        return "skipped (none of the sample users is known)", True
    if agreement < MIN_AGREEMENT:
        return (
            f"the sample users' answers agree {agreement:.0%} with those recorded at training "
            f"(< {MIN_AGREEMENT:.0%}): the model's files do not answer as the trained model did",
            False,
        )
    return f"ok ({len(now)} users answer {agreement:.0%} as at training)", True


class VersionRegistry:
    """Which version of a model repository directory serves: load, gate, swap in, roll back.

    Not the registry of model names (`fusionrec.models.registry`) nor the store of trained
    versions (`fusionrec.fusion.artifacts.ModelRepository`, which this reads): it holds the active
    `LoadedVersion`, a small cache of loaded ones and the versions active before (for rollback).
    """

    def __init__(
        self,
        directory: str,
        *,
        metric: str = GATE_METRIC,
        tolerance: float = GATE_TOLERANCE,
        gate_users: int = 64,
        prepare: Callable[[LoadedVersion], None] | None = None,
        on_swap: Callable[[LoadedVersion], None] | None = None,
        keep_loaded: int = 3,
        signing_key: str | None = None,
    ) -> None:
        self.repository = ModelRepository(directory, signing_key=signing_key)
        self.metric = metric
        self.tolerance = tolerance
        self.gate_users = gate_users
        self.prepare = prepare
        self.on_swap = on_swap
        self.keep_loaded = keep_loaded
        self._active: LoadedVersion | None = None
        self._history: list[str] = []  # versions active before the current one, oldest first
        self._loaded: OrderedDict[str, LoadedVersion] = OrderedDict()
        self._lock = threading.RLock()  # one activation at a time; readers never take it

    @property
    def active(self) -> LoadedVersion | None:
        return self._active

    def loaded(self) -> list[LoadedVersion]:
        """The versions loaded now (the active one and the small cache), each once."""
        with self._lock:
            found = {v.version: v for v in self._loaded.values()}
            if self._active is not None:
                found[self._active.version] = self._active
        return list(found.values())

    def versions(self) -> list[dict[str, Any]]:
        active = self._active.version if self._active else None
        out = []
        for version in self.repository.versions():
            try:
                manifest = self.repository.manifest(version)
            except ArtifactError as error:
                out.append({"version": version, "error": str(error), "active": False})
                continue
            signature = self.repository.signature_status(manifest)
            out.append({**manifest.summary(), "signature": signature, "active": version == active})
        return out

    def load(self, version: str) -> LoadedVersion:
        """A version loaded (and prepared), from the small cache of loaded versions when there."""
        with self._lock:
            hit = self._loaded.get(version)
            if hit is not None:
                self._loaded.move_to_end(version)
                return hit
        try:
            model = self.repository.load(version)
            manifest = self.repository.manifest(version)
        except (ArtifactError, OSError, ValueError, KeyError) as error:
            raise RegistryError(f"version {version} cannot be loaded: {error}") from error
        loaded = LoadedVersion.of(version, model, manifest)
        if self.prepare is not None:
            self.prepare(loaded)
        with self._lock:
            self._loaded[version] = loaded
            while len(self._loaded) > self.keep_loaded:
                old, _ = self._loaded.popitem(last=False)
                if self._active is not None and old == self._active.version:
                    self._loaded[old] = self._active
        return loaded

    def gate(self, candidate: LoadedVersion, *, compare: bool = True) -> GateReport:
        """The validation gate (see the module docstring)."""
        checks: dict[str, str] = {"loads": "ok"}
        passed = True
        model = candidate.model
        n_users = len(candidate.user_index)
        users = np.r_[np.arange(min(self.gate_users, n_users)), -1].astype(np.int64)
        try:
            scores = model.score(users)
            if np.isnan(scores).any():
                checks["scores"] = (
                    f"NaN scores for {int(np.isnan(scores).any(axis=1).sum())} of {len(users)} users"
                )
                passed = False
            else:
                checks["scores"] = f"ok ({len(users)} users, no NaN)"
        except Exception as error:  # any failure to score is a failed gate, reported by name
            checks["scores"] = f"scoring failed: {type(error).__name__}: {error}"
            passed = False
        checks["answers"], answers_ok = _check_answers(candidate)
        passed = passed and answers_ok
        if not compare:
            checks["metric"] = "skipped"
        else:
            active = self._active.manifest if self._active is not None else None
            verdict, reason = compare_for_activation(candidate.manifest, active, self.metric, self.tolerance)
            if verdict is None:
                checks["metric"] = f"skipped ({reason})"
            elif verdict:
                checks["metric"] = f"ok ({reason})"
            else:
                checks["metric"] = reason
                passed = False
        return GateReport(candidate.version, passed, checks)

    def activate(self, version: str, *, force: bool = False, compare: bool = True) -> GateReport:
        """Load, gate and swap in ``version``; a failed gate leaves the active version untouched."""
        with self._lock:
            candidate = self.load(version)
            report = self.gate(candidate, compare=compare)
            if not report.passed and not force:
                logger.warning("version %s failed the gate: %s", version, report.checks)
                return report
            previous = self._active
            self._active = candidate  # the atomic swap: one reference assignment
            if previous is not None and previous.version != version:
                self._history.append(previous.version)
            logger.info("active model version: %s", version)
            if self.on_swap is not None:
                self.on_swap(candidate)
            return report

    def activate_newest(self) -> GateReport | None:
        """Activate the newest version that passes the gate (newest first); None when none does."""
        for version in reversed(self.repository.versions()):
            try:
                report = self.activate(version)
            except RegistryError as error:
                logger.warning("%s", error)
                continue
            if report.passed:
                return report
        return None

    def prune(self, keep: int) -> list[str]:
        """Delete all but the ``keep`` newest versions, never the active one or its rollback
        target; the versions deleted."""
        with self._lock:
            protected = {
                v for v in (self._active.version if self._active else None, *self._history[-1:]) if v
            }
            doomed = [v for v in self.repository.versions()[:-keep] if v not in protected]
            for version in doomed:
                self._loaded.pop(version, None)
                self.repository.remove(version)
            self._history = [v for v in self._history if v not in doomed]
        if doomed:
            logger.info("pruned %d old model version(s): %s", len(doomed), ", ".join(doomed))
        return doomed

    def rollback(self) -> GateReport:
        """Back to the version active before the current one (gated, without the metric check)."""
        with self._lock:
            while self._history:
                version = self._history.pop()
                try:
                    candidate = self.load(version)
                except RegistryError as error:
                    logger.warning("rollback skips %s: %s", version, error)
                    continue
                report = self.gate(candidate, compare=False)
                if report.passed:
                    self._active = candidate
                    if self.on_swap is not None:
                        self.on_swap(candidate)
                    return report
            raise RegistryError("no earlier version to roll back to")

    def erase_user(self, user_id: str) -> dict[str, str]:
        """Erasure: ``user_id`` out of every saved version's files (`ModelRepository.erase_user`)
        and out of the id lookups of the versions loaded in memory; the outcome per version."""
        with self._lock:
            loaded = [*self._loaded.values(), *([self._active] if self._active else [])]
            for version in loaded:  # their precomputed lists are reached through this lookup only
                version.user_index.pop(user_id, None)
                segments = version.extras.get("segments")
                if segments is not None:  # a user without history: their attributes, kept for cold start
                    segments.attributes.pop(user_id, None)
            return self.repository.erase_user(user_id)

    def forget_hashed_users(self, hashes: set[str]) -> set[str]:
        """Erasures made elsewhere, known by the ids' SHA-256 only: the ids of the loaded versions
        that match leave their lookups (the files were rewritten by whoever erased); returns them."""
        found: set[str] = set()
        with self._lock:
            loaded = [*self._loaded.values(), *([self._active] if self._active else [])]
            for version in loaded:
                matches = [user for user in version.user_index if id_sha256(user) in hashes]
                for user in matches:
                    version.user_index.pop(user, None)
                found.update(matches)
        return found

    def get(self, version: str | None) -> LoadedVersion | None:
        """The active version, or ``version`` (an experiment arm's) loaded on demand."""
        active = self._active
        if version is None or (active is not None and active.version == version):
            return active
        return self.load(version)
