"""The "viewed together" and "bought together" recommenders.

They wrap the item x item matrices mined by `fusionrec.mining` (time-windowed co-visitation,
pairwise association rules), expose item-to-item lists (`similar_items`, `bought_together`) and
score a user, or a live session, from their most recent items.
"""

from __future__ import annotations

import logging
from typing import ClassVar, Literal

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from fusionrec.data.dataset import SECONDS_PER_DAY, Dataset
from fusionrec.mining.covisitation import covisitation_matrix
from fusionrec.mining.neighbours import prune_rows
from fusionrec.mining.rules import baskets_from_dataset, mine_rules, rules_matrix
from fusionrec.models.base import ModelConfig, Recommender
from fusionrec.models.itemtools import (
    check_items,
    fill_unscored,
    history_row,
    request_history_matrix,
    row_terms,
    top_neighbours,
    user_history_matrix,
)

logger = logging.getLogger(__name__)


class ItemToItemConfig(ModelConfig):
    last_n: int = Field(default=20, ge=1)  # a user is scored from their newest events
    recency_half_life: float | None = Field(default=5.0, gt=0)  # in events: the newest counts most
    weighting: Literal["events", "binary"] = "events"  # how a history event counts
    max_neighbours: int | None = Field(default=200, ge=1)  # kept per item row


class _ItemToItemRecommender(Recommender):
    """Scores ``sum over recent items i of weight(i) * item_item_[i, :]`` (then popularity fill)."""

    supports_history: ClassVar[bool] = True
    item_to_item: ClassVar[bool] = True
    lists_bought_together: ClassVar[bool] = True
    config: ItemToItemConfig

    def _item_item(self, dataset: Dataset) -> sp.csr_matrix:
        raise NotImplementedError

    def _fit(self, dataset: Dataset) -> None:
        cfg = self.config
        self.item_item_ = prune_rows(self._item_item(dataset), cfg.max_neighbours)
        self.history_ = user_history_matrix(
            dataset, weighting=cfg.weighting, last_n=cfg.last_n, half_life=cfg.recency_half_life
        )
        covered = int((np.diff(self.item_item_.indptr) > 0).sum())
        logger.info(
            "%s: %d item pairs; %d of %d items have neighbours",
            self.name, self.item_item_.nnz, covered, dataset.n_items,
        )  # fmt: skip

    def _score_users(self, users: np.ndarray) -> np.ndarray:
        return self._score_weights(self.history_[users])

    def _score_histories(self, histories: list[np.ndarray]) -> np.ndarray:
        cfg = self.config
        return self._score_weights(
            request_history_matrix(
                histories, self.n_items_, last_n=cfg.last_n, half_life=cfg.recency_half_life
            )
        )

    def _score_weights(self, weights: sp.csr_matrix) -> np.ndarray:
        return fill_unscored((weights @ self.item_item_).toarray(), self.popularity_)

    def history_terms(
        self, user: int, history: np.ndarray | None, item: int
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """Each recent item's term ``weight(j) * item_item_[j, item]`` (see `Recommender`); an item
        whose terms sum to 0 or less is scored by the popularity fill instead."""
        cfg = self.config
        row = history_row(
            self.history_, user, history, last_n=cfg.last_n, half_life=cfg.recency_half_life, binary=False
        )
        return None if row is None else row_terms(row, self.item_item_, item)

    def similar_items(self, items: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Each item's ``k`` strongest neighbours ``(items int32[n, k], scores)``, padded with -1."""
        self._check_fitted()
        items = check_items(items, self.n_items_)
        return top_neighbours(self.item_item_[items].toarray(), items, k)

    def bought_together(self, items: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """Same as `similar_items`: the items most often taken together with each of ``items``."""
        return self.similar_items(items, k)


class CovisitationConfig(ItemToItemConfig):
    window_seconds: float = Field(default=SECONDS_PER_DAY, gt=0)
    type_weights: dict[str, float] | None = None  # overrides of the dataset's event-type weights
    group: Literal["session", "user"] = "session"
    max_span_events: int | None = Field(default=30, ge=1)
    normalise: Literal["none", "row", "cosine"] = "cosine"
    symmetric: bool = True  # false: only "b after a" relates a to b (what follows, not what came before)
    gap_decay: bool = False  # a pair k events apart weighs 1/k (sequential rules): the next item counts most


class CovisitationRecommender(_ItemToItemRecommender):
    """Items used close together in time ("viewed together"), scored from the user's recent items."""

    name = "covisitation"
    needs_event_log = True  # time windows, sessions and event types
    Config = CovisitationConfig
    config: CovisitationConfig

    def _item_item(self, dataset: Dataset) -> sp.csr_matrix:
        cfg = self.config
        return covisitation_matrix(
            dataset,
            cfg.window_seconds,
            cfg.type_weights,
            group=cfg.group,
            max_span_events=cfg.max_span_events,
            symmetric=cfg.symmetric,
            normalise=cfg.normalise,
            gap_decay=cfg.gap_decay,
        )


class AssociationRulesConfig(ItemToItemConfig):
    event_types: list[str] = Field(default_factory=lambda: ["purchase"], min_length=1)  # basket events
    basket: Literal["session", "user_day", "user"] = "session"
    min_count: int = Field(default=2, ge=1)  # baskets a pair must share
    min_support: float = Field(default=0.0, ge=0.0, le=1.0)
    min_confidence: float = Field(default=0.0, ge=0.0, le=1.0)
    metric: Literal["confidence", "lift"] = "confidence"  # the rule strength used for scoring


class AssociationRulesRecommender(_ItemToItemRecommender):
    """Bought-together rules over baskets, scored from the user's recent items."""

    name = "association_rules"
    needs_event_log = True  # baskets of the chosen event types
    Config = AssociationRulesConfig
    config: AssociationRulesConfig

    def _item_item(self, dataset: Dataset) -> sp.csr_matrix:
        cfg = self.config
        baskets = baskets_from_dataset(dataset, cfg.event_types, by=cfg.basket)
        rules = mine_rules(
            baskets,
            cfg.min_support,
            cfg.min_confidence,
            min_count=cfg.min_count,
            n_items=dataset.n_items,
        )
        if rules.empty:
            logger.warning(
                "%s: no rules from %d %s events; scores fall back to popularity",
                self.name, len(baskets[0]), "/".join(cfg.event_types),
            )  # fmt: skip
        return rules_matrix(rules, dataset.n_items, cfg.metric)
