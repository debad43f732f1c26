"""RP3beta against a dense re-derivation of its formula."""

from __future__ import annotations

import numpy as np

from fusionrec.models.graph_walk import RP3Beta
from models.classic_data import matrix_dataset


def test_rp3beta_weights_follow_the_random_walk_formula() -> None:
    dataset, x = matrix_dataset(seed=5)
    alpha, beta = 0.7, 0.4
    p_ui = x / x.sum(1, keepdims=True)
    p_iu = x.T / x.T.sum(1, keepdims=True)
    expected = (p_iu**alpha) @ (p_ui**alpha) / x.sum(0)[None, :] ** beta
    np.fill_diagonal(expected, 0.0)
    model = RP3Beta(alpha=alpha, beta=beta, neighbours=dataset.n_items).fit(dataset)
    np.testing.assert_allclose(model.weights_.toarray(), expected, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(model.score(np.arange(3)), x[:3] @ expected, rtol=1e-5, atol=1e-6)


def test_rp3beta_keeps_top_neighbours_and_penalises_popularity() -> None:
    dataset, x = matrix_dataset(n_users=40, n_items=15, seed=6)
    pruned = RP3Beta(neighbours=3).fit(dataset)
    assert (np.diff(pruned.weights_.indptr) <= 3).all()
    plain = RP3Beta(beta=0.0, neighbours=15).fit(dataset).weights_.toarray()
    penalised = RP3Beta(beta=1.0, neighbours=15).fit(dataset).weights_.toarray()
    popular = int(np.argmax(x.sum(0)))
    # the most popular item loses the most mass as a destination
    share_plain = plain[:, popular].sum() / plain.sum()
    share_penalised = penalised[:, popular].sum() / penalised.sum()
    assert share_penalised < share_plain
    items, _ = pruned.similar_items(np.array([0]), k=3)
    assert set(items[0][items[0] >= 0]) <= set(np.flatnonzero(pruned.weights_[0].toarray()[0]))
