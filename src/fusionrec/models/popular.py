"""Most-popular recommender: the reference baseline and everyone's fallback."""

from __future__ import annotations

import numpy as np

from fusionrec.data.dataset import Dataset
from fusionrec.models.base import ModelConfig, Recommender


class MostPopularConfig(ModelConfig):
    weighted: bool = False  # count distinct users (False) or sum event-type weights (True)


class MostPopular(Recommender):
    """Ranks items by how many users interacted with them (ties: lower item id first)."""

    name = "most_popular"
    Config = MostPopularConfig
    config: MostPopularConfig

    def _fit(self, dataset: Dataset) -> None:
        matrix = dataset.matrix(binary=not self.config.weighted)
        self.item_scores_ = np.asarray(matrix.sum(axis=0)).ravel().astype(np.float32)

    def _score_users(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.item_scores_, (len(users), len(self.item_scores_))).copy()
