"""Hyperparameter search (Optuna TPE or grid) scored on validation data, never on the test split.

A search space maps dotted parameter paths of a model's config to distributions::

    {"l2": {"type": "float", "low": 10, "high": 2000, "log": true},
     "ranker.params.num_leaves": {"type": "int", "low": 15, "high": 127},
     "sources.0.n": {"type": "categorical", "choices": [50, 100, 200]}}

so one search covers a single model's hyperparameters, a fusion's quotas, ranker settings and
blend weights alike. Each trial fits on the validation fold's training part and is scored with the
shared metrics; studies live in an Optuna storage (``sqlite:///study.db`` or a database URL) and
resume where they stopped. `best_pipeline_toml` writes the winner as a pipeline file.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from fusionrec.data.dataset import Dataset
from fusionrec.data.split import Split
from fusionrec.evaluation.metrics import evaluate_rankings
from fusionrec.evaluation.protocol import rank
from fusionrec.fusion.config import HoldoutConfig, PipelineFile, parse_pipeline, pipeline_to_toml
from fusionrec.fusion.pipeline import holdout_split
from fusionrec.models.base import Recommender
from fusionrec.models.registry import create_model
from fusionrec.progress import step

if TYPE_CHECKING:
    import optuna

log = logging.getLogger(__name__)


class SearchError(ValueError):
    """A malformed search space or an unusable validation fold."""


@dataclass
class TuneResult:
    model: str
    metric: str
    best_value: float
    best_params: dict[str, Any]
    trials: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Fold:
    """What a trial fits on and what it is scored against (never the test split)."""

    train: Dataset
    target: Dataset
    mask_seen: bool = True

    def score(self, model: Recommender, ks: Sequence[int] = (10, 20)) -> dict[str, float]:
        """The shared metrics of ``model``, fit on ``train``, on ``target``."""
        return score_fitted(model, self, ks)


class ScoringFold(Protocol):
    """What a trial is scored on: a training part and a way to score a model fit on it (`Fold`,
    and the automatic search's `fusionrec.tuning.folds.ValidationFold`)."""

    @property
    def train(self) -> Dataset: ...

    def score(self, model: Recommender, ks: Sequence[int] = ...) -> dict[str, float]: ...


def validation_fold(data: Split | Dataset, holdout: HoldoutConfig | None = None, seed: int = 0) -> Fold:
    """The split's own validation part when it has one; else a holdout cut inside the training data.

    For a `Split` without validation (e.g. Gowalla's fixed split) the fold is cut from ``train``
    only, so the test part stays unseen.
    """
    if isinstance(data, Split):
        if data.validation is not None and data.validation.n_events:
            return Fold(data.train, data.validation)
        data = data.train
    before, window = holdout_split(data, holdout or HoldoutConfig(mode="random", fraction=0.2), seed)
    if window.n_events == 0:
        raise SearchError("the validation fold is empty: the data is too small for a holdout")
    return Fold(before, window)


def score_on_fold(
    name: str, params: dict[str, Any], fold: ScoringFold, ks: Sequence[int] = (10, 20)
) -> dict[str, float]:
    """Fit ``name`` on the fold's training part and compute the shared metrics on its target part."""
    return fold.score(create_model(name, **params).fit(fold.train), ks)


def score_fitted(model: Recommender, fold: Fold, ks: Sequence[int] = (10, 20)) -> dict[str, float]:
    """The shared metrics of a model already fit on the fold's training part, on its target part."""
    truth_all = fold.target.matrix(binary=True)
    users = np.flatnonzero(np.diff(truth_all.indptr) > 0).astype(np.int64)
    seen = fold.train.matrix(binary=True)[users] if fold.mask_seen else None
    recs = rank(model, users, max(ks), exclude=seen)
    return evaluate_rankings(recs, truth_all[users], ks=ks)


def _mean_metrics(per_fold: list[dict[str, float]]) -> dict[str, float]:
    names = [name for name in per_fold[0] if isinstance(per_fold[0][name], (int, float))]
    return {name: float(np.mean([metrics[name] for metrics in per_fold])) for name in names}


def set_path(params: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``params`` with the dotted ``path`` set (list indices allowed: ``sources.0.n``)."""
    out = copy.deepcopy(params)
    node: Any = out
    parts = path.split(".")
    for part in parts[:-1]:
        if isinstance(node, list):
            index = int(part)
            if index >= len(node):
                raise SearchError(f"{path}: index {index} is out of range")
            node = node[index]
        else:
            node = node.setdefault(part, {})
    last = parts[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return out


def _suggest(trial: Any, path: str, spec: dict[str, Any]) -> Any:
    kind = spec.get("type")
    if kind == "float":
        return trial.suggest_float(path, spec["low"], spec["high"], log=spec.get("log", False))
    if kind == "int":
        return trial.suggest_int(path, spec["low"], spec["high"], log=spec.get("log", False))
    if kind == "categorical":
        return trial.suggest_categorical(path, spec["choices"])
    raise SearchError(f"search space {path}: type must be float, int or categorical, not {kind!r}")


def _grid(space: dict[str, dict[str, Any]]) -> dict[str, list[Any]]:
    grid = {}
    for path, spec in space.items():
        if spec.get("type") == "categorical":
            grid[path] = list(spec["choices"])
        elif "values" in spec:
            grid[path] = list(spec["values"])
        else:
            raise SearchError(f"grid search needs `choices` or `values` for {path}")
    return grid


def _report_trial(metric: str, total: int) -> Callable[[optuna.Study, optuna.trial.FrozenTrial], None]:
    """An Optuna callback reporting each finished trial with the best value so far."""

    def report(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        done = len([t for t in study.trials if t.state.name == "COMPLETE"])
        best = f"best {metric} {study.best_value:.4f}" if done else "no trial finished yet"
        step("tune trials", done, total, f"trial {trial.number}: {best}")

    return report


def tune(
    name: str,
    data: Split | Dataset,
    space: dict[str, dict[str, Any]],
    *,
    base_params: dict[str, Any] | None = None,
    metric: str = "NDCG@20",
    n_trials: int = 20,
    sampler: Literal["tpe", "grid"] = "tpe",
    storage: str | None = None,
    study_name: str | None = None,
    seed: int = 0,
    holdout: HoldoutConfig | None = None,
    fold: Fold | None = None,
    folds: Sequence[ScoringFold] | None = None,
) -> TuneResult:
    """Search ``space`` for model ``name``; resumes the study ``study_name`` in ``storage`` if it exists.

    Each trial is scored on ``folds`` (metrics averaged), else on ``fold``, else on a validation
    fold cut from ``data``.
    """
    import optuna

    if not space:
        raise SearchError("the search space is empty")
    base = dict(base_params or {})
    scoring: Sequence[ScoringFold] = folds or [fold or validation_fold(data, holdout, seed)]

    def objective(trial: optuna.Trial) -> float:
        params = base
        for path, spec in space.items():
            params = set_path(params, path, _suggest(trial, path, spec))
        metrics = _mean_metrics([score_on_fold(name, params, f) for f in scoring])
        if metric not in metrics:
            raise SearchError(f"metric {metric!r} not computed; have {sorted(metrics)}")
        for key, value in metrics.items():
            if isinstance(value, (int, float)):
                trial.set_user_attr(key, float(value))
        return float(metrics[metric])

    if sampler == "grid":
        chosen: optuna.samplers.BaseSampler = optuna.samplers.GridSampler(_grid(space), seed=seed)
        n_trials = min(n_trials, int(np.prod([len(v) for v in _grid(space).values()])))
    else:
        chosen = optuna.samplers.TPESampler(seed=seed)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=study_name or f"fusionrec-{name}",
        storage=storage,
        sampler=chosen,
        direction="maximize",
        load_if_exists=True,
    )
    done = len([t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE])
    remaining = max(0, n_trials - done)
    if remaining:
        study.optimize(objective, n_trials=remaining, callbacks=[_report_trial(metric, n_trials)])
    best = base
    for path, value in study.best_params.items():
        best = set_path(best, path, value)
    trials = [
        {"number": t.number, "value": t.value, "params": t.params}
        for t in study.trials
        if t.state == optuna.trial.TrialState.COMPLETE
    ]
    log.info("tune %s: best %s = %.4f after %d trials", name, metric, study.best_value, len(trials))
    return TuneResult(name, metric, float(study.best_value), best, trials)


def best_pipeline_toml(result: TuneResult, path: str | Path, template: PipelineFile | None = None) -> Path:
    """Write the best configuration as a pipeline file (validated before it is written)."""
    data = template.model_dump(mode="json") if template else {}
    data.update({"model": result.model, "config": result.best_params})
    pipeline = parse_pipeline(data)
    path = Path(path)
    path.write_text(
        f"# Best {result.metric} = {result.best_value:.5f} on validation ({len(result.trials)} trials)\n"
        + pipeline_to_toml(pipeline)
    )
    return path
