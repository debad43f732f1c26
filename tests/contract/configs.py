"""Fast hyperparameters per registered model for the contract suite.

Add one entry per model: (params, personalised). ``personalised`` models must pass the
known-answer test (recommend a user's own cluster); non-personalised ones (popularity) skip it.
Models whose optional dependency is missing fail in CI, where every extra is installed.
"""

from __future__ import annotations

# Fused models: two cheap sources, a tiny ranker (tests/fusion holds the fusion-specific tests).
FUSION_SOURCES: dict[str, object] = {
    "sources": [
        {"model": "item_knn", "n": 10, "min_score": 0.0, "params": {"neighbours": 20}},
        {"model": "most_popular", "n": 10},
    ],
}
FUSION_CONTRACT: dict[str, object] = {
    **FUSION_SOURCES,
    "ranker": {"params": {"n_estimators": 20, "min_data_in_leaf": 5, "num_leaves": 7}},
}

CONTRACT_MODELS: dict[str, tuple[dict[str, object], bool]] = {
    "most_popular": ({}, False),
    "sasrec": ({"embedding_dim": 16, "epochs": 30, "learning_rate": 5e-3, "dropout": 0.1}, True),
    "gru4rec": (
        {"embedding_dim": 16, "hidden_dim": 16, "epochs": 60, "learning_rate": 5e-3, "dropout": 0.1},
        True,
    ),
    "hybrid": (
        {"embedding_dim": 16, "hidden_dim": 16, "epochs": 60, "learning_rate": 5e-3, "dropout": 0.1},
        True,
    ),
    "session_knn": ({"k": 10}, True),
    "gf_cf": ({"n_components": 4}, True),
    "cheby_cf": ({"n_components": 4}, True),
    "lightgcn": ({"embedding_dim": 16, "learning_rate": 0.05, "epochs": 30, "n_threads": 1}, True),
    "neumf": (
        {"embedding_dim": 8, "mlp_layers": [16, 8], "epochs": 30, "batch_size": 128, "n_threads": 1},
        True,
    ),
    "trending": ({"window_days": 1.0}, False),
    "popular_in_category": ({}, False),
    "popular_segment": ({}, False),
    "repeat_purchase": ({"half_life_days": 30.0}, False),
    "tifu_knn": ({"neighbours": 10, "groups": 3}, True),
    "item_knn": ({"neighbours": 20}, True),
    "user_knn": ({"neighbours": 20, "similarity": "jaccard"}, True),
    "rp3beta": ({"alpha": 1.0, "beta": 0.3, "neighbours": 20}, True),
    "ease": ({"l2": 10.0}, True),
    "pure_svd": ({"factors": 4}, True),
    "ials": ({"factors": 8, "iterations": 10, "regularization": 0.1, "num_threads": 1}, True),
    "bpr": ({"factors": 8, "iterations": 200, "learning_rate": 0.05}, True),
    "spark_als": ({"factors": 8, "iterations": 5, "regularization": 0.01, "blocks": 2}, True),
    "svd": ({"factors": 8, "epochs": 10}, False),
    "svdpp": ({"factors": 8, "epochs": 10}, False),
    # The contract data has no item features: content models can only fill by popularity there.
    "content_tfidf": ({}, False),
    "content_embedding": ({}, False),
    "content_vectors": ({}, False),
    "covisitation": ({}, True),
    "association_rules": ({"event_types": ["click"]}, True),
    "fusion": (FUSION_CONTRACT, True),
    "stack": (FUSION_CONTRACT, True),
    "blend": ({**FUSION_SOURCES, "trials": 8}, True),
    "rrf": ({**FUSION_SOURCES, "trials": 8}, True),
    # The automatic search over two cheap sources on one fold (tests/tuning holds its own tests).
    "auto": ({"folds": 1, "budget_seconds": 120.0, "models": ["item_knn", "most_popular"]}, True),
}
