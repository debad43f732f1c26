"""Hyperparameter and fusion-weight search on validation data: `search.tune` (Optuna TPE or a
grid over dotted parameter paths), `search.score_on_fold`, `search.best_pipeline_toml`."""
