"""Candidate union, candidate recall and the feature context."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from fusionrec.data.dataset import Dataset
from fusionrec.fusion.candidates import candidate_recall, union
from fusionrec.fusion.features import FeatureContext


def test_union_deduplicates_and_keeps_each_sources_rank() -> None:
    a = (
        np.array([[3, 1, -1], [0, 2, 4]], dtype=np.int32),
        np.array([[9, 8, -np.inf], [5, 4, 3]], np.float32),
    )
    b = (np.array([[1, 5, 0], [2, 6, 7]], dtype=np.int32), np.array([[7, 6, 5], [3, 2, 1]], np.float32))
    c = union({"a": a, "b": b}, n_rows=2, n_items=8)
    assert c.row.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 1]
    assert c.item.tolist() == [0, 1, 3, 5, 0, 2, 4, 6, 7]
    # item 1 of row 0: rank 2 in a, rank 1 in b; item 3 only in a
    np.testing.assert_array_equal(c.ranks[1], [2, 1])
    assert np.isnan(c.ranks[2, 1]) and c.ranks[2, 0] == 1
    np.testing.assert_array_equal(c.scores[1], [8, 7])
    assert c.proposed().sum() == 11  # a proposed 5 (one slot padded), b 6; 9 distinct pairs
    assert c.indptr.tolist() == [0, 4, 9]


def test_candidate_recall_total_and_per_source() -> None:
    a = (np.array([[1, 2]], dtype=np.int32), np.ones((1, 2), np.float32))
    b = (np.array([[3, 2]], dtype=np.int32), np.ones((1, 2), np.float32))
    c = union({"a": a, "b": b}, n_rows=1, n_items=6)
    truth = sp.csr_matrix(np.array([[0, 1, 0, 1, 1, 0]], dtype=np.float32))  # items 1, 3, 4
    recall = candidate_recall(c, truth)
    assert recall == {"total": 2 / 3, "a": 1 / 3, "b": 1 / 3}


def test_feature_context_values_and_round_trip(shop: Dataset, tmp_path: Path) -> None:
    ctx = FeatureContext.build(shop)
    user = int(shop.user_idx[-1])
    bought = shop.item_idx[shop.event_mask("purchase") & (shop.user_idx == user)]
    history = shop.item_idx[shop.user_idx == user]
    unseen = np.setdiff1d(np.arange(shop.n_items), history)[:3]
    items = np.concatenate([history[-2:], unseen]).astype(np.int32)
    lists = {"x": (items[None, :], np.arange(len(items), 0, -1, dtype=np.float32)[None, :])}
    cands = union(lists, 1, shop.n_items)
    X = ctx.features(np.array([user]), cands)
    names = FeatureContext.feature_names(["x"])
    assert X.shape == (len(cands), len(names))
    col = {n: i for i, n in enumerate(names)}
    seen_rows = np.isin(cands.item, history)
    assert (X[seen_rows, col["days_since_interaction"]] >= 0).all()
    assert np.isnan(X[~seen_rows, col["days_since_interaction"]]).all()
    assert (X[:, col["user_events"]] == (shop.user_idx == user).sum()).all()
    if len(bought):
        in_bought = np.isin(cands.item, bought)
        assert (X[in_bought, col["bought"]] >= 1).all()
    np.testing.assert_array_equal(X[:, col["pop_all"]], shop.item_popularity()[cands.item])
    np.savez(tmp_path / "f.npz", **ctx.to_arrays())
    with np.load(tmp_path / "f.npz", allow_pickle=False) as arrays:
        loaded = FeatureContext.from_arrays({k: arrays[k] for k in arrays.files})
    np.testing.assert_array_equal(loaded.features(np.array([user]), cands), X)
    older = {k: v for k, v in ctx.to_arrays().items() if not k.startswith("first_seen")}
    with pytest.raises(ValueError, match=r"lacks \['first_seen'\].*older fusionrec; retrain"):
        FeatureContext.from_arrays(older)


def test_live_history_changes_session_features(shop: Dataset) -> None:
    ctx = FeatureContext.build(shop)
    names = FeatureContext.feature_names(["x"])
    anchor = int(ctx.covisit.tocoo().row[0])
    neighbour = int(ctx.covisit[anchor].indices[0])
    cands = union({"x": (np.array([[neighbour]], np.int32), np.ones((1, 1), np.float32))}, 1, shop.n_items)
    live = ctx.features(np.array([-1]), cands, histories=[np.array([anchor])])
    col = names.index("covisit_last")
    assert live[0, col] == ctx.covisit[anchor, neighbour] > 0
    assert np.isnan(live[0, names.index("user_events")])  # unknown visitor


def test_relative_features_are_ratios_to_the_rows_best_score_and_to_the_means(shop: Dataset) -> None:
    ctx = FeatureContext.build(shop)
    users = np.array([0, 1])
    items = np.array([[3, 5, 7], [5, 8, -1]], dtype=np.int32)
    scores = np.array([[4.0, 2.0, 1.0], [0.5, 0.25, 0.0]], dtype=np.float32)
    other = (np.array([[9], [3]], dtype=np.int32), np.array([[-1.0], [2.0]], dtype=np.float32))
    cands = union({"x": (items, scores), "y": other}, 2, shop.n_items)
    raw = ctx.features(users, cands)
    rel = ctx.features(users, cands, relative=True)
    col = {n: i for i, n in enumerate(FeatureContext.feature_names(["x", "y"]))}
    best_x = np.where(cands.row == 0, 4.0, 0.5)
    np.testing.assert_allclose(rel[:, col["x_score"]], raw[:, col["x_score"]] / best_x)
    # y's best score is negative for row 0 (no meaningful ratio) and 2.0 for row 1
    y_proposed = ~np.isnan(raw[:, col["y_score"]])
    assert np.isnan(rel[y_proposed & (cands.row == 0), col["y_score"]]).all()
    np.testing.assert_allclose(rel[y_proposed & (cands.row == 1), col["y_score"]], [1.0])
    np.testing.assert_array_equal(rel[:, col["x_rank"]], raw[:, col["x_rank"]])
    pop_mean = shop.item_popularity().mean()
    np.testing.assert_allclose(rel[:, col["pop_all"]], raw[:, col["pop_all"]] / pop_mean, rtol=1e-5)
    events_mean = np.bincount(shop.user_idx, minlength=shop.n_users).mean()
    np.testing.assert_allclose(
        rel[:, col["user_events"]], raw[:, col["user_events"]] / events_mean, rtol=1e-5
    )
    untouched = [col[n] for n in ("user_recency_days", "covisit_recent", "days_since_interaction")]
    np.testing.assert_array_equal(rel[:, untouched], raw[:, untouched])


def _candidate_features(
    ctx: FeatureContext, users: np.ndarray, items: np.ndarray
) -> tuple[np.ndarray, dict[str, int], dict[tuple[int, int], int]]:
    """Features of one source "x" proposing ``items[r]`` to ``users[r]``: the matrix, its column
    per feature name, and its row per (candidate row, item)."""
    cands = union({"x": (items, np.ones(items.shape, dtype=np.float32))}, len(users), ctx.item_pop.shape[0])
    X = ctx.features(users, cands)
    col = {n: i for i, n in enumerate(FeatureContext.feature_names(["x"]))}
    at = {(int(r), int(i)): k for k, (r, i) in enumerate(zip(cands.row, cands.item, strict=True))}
    return X, col, at


def test_repurchase_rhythm_features() -> None:
    day = 86_400
    rows = [("u", "milk", 0), ("u", "milk", 10 * day), ("u", "milk", 20 * day), ("u", "tea", 20 * day)]
    rows += [("u", "bread", 30 * day)]
    events = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    events["event_type"] = "purchase"
    events["timestamp"] = pd.to_datetime(1_700_000_000 + events["timestamp"], unit="s", utc=True)
    dataset = Dataset.from_frame(events)
    ctx = FeatureContext.build(dataset)
    milk, tea = dataset.items.index(np.array(["milk", "tea"]))
    X, col, at = _candidate_features(ctx, np.array([0]), np.array([[milk, tea]], dtype=np.int32))
    # milk: 3 purchases 10 days apart, the last 10 days before the data's end: due now
    assert X[at[0, milk], col["pair_events"]] == 3
    assert X[at[0, milk], col["interval_days"]] == pytest.approx(10.0)
    assert X[at[0, milk], col["due_ratio"]] == pytest.approx(1.0)
    # tea: bought once, no rhythm yet
    assert X[at[0, tea], col["pair_events"]] == 1
    assert np.isnan(X[at[0, tea], [col["interval_days"], col["due_ratio"]]]).all()


def test_repeat_rates_of_items_and_users() -> None:
    # milk: u buys it three times, v once (1 of 2 users repeat, 2 events per user); tea: once by u
    rows = [("u", "milk", 0), ("u", "milk", 1), ("u", "milk", 2), ("u", "tea", 3), ("v", "milk", 4)]
    events = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    events["event_type"] = "purchase"
    events["timestamp"] = pd.to_datetime(1_700_000_000 + events["timestamp"] * 86_400, unit="s", utc=True)
    dataset = Dataset.from_frame(events)
    ctx = FeatureContext.build(dataset)
    milk, tea = dataset.items.index(np.array(["milk", "tea"]))
    u, v = dataset.users.index(np.array(["u", "v"]))
    items = np.array([[milk, tea], [milk, tea]], dtype=np.int32)
    X, col, at = _candidate_features(ctx, np.array([u, v]), items)
    assert X[at[0, milk], col["item_repeat_rate"]] == pytest.approx(0.5)
    assert X[at[0, milk], col["item_events_per_user"]] == pytest.approx(2.0)
    assert X[at[0, tea], col["item_repeat_rate"]] == 0.0
    assert X[at[0, milk], col["user_repeat_share"]] == pytest.approx(1 - 2 / 4)  # u: 4 events, 2 items
    assert X[at[1, milk], col["user_repeat_share"]] == 0.0  # v: one event


def test_user_popularity_and_popularity_gap() -> None:
    # hit: bought by u, v and w (3 users); niche: by u only; u's items: hit and niche
    rows = [("u", "hit"), ("v", "hit"), ("w", "hit"), ("u", "niche"), ("w", "other")]
    events = pd.DataFrame(rows, columns=["user_id", "item_id"])
    events["event_type"] = "purchase"
    events["timestamp"] = pd.to_datetime(1_700_000_000 + np.arange(len(rows)) * 60, unit="s", utc=True)
    dataset = Dataset.from_frame(events)
    ctx = FeatureContext.build(dataset)
    hit, niche, other = dataset.items.index(np.array(["hit", "niche", "other"]))
    u, v = dataset.users.index(np.array(["u", "v"]))
    items = np.array([[hit, other], [niche, other]], dtype=np.int32)
    X, col, at = _candidate_features(ctx, np.array([u, v]), items)
    u_mean = (np.log1p(3) + np.log1p(1)) / 2
    assert X[at[0, hit], col["user_popularity"]] == pytest.approx(u_mean)
    assert X[at[1, niche], col["user_popularity"]] == pytest.approx(np.log1p(3))  # v has only the hit
    assert X[at[0, hit], col["popularity_gap"]] == pytest.approx(np.log1p(3) - u_mean)
    assert X[at[1, niche], col["popularity_gap"]] == pytest.approx(np.log1p(1) - np.log1p(3))
    # unknown visitors get no user features, so no gap either
    X_unknown, _, _ = _candidate_features(ctx, np.array([-1, v]), items)
    assert np.isnan(X_unknown[at[0, hit], [col["user_popularity"], col["popularity_gap"]]]).all()


def test_price_trend_compares_the_last_week_with_the_items_usual_price() -> None:
    # milk: 2.0 on days 0 and 1, on offer at 1.0 on day 20 (the data's end); tea: only on day 2;
    # bread: only on day 19
    rows = [
        ("u", "milk", 0, 2.0),
        ("v", "milk", 1, 2.0),
        ("u", "tea", 2, 3.0),
        ("v", "bread", 19, 1.5),
        ("u", "milk", 20, 1.0),
    ]
    events = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp", "price"])
    events["event_type"] = "purchase"
    events["timestamp"] = pd.to_datetime(1_700_000_000 + events["timestamp"] * 86_400, unit="s", utc=True)
    dataset = Dataset.from_frame(events)
    ctx = FeatureContext.build(dataset)
    milk, tea, bread = dataset.items.index(np.array(["milk", "tea", "bread"]))
    u = dataset.users.index(np.array(["u"]))
    X, col, at = _candidate_features(ctx, u, np.array([[milk, tea, bread]], dtype=np.int32))
    assert X[at[0, milk], col["price_trend"]] == pytest.approx(1.0 / (5.0 / 3.0))
    assert np.isnan(X[at[0, tea], col["price_trend"]])  # no sale in the last 7 days
    assert X[at[0, bread], col["price_trend"]] == pytest.approx(1.0)


def test_user_attribute_features_only_with_attributes_and_their_values() -> None:
    from attribute_data import OLD_ITEMS, YOUNG_ITEMS, planted_shop
    from fusionrec.data.user_attributes import (
        SegmentLift,
        dataset_codes,
        informative_encoder,
    )
    from fusionrec.fusion.features import attribute_feature_names

    events, users = planted_shop()
    plain = Dataset.from_frame(events)
    assert FeatureContext.build(plain).attribute_features == []

    dataset = Dataset.from_frame(events, users=users)
    encoder = informative_encoder(dataset.user_features, dataset.matrix(binary=True))
    assert encoder.names == ("age",)  # region is noise: no feature of its own
    ctx = FeatureContext.build(dataset, attributes=encoder)
    assert ctx.attribute_features == attribute_feature_names(["age"])
    assert ctx.attribute_features == ["user_attr_age", "segment_lift_age", "segment_lift"]

    young, guest = int(dataset.users.index(["u0"])[0]), -1
    items = dataset.items.index(np.array([YOUNG_ITEMS[0], OLD_ITEMS[0]])).astype(np.int32)
    lists = {"x": (np.stack([items, items]), np.ones((2, 2), dtype=np.float32))}
    cands = union(lists, 2, dataset.n_items)
    X = ctx.features(np.array([young, guest]), cands)
    names = FeatureContext.feature_names(["x"]) + ctx.attribute_features
    assert X.shape == (len(cands), len(names))
    col = {n: i for i, n in enumerate(names)}
    segments = SegmentLift.build(
        dataset_codes(dataset.user_features, encoder), dataset.matrix(binary=True), encoder.sizes()
    )
    code = encoder.encode(['{"age": "young"}'])
    expected = segments.scores(code)[0] - segments.log_share  # the mean log lift, one attribute
    mine = cands.row == 0
    assert (X[mine, col["user_attr_age"]] == code[0, 0]).all()
    np.testing.assert_allclose(X[mine, col["segment_lift_age"]], expected[cands.item[mine]], rtol=1e-5)
    np.testing.assert_allclose(X[mine, col["segment_lift"]], X[mine, col["segment_lift_age"]])
    lift = dict(zip(cands.item[mine], X[mine, col["segment_lift_age"]], strict=True))
    assert lift[items[0]] > 0 > lift[items[1]]  # young users take y-items, not o-items
    # A guest (unknown to training) has no attributes: missing, never a made-up segment.
    assert np.isnan(X[~mine][:, [col[n] for n in ctx.attribute_features]]).all()
    # Saved and loaded as plain arrays; a context saved before attributes existed loads without.
    loaded = FeatureContext.from_arrays(ctx.to_arrays())
    np.testing.assert_array_equal(loaded.features(np.array([young, guest]), cands), X)
    older = {k: v for k, v in ctx.to_arrays().items() if "attribute" not in k and "segment" not in k}
    assert FeatureContext.from_arrays(older).attribute_features == []


def test_fusion_ranker_reads_attribute_features_only_when_the_data_has_them() -> None:
    from attribute_data import planted_shop
    from fusionrec.models.registry import create_model

    events, users = planted_shop(n_young=150, n_old=200)
    sources = [{"model": "most_popular", "n": 20}, {"model": "popular_segment", "n": 20}]
    config = {
        "sources": sources,
        "holdout": {"mode": "last", "items": 1, "min_history": 1},
        "ranker": {"params": {"n_estimators": 10, "min_data_in_leaf": 5, "num_leaves": 7}},
    }
    plain = create_model("fusion", **config).fit(Dataset.from_frame(events))
    assert plain.feature_names() == FeatureContext.feature_names(["most_popular", "popular_segment"])
    with_attributes = create_model("fusion", **config, user_attributes=True).fit(
        Dataset.from_frame(events, users=users)
    )
    assert with_attributes.feature_names()[-3:] == ["user_attr_age", "segment_lift_age", "segment_lift"]
    by_default = create_model("fusion", **config).fit(Dataset.from_frame(events, users=users))
    assert by_default.feature_names() == plain.feature_names()  # off unless asked for
