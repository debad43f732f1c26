"""Validation scoring and early stopping for iteratively trained models.

A model trained in epochs scores a fixed sample of validation users after every few epochs,
keeps the best state seen so far and stops when the metric has not improved for ``patience``
evaluations. Validation data never includes the test part: callers pass a split's validation.
`EarlyStopping` serves every such model (the sequence models score their own next-item task);
`run_epochs` is the whole loop of the models validated on `ValidationSet` Recall@k.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, Self

import numpy as np

from fusionrec.data.dataset import Dataset
from fusionrec.progress import step
from fusionrec.relevance import recall_at_k

if TYPE_CHECKING:
    from fusionrec.models.base import Recommender

logger = logging.getLogger("fusionrec.models")


@dataclass
class ValidationSet:
    """A fixed sample of users with held-out items, scored as full-catalogue Recall@k."""

    users: np.ndarray  # int64 user indices
    truth: Any  # CSR [len(users), n_items]
    k: int

    @classmethod
    def from_dataset(cls, validation: Dataset, *, k: int, max_users: int | None, seed: int) -> ValidationSet:
        truth = validation.matrix(binary=True)
        users = np.flatnonzero(np.diff(truth.indptr) > 0)
        if max_users is not None and len(users) > max_users:
            rng = np.random.default_rng(seed)
            users = np.sort(rng.choice(users, size=max_users, replace=False))
        return cls(users=users.astype(np.int64), truth=truth[users], k=k)

    def recall(self, model: Recommender) -> float:
        """Recall@k of ``model`` on these users, with their training items masked."""
        if len(self.users) == 0:
            return float("nan")
        items, _ = model.recommend(self.users, k=self.k)
        return recall_at_k(items, self.truth, items.shape[1])  # fewer than k when the catalogue is smaller


@dataclass
class EarlyStopping:
    """Tracks the best validation value; ``step`` says whether training should stop."""

    patience: int
    best: float = -np.inf
    best_epoch: int = -1
    bad_rounds: int = 0
    history: list[dict[str, float]] = field(default_factory=list)

    def step(self, epoch: int, value: float) -> tuple[bool, bool]:
        """Record ``value``; returns ``(improved, stop)``."""
        improved = bool(np.isfinite(value) and value > self.best)
        if improved:
            self.best, self.best_epoch, self.bad_rounds = value, epoch, 0
        else:
            self.bad_rounds += 1
        return improved, self.bad_rounds >= self.patience


def format_record(record: dict[str, Any]) -> str:
    """One progress line: ``epoch=3 loss=0.1234 ...``."""
    return " ".join(f"{k}={v:.5g}" if isinstance(v, float) else f"{k}={v}" for k, v in record.items())


class EpochConfig(Protocol):
    """The config fields `run_epochs` reads."""

    seed: int
    epochs: int
    max_seconds: float | None  # training time budget (evaluation time excluded)
    eval_every: int
    patience: int
    validation_k: int
    validation_users: int | None


class ValidationFitMixin:
    """``fit(dataset, validation=None)``: keeps ``validation`` as ``self._validation`` while fitting."""

    _validation: Dataset | None

    def fit(self, dataset: Dataset, validation: Dataset | None = None) -> Self:
        """Train on ``dataset``; with ``validation`` (same vocabularies), stop early on it."""
        self._validation = validation
        try:
            return super().fit(dataset)  # type: ignore[misc]
        finally:
            del self._validation


def run_epochs(
    model: Recommender,
    config: EpochConfig,
    validation: Dataset | None,
    train_epoch: Callable[[], float],
    publish: Callable[[], dict[str, np.ndarray]],
    *,
    log: logging.Logger,
    callback: Callable[[dict[str, Any]], None] | None = None,
    setup_seconds: float = 0.0,
    setup_cpu_seconds: float = 0.0,
) -> None:
    """Train ``model`` epoch by epoch with validation Recall@k and early stopping.

    ``train_epoch()`` runs one epoch and returns its mean loss; ``publish()`` copies the current
    weights into the model's arrays (so ``model.recommend`` uses them) and returns those arrays by
    attribute name. Every ``eval_every`` epochs, at the last epoch and when ``max_seconds`` of
    training have passed, the weights are published and scored; the best published arrays are put
    back at the end. ``setup_seconds`` and ``setup_cpu_seconds`` (work done before the
    first epoch, such as an initialisation) count as training time. Sets ``model.history_`` (one record per epoch) and, after validation,
    ``model.best_epoch_``; ``callback(record)`` runs after every evaluation.
    """
    checker = (
        ValidationSet.from_dataset(
            validation, k=config.validation_k, max_users=config.validation_users, seed=config.seed
        )
        if validation is not None
        else None
    )
    stopper = EarlyStopping(config.patience)
    best: dict[str, np.ndarray] | None = None
    history: list[dict[str, Any]] = []
    model.history_ = history
    trained, trained_cpu = setup_seconds, setup_cpu_seconds
    for epoch in range(1, config.epochs + 1):
        start, cpu_start = time.perf_counter(), time.process_time()
        loss = train_epoch()
        trained += time.perf_counter() - start
        trained_cpu += time.process_time() - cpu_start
        record: dict[str, Any] = {
            "epoch": epoch,
            "loss": loss,
            "train_seconds": round(trained, 3),
            "train_cpu_seconds": round(trained_cpu, 3),  # all threads; shared machines inflate wall time
        }
        out_of_time = config.max_seconds is not None and trained >= config.max_seconds
        stop = False
        if epoch % config.eval_every == 0 or epoch == config.epochs or out_of_time:
            published = publish()
            if checker is not None:
                value = checker.recall(model)
                record[f"validation_recall@{config.validation_k}"] = value
                improved, stop = stopper.step(epoch, value)
                if improved:
                    best = published
            if callback is not None:
                callback(record)
        history.append(record)
        log.info("%s %s", model.name, format_record(record))
        step(f"{model.name} epochs", epoch, config.epochs, f"loss {loss:.4f}")
        if stop or out_of_time:
            break
    if best is not None:
        for name, value in best.items():
            setattr(model, name, value)
        model.best_epoch_ = stopper.best_epoch
