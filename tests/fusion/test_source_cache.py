"""Fitted sources shared inside a search: one fit per (model, parameters, events), within a cap."""

from __future__ import annotations

import numpy as np

from fusionrec.data.dataset import Dataset
from fusionrec.fusion import source_cache
from fusionrec.fusion.source_cache import (
    CACHE_SHARE_OF_FREE_MEMORY,
    MIN_CACHE_BYTES,
    array_bytes,
    default_cache_bytes,
    fit_source,
    reuse_fitted_sources,
)


def test_a_source_is_fit_once_per_events_inside_the_block(shop: Dataset) -> None:
    earlier = shop.select(np.arange(shop.n_events) < shop.n_events // 2)
    with reuse_fitted_sources() as cache:
        first = fit_source("item_knn", {"neighbours": 10}, shop)
        assert fit_source("item_knn", {"neighbours": 10}, shop) is first
        assert fit_source("item_knn", {"neighbours": 20}, shop) is not first
        assert fit_source("item_knn", {"neighbours": 10}, earlier) is not first
        assert cache.get_or_fit("item_knn", {"neighbours": 10}, shop, lambda: None) is first  # type: ignore[arg-type,return-value]
    assert fit_source("item_knn", {"neighbours": 10}, shop) is not first  # nothing kept outside


def test_the_cap_drops_the_least_recently_used_fit(shop: Dataset) -> None:
    size = array_bytes(fit_source("item_knn", {"neighbours": 10}, shop))
    with reuse_fitted_sources(max_bytes=size):
        first = fit_source("item_knn", {"neighbours": 10}, shop)
        assert fit_source("item_knn", {"neighbours": 10}, shop) is first
        fit_source("most_popular", {}, shop)  # one more array over the cap pushes `first` out
        assert fit_source("item_knn", {"neighbours": 10}, shop) is not first


def test_the_default_cap_is_a_share_of_free_memory_with_a_floor(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    page = 4096
    for free, expected in (
        (10 * 2**30, int(10 * 2**30 * CACHE_SHARE_OF_FREE_MEMORY)),
        (2**20, MIN_CACHE_BYTES),
    ):
        monkeypatch.setattr(
            source_cache.os,
            "sysconf",
            lambda name, free=free: page if name == "SC_PAGE_SIZE" else free // page,
        )
        assert default_cache_bytes() == expected
