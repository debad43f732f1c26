"""Model names (as used by `fusionrec evaluate --models` and pipeline files) -> classes.

Entries are dotted paths, imported on first use, so optional heavy dependencies (torch) are only
needed by the models that use them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from fusionrec.extras import missing_extra

if TYPE_CHECKING:
    from fusionrec.models.base import Recommender

# name -> "module:Class". Add one line per model.
MODEL_PATHS: dict[str, str] = {
    "most_popular": "fusionrec.models.popular:MostPopular",
    "gf_cf": "fusionrec.models.graph:GFCF",
    "cheby_cf": "fusionrec.models.cheby_cf:ChebyCF",
    "lightgcn": "fusionrec.models.graph:LightGCN",
    "neumf": "fusionrec.models.neural:NeuMF",
    "trending": "fusionrec.models.popular:Trending",
    "popular_in_category": "fusionrec.models.popular:PopularInCategory",
    "repeat_purchase": "fusionrec.models.repeat:RepeatPurchase",
    "tifu_knn": "fusionrec.models.tifu_knn:TIFUKNN",
    "item_knn": "fusionrec.models.knn:ItemKNN",
    "user_knn": "fusionrec.models.knn:UserKNN",
    "rp3beta": "fusionrec.models.graph_walk:RP3Beta",
    "ease": "fusionrec.models.ease:EASE",
    "pure_svd": "fusionrec.models.svd:PureSVD",
    "ials": "fusionrec.models.factorization:IALS",
    "bpr": "fusionrec.models.factorization:BPR",
    "spark_als": "fusionrec.engine.spark_als:SparkALS",
    "svd": "fusionrec.models.explicit:SVD",
    "svdpp": "fusionrec.models.explicit:SVDpp",
    "content_tfidf": "fusionrec.models.content:TfidfContentRecommender",
    "content_embedding": "fusionrec.models.content:SentenceEmbeddingRecommender",
    "covisitation": "fusionrec.models.association:CovisitationRecommender",
    "association_rules": "fusionrec.models.association:AssociationRulesRecommender",
    "sasrec": "fusionrec.models.sequential_sasrec:SASRec",
    "gru4rec": "fusionrec.models.sequential_gru:GRU4Rec",
    "session_knn": "fusionrec.models.session_knn:SessionKNN",
    "fusion": "fusionrec.fusion.pipeline:FusionRecommender",
    "stack": "fusionrec.fusion.pipeline:StackRecommender",
    "blend": "fusionrec.fusion.blend:BlendRecommender",
    "rrf": "fusionrec.fusion.blend:RRFRecommender",
}


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
