"""What the dashboard's per-user preview and training panel read from the running service.

`preview` runs the service's own recommendation path (`fusionrec.serving.recommend.recommend`) on
a read-only view of the service: no exposure is logged or remembered, no answer cached, no metric
counted, so looking a user up changes nothing a shop measures. `training_status` is ``GET
/v1/models``'s training state (with its progress) beside the versions.
"""

from __future__ import annotations

import json
from typing import Any

from fusionrec.serving.service import Service


class _Nothing:
    """Takes any call or attribute and does nothing (the metrics: ``labels(...).inc()``)."""

    def __getattr__(self, name: str) -> Any:
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self


class _NoWrites:
    """The exposure buffer and the answer cache, switched off: nothing added, nothing found."""

    def add(self, **kwargs: Any) -> None:
        return None

    def get(self, *args: Any) -> None:
        return None

    def put(self, *args: Any) -> None:
        return None


class _ReadOnly:
    """The service with every write of the recommendation path switched off."""

    def __init__(self, svc: Service) -> None:
        self._svc = svc
        self.exposures = _NoWrites()
        self.cache = _NoWrites()  # always computed afresh, never stored
        self.metrics = _Nothing()

    def remember_exposure(self, visitor: str, items: list[str]) -> None:
        return None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._svc, name)


def preview(svc: Service, user_id: str, k: int = 10) -> dict[str, Any]:
    """What the user would be recommended now: the answer they get (their experiment arm's
    version, else the active one), then the answer of every other version that serves (the
    active one, each arm of an enabled experiment), each item with its title, category and the
    sources that proposed it."""
    answer = _answer(svc, user_id, k, None)
    answer["label"] = "what this user is served"
    answers = [answer]
    seen = {(answer.get("model_version"), "{}")}  # an arm with its own rules is another answer
    for exp, arm in _arms(svc):
        forced = exp.model_copy(
            update={
                "enabled": True,
                "arms": [arm, arm.model_copy(update={"name": arm.name + " "})],  # two arms, one answer
            }
        )
        other = _answer(svc, user_id, k, forced)
        other["variant"] = arm.name
        key = (other.get("model_version"), json.dumps(arm.rules, sort_keys=True, default=str))
        if key in seen:
            continue
        seen.add(key)
        other["label"] = f"arm {arm.name} of {exp.name}"
        answers.append(other)
    active = svc.registry.active
    if active is not None and all(a.get("model_version") != active.version for a in answers):
        other = _answer(svc, user_id, k, False)
        other["label"] = "the active version"
        answers.append(other)
    return {
        **answer,
        "answers": answers,
        "known_user": active is not None and user_id in active.user_index,
        "active_version": active.version if active is not None else None,
    }


def _arms(svc: Service) -> list[tuple[Any, Any]]:
    return [(exp, arm) for exp in svc.settings.experiments if exp.enabled for arm in exp.arms]


def _answer(svc: Service, user_id: str, k: int, experiment: Any) -> dict[str, Any]:
    """The recommendation path's answer on the read-only service: with the configured experiments
    (``experiment`` None), none (False: the active version), or one forced arm."""
    from fusionrec.serving.recommend import RecQuery, recommend

    view = _ReadOnly(svc)
    placement = None
    if experiment is not None:
        experiments = [] if experiment is False else [experiment]
        view.settings = svc.settings.model_copy(update={"experiments": experiments})
        if experiment is not False and experiment.placements:
            placement = experiment.placements[0]
    answer = recommend(view, RecQuery(user_id=user_id, k=k, placement=placement))  # type: ignore[arg-type]
    answer.pop("exposure_id", None)
    for entry in answer.get("items", []):
        item = svc.catalogue.get(entry["item_id"]) or {}
        entry["title"] = item.get("title")
        entry["category"] = item.get("category")
    return answer


def training_status(svc: Service) -> dict[str, Any]:
    """The retrainer's current (or last) run with its progress, its earlier runs, and the versions."""
    from fusionrec.serving.logs import without_paths

    active = svc.registry.active
    versions = without_paths(svc.registry.versions())
    rows = [
        {
            "version": v.get("version"),
            "model": v.get("model"),
            "created_at": v.get("created_at"),
            "trained_by": v.get("trained_by"),
            "active": bool(v.get("active")),
            "metrics": v.get("metrics") or {},
            "error": v.get("error"),
        }
        for v in versions
    ]
    return {
        "training": without_paths(dict(svc.retrainer.state)),
        "history": without_paths(list(getattr(svc.retrainer, "history", []))),
        "versions": rows,
        "active": active.version if active else None,
    }
