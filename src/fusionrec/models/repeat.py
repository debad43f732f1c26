"""Buy again: each user's own past items, most often and most recently bought first.

In a grocery most of next week's basket was bought before, so a user's own history is the
baseline every model there must beat (and the fused pipeline's repurchase candidates).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from fusionrec.data.dataset import SECONDS_PER_DAY, Dataset
from fusionrec.models.base import ModelConfig, Recommender
from fusionrec.models.itemtools import request_history_matrix


class RepeatPurchaseConfig(ModelConfig):
    # Each past event counts 0.5 ** (age / half_life_days), its age measured from the newest
    # training event; None counts every event 1.
    half_life_days: float | None = Field(default=None, gt=0)


class RepeatPurchase(Recommender):
    """Ranks a user's past items by (decayed) event count, then every other item by popularity.

    Only events with a positive weight count (a return or a dislike is no reason to buy again).
    A live history given at request time counts each of its events once.
    """

    name = "repeat_purchase"
    Config = RepeatPurchaseConfig
    config: RepeatPurchaseConfig
    supports_history = True
    needs_event_log = True  # every repeat of a pair, each at its own time

    def _fit(self, dataset: Dataset) -> None:
        positive = dataset.weight > 0
        weight = np.ones(int(positive.sum()), dtype=np.float64)
        if self.config.half_life_days is not None and positive.any():
            age_days = (dataset.timestamp.max() - dataset.timestamp[positive]) / SECONDS_PER_DAY
            weight = np.power(0.5, age_days / self.config.half_life_days)
        counts = sp.csr_matrix(
            (weight.astype(np.float32), (dataset.user_idx[positive], dataset.item_idx[positive])),
            shape=(dataset.n_users, dataset.n_items),
        )
        counts.sum_duplicates()
        self.counts_ = counts
        popularity = np.bincount(dataset.item_idx[positive], minlength=dataset.n_items).astype(np.float64)
        # Never-bought items score in [-1, 0): below every past item, in popularity order.
        self.background_ = (popularity / (popularity.max(initial=0.0) + 1.0) - 1.0).astype(np.float32)

    def _rank_rows(self, rows: sp.csr_matrix) -> np.ndarray:
        scores = np.broadcast_to(self.background_, rows.shape).copy()
        coo = rows.tocoo()
        scores[coo.row, coo.col] = coo.data
        return scores

    def _score_users(self, users: np.ndarray) -> np.ndarray:
        return self._rank_rows(self.counts_[users])

    def _score_histories(self, histories: list[np.ndarray]) -> np.ndarray:
        return self._rank_rows(request_history_matrix(histories, self.n_items_))
