"""The model ``auto``: the automatic pipeline search as a `Recommender`, so `fusionrec evaluate
--models auto` scores exactly what `fusionrec train` ships, beside single models in one run.

``fit`` runs `select_pipeline` on the data it is given (in `evaluate`, the split's training part:
selection never sees the test), then fits the chosen pipeline on all of that data and answers
with it. Saved, it is the chosen model in a subfolder plus the search's record.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from fusionrec.data.dataset import Dataset
from fusionrec.fusion.source_cache import reuse_fitted_sources
from fusionrec.models.base import ModelConfig, Recommender, add_to_manifest
from fusionrec.models.registry import create_model
from fusionrec.tuning.auto import select_pipeline

CHOSEN_DIR = "chosen"
SEARCH_FILE = "search.json"


class AutoConfig(ModelConfig):
    budget_seconds: float | None = Field(None, gt=0)  # None: scaled with the data (`default_budget`)
    folds: int = Field(3, ge=1)
    window_days: float = Field(7.0, gt=0)  # the first validation window of temporal data
    # Restrict the portfolio to these models (None: every source the data profile allows).
    models: list[str] | None = None


class AutoRecommender(Recommender):
    """Chooses its pipeline on validation folds of its training data, then is that pipeline."""

    name: ClassVar[str] = "auto"
    Config = AutoConfig
    config: AutoConfig
    needs_event_log: ClassVar[bool] = True  # the profile and the folds read times and event types
    supports_history: ClassVar[bool] = True  # when the chosen model does; else its fallback

    def _fit(self, dataset: Dataset) -> None:
        cfg = self.config
        with reuse_fitted_sources():  # the final fit's label windows are the search's folds
            selection = select_pipeline(
                dataset,
                budget_seconds=cfg.budget_seconds,
                folds=cfg.folds,
                window_days=cfg.window_days,
                seed=cfg.seed,
                models=cfg.models,
            )
            self._chosen = create_model(selection.model, **selection.params).fit(dataset)
        self.chosen_model_ = selection.model
        self.chosen_params_ = selection.params
        self.search_ = selection.record.model_dump(mode="json")

    def fit_report(self) -> dict[str, Any]:
        """The chosen pipeline and how the search came to it (the trials are in ``search_``)."""
        search = self.search_
        return {
            "chosen": {"model": self.chosen_model_, "config": self.chosen_params_},
            **{
                key: search[key]
                for key in ("plan", "reasons", "skipped", "budget_seconds", "seconds", "reason")
            },
            "trials": [
                {
                    "label": t["label"],
                    "NDCG@20": t["metrics"].get("NDCG@20"),
                    "folds": t["folds"],
                    "seconds": t["seconds"],
                }
                for t in search["trials"]
            ],
        }

    @property
    def chosen(self) -> Recommender:
        """The fitted pipeline the search chose."""
        self._check_fitted()
        return self._chosen

    @property
    def answering(self) -> Recommender:
        """The chosen pipeline (itself a wrapper's answer, should the search ever choose one)."""
        return self.chosen.answering

    def _score_users(self, users: np.ndarray) -> np.ndarray:
        return self._chosen.score(users)

    def recommend(
        self,
        users: np.ndarray,
        k: int = 10,
        *,
        exclude: str | sp.csr_matrix | None = "seen",
        batch_size: int = 2048,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The chosen pipeline's own ranking (fused models rank their candidates themselves)."""
        return self.chosen.recommend(users, k, exclude=exclude, batch_size=batch_size)

    def _score_histories(self, histories: list[np.ndarray]) -> np.ndarray:
        if self._chosen.supports_history:
            return self._chosen.score_histories(histories)
        return self._chosen.fallback_scores(len(histories))

    def _state(self) -> dict[str, Any]:
        return {key: value for key, value in super()._state().items() if key != "search_"}

    def save(self, directory: str | Path) -> Path:
        """Its own state, the chosen model through that model's `save`, and the search's record."""
        directory = super().save(directory)
        self._chosen.save(directory / CHOSEN_DIR)
        (directory / SEARCH_FILE).write_text(json.dumps(self.search_, indent=2, sort_keys=True))
        chosen_files = sorted(p for p in (directory / CHOSEN_DIR).rglob("*") if p.is_file())
        add_to_manifest(directory, [SEARCH_FILE, *(str(p.relative_to(directory)) for p in chosen_files)])
        return directory

    def _load_files(self, directory: Path) -> None:
        self._chosen = Recommender.load(directory / CHOSEN_DIR)
        self.search_ = json.loads((directory / SEARCH_FILE).read_text())

    def recommend_from_history(
        self, histories: Sequence[np.ndarray], k: int = 10, *, exclude_history: bool = True
    ) -> tuple[np.ndarray, np.ndarray]:
        return self.chosen.recommend_from_history(histories, k, exclude_history=exclude_history)
