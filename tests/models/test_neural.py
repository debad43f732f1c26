"""NeuMF: numpy scoring equals the torch network, config validation, early stopping."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from fusionrec.models.neural import NeuMF, _build_network
from models.cluster_data import two_clusters

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("layers", [[16, 8, 4], [12]])
def test_numpy_scores_equal_the_torch_network(layers: list[int]) -> None:
    model = NeuMF(embedding_dim=4, mlp_layers=layers)
    torch.manual_seed(0)
    network = _build_network(torch, 7, 11, model.config)
    with torch.no_grad():  # non-trivial output weights and biases, so every term matters
        for parameter in network.parameters():
            parameter.normal_(std=0.5)
    model._publish(network)
    model.n_items_ = 11
    users, items = np.meshgrid(np.arange(7), np.arange(11), indexing="ij")
    with torch.no_grad():
        expected = network(torch.from_numpy(users.ravel()), torch.from_numpy(items.ravel())).numpy()
    np.testing.assert_allclose(
        model._score_users(np.arange(7)), expected.reshape(7, 11), rtol=1e-4, atol=1e-5
    )


def test_config_rejects_an_odd_or_empty_mlp() -> None:
    with pytest.raises(ValidationError, match="must be even"):
        NeuMF(mlp_layers=[15, 8])
    with pytest.raises(ValidationError, match="at least one"):
        NeuMF(mlp_layers=[])
    with pytest.raises(ValidationError):
        NeuMF(negatives=0)


def test_neumf_learns_clusters_and_stops_early() -> None:
    dataset = two_clusters(30, 16, 2)
    rng = np.random.default_rng(0)
    held = rng.random(dataset.n_events) < 0.2
    model = NeuMF(
        embedding_dim=8,
        mlp_layers=[16, 8],
        epochs=60,
        batch_size=64,
        learning_rate=0.01,
        patience=3,
        validation_k=3,
        n_threads=1,
    ).fit(dataset.select(~held), validation=dataset.select(held))
    history = model.history_
    assert all("validation_recall@3" in record for record in history)
    best = max(record["validation_recall@3"] for record in history)
    assert model.best_epoch_ == next(r["epoch"] for r in history if r["validation_recall@3"] == best)
    if len(history) < 60:  # stopped early: the last `patience` evaluations did not beat the best
        assert history[-1]["epoch"] - model.best_epoch_ == 3
    items, _ = model.recommend(np.arange(dataset.n_users), k=2)
    user_cluster = (np.arange(dataset.n_users) >= dataset.n_users // 2)[:, None]
    assert ((items >= dataset.n_items // 2) == user_cluster).mean() >= 0.9


def test_neumf_time_budget_ends_training_after_one_epoch() -> None:
    model = NeuMF(embedding_dim=4, mlp_layers=[8, 4], epochs=20, max_seconds=1e-6, n_threads=1)
    model.fit(two_clusters(30, 16, 2))
    assert len(model.history_) == 1
    assert np.isfinite(model.score(np.arange(3))).all()
