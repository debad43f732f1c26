"""A/B tests: deterministic bucketing by a salted hash, and the exposure log.

An experiment splits visitors of some placements into arms by ``sha256(salt:experiment:unit)``;
the same visitor always lands in the same arm. An arm may serve another model version and its own
rules. Every answer is an exposure: buffered here and appended to the ``exposures`` table (see
`fusionrec.analytics.tables`) by the service's writer, where analytics attributes later clicks,
carts and purchases to it.
"""

from __future__ import annotations

import hashlib
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ArmConfig(_Strict):
    name: str = Field(min_length=1)
    weight: float = Field(1.0, gt=0)
    model_version: str | None = None  # None = the active version
    rules: dict[str, Any] = Field(default_factory=dict)  # overrides of the serving rules


class ExperimentConfig(_Strict):
    """One ``[[serving.experiments]]`` entry."""

    name: str = Field(min_length=1)
    salt: str = ""
    unit: Literal["user", "session", "visitor"] = "visitor"  # visitor: user id, else session id
    placements: list[str] = Field(default_factory=list)  # empty = every placement
    enabled: bool = True
    arms: list[ArmConfig] = Field(min_length=2)

    @model_validator(mode="after")
    def _distinct_arms(self) -> ExperimentConfig:
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names):
            raise ValueError(f"experiment {self.name!r}: arm names repeat ({names})")
        return self


@dataclass(frozen=True)
class Assignment:
    experiment: str | None
    variant: str
    model_version: str | None = None
    rules: dict[str, Any] | None = None


DEFAULT = Assignment(None, "default")


def bucket(salt: str, experiment: str, unit: str) -> float:
    """Uniform value in [0, 1) from the salted hash of the unit (stable across processes)."""
    digest = hashlib.sha256(f"{salt}:{experiment}:{unit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def assign(
    experiments: list[ExperimentConfig], user_id: str | None, session_id: str | None, placement: str | None
) -> Assignment:
    """The arm of the first enabled experiment that covers ``placement`` (or the default)."""
    for exp in experiments:
        if not exp.enabled or (exp.placements and placement not in exp.placements):
            continue
        unit = {"user": user_id, "session": session_id}.get(exp.unit, user_id or session_id)
        if unit is None:
            continue  # e.g. a user-level test and a guest: the guest gets the default
        point = bucket(exp.salt, exp.name, unit) * sum(a.weight for a in exp.arms)
        for arm in exp.arms:
            point -= arm.weight
            if point < 0:
                return Assignment(exp.name, arm.name, arm.model_version, arm.rules or None)
        arm = exp.arms[-1]
        return Assignment(exp.name, arm.name, arm.model_version, arm.rules or None)
    return DEFAULT


class ExposureBuffer:
    """Exposures waiting to be written; `drain` hands them to the writer in one batch."""

    def __init__(self, max_rows: int = 100_000) -> None:
        self._rows: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self.max_rows = max_rows
        self.dropped = 0  # exposures lost because the store could not keep up (counted, logged)

    def add(
        self,
        *,
        user_id: str | None,
        session_id: str | None,
        placement: str | None,
        assignment: Assignment,
        model_version: str | None,
        items: list[str],
    ) -> str:
        exposure_id = uuid.uuid4().hex
        if not items or (user_id is None and session_id is None):
            return exposure_id
        row = {
            "exposure_id": exposure_id,
            "timestamp": datetime.now(UTC),
            "user_id": user_id,
            "session_id": session_id,
            "placement": placement,
            "experiment": assignment.experiment,
            "variant": assignment.variant if assignment.experiment else None,
            "model_version": model_version,
            "items": items,
        }
        with self._lock:
            if len(self._rows) >= self.max_rows:
                self.dropped += 1
            else:
                self._rows.append(row)
        return exposure_id

    def drain(self) -> list[dict[str, Any]]:
        with self._lock:
            rows, self._rows = self._rows, []
        return rows

    def forget_user(self, user_id: str) -> None:
        """Erasure: pending exposures of the user are dropped too."""
        with self._lock:
            self._rows = [r for r in self._rows if r["user_id"] != user_id]
