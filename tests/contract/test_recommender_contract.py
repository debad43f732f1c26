"""The shared contract, applied to every registered model (see configs.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from contract.configs import CONTRACT_MODELS
from fusionrec.data.dataset import Dataset
from fusionrec.models.base import Recommender
from fusionrec.models.registry import available_models, create_model

N_USERS, N_ITEMS, PER_USER = 60, 24, 7


def block_events(seed: int = 7) -> pd.DataFrame:
    """Two taste clusters: users 0-29 use items 0-11, users 30-59 use items 12-23.

    Item popularity inside a cluster is skewed so popularity has a clear order, and each user
    has a time-ordered history, so sequential models can learn from it too.
    """
    rng = np.random.default_rng(seed)
    rows = []
    half = N_ITEMS // 2
    weights = np.linspace(2.0, 1.0, half)
    weights /= weights.sum()
    for user in range(N_USERS):
        offset = 0 if user < N_USERS // 2 else half
        chosen = rng.choice(half, size=PER_USER, replace=False, p=weights) + offset
        for position, item in enumerate(chosen):
            rows.append(
                (f"u{user:03d}", f"i{item:03d}", "click", 1_700_000_000 + user * 1000 + position * 60)
            )
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "timestamp"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], unit="s", utc=True)
    frame["session_id"] = frame["user_id"]
    return frame


@pytest.fixture(scope="module")
def dataset() -> Dataset:
    return Dataset.from_frame(block_events())


def fitted(name: str, dataset: Dataset) -> Recommender:
    params, _ = CONTRACT_MODELS[name]
    return create_model(name, **params).fit(dataset)


MODELS = sorted(CONTRACT_MODELS)
# Popularity-style and content models have no clusters to find in feature-less data; their own
# known-answer tests live beside them (tests/models/).
PERSONALISED = [name for name in MODELS if CONTRACT_MODELS[name][1]]


def test_every_registered_model_is_in_the_contract_suite() -> None:
    assert set(available_models()) == set(CONTRACT_MODELS), "add new models to tests/contract/configs.py"


@pytest.mark.parametrize("name", PERSONALISED)
def test_known_answer_recommends_own_cluster(name: str, dataset: Dataset) -> None:
    model = fitted(name, dataset)
    users = np.arange(dataset.n_users)
    items, _ = model.recommend(users, k=3)
    cluster_of_user = (dataset.users.ids >= f"u{N_USERS // 2:03d}").astype(int)
    cluster_of_item = (dataset.items.ids >= f"i{N_ITEMS // 2:03d}").astype(int)
    same = cluster_of_item[items] == cluster_of_user[:, None]
    assert same.mean() >= 0.9, f"{name} recommends its own cluster only {same.mean():.2f} of the time"


@pytest.mark.parametrize("name", MODELS)
def test_batch_equals_single_user(name: str, dataset: Dataset) -> None:
    model = fitted(name, dataset)
    users = np.array([0, 5, 31, 59])
    batch_items, batch_scores = model.recommend(users, k=5)
    for row, user in enumerate(users):
        items, scores = model.recommend(np.array([user]), k=5)
        np.testing.assert_array_equal(items[0], batch_items[row])
        np.testing.assert_allclose(scores[0], batch_scores[row], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", MODELS)
def test_seen_items_are_masked_and_scores_are_finite(name: str, dataset: Dataset) -> None:
    model = fitted(name, dataset)
    users = np.arange(dataset.n_users)
    items, scores = model.recommend(users, k=5)
    seen = dataset.matrix(binary=True)
    assert not np.asarray(seen[users[:, None], np.maximum(items, 0)].todense())[items >= 0].any()
    assert np.isfinite(model.score(users)).all()
    assert np.all(np.diff(scores, axis=1) <= 0), "scores must be sorted descending"


@pytest.mark.parametrize("name", MODELS)
def test_save_load_round_trip_gives_identical_scores(name: str, dataset: Dataset, tmp_path: Path) -> None:
    model = fitted(name, dataset)
    model.save(tmp_path / name)
    loaded = Recommender.load(tmp_path / name)
    users = np.arange(dataset.n_users)
    np.testing.assert_array_equal(loaded.score(users), model.score(users))
    assert loaded.config == model.config


@pytest.mark.parametrize("name", MODELS)
def test_same_seed_gives_the_same_model(name: str, dataset: Dataset) -> None:
    users = np.arange(dataset.n_users)
    first = fitted(name, dataset).score(users)
    second = fitted(name, dataset).score(users)
    np.testing.assert_allclose(first, second, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", MODELS)
def test_unknown_users_get_popularity_fallback(name: str, dataset: Dataset) -> None:
    model = fitted(name, dataset)
    items, _ = model.recommend(np.array([-1, dataset.n_users + 3]), k=4, exclude=None)
    popular, _ = create_model("most_popular").fit(dataset).recommend(np.array([0]), k=4, exclude=None)
    np.testing.assert_array_equal(items[0], popular[0])
    np.testing.assert_array_equal(items[1], popular[0])


@pytest.mark.parametrize("name", MODELS)
def test_config_rejects_unknown_keys(name: str) -> None:
    with pytest.raises(ValidationError):
        create_model(name, not_a_parameter=1)


def test_load_rejects_tampered_artefact(dataset: Dataset, tmp_path: Path) -> None:
    model = fitted("most_popular", dataset)
    model.save(tmp_path / "m")
    arrays = tmp_path / "m" / "arrays.npz"
    arrays.write_bytes(arrays.read_bytes() + b"x")
    with pytest.raises(Exception, match="checksum"):
        Recommender.load(tmp_path / "m")


@pytest.mark.parametrize("name", ["auto", "fusion", "item_knn"])
def test_the_answering_model_answers_as_the_model(name: str, dataset: Dataset) -> None:
    """Serving reads the capabilities of `answering` (candidates, live histories, neighbours): it is
    the model itself, or for ``auto`` the pipeline it chose, whose scores are the model's own."""
    model = fitted(name, dataset)
    answering = model.answering
    assert answering.answering is answering
    assert (answering is model) == (name != "auto")
    users = np.arange(dataset.n_users)
    np.testing.assert_allclose(answering.score(users), model.score(users))
