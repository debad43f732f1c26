"""The recommendation models behind one contract, `base.Recommender` (fit, score, recommend,
save/load, declared capabilities such as `needs_event_log` or `item_to_item`).

`registry.create_model(name, **params)` / `model_class(name)` / `available_models()` name every
model, this package's (popularity, kNN, RP3beta, EASE, SVD, iALS/BPR, content, sequential, graph,
neural, association, TIFU-kNN, ...) and those the fusion and engine packages register.
"""
