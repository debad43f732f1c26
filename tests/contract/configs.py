"""Fast hyperparameters per registered model for the contract suite.

Add one entry per model: (params, personalised). ``personalised`` models must pass the
known-answer test (recommend a user's own cluster); non-personalised ones (popularity) skip it.
Models whose optional dependency is missing fail in CI, where every extra is installed.
"""

from __future__ import annotations

CONTRACT_MODELS: dict[str, tuple[dict[str, object], bool]] = {
    "most_popular": ({}, False),
}
