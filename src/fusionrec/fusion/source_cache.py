"""Reuse of fitted candidate sources across the fused models of one search.

A pipeline search fits many fused models on the same validation folds, and each of them fits its
sources twice (on the data before its label window, then on all its training data). A source fit
with the same model, parameters and events is the same model (every model is seeded), so inside
`reuse_fitted_sources` the first fit is kept and handed to the next pipeline that asks for it.
Fitted sources are only read after fitting, never changed, so sharing them is safe. Outside the
context nothing is kept.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numpy as np
import scipy.sparse as sp

from fusionrec.data.dataset import Dataset
from fusionrec.models.base import Recommender
from fusionrec.models.registry import create_model

log = logging.getLogger(__name__)


class FittedSources:
    """Fitted models keyed by (model, parameters, events), least recently used dropped first once
    their arrays pass ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._models: OrderedDict[str, tuple[Recommender, int]] = OrderedDict()
        self._bytes = 0

    def holds(self, name: str, params: dict[str, Any], events: str) -> bool:
        """Whether ``name`` with ``params`` is kept fitted on the events of `fingerprint` ``events``."""
        return _key(name, params, events) in self._models

    def get_or_fit(
        self, name: str, params: dict[str, Any], dataset: Dataset, fit: Callable[[], Recommender]
    ) -> Recommender:
        key = _key(name, params, fingerprint(dataset))
        if key in self._models:
            self._models.move_to_end(key)
            log.debug("%s: reused the fit on the same %d events", name, dataset.n_events)
            return self._models[key][0]
        model = fit()
        size = array_bytes(model)
        if size <= self.max_bytes:
            self._models[key] = (model, size)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (_, dropped) = self._models.popitem(last=False)
                self._bytes -= dropped
        return model


_ACTIVE: ContextVar[FittedSources | None] = ContextVar("fusionrec_fitted_sources", default=None)


MIN_CACHE_BYTES = 256 * 2**20
CACHE_SHARE_OF_FREE_MEMORY = 0.3


def default_cache_bytes() -> int:
    """A share of the memory free now: a search's fused folds need the source fits of about twice
    as many training cuts as it has folds (each fold's own, and its label windows'), and a cap too
    small for them (EASE on 12k items is 0.6 GB a fit) makes each fold refit what the last one
    dropped."""
    try:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # not every platform reports it
        return 2 * 2**30
    return max(MIN_CACHE_BYTES, int(free * CACHE_SHARE_OF_FREE_MEMORY))


@contextmanager
def reuse_fitted_sources(max_bytes: int | None = None) -> Iterator[FittedSources]:
    """Within the block, fused models share the sources they fit (see the module docstring), up
    to ``max_bytes`` of their arrays (`default_cache_bytes` when None). Inside another such block
    the outer one's fits, under its cap, are shared: a search's folds are the label windows of the
    final fit on all its data, so that fit finds most of its sources already fitted."""
    outer = _ACTIVE.get()
    if outer is not None:
        yield outer
        return
    cache = FittedSources(default_cache_bytes() if max_bytes is None else max_bytes)
    token = _ACTIVE.set(cache)
    try:
        yield cache
    finally:
        _ACTIVE.reset(token)


def fit_source(name: str, params: dict[str, Any], dataset: Dataset) -> Recommender:
    """Model ``name`` fit on ``dataset``, or the same model already fit on the same events inside
    `reuse_fitted_sources`."""

    def fit() -> Recommender:
        return create_model(name, **params).fit(dataset)

    cache = _ACTIVE.get()
    return fit() if cache is None else cache.get_or_fit(name, params, dataset, fit)


def is_fitted(name: str, params: dict[str, Any], events: str) -> bool:
    """Whether `fit_source` would hand back a kept fit on the events of `fingerprint` ``events``
    instead of fitting (never outside `reuse_fitted_sources`)."""
    cache = _ACTIVE.get()
    return cache is not None and cache.holds(name, params, events)


def _key(name: str, params: dict[str, Any], events: str) -> str:
    return f"{name}:{json.dumps(params, sort_keys=True, default=str)}:{events}"


def fingerprint(dataset: Dataset) -> str:
    """Which events (input rows) and vocabularies a dataset holds, as a short digest."""
    if "fingerprint" not in dataset._cache:
        digest = hashlib.blake2b(digest_size=16)
        digest.update(
            np.asarray([dataset.n_users, dataset.n_items, dataset.n_events], dtype=np.int64).tobytes()
        )
        digest.update(np.ascontiguousarray(dataset.source_row).tobytes())
        digest.update(str(id(dataset.users)).encode())  # one vocabulary object per loaded dataset
        dataset._cache["fingerprint"] = digest.hexdigest()
    return dataset._cache["fingerprint"]


def array_bytes(model: Recommender) -> int:
    """The bytes of the numpy arrays and sparse matrices a model holds (one level deep)."""
    total = 0
    for value in vars(model).values():
        values = value.values() if isinstance(value, dict) else (value,)
        for item in values:
            if isinstance(item, np.ndarray):
                total += item.nbytes
            elif sp.issparse(item):
                total += sum(
                    getattr(item, part).nbytes
                    for part in ("data", "indices", "indptr")
                    if hasattr(item, part)
                )
    return total
