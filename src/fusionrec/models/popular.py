"""Popularity recommenders: most popular (optionally time-decayed), trending, popular in category,
popular in the user's attribute segment.

Most popular is the reference baseline and everyone's fallback. Ties are broken by the base
class's rule: lower item index (lower item id) first.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import Field

from fusionrec.data.dataset import SECONDS_PER_DAY, Dataset
from fusionrec.data.schema import CATEGORY_SEPARATOR
from fusionrec.data.user_attributes import AttributeEncoder, SegmentLift, dataset_codes, dataset_encoder
from fusionrec.models.base import ModelConfig, Recommender


def _positive_events(dataset: Dataset) -> np.ndarray:
    """Mask of the events that count as interactions (positive signed weight)."""
    return dataset.weight > 0


def decayed_popularity(
    dataset: Dataset, *, weighted: bool, half_life_days: float | None, now: int | None = None
) -> np.ndarray:
    """Per-item popularity (float64[n_items]), each contribution decayed by its age.

    Unweighted: each (user, item) pair counts once, at the decay of its most recent event.
    Weighted: the sum of every event's signed weight times its decay, clipped at 0 per item.
    ``now`` (unix seconds) defaults to the newest event.
    """
    if dataset.n_events == 0:
        return np.zeros(dataset.n_items, dtype=np.float64)
    now = int(dataset.timestamp.max()) if now is None else now
    if half_life_days is None:
        decay = np.ones(dataset.n_events, dtype=np.float64)
    else:
        age_days = np.maximum(now - dataset.timestamp, 0) / SECONDS_PER_DAY
        decay = np.power(0.5, age_days / half_life_days)
    if weighted:
        totals = np.bincount(dataset.item_idx, weights=dataset.weight * decay, minlength=dataset.n_items)
        return np.clip(totals, 0.0, None)
    positive = _positive_events(dataset)
    users, items, decay = dataset.user_idx[positive], dataset.item_idx[positive], decay[positive]
    # The log is time-ordered: the last event of each (user, item) pair is its most recent one.
    pair = users.astype(np.int64) * dataset.n_items + items
    order = np.lexsort((np.arange(len(pair)), pair))
    last = np.ones(len(order), dtype=bool)
    last[:-1] = pair[order][1:] != pair[order][:-1]
    chosen = order[last]
    return np.bincount(items[chosen], weights=decay[chosen], minlength=dataset.n_items)


# --- most popular ----------------------------------------------------------------------------


class MostPopularConfig(ModelConfig):
    weighted: bool = False  # count distinct users (False) or sum event-type weights (True)
    half_life_days: float | None = Field(default=None, gt=0)  # decay each interaction by its age


class MostPopular(Recommender):
    """Ranks items by how many users interacted with them (ties: lower item id first).

    With ``half_life_days`` each interaction counts ``0.5 ** (age / half_life_days)``, its age
    measured from the newest event of the training data.
    """

    name = "most_popular"
    Config = MostPopularConfig
    config: MostPopularConfig

    def _fit(self, dataset: Dataset) -> None:
        if self.config.half_life_days is None:
            matrix = dataset.matrix(binary=not self.config.weighted)
            self.item_scores_ = np.asarray(matrix.sum(axis=0)).ravel().astype(np.float32)
        else:
            self.item_scores_ = decayed_popularity(
                dataset, weighted=self.config.weighted, half_life_days=self.config.half_life_days
            ).astype(np.float32)

    def _score_users(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.item_scores_, (len(users), len(self.item_scores_))).copy()


# --- trending --------------------------------------------------------------------------------


class TrendingConfig(ModelConfig):
    window_days: float = Field(default=7.0, gt=0)  # the recent window, compared with the one before
    half_life_days: float | None = Field(default=None, gt=0)  # decay inside both windows
    smoothing: float = Field(default=5.0, gt=0)  # prior count: damps growth of rarely seen items
    weighted: bool = False


def trending_scores(recent: np.ndarray, previous: np.ndarray, smoothing: float = 5.0) -> np.ndarray:
    """Growth ``(recent + s) / (previous + s)`` per item, ties broken by recent popularity (scaled so
    that it never overturns a growth difference). The `trending` model and the service's trending
    fallback both rank by it."""
    growth = (recent + smoothing) / (previous + smoothing)
    return growth + recent / (recent.max(initial=0.0) + 1.0) * 1e-3


class Trending(Recommender):
    """Items whose popularity grows: ``(recent + s) / (previous + s)``.

    ``recent`` is the (decayed) popularity in the last ``window_days`` of the training data,
    ``previous`` the popularity in the window before it, ``s`` the smoothing prior. Items tied
    on growth are ordered by recent popularity (a small secondary term), then by item id.
    """

    name = "trending"
    Config = TrendingConfig
    config: TrendingConfig
    needs_event_log = True  # events in the last two time windows

    def _fit(self, dataset: Dataset) -> None:
        cfg = self.config
        n = dataset.n_items
        if dataset.n_events == 0:
            self.item_scores_ = np.zeros(n, dtype=np.float32)
            return
        end = int(dataset.timestamp.max())
        window = int(cfg.window_days * SECONDS_PER_DAY)
        recent_mask = dataset.timestamp > end - window
        previous_mask = (dataset.timestamp > end - 2 * window) & ~recent_mask
        recent = decayed_popularity(
            dataset.select(recent_mask), weighted=cfg.weighted, half_life_days=cfg.half_life_days, now=end
        )
        previous = decayed_popularity(
            dataset.select(previous_mask),
            weighted=cfg.weighted,
            half_life_days=cfg.half_life_days,
            now=end - window,
        )
        self.recent_ = recent.astype(np.float32)
        self.item_scores_ = trending_scores(recent, previous, cfg.smoothing).astype(np.float32)

    def _score_users(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.item_scores_, (len(users), len(self.item_scores_))).copy()


# --- popular in category ---------------------------------------------------------------------


class PopularInCategoryConfig(ModelConfig):
    # Levels of a category path ("A > B > C") to keep: 1 = top level; None = the full path.
    category_level: int | None = Field(default=None, ge=1)
    # Weight of global popularity, so items outside the user's categories still rank (fallback).
    fallback_weight: float = Field(default=0.01, ge=0)


class PopularInCategory(Recommender):
    """Per user, popular items of the categories the user interacts with.

    ``score(u, i) = share(u, cat(i)) * pop(i) + fallback_weight * pop(i)``, where ``share`` is the
    fraction of the user's training items in that category and ``pop`` is popularity scaled to
    [0, 1]. Items without a category, and users without categorised items, fall back to global
    popularity.
    """

    name = "popular_in_category"
    Config = PopularInCategoryConfig
    config: PopularInCategoryConfig

    def _fit(self, dataset: Dataset) -> None:
        codes, n_categories = self._category_codes(dataset.item_features)
        self.item_category_ = codes  # int32, -1 = unknown
        popularity = self.popularity_.astype(np.float64)
        self.item_popularity_ = (popularity / max(popularity.max(), 1.0)).astype(np.float32)
        known = codes >= 0
        item_to_category = sp.csr_matrix(
            (np.ones(known.sum(), dtype=np.float32), (np.flatnonzero(known), codes[known])),
            shape=(dataset.n_items, max(n_categories, 1)),
        )
        counts = (self.seen_ @ item_to_category).tocsr()
        totals = np.asarray(counts.sum(axis=1)).ravel()
        self.user_category_share_ = (
            (sp.diags(1.0 / np.maximum(totals, 1.0)) @ counts).astype(np.float32).tocsr()
        )

    def _category_codes(self, features: pd.DataFrame) -> tuple[np.ndarray, int]:
        if "category" not in features.columns or len(features) == 0:
            return np.full(len(features), -1, dtype=np.int32), 0
        category = features["category"].astype("string")
        if self.config.category_level is not None:
            parts = category.str.split(CATEGORY_SEPARATOR, regex=False)
            category = parts.str[: self.config.category_level].str.join(CATEGORY_SEPARATOR)
        category = category.where(category.str.strip().str.len() > 0)
        codes, uniques = pd.factorize(category, sort=True, use_na_sentinel=True)
        return codes.astype(np.int32), len(uniques)

    def _score_users(self, users: np.ndarray) -> np.ndarray:
        shares = self.user_category_share_[users].toarray()
        codes = self.item_category_
        in_category = np.zeros((len(users), len(codes)), dtype=np.float32)
        known = codes >= 0
        in_category[:, known] = shares[:, codes[known]]
        return ((in_category + self.config.fallback_weight) * self.item_popularity_).astype(np.float32)


# --- popular in the user's segment -------------------------------------------------------------


class SegmentPopularConfig(ModelConfig):
    # Pseudo-users pulling a segment's item shares towards the global share (small segments say
    # little); None estimates one per attribute from the data (an uninformative one is ignored).
    shrinkage: float | None = Field(default=None, gt=0)
    min_users: int = Field(default=20, ge=1)  # rarer attribute values are pooled into one segment
    max_values: int = Field(default=32, ge=2)  # values kept per attribute (the rest pooled)
    attributes: list[str] | None = None  # the attribute keys to use (None: every usable one)


class SegmentPopular(Recommender):
    """Popular among the users who share the user's attribute values (age band, region, ...).

    ``score(u, i) = log g_i + mean_a log(s_{a,i} / g_i)``: the item's global share ``g_i`` times
    the geometric mean of its lifts in the user's attribute segments, each segment's share shrunk
    towards the global one, attributes that do not separate tastes left out
    (`fusionrec.data.user_attributes.SegmentLift`). A user without usable attributes gets global
    popularity, so the model backs off to `MostPopular` by itself. It answers users
    that have attributes but no history through `score_attributes` (the serving cold-start path
    and the cold-start benchmark use it), and known users from their own attributes, so it is
    also a candidate source of the fused pipeline.
    """

    name = "popular_segment"
    Config = SegmentPopularConfig
    config: SegmentPopularConfig

    def _fit(self, dataset: Dataset) -> None:
        cfg = self.config
        encoder = dataset_encoder(
            dataset.user_features, min_users=cfg.min_users, max_values=cfg.max_values, only=cfg.attributes
        )
        self._set_encoder(encoder)
        self.user_codes_ = dataset_codes(dataset.user_features, encoder)
        self._build_segments()

    def _set_encoder(self, encoder: AttributeEncoder) -> None:
        self.attribute_names_ = np.asarray(encoder.names, dtype=object)
        self.attribute_sizes_ = encoder.sizes()
        self.attribute_values_ = np.asarray([v for vs in encoder.values for v in vs], dtype=object)
        self._encoder = encoder

    def _build_segments(self) -> None:
        self._segments = SegmentLift.build(
            self.user_codes_, self.seen_, self.attribute_sizes_, self.config.shrinkage
        )

    def _load_state(self, state: dict[str, object]) -> None:
        super()._load_state(state)
        bounds = np.concatenate([[0], np.cumsum(self.attribute_sizes_)]).astype(np.int64)
        values = [str(v) for v in self.attribute_values_]
        self._encoder = AttributeEncoder(
            tuple(str(n) for n in self.attribute_names_),
            tuple(tuple(values[bounds[a] : bounds[a + 1]]) for a in range(len(self.attribute_names_))),
        )
        self._build_segments()

    @property
    def attribute_names(self) -> list[str]:
        """The attribute keys the segments are built on (empty: the data has no usable attributes)."""
        return list(self._encoder.names)

    def _score_users(self, users: np.ndarray) -> np.ndarray:
        return self._segments.scores(self.user_codes_[users])

    def score_attributes(self, attributes: Sequence[object]) -> np.ndarray:
        """``float32[len(attributes), n_items]`` for visitors described only by their attributes
        (JSON object strings or dicts; None for none): users with no history, or not in training."""
        self._check_fitted()
        return self._segments.scores(self._encoder.encode(list(attributes)))

    def has_segment(self, attributes: object) -> bool:
        """Whether ``attributes`` put a visitor in at least one of the model's segments."""
        return bool((self._encoder.encode([attributes]) >= 0).any()) if self._encoder.n_attributes else False
