"""Ranking features, the same code offline (ranker training, evaluation) and in the serving path.

A `FeatureContext` is built once from the training `Dataset` (item popularity windows, item and
user profiles, user x item interaction matrices, the co-visitation graph) and saved with the
pipeline as plain arrays. `FeatureContext.features` then turns a `Candidates` table into a
``float32[n_candidates, n_features]`` matrix with vectorised gathers: no loop per user or event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import MISSING, dataclass, field, fields
from functools import cached_property
from typing import Any

import numpy as np
import scipy.sparse as sp

from fusionrec.data.dataset import SECONDS_PER_DAY, Dataset
from fusionrec.data.item_vectors import normalised_matrix, vector_names
from fusionrec.data.user_attributes import AttributeEncoder, SegmentLift, dataset_codes
from fusionrec.fusion.candidates import Candidates
from fusionrec.fusion.request_context import context_feature_names, context_segments
from fusionrec.mining.neighbours import prune_rows

POPULARITY_WINDOWS = (1, 7, 30)  # days before the end of the training data
PRICE_TREND_DAYS = 7  # recent prices (a promotion, a price rise) against the item's usual price
VIEW_TYPES = ("view", "click")
CART_TYPES = ("add_to_cart",)
BUY_TYPES = ("purchase",)

ITEM_FEATURES = (
    "pop_all",
    *(f"pop_{d}d" for d in POPULARITY_WINDOWS),
    "item_age_days",
    "price",
    "price_trend",
    "category",
    "item_repeat_rate",
    "item_events_per_user",
)
USER_FEATURES = (
    "user_events",
    "user_items",
    "user_recency_days",
    "user_price_mean",
    "user_repeat_share",
    "user_popularity",
)
PAIR_FEATURES = (
    "category_affinity",
    "price_ratio",
    "viewed",
    "carted",
    "bought",
    "days_since_interaction",
    "covisit_recent",
    "covisit_last",
    "same_category_as_last",
    "pair_events",
    "interval_days",
    "due_ratio",
    "popularity_gap",
)
# Present only when the catalogue has item vectors: the cosine between the candidate's vectors and
# the recency-weighted mean of the vectors of the user's recent items (NaN where either has none).
VECTOR_FEATURES = ("vector_similarity",)
# User-attribute features, present only when the training users have attributes: per attribute
# key its value code (a LightGBM categorical) and the candidate's log lift within the user's
# segment of that key, then the lifts' mean (the `popular_segment` model's score less log g_i).
ATTRIBUTE_CODE_PREFIX = "user_attr_"
SEGMENT_LIFT_PREFIX = "segment_lift_"
SEGMENT_LIFT = "segment_lift"
CATEGORICAL_PREFIXES = (ATTRIBUTE_CODE_PREFIX,)  # features the tree rankers treat as categories


def attribute_feature_names(attributes: Sequence[str]) -> list[str]:
    """The names of the attribute features for these attribute keys (none for no keys)."""
    if not attributes:
        return []
    keys = [_feature_key(a) for a in attributes]
    return [
        *(ATTRIBUTE_CODE_PREFIX + k for k in keys),
        *(SEGMENT_LIFT_PREFIX + k for k in keys),
        SEGMENT_LIFT,
    ]


def is_attribute_feature(name: str) -> bool:
    """Whether ``name`` is one of the data-dependent user-attribute features."""
    return name == SEGMENT_LIFT or name.startswith((ATTRIBUTE_CODE_PREFIX, SEGMENT_LIFT_PREFIX))


def _feature_key(attribute: str) -> str:
    """An attribute key as a feature-name part: LightGBM refuses JSON punctuation in names."""
    return "".join(c if c.isalnum() or c == "_" else "_" for c in attribute)


@dataclass
class FeatureContext:
    """Everything the features need, learned once from the training data (arrays only)."""

    end: np.ndarray  # int64[1]: newest training timestamp
    item_pop: np.ndarray  # float32[n_items, 1 + len(windows)]: distinct users all-time, events per window
    item_age_days: np.ndarray  # float32[n_items]; NaN when never seen
    item_price: np.ndarray  # float32[n_items]; NaN when unknown
    # float32[n_items]: mean event price in the last PRICE_TREND_DAYS over the mean of all the
    # item's event prices (below 1: on offer now); NaN without a recent priced event
    item_price_trend: np.ndarray
    item_category: np.ndarray  # int32[n_items]; -1 when unknown
    user_stats: np.ndarray  # float32[n_users, 4]: events, distinct items, recency days, mean price
    user_category: sp.csr_matrix  # users x categories: share of the user's events
    # float32[n_users]: mean log(1 + users) of the user's items, how mainstream their taste is; NaN
    # for a user without items
    user_popularity: np.ndarray
    viewed: sp.csr_matrix  # users x items: counts per event group
    carted: sp.csr_matrix
    bought: sp.csr_matrix
    last_seen: sp.csr_matrix  # users x items: 1 + days since the newest interaction of the pair
    first_seen: sp.csr_matrix  # users x items: 1 + days since the oldest interaction of the pair
    pair_events: sp.csr_matrix  # users x items: events of the pair, any type
    recent: sp.csr_matrix  # users x items: the last R items, weight 1 for the newest, then 1/2, 1/3...
    last_item: np.ndarray  # int32[n_users]; -1 = none
    covisit: sp.csr_matrix  # items x items: pairs a few positions apart in a user's sequence, top per item
    # float32[n_items, d]: the items' vectors, centred and normalised (`normalised_matrix`); zero
    # rows where absent, d = 0 when the catalogue has none (then no vector feature at all)
    item_vectors: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.float32))
    # User attributes (all empty when the training users have none; a context saved before they
    # existed loads with none). Segment row of attribute a, code c: segment_offsets[a] + c.
    attribute_names: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=str))  # unicode[A]
    user_attribute_codes: np.ndarray = field(
        default_factory=lambda: np.zeros((0, 0), dtype=np.int32)
    )  # int32[n_users, A]; -1 = missing
    segment_offsets: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    segment_base: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    # segment rows x items: log lift above segment_base (`fusionrec.data.user_attributes.SegmentLift`)
    segment_lift: sp.csr_matrix = field(default_factory=lambda: sp.csr_matrix((0, 0), dtype=np.float32))
    # Request context (`fusion.request_context`): the device / channel columns whose values take
    # different items, their vocabularies (`AttributeEncoder` arrays), and each item's lift per
    # value (segment row offsets[a] + code). Empty when the events show no such difference.
    context_names: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=str))  # unicode[C]
    context_sizes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    context_values: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=str))
    context_offsets: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    context_base: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    context_lift: sp.csr_matrix = field(default_factory=lambda: sp.csr_matrix((0, 0), dtype=np.float32))

    # --- construction ------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        dataset: Dataset,
        *,
        recent_items: int = 5,
        covisit_window: int = 3,
        covisit_neighbours: int = 50,
        attributes: AttributeEncoder | None = None,
        contexts: AttributeEncoder | None = None,
    ) -> FeatureContext:
        """From the training data. ``attributes``: the user-attribute vocabulary, fitted once on
        all the training users (so that the label-window contexts code values as the final one
        does); None or empty: no attribute features. ``contexts``: the request-context columns and
        vocabularies (`request_context.fit_encoder`, fitted once likewise); None or empty: none."""
        n_users, n_items = dataset.n_users, dataset.n_items
        ts = dataset.timestamp
        end = int(ts.max()) if len(ts) else 0
        pops = [dataset.item_popularity()]
        for days in POPULARITY_WINDOWS:
            window = ts >= end - days * SECONDS_PER_DAY
            pops.append(np.bincount(dataset.item_idx[window], minlength=n_items).astype(np.float32))
        first = np.full(n_items, np.iinfo(np.int64).max, dtype=np.int64)
        np.minimum.at(first, dataset.item_idx, ts)
        age = np.where(first == np.iinfo(np.int64).max, np.nan, (end - first) / SECONDS_PER_DAY)

        category = _item_categories(dataset)
        event_price = _mean_event_price(dataset)
        price = _item_prices(dataset, event_price)
        n_categories = int(category.max()) + 1 if len(category) and category.max() >= 0 else 0

        events = np.bincount(dataset.user_idx, minlength=n_users).astype(np.float32)
        distinct = np.diff(dataset.matrix(binary=True).indptr).astype(np.float32)
        last = np.full(n_users, -1, dtype=np.int64)
        np.maximum.at(last, dataset.user_idx, ts)
        recency = np.where(last < 0, np.nan, (end - last) / SECONDS_PER_DAY)
        item_price_of_event = price[dataset.item_idx]
        known_price = ~np.isnan(item_price_of_event)
        price_sum = np.bincount(
            dataset.user_idx[known_price], weights=item_price_of_event[known_price], minlength=n_users
        )
        price_n = np.bincount(dataset.user_idx[known_price], minlength=n_users)
        with np.errstate(invalid="ignore", divide="ignore"):
            price_mean = np.where(price_n > 0, price_sum / np.maximum(price_n, 1), np.nan)
        user_stats = np.stack([events, distinct, recency, price_mean], axis=1).astype(np.float32)
        log_popularity = np.log1p(pops[0]).astype(np.float32)
        with np.errstate(invalid="ignore", divide="ignore"):
            user_popularity = (dataset.matrix(binary=True) @ log_popularity) / distinct

        has_category = category[dataset.item_idx] >= 0
        user_category = sp.csr_matrix(
            (
                np.ones(int(has_category.sum()), dtype=np.float32),
                (dataset.user_idx[has_category], category[dataset.item_idx[has_category]]),
            ),
            shape=(n_users, max(n_categories, 1)),
        )
        user_category.sum_duplicates()
        totals = np.asarray(user_category.sum(axis=1)).ravel()
        user_category = sp.diags(1.0 / np.maximum(totals, 1.0)).astype(np.float32) @ user_category

        def counts(mask: np.ndarray) -> sp.csr_matrix:
            """users x items: how many of the events under ``mask`` each pair has."""
            matrix = sp.csr_matrix(
                (
                    np.ones(int(mask.sum()), dtype=np.float32),
                    (dataset.user_idx[mask], dataset.item_idx[mask]),
                ),
                shape=(n_users, n_items),
            )
            matrix.sum_duplicates()
            return matrix

        # Days since the newest interaction, plus one so that a stored value is never a sparse zero.
        last_seen = _min_pairs(
            dataset.user_idx, dataset.item_idx, (end - ts) / SECONDS_PER_DAY + 1.0, (n_users, n_items)
        )
        first_seen = _min_pairs(
            dataset.user_idx, dataset.item_idx, -((end - ts) / SECONDS_PER_DAY + 1.0), (n_users, n_items)
        )
        first_seen.data = -first_seen.data  # the largest age: min of the negated ages

        indptr, sequence = dataset.sequences()
        recent, last_item = _recent_matrix(indptr, sequence, n_items, recent_items)
        covisit = _sequence_neighbour_counts(indptr, sequence, n_items, covisit_window, covisit_neighbours)
        attribute_parts: dict[str, Any] = {}
        if attributes is not None and attributes.n_attributes:
            codes = dataset_codes(dataset.user_features, attributes)
            segments = SegmentLift.build(codes, dataset.matrix(binary=True), attributes.sizes())
            attribute_parts = {
                "attribute_names": np.asarray(attributes.names, dtype=str),
                "user_attribute_codes": codes,
                "segment_offsets": segments.offsets,
                "segment_base": segments.base,
                "segment_lift": segments.lift,
            }
        if contexts is not None and contexts.n_attributes:
            segments = context_segments(dataset, contexts)
            attribute_parts.update(
                {
                    **contexts.to_arrays("context_"),
                    "context_offsets": segments.offsets,
                    "context_base": segments.base,
                    "context_lift": segments.lift,
                }
            )
        return cls(
            end=np.array([end], dtype=np.int64),
            item_pop=np.stack(pops, axis=1).astype(np.float32),
            item_age_days=age.astype(np.float32),
            item_price=price,
            item_price_trend=_price_trend(dataset, end - PRICE_TREND_DAYS * SECONDS_PER_DAY, event_price),
            item_category=category,
            user_stats=user_stats,
            user_category=user_category.tocsr(),
            user_popularity=user_popularity.astype(np.float32),
            viewed=counts(dataset.event_mask(*VIEW_TYPES)),
            carted=counts(dataset.event_mask(*CART_TYPES)),
            bought=counts(dataset.event_mask(*BUY_TYPES)),
            last_seen=last_seen,
            first_seen=first_seen,
            pair_events=counts(np.ones(dataset.n_events, dtype=bool)),
            recent=recent,
            last_item=last_item,
            covisit=covisit,
            item_vectors=normalised_matrix(dataset)
            if vector_names(dataset)
            else np.zeros((n_items, 0), np.float32),
            **attribute_parts,
        )

    # --- persistence -------------------------------------------------------------------------

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Flat arrays for ``np.savez`` (sparse matrices as their CSR parts)."""
        out: dict[str, np.ndarray] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if sp.issparse(value):
                csr = sp.csr_matrix(value)
                out.update(
                    {
                        f"{f.name}__data": csr.data,
                        f"{f.name}__indices": csr.indices,
                        f"{f.name}__indptr": csr.indptr,
                        f"{f.name}__shape": np.asarray(csr.shape),
                    }
                )
            else:
                out[f.name] = value
        return out

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> FeatureContext:
        """The context `to_arrays` wrote; a ``ValueError`` names the parts an older save lacks."""
        missing = [
            f.name
            for f in fields(cls)
            if f.name not in arrays
            and f"{f.name}__shape" not in arrays
            and f.default is MISSING
            and f.default_factory is MISSING
        ]
        if missing:
            raise ValueError(
                f"feature context lacks {missing}: it was saved by an older fusionrec; retrain the model"
            )
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in arrays and f"{f.name}__shape" not in arrays:
                continue  # an optional part an older save lacks: its default
            if f"{f.name}__shape" in arrays:
                values[f.name] = sp.csr_matrix(
                    (arrays[f"{f.name}__data"], arrays[f"{f.name}__indices"], arrays[f"{f.name}__indptr"]),
                    shape=tuple(int(x) for x in arrays[f"{f.name}__shape"]),
                )
            else:
                values[f.name] = arrays[f.name]
        return cls(**values)

    # --- features ----------------------------------------------------------------------------

    @cached_property
    def _count_means(self) -> tuple[np.ndarray, np.ndarray]:
        """Means of the item popularity columns and of user events / items (relative features).

        Computed once per context: over the whole catalogue they cost milliseconds, far more
        than one user's features."""
        return _positive_mean(self.item_pop), _positive_mean(self.user_stats[:, :2])

    @cached_property
    def _item_repeat_stats(self) -> np.ndarray:
        """float32[n_items, 2]: the share of an item's users with two or more events (a staple is
        bought again, a one-off is not) and its events per user; NaN for items nobody had."""
        pairs = self.pair_events.tocsr()
        n_items = pairs.shape[1]
        users = np.bincount(pairs.indices, minlength=n_items).astype(np.float64)
        repeaters = np.bincount(pairs.indices[pairs.data >= 2], minlength=n_items)
        events = np.bincount(pairs.indices, weights=pairs.data, minlength=n_items)
        with np.errstate(invalid="ignore", divide="ignore"):
            stats = np.column_stack([repeaters / users, events / users])
        return stats.astype(np.float32)

    @property
    def has_vectors(self) -> bool:
        """Whether the catalogue had item vectors (and the features include `VECTOR_FEATURES`)."""
        return self.item_vectors.shape[1] > 0

    @staticmethod
    def feature_names(sources: Sequence[str], *, vectors: bool = False) -> list[str]:
        """The feature columns for ``sources``; ``vectors``: with `VECTOR_FEATURES` (`has_vectors`).
        A context's `attribute_features` come after them."""
        return [
            *(f"{s}_score" for s in sources),
            *(f"{s}_rank" for s in sources),
            "n_sources",
            *ITEM_FEATURES,
            *USER_FEATURES,
            *PAIR_FEATURES,
            *(VECTOR_FEATURES if vectors else ()),
        ]

    @cached_property
    def context_encoder(self) -> AttributeEncoder:
        """The request-context columns and their values (empty: no context features); built once
        per context, as every scored request with a device or channel reads it."""
        return AttributeEncoder.from_arrays(
            {
                "context_names": self.context_names,
                "context_sizes": self.context_sizes,
                "context_values": self.context_values,
            },
            "context_",
        )

    @property
    def context_features(self) -> list[str]:
        """This context's request-context feature names (empty when devices and channels did not
        differ in the items taken)."""
        return context_feature_names([str(c) for c in self.context_names])

    @property
    def attribute_features(self) -> list[str]:
        """This context's user-attribute feature names (empty when the users had no attributes)."""
        return attribute_feature_names([str(a) for a in self.attribute_names])

    def features(
        self,
        users: np.ndarray,
        candidates: Candidates,
        histories: Sequence[np.ndarray] | None = None,
        *,
        relative: bool = False,
        contexts: np.ndarray | None = None,
    ) -> np.ndarray:
        """``float32[len(candidates), n_features]`` in the order of `feature_names`, then
        `attribute_features`, then `context_features`.

        ``users`` are the training user indices of the candidate rows (-1 for visitors unknown
        to training); ``histories`` (live item sequences, oldest first) replace the stored recent
        items for the session features, as in serving. ``relative``: source scores divided by
        the source's best score among the row's candidates, and the count features (item
        popularity, user events and items) divided by their mean over the catalogue / users.
        ``contexts``: ``int32[len(users), n_context_columns]``, where each row's list is shown
        (`request_context`; -1 or None: unknown).
        """
        users = np.asarray(users, dtype=np.int64)
        n_users = self.user_stats.shape[0]
        user = users[candidates.row]
        known = (user >= 0) & (user < n_users)
        safe_user = np.where(known, user, 0)
        item = candidates.item.astype(np.int64)
        n = len(item)

        proposed = candidates.proposed()
        item_pop = self.item_pop[item]
        user_block = self.user_stats[safe_user].copy()
        scores = candidates.scores
        if relative:
            item_means, user_means = self._count_means
            item_pop = item_pop / item_means
            user_block[:, :2] /= user_means
            scores = scores / _row_best(candidates)
        item_block = np.column_stack(
            [
                item_pop,
                self.item_age_days[item],
                self.item_price[item],
                self.item_price_trend[item],
                self.item_category[item].astype(np.float32),
                self._item_repeat_stats[item],
            ]
        )
        # The share of the user's events that repeat an earlier item (how much they buy again).
        with np.errstate(invalid="ignore", divide="ignore"):
            repeat_share = 1.0 - self.user_stats[safe_user, 1] / self.user_stats[safe_user, 0]
        user_popularity = self.user_popularity[safe_user]
        user_block = np.column_stack([user_block, repeat_share, user_popularity])
        user_block[~known] = np.nan
        # How far the candidate's popularity sits from the user's usual (log scale, so it does
        # not move when every count grows by the same factor between training and serving).
        popularity_gap = np.log1p(self.item_pop[item, 0]) - user_block[:, -1]

        category = self.item_category[item]
        has_category = (category >= 0) & known
        affinity = np.zeros(n, dtype=np.float32)
        if has_category.any():
            affinity[has_category] = _gather(
                self.user_category, safe_user[has_category], category[has_category]
            )
        with np.errstate(invalid="ignore", divide="ignore"):
            price_ratio = self.item_price[item] / user_block[:, 3]

        def pair(matrix: sp.csr_matrix) -> np.ndarray:
            values = _gather(matrix, safe_user, item)
            values[~known] = 0.0
            return values

        seen_at = pair(self.last_seen)
        days_since = np.where(seen_at > 0, seen_at - 1.0, np.nan)
        # Repurchase rhythm: mean days between the pair's events, and how far into the next
        # interval the user is (1 = due now). NaN below two events.
        events = pair(self.pair_events)
        with np.errstate(invalid="ignore", divide="ignore"):
            interval = np.where(events >= 2, (pair(self.first_seen) - seen_at) / (events - 1.0), np.nan)
            due = np.where(interval > 0, days_since / interval, np.nan)

        if histories is None:
            recent_rows = self.recent[np.unique(safe_user)]
            row_of_user = np.searchsorted(np.unique(safe_user), safe_user)
            last = np.where(known, self.last_item[safe_user], -1)
        else:
            recent_rows, last_per_row = _recent_matrix_from_histories(histories, self.covisit.shape[0])
            row_of_user = candidates.row.astype(np.int64)
            last = last_per_row[candidates.row]
        covisit_recent = _product_gather(recent_rows, self.covisit, row_of_user, item)
        if histories is None:
            covisit_recent[~known] = 0.0
        has_last = last >= 0
        covisit_last = np.zeros(n, dtype=np.float32)
        same_category = np.zeros(n, dtype=np.float32)
        if has_last.any():
            covisit_last[has_last] = _gather(self.covisit, last[has_last], item[has_last])
            last_category = self.item_category[last[has_last]]
            same_category[has_last] = (last_category >= 0) & (last_category == category[has_last])

        pair_block = np.column_stack(
            [
                affinity,
                price_ratio,
                pair(self.viewed),
                pair(self.carted),
                pair(self.bought),
                days_since,
                covisit_recent,
                covisit_last,
                same_category,
                events,
                interval,
                due,
                popularity_gap,
            ]
        )
        blocks = [
            scores,
            candidates.ranks,
            proposed.sum(axis=1).astype(np.float32),
            item_block,
            user_block,
            pair_block,
        ]
        if self.has_vectors:
            similarity = self._vector_similarity(recent_rows, row_of_user, item)
            if histories is None:
                similarity[~known] = np.nan
            blocks.append(similarity[:, None])
        if len(self.attribute_names):
            blocks.append(self._attribute_block(safe_user, known, item))
        if len(self.context_names):
            codes = (
                np.asarray(contexts, dtype=np.int32)[candidates.row]
                if contexts is not None
                else np.full((n, len(self.context_names)), -1, dtype=np.int32)
            )
            blocks.append(
                _segment_lifts(self.context_offsets, self.context_base, self.context_lift, codes, item)
            )
        return np.column_stack(blocks).astype(np.float32)

    def _vector_similarity(
        self, recent_rows: sp.csr_matrix, row_of_user: np.ndarray, item: np.ndarray
    ) -> np.ndarray:
        """Cosine of each candidate's vectors with its row's recent-items profile (NaN: either has none)."""
        profiles = np.asarray(recent_rows @ self.item_vectors, dtype=np.float32)
        norms = np.linalg.norm(profiles, axis=1, keepdims=True)
        profiles = np.divide(profiles, norms, out=np.zeros_like(profiles), where=norms > 0)
        candidate = self.item_vectors[item]
        similarity = np.einsum("ij,ij->i", profiles[row_of_user], candidate)
        # Item rows are unit length or zero; no vector on either side is unknown, not "unlike".
        missing = (norms[row_of_user, 0] == 0) | ~candidate.any(axis=1)
        return np.where(missing, np.nan, similarity).astype(np.float32)

    def _attribute_block(self, user: np.ndarray, known: np.ndarray, item: np.ndarray) -> np.ndarray:
        """Per attribute the user's value code and the item's log lift in that segment, then the
        lifts' mean; NaN for unknown users (guests) and for a user's missing attributes."""
        codes = self.user_attribute_codes[user].astype(np.int64)
        codes[~known] = -1
        has = codes >= 0
        lifts = _segment_lifts(self.segment_offsets, self.segment_base, self.segment_lift, codes, item)
        with np.errstate(invalid="ignore"):
            total = np.where(has.any(axis=1), np.nansum(lifts, axis=1) / has.sum(axis=1), np.nan)
        return np.column_stack([np.where(has, codes, np.nan), lifts, total]).astype(np.float32)


# --- helpers ---------------------------------------------------------------------------------


def _segment_lifts(
    offsets: np.ndarray, base: np.ndarray, lift: sp.csr_matrix, codes: np.ndarray, item: np.ndarray
) -> np.ndarray:
    """``float32[len(item), n_columns]``: each row's item's log lift in its segment of each column
    (`SegmentLift`: row ``offsets[a] + code`` is ``base[row] + lift[row, item]``); NaN where the
    row's code is -1 (unknown)."""
    lifts = np.full(codes.shape, np.nan, dtype=np.float32)
    rows = offsets[:-1][None, :] + np.maximum(codes, 0)
    for a in range(codes.shape[1]):
        on = codes[:, a] >= 0
        if on.any():
            lifts[on, a] = base[rows[on, a]] + _gather(lift, rows[on, a], item[on])
    return lifts


def _positive_mean(values: np.ndarray) -> np.ndarray:
    """Column means of ``values`` (NaN ignored), with 1 where a mean is not positive."""
    with np.errstate(invalid="ignore"):
        means = np.nanmean(values, axis=0) if len(values) else np.ones(values.shape[1])
    return np.where(np.isfinite(means) & (means > 0), means, 1.0).astype(np.float32)


def _row_best(candidates: Candidates) -> np.ndarray:
    """``float32[n, n_sources]``: each source's highest score in the candidate's row; NaN where
    that is not positive (a ratio to it would flip or explode)."""
    n_sources = candidates.scores.shape[1]
    best = np.full((candidates.n_rows, n_sources), -np.inf, dtype=np.float32)
    filled = np.where(np.isnan(candidates.scores), -np.inf, candidates.scores)
    np.maximum.at(best, candidates.row, filled)
    best = np.where(best > 0, best, np.nan)
    return best[candidates.row]


_KEY_CACHE: dict[int, tuple[sp.csr_matrix, np.ndarray]] = {}


def _gather(matrix: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray, *, cache: bool = True) -> np.ndarray:
    """``matrix[rows[i], cols[i]]`` for every i, as float32 (absent entries are 0).

    One binary search over the matrix's sorted ``row * n_cols + col`` keys (cached per matrix):
    pure numpy, so a single user's few hundred candidates cost microseconds, not scipy's
    per-call indexing overhead.
    """
    if len(rows) == 0:
        return np.zeros(0, dtype=np.float32)
    cached = _KEY_CACHE.get(id(matrix)) if cache else None
    if cached is None or cached[0] is not matrix:
        if not matrix.has_sorted_indices:
            matrix.sort_indices()
        entry_rows = np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))
        keys = entry_rows * matrix.shape[1] + matrix.indices
        if cache:
            if len(_KEY_CACHE) > 64:  # bounded: contexts are few and long-lived
                _KEY_CACHE.clear()
            _KEY_CACHE[id(matrix)] = (matrix, keys)
    else:
        keys = cached[1]
    wanted = np.asarray(rows, dtype=np.int64) * matrix.shape[1] + np.asarray(cols, dtype=np.int64)
    position = np.searchsorted(keys, wanted)
    position = np.minimum(position, max(len(keys) - 1, 0))
    found = (keys[position] == wanted) if len(keys) else np.zeros(len(wanted), dtype=bool)
    out = np.zeros(len(wanted), dtype=np.float32)
    out[found] = matrix.data[position[found]]
    return out


def _product_gather(
    left: sp.csr_matrix, right: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray
) -> np.ndarray:
    """``(left @ right)[rows[i], cols[i]]`` for every i, as float32, without the product.

    The product of a request's few recent items with the co-visitation graph cost a sparse
    product, its conversion and a key table of its own per request; the candidates need a
    handful of entries of it. Each value sums ``left[r, j] * right[j, c]`` over the row's stored
    entries in their stored order, the order (and float32 arithmetic) of scipy's product, so the
    values are the same (absent entries add 0).
    """
    if len(rows) == 0:
        return np.zeros(0, dtype=np.float32)
    rows = np.asarray(rows, dtype=np.int64)
    counts = np.diff(left.indptr)[rows]
    owner = np.repeat(np.arange(len(rows)), counts)  # which (row, col) pair each term is for
    first = np.repeat(left.indptr[rows] - (np.cumsum(counts) - counts), counts)
    position = first + np.arange(len(owner))  # the term's entry of ``left``
    terms = left.data[position].astype(np.float32) * _gather(
        right, left.indices[position], np.asarray(cols, dtype=np.int64)[owner]
    )
    out = np.zeros(len(rows), dtype=np.float32)
    np.add.at(out, owner, terms)  # in order: each pair's terms are summed as the product sums them
    return out


def _min_pairs(
    rows: np.ndarray, cols: np.ndarray, values: np.ndarray, shape: tuple[int, int]
) -> sp.csr_matrix:
    """CSR holding, for each (row, col) pair, the smallest of its ``values`` (no summing of duplicates)."""
    key = rows.astype(np.int64) * shape[1] + cols
    order = np.lexsort((values, key))
    key, values = key[order], values[order]
    first = np.ones(len(key), dtype=bool)
    first[1:] = key[1:] != key[:-1]
    key = key[first]
    out = sp.csr_matrix(
        (values[first].astype(np.float32), (key // shape[1], key % shape[1])), shape=shape, dtype=np.float32
    )
    out.sort_indices()
    return out


def _item_categories(dataset: Dataset) -> np.ndarray:
    column = dataset.item_features.get("category") if len(dataset.item_features.columns) else None
    if column is None:
        return np.full(dataset.n_items, -1, dtype=np.int32)
    values = column.astype("string")
    codes, _ = values.factorize(use_na_sentinel=True)
    return np.asarray(codes, dtype=np.int32)


def _mean_event_price(dataset: Dataset, since: float | None = None) -> np.ndarray:
    """float64[n_items]: the mean price of each item's priced events (those at or after
    ``since`` when given); NaN for an item without one."""
    known = ~np.isnan(dataset.price)
    if since is not None:
        known &= dataset.timestamp >= since
    item = dataset.item_idx[known]
    sums = np.bincount(item, weights=dataset.price[known], minlength=dataset.n_items)
    counts = np.bincount(item, minlength=dataset.n_items)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def _item_prices(dataset: Dataset, event_price: np.ndarray) -> np.ndarray:
    """Catalogue price, else the item's mean event price (`_mean_event_price`), else NaN."""
    price = np.full(dataset.n_items, np.nan, dtype=np.float32)
    column = dataset.item_features.get("price") if len(dataset.item_features.columns) else None
    if column is not None:
        price = column.astype("float64").to_numpy(dtype=np.float64, na_value=np.nan).astype(np.float32)
    return np.where(np.isnan(price), event_price.astype(np.float32), price)


def _price_trend(dataset: Dataset, since: float, event_price: np.ndarray) -> np.ndarray:
    """Mean price of each item's events at or after ``since`` over ``event_price``, the mean of
    all its event prices; NaN where the item has no priced event since then."""
    with np.errstate(invalid="ignore", divide="ignore"):
        trend = _mean_event_price(dataset, since) / event_price
    return np.where(np.isfinite(trend), trend, np.nan).astype(np.float32)


def _recent_matrix(
    indptr: np.ndarray, sequence: np.ndarray, n_items: int, recent_items: int
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Each user's last ``recent_items`` events as a users x items matrix (1, 1/2, 1/3 ... from newest)."""
    n_users = len(indptr) - 1
    lengths = np.diff(indptr)
    user_of = np.repeat(np.arange(n_users), lengths)
    from_end = indptr[1:][user_of] - np.arange(len(sequence))  # 1 = newest
    keep = from_end <= recent_items
    rows, cols = user_of[keep], sequence[keep]
    weights = 1.0 / from_end[keep].astype(np.float32)
    # The CSR arrays straight from the sorted entries: a request's one recent row cost a COO
    # round trip before. An item at most twice in a row sums as scipy sums it (a + b); three
    # times or more, scipy's own sum decides the order.
    order = np.lexsort((cols, rows))
    starts = np.flatnonzero(
        np.r_[True, (rows[order][1:] != rows[order][:-1]) | (cols[order][1:] != cols[order][:-1])]
    )[: len(order)]
    if len(order) and np.diff(np.r_[starts, len(order)]).max() > 2:
        matrix = sp.csr_matrix((weights, (rows, cols)), shape=(n_users, n_items))
        matrix.sum_duplicates()
    else:
        offsets = np.zeros(n_users + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows[order][starts], minlength=n_users), out=offsets[1:])
        sums = np.add.reduceat(weights[order], starts) if len(order) else weights
        matrix = sp.csr_matrix((sums, cols[order][starts], offsets), shape=(n_users, n_items))
    last_item = np.full(n_users, -1, dtype=np.int32)
    has = lengths > 0
    last_item[has] = sequence[indptr[1:][has] - 1]
    return matrix.astype(np.float32), last_item


def _recent_matrix_from_histories(
    histories: Sequence[np.ndarray], n_items: int, recent_items: int = 5
) -> tuple[sp.csr_matrix, np.ndarray]:
    lengths = np.array([len(h) for h in histories], dtype=np.int64)
    indptr = np.zeros(len(histories) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    sequence = (
        np.concatenate([np.asarray(h, dtype=np.int32) for h in histories])
        if lengths.sum()
        else np.zeros(0, dtype=np.int32)
    )
    valid = (sequence >= 0) & (sequence < n_items)
    if not valid.all():
        raise ValueError(f"history item indices must be in [0, {n_items})")
    return _recent_matrix(indptr, sequence, n_items, recent_items)


def _sequence_neighbour_counts(
    indptr: np.ndarray, sequence: np.ndarray, n_items: int, window: int, neighbours: int
) -> sp.csr_matrix:
    """Items x items counts of pairs at most ``window`` positions apart in a user's sequence.

    The ``covisit_*`` features' graph: every event of a user's whole history counts once, whatever
    its type or the time between the two. (`fusionrec.mining.covisitation.covisitation_matrix`, the
    ``covisitation`` model's, is another measure: pairs within a time window of a session, weighted
    by event type, repeats merged.) Each row keeps its ``neighbours`` largest counts.
    """
    n_users = len(indptr) - 1
    user_of = np.repeat(np.arange(n_users), np.diff(indptr))
    rows, cols = [], []
    for offset in range(1, window + 1):  # a handful of vectorised passes, not a loop per event
        same_user = user_of[offset:] == user_of[:-offset]
        a, b = sequence[:-offset][same_user], sequence[offset:][same_user]
        distinct = a != b
        rows.extend([a[distinct], b[distinct]])
        cols.extend([b[distinct], a[distinct]])
    if not rows:
        return sp.csr_matrix((n_items, n_items), dtype=np.float32)
    row, col = np.concatenate(rows), np.concatenate(cols)
    matrix = sp.csr_matrix((np.ones(len(row), dtype=np.float32), (row, col)), shape=(n_items, n_items))
    matrix.sum_duplicates()
    return prune_rows(matrix, neighbours)
