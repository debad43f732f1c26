"""GF-CF and LightGCN: formulas against dense references, early stopping, sampling, real data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from fusionrec.data.dataset import Dataset
from fusionrec.models._sampling import NegativeSampler
from fusionrec.models.base import ModelError
from fusionrec.models.graph import GFCF, LightGCN, normalised_interactions, spectral_embeddings
from models.cluster_data import two_clusters


def random_dataset(n_users: int = 40, n_items: int = 30, density: float = 0.15, seed: int = 3) -> Dataset:
    rng = np.random.default_rng(seed)
    cells = np.argwhere(rng.random((n_users, n_items)) < density)
    frame = pd.DataFrame(
        {
            "user_id": [f"u{u:03d}" for u in cells[:, 0]],
            "item_id": [f"i{i:03d}" for i in cells[:, 1]],
            "event_type": "click",
            "timestamp": pd.to_datetime(1_700_000_000 + np.arange(len(cells)), unit="s", utc=True),
        }
    )
    return Dataset.from_frame(frame)


# --- GF-CF ---------------------------------------------------------------------------------------


def dense_gf_cf(matrix: np.ndarray, alpha: float, rank: int) -> np.ndarray:
    """The GF-CF scores written out densely, straight from the paper."""
    du, di = matrix.sum(1), matrix.sum(0)
    inv_u = np.where(du > 0, 1 / np.sqrt(np.maximum(du, 1e-12)), 0)
    inv_i = np.where(di > 0, 1 / np.sqrt(np.maximum(di, 1e-12)), 0)
    normalised = inv_u[:, None] * matrix * inv_i[None, :]
    _, _, vt = np.linalg.svd(normalised)
    v = vt[:rank].T
    low_pass = np.diag(inv_i) @ v @ v.T @ np.diag(np.sqrt(di))
    return matrix @ normalised.T @ normalised + alpha * matrix @ low_pass


def test_gf_cf_matches_the_dense_formula() -> None:
    dataset = random_dataset()
    model = GFCF(alpha=0.3, n_components=5, svd_solver="arpack").fit(dataset)
    expected = dense_gf_cf(dataset.matrix(binary=True).toarray().astype(np.float64), 0.3, 5)
    users = np.arange(dataset.n_users)
    np.testing.assert_allclose(model._score_users(users), expected, rtol=1e-4, atol=1e-5)


def test_gf_cf_sharpening_is_one_euler_step_of_bspm() -> None:
    dataset = random_dataset()
    matrix = dataset.matrix(binary=True).toarray().astype(np.float64)
    blurred = dense_gf_cf(matrix, 0.2, 5)
    du, di = matrix.sum(1), matrix.sum(0)
    normalised = np.where(du > 0, du, np.inf)[:, None] ** -0.5 * matrix * np.where(di > 0, di, np.inf) ** -0.5
    expected = blurred - 2.5 * blurred @ normalised.T @ normalised  # x(T) = x - T x P~, P~ = R~^T R~
    model = GFCF(alpha=0.2, n_components=5, svd_solver="arpack", sharpen=2.5).fit(dataset)
    scores = model._score_users(np.arange(dataset.n_users))
    np.testing.assert_allclose(scores, expected, rtol=1e-4, atol=1e-4)
    histories = [np.flatnonzero(matrix[u]) for u in range(3)]
    np.testing.assert_allclose(model.score_histories(histories), scores[:3], rtol=1e-4, atol=1e-4)


def test_gf_cf_randomized_svd_agrees_with_arpack() -> None:
    dataset = random_dataset()
    users = np.arange(dataset.n_users)
    exact = GFCF(n_components=5, svd_solver="arpack").fit(dataset)._score_users(users)
    randomized = GFCF(n_components=5, svd_solver="randomized", n_iter=20).fit(dataset)._score_users(users)
    np.testing.assert_allclose(randomized, exact, rtol=1e-3, atol=1e-3)


def test_gf_cf_without_low_pass_is_the_linear_filter() -> None:
    dataset = random_dataset()
    model = GFCF(alpha=0.0).fit(dataset)
    assert model.low_in_.shape == (dataset.n_items, 0)
    np.testing.assert_allclose(
        model._score_users(np.arange(dataset.n_users)),
        dense_gf_cf(dataset.matrix(binary=True).toarray().astype(np.float64), 0.0, 1),
        rtol=1e-4,
        atol=1e-5,
    )


def test_gf_cf_scores_a_history_like_the_user_with_that_history() -> None:
    dataset = random_dataset()
    model = GFCF(n_components=5).fit(dataset)
    matrix = dataset.matrix(binary=True)
    users = np.array([0, 7, 19])
    histories = [matrix[u].indices[::-1] for u in users]  # order and repeats do not matter
    histories[0] = np.concatenate([histories[0], histories[0][:1]])
    np.testing.assert_allclose(model.score_histories(histories), model.score(users), rtol=1e-5, atol=1e-6)


def test_gf_cf_similar_items_stay_in_their_cluster() -> None:
    dataset = two_clusters()
    model = GFCF(n_components=3).fit(dataset)
    items, scores = model.similar_items(np.array([0, 15]), k=5)
    assert (items[0] < 10).all() and (items[1] >= 10).all()
    assert 0 not in items[0] and 15 not in items[1]
    assert np.all(np.diff(scores, axis=1) <= 0)
    with pytest.raises(ModelError, match="item indices"):
        model.similar_items(np.array([dataset.n_items]))


def test_normalised_interactions_leaves_empty_rows_and_columns_zero() -> None:
    matrix = sp.csr_matrix(np.array([[1, 1, 0], [0, 0, 0], [1, 0, 0]], dtype=np.float32))
    normalised, degree = normalised_interactions(matrix)
    np.testing.assert_array_equal(degree, [2, 1, 0])
    expected = np.array([[1 / np.sqrt(2 * 2), 1 / np.sqrt(2 * 1), 0], [0, 0, 0], [1 / np.sqrt(2), 0, 0]])
    np.testing.assert_allclose(normalised.toarray(), expected, rtol=1e-6)


# --- negative sampling ---------------------------------------------------------------------------


def test_negative_sampler_is_uniform_over_each_users_unseen_items() -> None:
    rng = np.random.default_rng(0)
    dense = (np.random.default_rng(1).random((50, 12)) < 0.6).astype(np.float32)
    dense[3] = 1  # a user who has seen everything still gets an item
    dense[4] = 0
    dense[4, 5] = 1  # one seen item, eleven to draw from
    dense[7] = 1
    dense[7, 9] = 0  # a single unseen item
    matrix = sp.csr_matrix(dense)
    users = np.repeat(np.arange(50), 400)
    negatives = NegativeSampler(matrix).sample(rng, users)
    assert ((negatives >= 0) & (negatives < 12)).all()
    hit = np.asarray(matrix[users, negatives]).ravel() > 0
    assert not hit[users != 3].any()
    assert (negatives[users == 7] == 9).all()
    counts = np.bincount(negatives[users == 4], minlength=12)
    assert counts[5] == 0 and counts.min(initial=400, where=np.arange(12) != 5) > 15  # ~36 each


# --- LightGCN ------------------------------------------------------------------------------------


def dense_propagation(torch, matrix: np.ndarray, users, items, n_layers: int):  # type: ignore[no-untyped-def]
    """Layer mean over powers of the full normalised adjacency, as in the LightGCN paper."""
    n_users, n_items = matrix.shape
    adjacency = np.zeros((n_users + n_items,) * 2)
    adjacency[:n_users, n_users:], adjacency[n_users:, :n_users] = matrix, matrix.T
    degree = adjacency.sum(1)
    scale = np.where(degree > 0, 1 / np.sqrt(np.maximum(degree, 1e-12)), 0)
    a_hat = torch.tensor(scale[:, None] * adjacency * scale[None, :], dtype=torch.float32)
    layer = torch.cat([users, items])
    total = layer
    for _ in range(n_layers):
        layer = a_hat @ layer
        total = total + layer
    mean = total / (n_layers + 1)
    return mean[:n_users], mean[n_users:]


def test_lightgcn_propagation_and_gradient_match_the_dense_adjacency() -> None:
    torch = pytest.importorskip("torch")
    from fusionrec.models.graph import _csr_tensor, _make_propagation

    matrix = random_dataset().matrix(binary=True)
    normalised, _ = normalised_interactions(matrix)
    cpu = torch.device("cpu")
    propagate = _make_propagation(
        torch, _csr_tensor(torch, normalised, cpu), _csr_tensor(torch, normalised.T.tocsr(), cpu), 3
    )
    generator = torch.Generator().manual_seed(0)
    users = torch.randn(matrix.shape[0], 4, generator=generator, requires_grad=True)
    items = torch.randn(matrix.shape[1], 4, generator=generator, requires_grad=True)
    weights = torch.randn(sum(matrix.shape), 4, generator=generator)

    got_u, got_i = propagate(users, items)
    (torch.cat([got_u, got_i]) * weights).sum().backward()
    grads = users.grad.clone(), items.grad.clone()
    users.grad, items.grad = None, None
    want_u, want_i = dense_propagation(torch, matrix.toarray(), users, items, 3)
    (torch.cat([want_u, want_i]) * weights).sum().backward()

    torch.testing.assert_close(got_u, want_u, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(got_i, want_i, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(grads[0], users.grad, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(grads[1], items.grad, rtol=1e-4, atol=1e-5)


def test_lightgcn_stops_early_when_validation_stops_improving() -> None:
    pytest.importorskip("torch")
    dataset = two_clusters()
    rng = np.random.default_rng(1)
    held = rng.random(dataset.n_events) < 0.25
    records: list[dict[str, object]] = []
    model = LightGCN(
        embedding_dim=8, learning_rate=1e-9, epochs=50, patience=2, batch_size=64, n_threads=1
    ).fit(dataset.select(~held), validation=dataset.select(held), callback=lambda m, r: records.append(r))
    # a learning rate of 1e-9 cannot change the ranking: epoch 1 stays best, 2 more evaluations stop it
    assert [r["epoch"] for r in model.history_] == [1, 2, 3]
    assert model.best_epoch_ == 1
    assert len(records) == 3 and all("validation_recall@20" in r for r in records)
    assert all(r["loss"] > 0 and r["train_seconds"] >= 0 for r in model.history_)


def test_lightgcn_learns_the_clusters_and_respects_the_time_budget() -> None:
    pytest.importorskip("torch")
    dataset = two_clusters()
    model = LightGCN(embedding_dim=8, learning_rate=0.05, epochs=40, batch_size=64, n_threads=1).fit(dataset)
    items, _ = model.recommend(np.arange(dataset.n_users), k=3)
    user_cluster = (np.arange(dataset.n_users) >= dataset.n_users // 2)[:, None]
    assert ((items >= dataset.n_items // 2) == user_cluster).mean() >= 0.95
    budget = LightGCN(embedding_dim=8, epochs=50, max_seconds=1e-6, n_threads=1).fit(dataset)
    assert len(budget.history_) == 1


def test_spectral_embeddings_factor_the_normalised_matrix() -> None:
    matrix = random_dataset().matrix(binary=True)
    normalised, _ = normalised_interactions(matrix)
    users, items = spectral_embeddings(normalised, 64, seed=0, std=0.1)
    assert users.shape == (40, 64) and items.shape == (30, 64)
    assert not users[:, 29:].any()  # rank min(shape) - 1 = 29; the rest stays zero
    entries = np.concatenate([users.ravel(), items.ravel()])
    assert np.sqrt(np.mean(entries**2)) == pytest.approx(0.1, rel=1e-4)
    # U sqrt(S) (V sqrt(S))^T is the rank-29 reconstruction of R~, up to the common scale.
    u, s, vt = np.linalg.svd(normalised.toarray())
    reconstruction = (u[:, :29] * s[:29]) @ vt[:29]
    product = users @ items.T
    scale = float((product * reconstruction).sum() / (reconstruction**2).sum())
    np.testing.assert_allclose(product / scale, reconstruction, atol=1e-4)


def test_lightgcn_spectral_start_ranks_the_clusters_before_training() -> None:
    pytest.importorskip("torch")
    dataset = two_clusters()
    model = LightGCN(
        embedding_dim=8, epochs=1, learning_rate=1e-6, batch_size=64, n_threads=1, init="spectral"
    )
    items, _ = model.fit(dataset).recommend(np.arange(dataset.n_users), k=3)
    user_cluster = (np.arange(dataset.n_users) >= dataset.n_users // 2)[:, None]
    assert ((items >= dataset.n_items // 2) == user_cluster).mean() >= 0.95
    assert model.history_[0]["train_seconds"] > 0  # the SVD counts as training time
    again = LightGCN(**model.config.model_dump()).fit(dataset)
    np.testing.assert_array_equal(again.item_embeddings_, model.item_embeddings_)


def test_lightgcn_rejects_a_missing_cuda_device() -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: cuda is honoured")
    with pytest.raises(ModelError, match="CUDA is not available"):
        LightGCN(device="cuda", epochs=1).fit(two_clusters())


# --- real data -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_gf_cf_on_gowalla_reaches_the_published_recall(shared_data) -> None:  # type: ignore[no-untyped-def]
    from fusionrec.data.formats import read_format
    from fusionrec.data.split import fixed_split
    from fusionrec.evaluation.metrics import evaluate_rankings

    folder = shared_data / "gowalla"
    if not folder.is_dir():
        pytest.skip(f"{folder} is absent")
    source = read_format("lightgcn", folder)
    split = fixed_split(source.events, source.test_events)
    model = GFCF().fit(split.train)
    truth = split.test.matrix(binary=True)
    users = np.flatnonzero(np.diff(truth.indptr) > 0)
    users = np.sort(np.random.default_rng(0).choice(users, size=4000, replace=False))
    items, _ = model.recommend(users, k=20)
    recall = evaluate_rankings(items, truth[users], ks=(20,), metrics=["Recall"])["Recall@20"]
    # all users: 0.187 (published GF-CF 0.1849); a 4,000-user sample varies by about +-0.005
    assert recall >= 0.175
