"""Model names (as used by `fusionrec evaluate --models` and pipeline files) -> classes.

Entries are dotted paths, imported on first use, so optional heavy dependencies (torch) are only
needed by the models that use them. This package's models are listed here; the packages above it
(fusion, engine, tuning) add their own with `register_models` when they are imported. The registry imports
those packages (`REGISTERING_PACKAGES`) on its first lookup, so `model_class("fusion")` works from
anywhere while the models never import the layers above them.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from fusionrec.extras import missing_extra

if TYPE_CHECKING:
    from fusionrec.models.base import Recommender

# Packages whose import registers their models (each calls `register_models` in its __init__).
REGISTERING_PACKAGES = ("fusionrec.fusion", "fusionrec.engine", "fusionrec.tuning")


class _ModelPaths(Mapping[str, str]):
    """name -> "module:Class"; reading it first imports `REGISTERING_PACKAGES` (once)."""

    def __init__(self, paths: Mapping[str, str]) -> None:
        self._paths = dict(paths)
        self._loaded = False
        self._loading = False
        self._lock = threading.RLock()

    def _load(self) -> None:
        with self._lock:
            if self._loaded or self._loading:  # loading: a registering package reads it on import
                return
            self._loading = True
            try:
                for package in REGISTERING_PACKAGES:
                    importlib.import_module(package)
                self._loaded = True
            finally:
                self._loading = False

    def add(self, paths: Mapping[str, str]) -> None:
        with self._lock:
            for name, path in paths.items():
                if self._paths.get(name, path) != path:
                    raise ValueError(f"model {name!r} is already registered as {self._paths[name]!r}")
                self._paths[name] = path

    def __getitem__(self, name: str) -> str:
        self._load()
        return self._paths[name]

    def __iter__(self) -> Iterator[str]:
        self._load()
        return iter(list(self._paths))

    def __len__(self) -> int:
        self._load()
        return len(self._paths)


# name -> "module:Class". Add one line per model of this package.
MODEL_PATHS = _ModelPaths(
    {
        "most_popular": "fusionrec.models.popular:MostPopular",
        "gf_cf": "fusionrec.models.graph:GFCF",
        "cheby_cf": "fusionrec.models.cheby_cf:ChebyCF",
        "lightgcn": "fusionrec.models.graph:LightGCN",
        "neumf": "fusionrec.models.neural:NeuMF",
        "trending": "fusionrec.models.popular:Trending",
        "popular_in_category": "fusionrec.models.popular:PopularInCategory",
        "popular_segment": "fusionrec.models.popular:SegmentPopular",
        "repeat_purchase": "fusionrec.models.repeat:RepeatPurchase",
        "tifu_knn": "fusionrec.models.tifu_knn:TIFUKNN",
        "item_knn": "fusionrec.models.knn:ItemKNN",
        "user_knn": "fusionrec.models.knn:UserKNN",
        "rp3beta": "fusionrec.models.graph_walk:RP3Beta",
        "ease": "fusionrec.models.ease:EASE",
        "pure_svd": "fusionrec.models.svd:PureSVD",
        "ials": "fusionrec.models.factorization:IALS",
        "bpr": "fusionrec.models.factorization:BPR",
        "svd": "fusionrec.models.explicit:SVD",
        "svdpp": "fusionrec.models.explicit:SVDpp",
        "content_tfidf": "fusionrec.models.content:TfidfContentRecommender",
        "content_embedding": "fusionrec.models.content:SentenceEmbeddingRecommender",
        "content_vectors": "fusionrec.models.content:VectorContentRecommender",
        "covisitation": "fusionrec.models.association:CovisitationRecommender",
        "association_rules": "fusionrec.models.association:AssociationRulesRecommender",
        "sasrec": "fusionrec.models.sequential_sasrec:SASRec",
        "gru4rec": "fusionrec.models.sequential_gru:GRU4Rec",
        "hybrid": "fusionrec.models.sequential_hybrid:Hybrid",
        "session_knn": "fusionrec.models.session_knn:SessionKNN",
    }
)


def register_models(paths: Mapping[str, str]) -> None:
    """Add ``name -> "module:Class"`` entries: how a package above the models registers its own."""
    MODEL_PATHS.add(paths)


class UnknownModelError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def available_models() -> list[str]:
    return sorted(MODEL_PATHS)


def model_class(name: str) -> type[Recommender]:
    """The class registered under ``name``; a clear error lists the valid names."""
    if name not in MODEL_PATHS:
        raise UnknownModelError(f"unknown model {name!r}; available: {', '.join(available_models())}")
    module_name, class_name = MODEL_PATHS[name].split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        missing = missing_extra(error, f"model {name!r}")
        if missing is None:
            raise
        raise missing from error
    return getattr(module, class_name)


def create_model(name: str, **params: object) -> Recommender:
    """A fresh, unfitted model of kind ``name`` with hyperparameters ``params``."""
    return model_class(name)(**params)
