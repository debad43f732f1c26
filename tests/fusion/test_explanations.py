"""Explanations of fused and single models: reasons true to the model, specific to the item."""

from __future__ import annotations

import numpy as np
import pytest

from fusionrec.data.dataset import Dataset
from fusionrec.fusion.blend import BlendRecommender
from fusionrec.fusion.explanations import (
    BOUGHT,
    CARTED,
    Reason,
    explain_items,
    explain_model_items,
    sentence,
)
from fusionrec.fusion.pipeline import FusionRecommender, MultiSourceRecommender
from fusionrec.models.registry import create_model

HISTORY_SOURCES = [
    {"model": "item_knn", "n": 40, "params": {"neighbours": 30}},
    {"model": "ease", "n": 40, "params": {"l2": 200.0}},
    {"model": "rp3beta", "n": 40, "params": {"neighbours": 50}},
    {"model": "covisitation", "n": 40},
    {"model": "most_popular", "n": 20},
]
RANKER = {"params": {"n_estimators": 40, "min_data_in_leaf": 10, "num_leaves": 15}}


@pytest.fixture(scope="module")
def fused(shop: Dataset) -> FusionRecommender:
    return FusionRecommender(sources=HISTORY_SOURCES, ranker=RANKER, train_users=2000, seed=1).fit(shop)


@pytest.fixture(scope="module")
def blended(shop: Dataset) -> BlendRecommender:
    return BlendRecommender(sources=HISTORY_SOURCES, trials=4, train_users=2000, seed=1).fit(shop)


def busy_users(shop: Dataset, n: int = 8) -> list[int]:
    counts = np.diff(shop.matrix(binary=True).indptr)
    return [int(u) for u in np.argsort(-counts, kind="stable")[:n]]


@pytest.mark.parametrize("name", ["item_knn", "ease", "rp3beta", "covisitation"])
def test_history_terms_sum_to_the_score(shop: Dataset, name: str) -> None:
    model = create_model(name).fit(shop)
    user = busy_users(shop, 1)[0]
    history = np.asarray(shop.matrix(binary=True)[user].indices, dtype=np.int32)
    scores = model.score_histories([history])[0]
    stored = model.score(np.array([user]))[0]
    for item in np.argsort(-scores)[:5].tolist():
        items, terms = model.history_terms(-1, history, item)
        assert set(items.tolist()) <= set(history.tolist())
        assert terms.sum() == pytest.approx(scores[item], rel=1e-4, abs=1e-5)
    assert stored.max() > 0
    for item in np.argsort(-stored)[:5].tolist():  # the training row (co-visitation: its last items)
        _, stored_terms = model.history_terms(user, None, item)
        assert stored_terms.sum() == pytest.approx(stored[item], rel=1e-4, abs=1e-5)


def test_models_without_terms_say_so(shop: Dataset) -> None:
    model = create_model("most_popular").fit(shop)
    assert model.history_terms(0, None, 0) is None
    (explanation,) = explain_model_items(model, 0, [0])
    assert explanation.reason.kind == "popular"
    assert explanation.reason.shoppers == int((shop.matrix(binary=True)[:, 0] > 0).sum())


def check_model_reasons(model: MultiSourceRecommender, shop: Dataset) -> set[str]:
    """Every history reason names an item of the user's history whose removal lowers the item's
    score from the named source; the items of one answer do not share one sentence. Returns the
    reasons' kinds."""
    kinds: set[str] = set()
    history_reasons = 0
    for user in busy_users(shop):
        # The user's events in time order, as serving passes a live history to the sources.
        history = shop.item_idx[shop.user_idx == user].astype(np.int32)
        candidates, values = model.score_candidates(np.array([user]), [history])
        top = candidates.item[np.argsort(-values)[:10]].tolist()
        explained = explain_items(model, user, top, history)
        assert [e.item for e in explained] == top
        for e in explained:
            assert e.candidate and e.sources
            kinds.add(e.reason.kind)
            if e.reason.events is not None:  # popular in a window: the item's events in it, counted here
                days = {"today": 1, "this week": 7, "this month": 30}[e.reason.window]
                recent = shop.timestamp >= shop.timestamp.max() - days * 86_400
                assert e.reason.events == int((shop.item_idx[recent] == e.item).sum()) > 0
            if e.reason.kind != "history":
                continue
            history_reasons += 1
            named = e.reason.item
            assert named in history.tolist()
            source = model.source_models[e.reason.source]
            with_it = source.score_histories([history])[0, e.item]
            without = source.score_histories([history[history != named]])[0, e.item]
            assert without < with_it, (e, with_it, without)
        sentences = {sentence(e.reason, e.item, str, lambda i: None) for e in explained}
        assert len(sentences) > 1, sentences
    assert history_reasons > 0
    return kinds


def test_fused_reasons_name_items_that_drive_the_score(fused: FusionRecommender, shop: Dataset) -> None:
    kinds = check_model_reasons(fused, shop)
    assert {"history", "popular"} <= kinds  # the seeded shop gives both (and more)


def test_blend_reasons_come_from_its_weighted_sources(blended: BlendRecommender, shop: Dataset) -> None:
    kinds = check_model_reasons(blended, shop)
    assert kinds <= {"history", "popular", "source"}  # a blend has no features: sources only
    user = busy_users(shop, 1)[0]
    candidates, values = blended.score_candidates(np.array([user]))
    (e,) = explain_items(blended, user, [int(candidates.item[np.argmax(values)])])
    weighted = sum(f["contribution"] for f in e.features)
    assert weighted == pytest.approx(float(values.max()), rel=1e-4)  # the parts add up to the score


def test_a_live_history_is_explained_from_its_own_items(fused: FusionRecommender, shop: Dataset) -> None:
    history = np.asarray(shop.matrix(binary=True)[busy_users(shop, 1)[0]].indices[:4], dtype=np.int32)
    candidates, values = fused.score_candidates(np.array([-1]), [history])
    top = candidates.item[np.argsort(-values)[:10]].tolist()
    named = {e.reason.item for e in explain_items(fused, -1, top, history)} - {None}
    assert named and named <= set(history.tolist())


def test_an_item_no_source_proposed_is_not_a_candidate(fused: FusionRecommender, shop: Dataset) -> None:
    user = busy_users(shop, 1)[0]
    seen = int(fused.seen_[user].indices[0])  # excluded from the candidates
    (e,) = explain_items(fused, user, [seen])
    assert not e.candidate and e.reason.kind == "none" and e.sources == {}


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        (Reason("history", "item_knn", 7, "viewed"), "Because you viewed item 7"),
        (Reason("history", "ease", 7, CARTED), "Because you added item 7 to your cart"),
        (Reason("history", "ease", 7, BOUGHT), "Because you bought item 7"),
        (Reason("history", "ease", 7, None), "Because you looked at item 7"),
        (Reason("covisit", "covisit_recent", 7, CARTED), "Often chosen together with item 7 in your cart"),
        (Reason("popular", "pop_7d", window="this week"), "Popular in Tea this week"),
        (
            Reason("popular", "pop_7d", window="this week", events=14),
            "Popular in Tea this week: viewed or bought 14 times",
        ),
        (Reason("popular", "most_popular", window="", shoppers=1200), "Popular in Tea (1,200 shoppers)"),
        (Reason("category", "category_affinity"), "Because you often shop in Tea"),
        (Reason("repeat", "pair_events", 3, BOUGHT), "You bought this before"),
        (Reason("none"), "Not among your recommendations: no source proposed it"),
    ],
)
def test_sentences(reason: Reason, expected: str) -> None:
    assert sentence(reason, 3, lambda i: f"item {i}", lambda i: "Tea") == expected


def test_a_combiner_that_cannot_split_its_score_is_explained_by_its_best_ranked_source(
    fused: FusionRecommender, shop: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(FusionRecommender, "score_parts", lambda self, X, candidates, rows: None)
    user = busy_users(shop, 1)[0]
    candidates, values = fused.score_candidates(np.array([user]))
    top = candidates.item[np.argsort(-values)[:10]].tolist()
    for e in explain_items(fused, user, top):
        assert e.features == [] and e.reason.source in e.sources
        best = min(e.sources, key=lambda label: e.sources[label]["rank"])
        assert e.reason.source == best or e.reason.kind == "history"
