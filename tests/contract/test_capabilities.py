"""Each registered model's declared capabilities (`Recommender` class flags) against what it does.

Callers read the flags instead of probing methods or keeping lists of model names, so a flag
that is wrong silently takes a path the model cannot serve (or skips one it can). Each flag is
checked both ways: set where the class has the capability, and unset where it has not.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from contract.configs import CONTRACT_MODELS
from fusionrec.data.dataset import Dataset
from fusionrec.engine.dataset import engine_interactions
from fusionrec.engine.duckdb_engine import DuckDBEngine
from fusionrec.models.base import Recommender
from fusionrec.models.registry import available_models, create_model, model_class

MODELS = sorted(available_models())

# flag -> the method a class with it provides
METHOD_FLAGS = {
    "scores_candidates": "score_candidates",
    "item_to_item": "similar_items",
    "lists_bought_together": "bought_together",
    "predicts_ratings": "predict_ratings",
    "combines_sources": "source_models",
}


def shop_log(seed: int = 5) -> pd.DataFrame:
    """An event log whose compact form (one pseudo-event per user x item pair) loses information.

    Two clusters of 30 users over 10 items each. Every user has three sessions a day or more apart
    in the last four days, with repeats of items across sessions, purchases, carts, removals and
    explicit ratings (1-5 in ``quantity``), so order, sessions, baskets, time windows, event types
    and rating values all matter to a model that reads them.
    """
    rng = np.random.default_rng(seed)
    kinds = ["view", "view", "click", "add_to_cart", "remove_from_cart", "purchase", "rating"]
    start = 1_700_000_000
    rows = []
    for user in range(60):
        offset = 0 if user < 30 else 10
        pool = rng.choice(10, size=6, replace=False) + offset  # a small pool: items repeat
        for session, day in enumerate((0.3, 1.6, 2.9)):
            t = start + int((day + rng.uniform(0.0, 0.9)) * 86_400)
            for _ in range(int(rng.integers(3, 7))):
                kind = kinds[int(rng.integers(0, len(kinds)))]
                rating = float(rng.integers(1, 6)) if kind == "rating" else np.nan
                rows.append(
                    (f"u{user:03d}", f"i{int(rng.choice(pool)):03d}", kind, t, f"s{user}-{session}", rating)
                )
                t += int(rng.integers(30, 1800))
    frame = pd.DataFrame(
        rows, columns=["user_id", "item_id", "event_type", "timestamp", "session_id", "quantity"]
    )
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], unit="s", utc=True)
    return frame


@pytest.fixture(scope="module")
def full_and_compact() -> Iterator[tuple[Dataset, Dataset]]:
    full = Dataset.from_frame(shop_log())
    with DuckDBEngine() as engine:
        compact = engine_interactions(engine, full)  # what `fusionrec evaluate --engine` trains on
    np.testing.assert_allclose(compact.matrix().toarray(), full.matrix().toarray(), rtol=1e-5)
    yield full, compact


@pytest.mark.parametrize("name", MODELS)
def test_method_flags_match_the_methods(name: str) -> None:
    cls = model_class(name)
    for flag, method in METHOD_FLAGS.items():
        assert getattr(cls, flag) == hasattr(cls, method), (
            f"{name}.{flag} but {method}: {hasattr(cls, method)}"
        )
    overrides = cls._score_histories is not Recommender._score_histories
    assert cls.supports_history == overrides, f"{name}.supports_history but _score_histories: {overrides}"


@pytest.mark.parametrize("name", MODELS)
def test_stops_early_iff_fit_takes_validation(name: str) -> None:
    cls = model_class(name)
    takes = "validation" in inspect.signature(cls.fit).parameters
    assert cls.stops_early == takes, f"{name}.stops_early = {cls.stops_early}, fit takes validation: {takes}"


def test_fusion_models_are_the_models_that_combine_sources() -> None:
    from fusionrec.fusion.config import FUSION_MODELS

    assert {name for name in MODELS if model_class(name).combines_sources} == set(FUSION_MODELS)


@pytest.mark.parametrize("name", MODELS)
def test_needs_event_log_iff_the_compact_dataset_changes_the_model(
    name: str, full_and_compact: tuple[Dataset, Dataset]
) -> None:
    """Without the flag a model must learn the same from the compact Dataset; with it, not."""
    full, compact = full_and_compact
    params, _ = CONTRACT_MODELS[name]
    if model_class(name).combines_sources:
        # Their label window reads event types and order, but blend / rrf may still tune to the
        # same weights on both; a source that reads the log (what the flag protects) settles it.
        trending = {"model": "trending", "n": 10, "params": {"window_days": 1.0}}
        params = {**params, "sources": [*params["sources"], trending]}  # type: ignore[misc]
    if name == "auto":
        # The search profiles the log (event mix, times, sessions) to plan; on data this small it
        # may still choose the same model, so the flag is settled by what the profile read.
        profiles = [create_model(name, **params).fit(data).search_["profile"] for data in (full, compact)]
        assert profiles[0] != profiles[1], "auto's data profile is the same on the compact Dataset"
        return
    users = np.arange(full.n_users)
    expected = create_model(name, **params).fit(full).score(users)
    try:
        got = create_model(name, **params).fit(compact).score(users)
    except Exception as error:  # e.g. the event types it needs are not in the compact log
        assert model_class(name).needs_event_log, f"{name} fails on the compact Dataset: {error!r}"
        return
    same = np.allclose(got, expected, rtol=1e-4, atol=1e-5)
    if model_class(name).needs_event_log:
        assert not same, f"{name} declares needs_event_log but learns the same from the compact Dataset"
    else:
        assert same, f"{name} learns otherwise from the compact Dataset: declare needs_event_log"


@pytest.mark.parametrize(
    "name", [n for n in MODELS if model_class(n).item_to_item or model_class(n).predicts_ratings]
)
def test_declared_methods_answer(name: str, full_and_compact: tuple[Dataset, Dataset]) -> None:
    full, _ = full_and_compact
    params, _ = CONTRACT_MODELS[name]
    model = create_model(name, **params).fit(full)
    if model.item_to_item:
        items, scores = model.similar_items(np.array([0, 12]), 3)  # type: ignore[attr-defined]
        assert items.shape == scores.shape == (2, 3)
        assert not (items == np.array([[0], [12]])).any(), f"{name} lists an item as its own neighbour"
    if model.predicts_ratings:
        predicted = model.predict_ratings(np.array([0, 1]), np.array([0, 1]))  # type: ignore[attr-defined]
        assert predicted.shape == (2,) and np.isfinite(predicted).all()
