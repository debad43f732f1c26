"""What serving derives for each model version it loads, and keeps current while it is active:
purchases and baskets (rules, bought-together), item neighbours, popularity, trending, and the
precomputed lists of known users and of guests with one live item (scored in the background:
start-up does not wait for them). The `VersionRegistry` calls `prepare` when it loads a version
and `on_swap` when one becomes active.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from fusionrec.data.store import EventStore
from fusionrec.models.base import Recommender
from fusionrec.models.popular import trending_scores
from fusionrec.monitoring.metrics import ServiceMetrics
from fusionrec.serving import heap
from fusionrec.serving.cache import MemoryCache
from fusionrec.serving.registry import LoadedVersion
from fusionrec.serving.scored import session_candidates
from fusionrec.serving.segments import build_segment_fallback
from fusionrec.serving.settings import ServingSettings
from fusionrec.serving.similarity import Cooccurrence, ItemNeighbours, NeighbourLookup

logger = logging.getLogger(__name__)
# Extras key, present while the lists of the version active at start-up are being scored.
PRECOMPUTING = "precomputing"
PRECOMPUTING_GUESTS = "precomputing_guests"  # in a version's extras until its guests' lists are in


class VersionPreparation:
    """Derives and refreshes the serving extras of loaded versions (``LoadedVersion.extras``)."""

    def __init__(
        self,
        settings: ServingSettings,
        store: EventStore,
        on_writer: Callable[[Callable[[], Any]], Any],
        metrics: ServiceMetrics,
        shared_cache: MemoryCache,
        active: Callable[[], LoadedVersion | None],
    ) -> None:
        self.settings = settings
        self.store = store
        self.on_writer = on_writer  # the store is read on the service's writer thread
        self.metrics = metrics
        self.shared_cache = shared_cache  # popular lists, cleared when trending or the version changes
        self.active = active
        self.trending_frame = pd.DataFrame({"recent": [], "previous": []})
        self._swapped = False  # whether a version was active before (start-up is the first swap)

    def prepare(self, loaded: LoadedVersion) -> None:
        """Attach what serving derives for a version: neighbours, purchases, trending, popularity."""
        model = loaded.model.answering  # a wrapper's (auto's) chosen pipeline lists the neighbours
        purchases = self.on_writer(self.store.purchases).to_pandas()
        n_items = len(loaded.item_ids)
        item = pd.Series(purchases["item_id"].astype(str)).map(loaded.item_index)
        known = item.notna().to_numpy()
        purchases, item_idx = purchases[known], item[known].to_numpy(np.int64)
        users = purchases["user_id"].map(loaded.user_index)
        by_user = users.notna().to_numpy()
        loaded.extras["purchases"] = latest_purchases(
            users[by_user].to_numpy(np.int64),
            item_idx[by_user],
            purchases["ts"].to_numpy(np.float64)[by_user],
            shape=(len(loaded.user_index), n_items),
        )
        basket_codes, _ = pd.factorize(purchases["basket"])
        valid = basket_codes >= 0
        baskets = sp.csr_matrix(
            (np.ones(valid.sum(), dtype=np.float32), (basket_codes[valid], item_idx[valid])),
            shape=(int(basket_codes.max(initial=-1)) + 1, n_items),
        )
        bought_together = model.bought_together if model.lists_bought_together else None  # type: ignore[attr-defined]
        loaded.extras["bought_together"] = ItemNeighbours(bought_together, Cooccurrence(baskets))
        loaded.extras["neighbours"] = ItemNeighbours(_similar_items(model), Cooccurrence(model.seen_))
        popularity = np.asarray(model.popularity_, dtype=np.float64)
        loaded.extras["popularity"] = popularity / max(popularity.max(initial=0.0), 1.0)
        self._attach_trending(loaded)
        users = self.on_writer(self.store.users_arrow)
        loaded.extras["segments"] = build_segment_fallback(users, loaded.user_index, model.seen_)

    def _attach_trending(self, loaded: LoadedVersion) -> None:
        frame = self.trending_frame.reindex(loaded.item_ids)
        recent = frame["recent"].fillna(0.0).to_numpy()
        previous = frame["previous"].fillna(0.0).to_numpy()
        # The `trending` model's ranking; all-time popularity orders the items with no recent events.
        loaded.extras["trending"] = trending_scores(recent, previous) + 1e-6 * loaded.extras["popularity"]

    def refresh_trending(self) -> None:
        """Recount the items' recent and previous windows in the store; re-rank the active version's
        trending list (the service calls this every ``trending_refresh_s``)."""
        days = self.settings.trending_days
        table = self.on_writer(lambda: self.store.item_counts_in_windows(days))
        frame = table.to_pandas()
        self.trending_frame = frame.assign(item_id=frame["item_id"].astype(str)).set_index("item_id")
        active = self.active()
        if active is not None:
            self._attach_trending(active)
            segments = active.extras.get("segments")
            if segments is not None:  # users who signed up since: their attributes answer them
                users = self.on_writer(self.store.users_arrow)
                segments.refresh(users, active.user_index, active.model.answering.seen_)
        self.shared_cache.clear()

    def on_swap(self, loaded: LoadedVersion) -> None:
        """A version became active: metrics, caches, and its precomputed lists in the background."""
        self.metrics.set_active(loaded.version)
        self.shared_cache.clear()
        limit = self.settings.precompute_users
        swapped, self._swapped = self._swapped, True
        if (limit or self.settings.batch_lists) and "precomputed" not in loaded.extras:
            if not swapped:
                # At start-up, until the lists are in, known users are answered from the fallback
                # (flagged) unless `score_while_precomputing`: scoring them one by one would
                # compete with the batch. After a later swap they are scored on request, as the
                # version before answered them well and a fallback would be a step down.
                loaded.extras[PRECOMPUTING] = True
            threading.Thread(
                target=self._precompute, args=(loaded, limit), name="fusionrec-precompute", daemon=True
            ).start()
        else:
            self._settle()

    def _precompute(self, loaded: LoadedVersion, limit: int) -> None:
        from fusionrec.serving.precompute import from_batch_table, precompute, takes_guests

        label = self.settings.batch_lists
        model = loaded.model.answering  # a fused pipeline behind auto: its own candidates and sources
        try:
            if label is not None:  # lists a batch engine wrote: read them, score nobody here
                from fusionrec.engine.recommendations import read_all_recommendations

                table = self.on_writer(lambda: read_all_recommendations(self.store, label))
                loaded.extras["precomputed"] = from_batch_table(
                    table, loaded.user_index, loaded.item_index, label
                )
                return
            n_users = min(len(loaded.user_index), limit)
            if self.settings.precompute_guest_items and takes_guests(model):
                loaded.extras[PRECOMPUTING_GUESTS] = True
            loaded.extras["precomputed"] = precompute(model, n_users, self.settings.candidates)
        except Exception as error:  # the live path still answers every request
            logger.error("precomputing %s failed: %s: %s", loaded.version, type(error).__name__, error)
        finally:
            loaded.extras.pop(PRECOMPUTING, None)
        if PRECOMPUTING_GUESTS in loaded.extras:
            self._precompute_guests(loaded, model)
        self._settle()

    def _settle(self) -> None:
        """The version's serving state is complete: out of the collector's walks (`heap`)."""
        if self.settings.freeze_heap:
            heap.settle()

    def _precompute_guests(self, loaded: LoadedVersion, model: Recommender) -> None:
        """The one-item guests' lists (`precompute_guests`) of the most popular items (the
        version's popularity, from `prepare`), after the known users' (those are flagged while
        they wait; a guest is scored live meanwhile), with each item's live item-to-item
        candidates merged in as a request would merge them (`with_session`)."""
        from fusionrec.serving.precompute import precompute_guests, with_session

        try:
            popularity = loaded.extras["popularity"]
            items = np.argsort(-popularity, kind="stable")[: self.settings.precompute_guest_items]
            guests = precompute_guests(model, items, len(popularity), self.settings.candidates)
            neighbours, weight = loaded.extras.get("neighbours"), self.settings.realtime_weight
            if neighbours is not None and weight > 0:
                guests = with_session(guests, lambda item: session_candidates(neighbours, [item]), weight)
            loaded.extras["precomputed_guests"] = guests
        except Exception as error:  # guests are scored on request, as before
            logger.error(
                "precomputing %s's guests failed: %s: %s", loaded.version, type(error).__name__, error
            )
        finally:
            loaded.extras.pop(PRECOMPUTING_GUESTS, None)


def _similar_items(model: Recommender) -> NeighbourLookup | None:
    """`similar_items` of the model or, for a fused model, of its first item-to-item source."""
    sources = model.source_models.values() if model.combines_sources else ()  # type: ignore[attr-defined]
    for candidate in (model, *sources):
        if candidate.item_to_item:
            return candidate.similar_items  # type: ignore[attr-defined, no-any-return]
    return None


def latest_purchases(
    users: np.ndarray, items: np.ndarray, times: np.ndarray, shape: tuple[int, int]
) -> sp.csr_matrix:
    """User x item: the time of the latest purchase (unix seconds). A sparse matrix built from
    (user, item, time) triples sums repeats, which made an item bought twice look bought decades
    from now, so its repurchase window never passed."""
    frame = pd.DataFrame({"user": users, "item": items, "ts": times})
    latest = frame.groupby(["user", "item"], sort=False)["ts"].max()
    rows = latest.index.get_level_values("user").to_numpy(np.int64)
    cols = latest.index.get_level_values("item").to_numpy(np.int64)
    return sp.csr_matrix((latest.to_numpy(np.float64), (rows, cols)), shape=shape)
