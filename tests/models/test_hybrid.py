"""The hybrid model: sequence order, content-only new items, item vectors, persistence, live histories."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch", reason="the hybrid model needs fusionrec[deep]")

from fusionrec.data.dataset import Dataset
from fusionrec.data.split import leave_last_out
from fusionrec.evaluation.protocol import refit_on_full
from fusionrec.models._sequences import last_windows
from fusionrec.models.base import Recommender
from fusionrec.models.registry import create_model

torch = pytest.importorskip("torch")

FAST = {
    "embedding_dim": 16,
    "hidden_dim": 32,
    "user_dim": 8,
    "token_dim": 8,
    "n_filters": 8,
    "epochs": 40,
    "learning_rate": 1e-2,
    "dropout": 0.0,
    "batch_size": 64,
}
N_ITEMS = 12
GROUPS = ("red", "blue")
PER_GROUP = 8


def events_frame(rows: list[tuple[str, str, int]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    frame["event_type"] = "view"
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], unit="s", utc=True)
    return frame


# --- a planted sequence: only an order-aware model can know the next item ----------------------


@pytest.fixture(scope="module")
def cycle() -> Dataset:
    rng = np.random.default_rng(3)
    rows = []
    for user in range(80):
        start = int(rng.integers(N_ITEMS))
        rows += [
            (f"u{user:03d}", f"i{(start + s) % N_ITEMS:02d}", 1_700_000_000 + user * 100 + s)
            for s in range(8)
        ]
    return Dataset.from_frame(events_frame(rows))


@pytest.fixture(scope="module")
def fitted_cycle(cycle: Dataset) -> Recommender:
    return create_model("hybrid", **FAST).fit(cycle)


def item(dataset: Dataset, number: int) -> int:
    return int(dataset.items.index([f"i{number % N_ITEMS:02d}"])[0])


def test_learns_the_planted_sequence_from_live_histories(fitted_cycle: Recommender, cycle: Dataset) -> None:
    histories = [np.array([item(cycle, s), item(cycle, s + 1), item(cycle, s + 2)]) for s in range(N_ITEMS)]
    top, _ = fitted_cycle.recommend_from_history(histories, k=1)
    assert (top[:, 0] == [item(cycle, s + 3) for s in range(N_ITEMS)]).mean() >= 0.9


def test_known_users_are_scored_from_their_training_sequence(
    fitted_cycle: Recommender, cycle: Dataset
) -> None:
    indptr, items = cycle.sequences()
    users = np.arange(cycle.n_users)
    last = items[indptr[users + 1] - 1]
    successor = [item(cycle, int(cycle.items.ids[i][1:]) + 1) for i in last]
    # Seen items masked (as in serving): the user embedding has learned the user's own items,
    # which the next item never is here, so it only distracts (chance: 1 in 4 unseen items).
    top, _ = fitted_cycle.recommend(users, k=1)
    assert (top[:, 0] == successor).mean() >= 0.8


def test_live_histories_ignore_unknown_items(fitted_cycle: Recommender, cycle: Dataset) -> None:
    clean = fitted_cycle.score_histories([np.array([item(cycle, 0), item(cycle, 1)])])
    noisy = fitted_cycle.score_histories([np.array([item(cycle, 0), -1, item(cycle, 1), 99_999])])
    np.testing.assert_allclose(clean, noisy, rtol=1e-6)
    only_unknown = fitted_cycle.score_histories([np.array([-1, 10_000])])
    np.testing.assert_array_equal(only_unknown[0], fitted_cycle.popularity_)


def test_save_load_round_trip(fitted_cycle: Recommender, cycle: Dataset, tmp_path: Path) -> None:
    fitted_cycle.save(tmp_path / "m")
    loaded = Recommender.load(tmp_path / "m")
    history = [np.array([item(cycle, 4), item(cycle, 5)])]
    np.testing.assert_array_equal(loaded.score_histories(history), fitted_cycle.score_histories(history))
    users = np.arange(5)
    np.testing.assert_array_equal(loaded.score(users), fitted_cycle.score(users))


def test_early_stopping_and_refit(cycle: Dataset) -> None:
    split = leave_last_out(cycle)
    model = create_model("hybrid", **{**FAST, "epochs": 60, "eval_every": 1, "patience": 2})
    model.fit(split.train, validation=split.validation)
    assert model.epochs_trained_ < 60 and max(model.training_curve_["hr@10"]) > 0.9
    refit = refit_on_full(model, split)
    assert refit.config.epochs == model.best_epoch_


# --- content: items of two colour groups; users stay in one group -------------------------------


def catalogue(with_tags: bool, with_vectors: bool) -> pd.DataFrame:
    """Items ``<group><n>``; the last of each group is new (no events). The group is told by a
    tag, by an ``image_embedding`` vector, or both."""
    rng = np.random.default_rng(0)
    centres = {"red": np.array([1.0, 0.0, 0.0, 0.5]), "blue": np.array([0.0, 1.0, 0.5, 0.0])}
    rows = []
    for group in GROUPS:
        for n in range(PER_GROUP + 1):
            row: dict[str, object] = {"item_id": f"{group}{n}", "title": f"item {n}"}
            if with_tags:
                row["tags"] = [group]
            if with_vectors:
                noisy = centres[group] + rng.normal(0, 0.05, size=4)
                row["vectors"] = {"image_embedding": noisy.tolist()}
            rows.append(row)
    return pd.DataFrame(rows)


def group_events() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    rows = []
    for user in range(60):
        group = GROUPS[user % 2]
        picks = rng.choice(PER_GROUP, size=6, replace=False)  # never the new item PER_GROUP
        rows += [(f"u{user:02d}", f"{group}{p}", 1_700_000_000 + user * 100 + s) for s, p in enumerate(picks)]
    return events_frame(rows)


def new_item_preference(model: Recommender, data: Dataset) -> tuple[float, float]:
    """(share of users whose own group's new item outscores the other group's, mean share of the
    other group's items, warm ones included, that it outscores; chance is 0.5 for both)."""
    new = {g: int(data.items.index([f"{g}{PER_GROUP}"])[0]) for g in GROUPS}
    users = np.arange(data.n_users)
    scores = model.score(users)
    wins, percentiles = [], []
    for user, row in zip(users, scores, strict=True):
        own = GROUPS[int(data.users.ids[user][1:]) % 2]
        other = GROUPS[1 - GROUPS.index(own)]
        wins.append(row[new[own]] > row[new[other]])
        others = data.items.index([f"{other}{n}" for n in range(PER_GROUP + 1)])
        percentiles.append((row[others] < row[new[own]]).mean())
    return float(np.mean(wins)), float(np.mean(percentiles))


PARAMS_CONTENT = {**FAST, "epochs": 30, "min_token_items": 1}


@pytest.mark.parametrize(("tags", "vectors"), [(True, False), (False, True)])
def test_new_items_are_scored_from_content_alone(tags: bool, vectors: bool) -> None:
    data = Dataset.from_frame(group_events(), catalogue(tags, vectors))
    model = create_model("hybrid", **PARAMS_CONTENT).fit(data)
    assert model.cold_items_.sum() == 2  # the two new items: content only, no id embedding
    wins, percentile = new_item_preference(model, data)
    assert wins >= 0.9, "a new item must be scored by its content"
    assert percentile >= 0.75  # chance is 0.5: the content places it among the user's group


def test_vectors_are_read_by_name() -> None:
    data = Dataset.from_frame(group_events(), catalogue(with_tags=False, with_vectors=True))
    model = create_model("hybrid", **{**PARAMS_CONTENT, "epochs": 1}).fit(data)
    assert model.vector_names_ == ["image_embedding"] and model.vector_dims_ == [4]
    assert model.fit_report()["item_vectors"] == ["image_embedding"]
    without = create_model("hybrid", **{**PARAMS_CONTENT, "epochs": 1, "item_vectors": []}).fit(data)
    assert without.vector_names_ == []
    with pytest.raises(ValueError, match="no item carries the vector 'photo'"):
        create_model("hybrid", **{**PARAMS_CONTENT, "epochs": 1, "item_vectors": ["photo"]}).fit(data)


def test_new_items_with_the_same_content_score_the_same() -> None:
    # Without tags or vectors the two new items share their only content (the words "item 8")
    # and have no id embedding, so nothing can tell them apart.
    data = Dataset.from_frame(group_events(), catalogue(with_tags=False, with_vectors=False))
    model = create_model("hybrid", **{**PARAMS_CONTENT, "epochs": 5}).fit(data)
    new = data.items.index([f"{g}{PER_GROUP}" for g in GROUPS])
    scores = model.score(np.arange(data.n_users))
    np.testing.assert_allclose(scores[:, new[0]], scores[:, new[1]], rtol=1e-5)


def test_even_kernel_widths_are_rejected() -> None:
    with pytest.raises(ValueError, match="kernel_sizes"):
        create_model("hybrid", kernel_sizes=[2])


def test_hybrid_is_a_source_of_the_fused_pipeline() -> None:
    from fusionrec.data.synthetic import generate_frames

    events, items, users = generate_frames(n_events=20_000, seed=3)
    shop = Dataset.from_frame(events, items, users)
    sources = [
        {"model": "hybrid", "n": 20, "params": {**FAST, "epochs": 2}},
        {"model": "most_popular", "n": 20},
    ]
    ranker = {"params": {"n_estimators": 20, "min_data_in_leaf": 10, "num_leaves": 7}}
    fused = create_model("fusion", sources=sources, ranker=ranker, train_users=300).fit(shop)
    items_, _ = fused.recommend(np.arange(20), k=10)
    assert (items_ >= 0).all()
    assert fused.timings_["fit:hybrid"] > 0


def test_new_items_rank_among_warm_items_as_their_content_ranks_them() -> None:
    data = Dataset.from_frame(group_events(), catalogue(with_tags=True, with_vectors=False))
    model = create_model("hybrid", **{**PARAMS_CONTENT, "epochs": 5}).fit(data)
    users = np.arange(data.n_users)
    ranked = model.score(users)  # default new_item_scoring="rank"
    model.config = model.config.model_copy(update={"new_item_scoring": "content"})
    raw = model.score(users)
    new = model.cold_items_
    np.testing.assert_allclose(ranked[:, ~new], raw[:, ~new], rtol=1e-6)  # warm items untouched
    # Every item's content-only logit (ids off for all) for each user.
    net = model._net
    with torch.no_grad():
        table = net.item_table()
        windows, lengths = last_windows(model.seq_indptr_, model.seq_items_, users, model.config.max_len)
        last = model._last_hidden(net, table, windows, lengths, users + 1, "cpu")
        content = (last @ net.item_table(ids=False)[1:].T).numpy()
    np.testing.assert_allclose(raw[:, new], content[:, new], rtol=1e-5, atol=1e-6)
    # Numbers are not tokens: an item's content is its group tag and the word "item", so each new
    # item has the content-only vector of its group's warm items and ties with them exactly.
    model.config = model.config.model_copy(update={"new_item_scoring": "rank", "new_item_ties": "low"})
    low = model.score(users)
    for user in users:
        for i in np.flatnonzero(new):
            # Below as many warm items in the ranking as its content-only logit is below, plus
            # half of those it ties with (the mid-rank; "low": none of them).
            below_content = (content[user, ~new] < content[user, i]).sum()
            tied = (content[user, ~new] == content[user, i]).sum()
            assert tied == PER_GROUP
            assert (ranked[user, ~new] < ranked[user, i]).sum() == below_content + tied // 2
            assert (low[user, ~new] < low[user, i]).sum() == below_content
    # A shallow map is exact at the top only; a new item below it stays below the warm items there.
    depth = 3
    model.config = model.config.model_copy(
        update={"new_item_scoring": "rank", "new_item_ties": "mid", "new_item_rank_depth": depth}
    )
    shallow = model.score(users)
    warm = int((~new).sum())
    for user in users:
        edge = np.sort(content[user, ~new])[-depth]  # the depth-th largest warm content logit
        for i in np.flatnonzero(new):
            below_shallow = (shallow[user, ~new] < shallow[user, i]).sum()
            if content[user, i] > edge:
                below_content = (content[user, ~new] < content[user, i]).sum()
                tied = (content[user, ~new] == content[user, i]).sum()
                assert below_content <= below_shallow <= below_content + tied
            elif content[user, i] < edge:
                assert below_shallow <= warm - depth


def test_content_profile_term_is_part_of_the_dot_product() -> None:
    data = Dataset.from_frame(group_events(), catalogue(with_tags=True, with_vectors=False))
    model = create_model("hybrid", **{**PARAMS_CONTENT, "epochs": 1, "profile_dim": 6}).fit(data)
    net = model._net.eval()
    d = model.config.embedding_dim
    with torch.no_grad():
        table = net.item_table()
        assert table.shape[1] == d + 6
        # The item side: a unit-length content vector, the same with or without ids.
        profile = table[1:, d:]
        np.testing.assert_allclose(profile.norm(dim=1).numpy(), 1.0, rtol=1e-5)
        torch.testing.assert_close(net.item_table(ids=False)[:, d:], table[:, d:])
        # The user side: scaled history mean so far + scaled last item + a map of the LSTM state.
        tokens = torch.as_tensor([[3, 5, 7, 0]])
        out = net.encode(tokens, torch.as_tensor([0]), table)
        states, _ = net.lstm(table[tokens][:, :, :d])
        scale = net.profile_log_scale.exp()
        content = table[tokens][0, :, d:]
        mean = content[:3].mean(dim=0)
        expected = scale[0] * mean + scale[1] * content[2] + net.profile_state(states[0, 2])
        torch.testing.assert_close(out[0, 2, d:], expected)
    off = create_model("hybrid", **{**PARAMS_CONTENT, "epochs": 1, "profile_dim": 0}).fit(data)
    with torch.no_grad():
        assert off._net.item_table().shape[1] == d


def test_content_profile_places_new_items_by_the_history_before_training_moves_it() -> None:
    # Almost no training (one epoch at a tiny learning rate): the profile term starts as a
    # bag-of-tokens cosine with the history, so the user's own group's new item already wins.
    data = Dataset.from_frame(group_events(), catalogue(with_tags=True, with_vectors=False))
    params = {**PARAMS_CONTENT, "epochs": 1, "learning_rate": 1e-5}
    wins, percentile = new_item_preference(create_model("hybrid", **params).fit(data), data)
    assert wins >= 0.95 and percentile >= 0.75
    wins_off, _ = new_item_preference(create_model("hybrid", **{**params, "profile_dim": 0}).fit(data), data)
    assert wins_off < wins


@pytest.mark.parametrize("weight", [0.0, 0.5])
def test_training_loss_adds_the_content_only_softmax(weight: float) -> None:
    data = Dataset.from_frame(group_events(), catalogue(with_tags=True, with_vectors=False))
    model = create_model("hybrid", **{**PARAMS_CONTENT, "epochs": 1, "content_loss_weight": weight}).fit(data)
    net = model._net.train()
    torch.manual_seed(0)
    table = model._item_table(net)
    assert (model._content_table is None) == (weight == 0)
    content = net.item_tables(content_only=True)[1] if weight else None
    if weight:
        torch.testing.assert_close(content, model._content_table)  # ids off, no dropout: fixed
    tokens = torch.as_tensor([[1, 2, 3], [4, 5, 6]])
    hidden = net.encode(tokens, torch.as_tensor([0, 0]), table).reshape(-1, table.shape[1])
    target = torch.as_tensor([1, 2, 3, 4, 5, 6]) - 1
    warm = ~torch.as_tensor(model.cold_items_)
    column = torch.cumsum(warm, 0) - 1
    expected = torch.nn.functional.cross_entropy(hidden @ table[1:][warm].T, column[target])
    if weight:
        only = hidden @ content[1:][warm].T
        expected = expected + weight * torch.nn.functional.cross_entropy(only, column[target])
    torch.testing.assert_close(model._loss(table[1:], hidden, target, None), expected)
    assert model._content_table is None  # used once, then dropped


@pytest.mark.parametrize(("ties", "at_tie"), [("mid", 30.0), ("low", 20.0)])
def test_rank_map_places_a_tied_query_at_the_middle_of_its_ties(ties: str, at_tie: float) -> None:
    from fusionrec.models.sequential_hybrid import _rank_map

    known = torch.as_tensor([[1.0, 2.0, 2.0, 2.0, 3.0]])
    full = torch.as_tensor([[10.0, 20.0, 30.0, 40.0, 50.0]])
    query = torch.as_tensor([[2.0, 2.5, 0.0, 4.0]])
    got = _rank_map(known, full, query, depth=1000, ties=ties)
    # A tie takes its middle ("mid") or bottom ("low"); elsewhere the map is the same: linear
    # between known scores, slope 1 past either end.
    torch.testing.assert_close(got, torch.as_tensor([[at_tie, 45.0, 9.0, 51.0]]))
    even = _rank_map(known[:, 1:], full[:, 1:], torch.as_tensor([[2.0]]), depth=1000, ties=ties)
    torch.testing.assert_close(even, torch.as_tensor([[30.0 if ties == "mid" else 20.0]]))
