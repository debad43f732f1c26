"""Simple fusions, so a leaderboard shows what the learned ranker adds.

* ``blend``: weighted sum of each source's score, min-max normalised per user over the items the
  source proposed (0 when it did not propose the item); weights tuned on the label window.
* ``rrf``: reciprocal rank fusion, ``sum_s w_s / (k + rank_s)`` (Cormack et al. 2009); weights
  1 unless tuned.

Weight tuning is a seeded random search (Dirichlet draws plus the uniform vector) scored by
NDCG@20 of the label window, the same no-leakage window the ranker learns on.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from pydantic import Field

from fusionrec.evaluation.metrics import grouped_ndcg
from fusionrec.fusion.candidates import Candidates
from fusionrec.fusion.config import FusionSettings, SourceConfig, default_pipeline
from fusionrec.fusion.pipeline import MultiSourceRecommender
from fusionrec.models.base import ModelConfig

WEIGHTS_FILE = "weights.json"


class BlendConfig(ModelConfig, FusionSettings):
    sources: list[SourceConfig] = Field(default_factory=lambda: default_pipeline().sources)
    weights: dict[str, float] | None = None  # fixed weights per source label; None = tune them
    trials: int = Field(64, ge=0)  # random weight vectors tried when tuning
    tune_k: int = Field(20, ge=1)  # NDCG cut-off the weights are tuned for


class RRFConfig(BlendConfig):
    k: float = Field(60.0, gt=0)  # the RRF constant: larger flattens the rank discount
    trials: int = Field(0, ge=0)  # plain RRF by default (all weights 1)


def normalised_scores(candidates: Candidates) -> np.ndarray:
    """Per row and source, min-max scaled scores of the proposed items; 0 where not proposed."""
    scores = candidates.scores.astype(np.float64)
    n_rows, n_sources = candidates.n_rows, scores.shape[1]
    low = np.full((n_rows, n_sources), np.inf)
    high = np.full((n_rows, n_sources), -np.inf)
    finite = np.where(np.isfinite(scores), scores, np.nan)
    np.fmin.at(low, candidates.row, finite)
    np.fmax.at(high, candidates.row, finite)
    span = (high - low)[candidates.row]
    with np.errstate(invalid="ignore", divide="ignore"):
        scaled = np.where(span > 0, (finite - low[candidates.row]) / span, 1.0)
    return np.nan_to_num(np.where(np.isnan(finite), 0.0, scaled), nan=0.0).astype(np.float32)


def rrf_terms(candidates: Candidates, k: float) -> np.ndarray:
    """``1 / (k + rank)`` per source, 0 where the source did not propose the item."""
    return np.nan_to_num(1.0 / (k + candidates.ranks), nan=0.0).astype(np.float32)


class _WeightedFusion(MultiSourceRecommender):
    needs_features = False
    config: BlendConfig

    def _terms(self, candidates: Candidates) -> np.ndarray:
        raise NotImplementedError

    def _fit_combiner(
        self, X: np.ndarray | None, candidates: Candidates, labels: np.ndarray, weights: np.ndarray
    ) -> None:
        labels_order = candidates.sources
        if self.config.weights is not None:
            unknown = sorted(set(self.config.weights) - set(labels_order))
            if unknown:
                raise ValueError(f"weights: unknown source(s) {unknown}; sources are {list(labels_order)}")
            self.weights_ = np.array(
                [self.config.weights.get(s, 0.0) for s in labels_order], dtype=np.float32
            )
            return
        terms = self._terms(candidates)
        uniform = np.ones(len(labels_order), dtype=np.float32)
        best, best_score = uniform, grouped_ndcg(terms @ uniform, labels, candidates.row, self.config.tune_k)
        rng = np.random.default_rng(self.config.seed)
        for _ in range(self.config.trials):
            trial = (rng.dirichlet(np.ones(len(labels_order))) * len(labels_order)).astype(np.float32)
            score = grouped_ndcg(terms @ trial, labels, candidates.row, self.config.tune_k)
            if score > best_score:
                best, best_score = trial, score
        self.weights_ = best
        self.tuned_ndcg_ = float(best_score)

    def _combine(self, X: np.ndarray | None, candidates: Candidates) -> np.ndarray:
        return (self._terms(candidates) @ self.weights_).astype(np.float32)

    def score_parts(
        self, X: np.ndarray | None, candidates: Candidates, rows: np.ndarray
    ) -> tuple[list[str], np.ndarray] | None:
        """Each source's weighted term (normalised within the user's candidates): they sum to the score."""
        return list(candidates.sources), self._terms(candidates)[rows] * self.weights_[None, :]

    def weights(self) -> dict[str, float]:
        """The (tuned or given) weight of each source."""
        return {label: float(w) for label, w in zip(self.config.source_labels(), self.weights_, strict=True)}

    def _save_combiner(self, directory: Path) -> list[str]:
        (directory / WEIGHTS_FILE).write_text(json.dumps(self.weights(), indent=2))
        return [WEIGHTS_FILE]


class BlendRecommender(_WeightedFusion):
    """``blend``: weighted sum of per-user normalised source scores."""

    name = "blend"
    Config = BlendConfig

    def _terms(self, candidates: Candidates) -> np.ndarray:
        return normalised_scores(candidates)


class RRFRecommender(_WeightedFusion):
    """``rrf``: reciprocal rank fusion of the sources' rankings."""

    name = "rrf"
    Config = RRFConfig
    config: RRFConfig

    def _terms(self, candidates: Candidates) -> np.ndarray:
        return rrf_terms(candidates, self.config.k)
