"""SASRec and GRU4Rec: sequence order matters, live histories, sampled softmax, early stopping."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch", reason="the sequential models need fusionrec[deep]")

from fusionrec.data.dataset import Dataset
from fusionrec.data.split import leave_last_out
from fusionrec.evaluation.protocol import refit_on_full
from fusionrec.models._sequences import last_windows, positive_sequences, training_chunks
from fusionrec.models.base import Recommender
from fusionrec.models.registry import create_model

N_ITEMS = 12
FAST = {"embedding_dim": 16, "epochs": 40, "learning_rate": 1e-2, "dropout": 0.0, "batch_size": 64}
MODELS = {"sasrec": {**FAST, "attention_dropout": 0.0}, "gru4rec": {**FAST, "hidden_dim": 16}}


def cycle_events(n_users: int = 80, length: int = 8, seed: int = 3) -> pd.DataFrame:
    """Each user walks the cycle 0 -> 1 -> ... -> 11 -> 0 from a random start: the next item is
    fully determined by the last one, which only an order-aware model can know."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(n_users):
        start = int(rng.integers(N_ITEMS))
        for step in range(length):
            item = (start + step) % N_ITEMS
            rows.append((f"u{user:03d}", f"i{item:02d}", "view", 1_700_000_000 + user * 1000 + step))
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "timestamp"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], unit="s", utc=True)
    return frame


@pytest.fixture(scope="module")
def cycle() -> Dataset:
    return Dataset.from_frame(cycle_events())


@pytest.fixture(scope="module", params=sorted(MODELS))
def fitted(request: pytest.FixtureRequest, cycle: Dataset) -> Recommender:
    return create_model(request.param, **MODELS[request.param]).fit(cycle)


def item(dataset: Dataset, number: int) -> int:
    return int(dataset.items.index([f"i{number % N_ITEMS:02d}"])[0])


def test_next_item_follows_the_sequence_order(fitted: Recommender, cycle: Dataset) -> None:
    # Live histories ending at different items: the top item must be each one's successor.
    histories = [np.array([item(cycle, s), item(cycle, s + 1), item(cycle, s + 2)]) for s in range(N_ITEMS)]
    top, _ = fitted.recommend_from_history(histories, k=1)
    expected = [item(cycle, s + 3) for s in range(N_ITEMS)]
    assert (top[:, 0] == expected).mean() >= 0.9


def test_known_user_is_scored_from_the_end_of_the_training_sequence(
    fitted: Recommender, cycle: Dataset
) -> None:
    indptr, items = cycle.sequences()
    users = np.arange(cycle.n_users)
    last = items[indptr[users + 1] - 1]
    successor = np.array([item(cycle, int(cycle.items.ids[i][1:]) + 1) for i in last])
    top, _ = fitted.recommend(users, k=1, exclude=None)
    assert (top[:, 0] == successor).mean() >= 0.9


def test_history_with_unknown_items_only_falls_back_to_popularity(fitted: Recommender) -> None:
    scores = fitted.score_histories([np.array([-1, 10_000])])
    np.testing.assert_array_equal(scores[0], fitted.popularity_)


def test_history_scores_ignore_unknown_items(fitted: Recommender, cycle: Dataset) -> None:
    clean = fitted.score_histories([np.array([item(cycle, 0), item(cycle, 1)])])
    noisy = fitted.score_histories([np.array([item(cycle, 0), -1, item(cycle, 1), 99_999])])
    np.testing.assert_allclose(clean, noisy, rtol=1e-6)


def test_save_load_keeps_history_scores(fitted: Recommender, cycle: Dataset, tmp_path: Path) -> None:
    fitted.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    history = [np.array([item(cycle, 4), item(cycle, 5)])]
    np.testing.assert_array_equal(loaded.score_histories(history), fitted.score_histories(history))
    assert loaded.training_curve_ == fitted.training_curve_


@pytest.mark.parametrize("sampling", ["uniform", "popularity"])
def test_sampled_softmax_learns_the_cycle(cycle: Dataset, sampling: str) -> None:
    params = {**MODELS["sasrec"], "loss": "sampled_softmax", "n_negatives": 6, "negative_sampling": sampling}
    model = create_model("sasrec", **params).fit(cycle)
    histories = [np.array([item(cycle, s), item(cycle, s + 1)]) for s in range(N_ITEMS)]
    top, _ = model.recommend_from_history(histories, k=1)
    assert (top[:, 0] == [item(cycle, s + 2) for s in range(N_ITEMS)]).mean() >= 0.9


def test_early_stopping_on_validation_logs_and_keeps_the_best_epoch(
    cycle: Dataset, caplog: pytest.LogCaptureFixture
) -> None:
    split = leave_last_out(cycle)
    params = {**MODELS["sasrec"], "epochs": 60, "eval_every": 1, "patience": 2}
    with caplog.at_level(logging.INFO, logger="fusionrec.models.sequential"):
        model = create_model("sasrec", **params).fit(split.train, validation=split.validation)
    curve = model.training_curve_
    assert model.epochs_trained_ < 60, "a perfectly learnable cycle must stop early"
    best = curve["ndcg@10"][curve["epoch"].index(model.best_epoch_)]
    assert best == max(curve["ndcg@10"]) and best > 0.9
    assert any("val ndcg@10" in record.getMessage() for record in caplog.records)


def test_refit_on_full_trains_for_the_chosen_epochs_on_train_and_validation(cycle: Dataset) -> None:
    split = leave_last_out(cycle)
    params = {**MODELS["sasrec"], "epochs": 60, "eval_every": 1, "patience": 2}
    model = create_model("sasrec", **params).fit(split.train, validation=split.validation)
    refit = refit_on_full(model, split)
    assert refit.config.epochs == model.best_epoch_ < 60
    assert refit.seen_.nnz == split.train_full.matrix(binary=True).nnz > model.seen_.nnz
    with pytest.raises(ValueError, match="no early-stopped epoch count"):
        refit_on_full(create_model("most_popular").fit(split.train), split)


def test_validation_with_other_vocabularies_is_rejected(cycle: Dataset) -> None:
    other = Dataset.from_frame(cycle_events(n_users=5))
    with pytest.raises(ValueError, match="vocabularies"):
        create_model("sasrec", **{**MODELS["sasrec"], "epochs": 1}).fit(cycle, validation=other)


def test_fit_leaves_the_global_torch_random_state_alone(cycle: Dataset) -> None:
    import torch

    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    create_model("gru4rec", **{**MODELS["gru4rec"], "epochs": 1}).fit(cycle)
    np.testing.assert_array_equal(torch.rand(3).numpy(), expected.numpy())


def test_heads_must_divide_the_embedding(cycle: Dataset) -> None:
    with pytest.raises(ValueError, match="divisible"):
        create_model("sasrec", embedding_dim=10, n_heads=3, epochs=1).fit(cycle)


# --- sequence helpers ---------------------------------------------------------------------------


def test_positive_sequences_collapse_repeats_and_drop_negative_events() -> None:
    frame = pd.DataFrame(
        {
            "user_id": ["a", "a", "a", "a", "b"],
            "item_id": ["x", "x", "y", "z", "x"],
            "event_type": ["view", "add_to_cart", "view", "remove_from_cart", "view"],
            "timestamp": pd.to_datetime([1, 2, 3, 4, 5], unit="s", utc=True),
        }
    )
    dataset = Dataset.from_frame(frame)
    indptr, items = positive_sequences(dataset)
    a = int(dataset.users.index(["a"])[0])
    assert list(dataset.items.id(items[indptr[a] : indptr[a + 1]])) == ["x", "y"]


def test_training_chunks_cover_every_transition_once() -> None:
    indptr = np.array([0, 7, 8, 11])
    items = np.arange(11, dtype=np.int32)
    chunks = training_chunks(indptr, items, max_len=3)
    pairs = {(int(r[j]), int(r[j + 1])) for r in chunks for j in range(3) if r[j + 1] >= 0}
    expected = {(i, i + 1) for i in range(6)} | {(8, 9), (9, 10)}
    assert pairs == expected
    assert len(pairs) == sum(int((r >= 0).sum()) - 1 for r in chunks)


def test_last_windows_are_left_aligned_and_padded() -> None:
    windows, lengths = last_windows(np.array([0, 5, 6]), np.arange(6, dtype=np.int32), np.array([0, 1]), 3)
    np.testing.assert_array_equal(windows, [[2, 3, 4], [5, -1, -1]])
    np.testing.assert_array_equal(lengths, [3, 1])
