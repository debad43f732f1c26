"""Validation scoring and early stopping for iteratively trained models.

A model trained in epochs scores a fixed sample of validation users after every few epochs,
keeps the best state seen so far and stops when the metric has not improved for ``patience``
evaluations. Validation data never includes the test part: callers pass a split's validation.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from fusionrec.data.dataset import Dataset
from fusionrec.evaluation.metrics import evaluate_rankings

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
        k = items.shape[1]  # fewer than k when the catalogue is smaller
        return float(evaluate_rankings(items, self.truth, ks=(k,), metrics=["Recall"])[f"Recall@{k}"])


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
