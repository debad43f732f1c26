"""Association rules, co-visitation and their recommenders, checked against brute-force counts."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from fusionrec.data.dataset import Dataset
from fusionrec.mining.covisitation import covisitation_matrix
from fusionrec.mining.rules import RULE_COLUMNS, baskets_from_dataset, mine_rules, rules_from_frame
from fusionrec.models.association import AssociationRulesRecommender, CovisitationRecommender


def events(rows: list[tuple], columns: tuple[str, ...] = ("user_id", "item_id", "event_type", "timestamp")):
    frame = pd.DataFrame(rows, columns=list(columns))
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], unit="s", utc=True)
    return frame


# --- mine_rules ------------------------------------------------------------------------------------


def brute_force_rules(
    baskets: list[set[int]], threshold: int
) -> dict[tuple[int, int], tuple[int, float, float]]:
    n = len(baskets)
    single = Counter(i for b in baskets for i in b)
    pairs = Counter(p for b in baskets for p in itertools.permutations(sorted(b), 2))
    return {
        (a, c): (count, count / single[a], (count / single[a]) / (single[c] / n))
        for (a, c), count in pairs.items()
        if count >= threshold and single[a] >= threshold and single[c] >= threshold
    }


def test_known_answer() -> None:
    baskets = (np.array([0, 0, 1, 1, 2, 2, 3, 4]), np.array([0, 1, 0, 1, 0, 2, 1, 3]))
    rules = mine_rules(baskets, min_support=0.0)
    assert list(rules.columns) == RULE_COLUMNS
    rule = rules[(rules.antecedent == 0) & (rules.consequent == 1)].iloc[0]
    assert rule["count"] == 2
    assert rule["support"] == pytest.approx(2 / 5)
    assert rule["confidence"] == pytest.approx(2 / 3)
    assert rule["lift"] == pytest.approx((2 / 3) / (3 / 5))
    # 2 -> 0 is the strongest rule: every basket with 2 holds 0.
    assert tuple(rules.iloc[0][["antecedent", "consequent"]]) == (2, 0)


def test_matches_brute_force_on_random_baskets() -> None:
    rng = np.random.default_rng(3)
    baskets = [set(rng.choice(15, size=rng.integers(1, 6), replace=False).tolist()) for _ in range(300)]
    rows = np.repeat(np.arange(len(baskets)), [len(b) for b in baskets])
    cols = np.concatenate([sorted(b) for b in baskets])
    rules = mine_rules((rows, cols), min_support=6 / 300)
    expected = brute_force_rules(baskets, threshold=6)
    got = {
        (int(r.antecedent), int(r.consequent)): (r.count, r.confidence, r.lift) for r in rules.itertuples()
    }
    assert got.keys() == expected.keys()
    for key, (count, confidence, lift) in expected.items():
        assert got[key][0] == count
        assert got[key][1] == pytest.approx(confidence)
        assert got[key][2] == pytest.approx(lift)
    assert rules["lift"].is_monotonic_decreasing


def test_csr_input_ids_and_thresholds() -> None:
    matrix = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 0], [1, 0, 1], [0, 0, 0], [2, 0, 0]]))
    from_csr = mine_rules(matrix, min_support=0.0)
    from_arrays = mine_rules(matrix.nonzero(), min_support=0.0)
    pd.testing.assert_frame_equal(from_csr, from_arrays)
    assert from_csr[(from_csr.antecedent == 0) & (from_csr.consequent == 1)].iloc[0]["support"] == 2 / 4
    strong = mine_rules(matrix, min_support=0.0, min_confidence=0.9)
    assert set(zip(strong.antecedent, strong.consequent, strict=True)) == {(1, 0), (2, 0)}
    labelled = mine_rules(matrix, min_support=0.5, item_ids=np.array(["x", "y", "z"]))
    assert set(zip(labelled.antecedent, labelled.consequent, strict=True)) == {("x", "y"), ("y", "x")}


def test_rules_from_a_long_table_of_ids() -> None:
    frame = pd.DataFrame(
        {"order": ["o1", "o1", "o2", "o2", "o3"], "sku": ["tea", "mug", "tea", "mug", "tea"]}
    )
    rules = rules_from_frame(frame, "order", "sku", min_support=0.5)
    mug_tea = rules[(rules.antecedent == "mug") & (rules.consequent == "tea")].iloc[0]
    assert mug_tea["confidence"] == 1.0 and mug_tea["count"] == 2
    with pytest.raises(ValueError, match="row 1: sku is null"):
        rules_from_frame(frame.assign(sku=["tea", None, "a", "b", "c"]), "order", "sku")


def test_bad_baskets_are_rejected() -> None:
    with pytest.raises(ValueError, match=r"item_idx\[1\] is -2"):
        mine_rules((np.array([0, 0]), np.array([1, -2])))
    with pytest.raises(ValueError, match="3 basket indices for 2"):
        mine_rules((np.array([0, 0, 1]), np.array([1, 2])))
    with pytest.raises(ValueError, match="max_len"):
        mine_rules((np.array([0]), np.array([1])), max_len=3)
    with pytest.raises(ValueError, match="outside n_items"):
        mine_rules((np.array([0]), np.array([5])), n_items=3)
    assert mine_rules((np.array([], dtype=int), np.array([], dtype=int))).empty


# --- baskets from a Dataset ---------------------------------------------------------------------------


def test_baskets_group_by_session_then_user_day() -> None:
    day = 86_400
    frame = events(
        [
            ("u1", "a", "purchase", 10, "s1"),
            ("u1", "b", "purchase", 20, "s1"),
            ("u1", "c", "purchase", 30, "s2"),
            ("u1", "d", "purchase", 40, None),  # no session: u1's day 0
            ("u1", "e", "purchase", 50, None),
            ("u1", "f", "purchase", day + 5, None),  # next day: another basket
            ("u2", "g", "purchase", 60, None),
            ("u2", "a", "view", 70, None),  # not a purchase
        ],
        columns=("user_id", "item_id", "event_type", "timestamp", "session_id"),
    )
    ds = Dataset.from_frame(frame)
    basket, items = baskets_from_dataset(ds)
    groups = pd.Series(ds.items.id(items)).groupby(basket).apply(lambda s: "".join(sorted(s)))
    assert sorted(groups) == ["ab", "c", "de", "f", "g"]
    _, by_user_items = baskets_from_dataset(ds, by="user")
    assert len(by_user_items) == 7
    with pytest.raises(ValueError, match="unknown event type"):
        baskets_from_dataset(ds, ["buy_now"])


# --- co-visitation ----------------------------------------------------------------------------------


def brute_force_covisitation(ds: Dataset, window: int, span: int, weights: np.ndarray) -> np.ndarray:
    """Loop over every pair of events of the same session (collapse_repeats off)."""
    out = np.zeros((ds.n_items, ds.n_items))
    w = weights[ds.event_code]
    frame = pd.DataFrame(
        {"g": ds.session_idx, "t": ds.timestamp, "i": ds.item_idx, "w": w, "o": np.arange(ds.n_events)}
    )
    frame = frame[frame.w > 0].sort_values(["g", "t", "o"])
    for _, part in frame.groupby("g"):
        rows = part.to_numpy()
        for x in range(len(rows)):
            for y in range(x + 1, min(len(rows), x + 1 + span)):
                if rows[y][1] - rows[x][1] > window or rows[x][2] == rows[y][2]:
                    continue
                a, b = int(rows[x][2]), int(rows[y][2])
                out[a, b] += rows[y][3]
                out[b, a] += rows[x][3]
    return out


def random_sessions(seed: int = 5, n: int = 400) -> Dataset:
    rng = np.random.default_rng(seed)
    types = np.array(["view", "click", "add_to_cart", "purchase", "remove_from_cart"])
    frame = events(
        [
            (
                f"u{rng.integers(20)}",
                f"i{rng.integers(12)}",
                types[rng.integers(5)],
                int(rng.integers(0, 5000)),
                f"s{rng.integers(30)}",
            )
            for _ in range(n)
        ],
        columns=("user_id", "item_id", "event_type", "timestamp", "session_id"),
    )
    return Dataset.from_frame(frame)


def test_covisitation_matches_brute_force() -> None:
    ds = random_sessions()
    weights = {"view": 1.0, "click": 2.0, "add_to_cart": 5.0, "purchase": 3.0}
    code_weights = np.array([weights.get(name, 0.0) for name in ds.event_types.names])
    got = covisitation_matrix(ds, 600, weights, max_span_events=4, collapse_repeats=False)
    expected = brute_force_covisitation(ds, 600, 4, code_weights)
    np.testing.assert_allclose(got.toarray(), expected, rtol=1e-6)
    assert expected.sum() > 0


def test_covisitation_window_types_and_repeats() -> None:
    frame = events(
        [
            ("u", "a", "view", 0, "s"),
            ("u", "a", "view", 10, "s"),  # reload of a: collapsed
            ("u", "b", "add_to_cart", 100, "s"),
            ("u", "c", "view", 5000, "s"),  # outside the 1000 s window
            ("v", "c", "view", 101, "t"),  # another session
        ],
        columns=("user_id", "item_id", "event_type", "timestamp", "session_id"),
    )
    ds = Dataset.from_frame(frame)
    a, b, c = ds.items.index(["a", "b", "c"])
    dense = covisitation_matrix(ds, 1000).toarray()
    assert dense[a, b] == 4.0, "a -> b carries the add_to_cart weight of b"
    assert dense[b, a] == 1.0, "b -> a carries the view weight of a, counted once despite the reload"
    assert dense[:, c].sum() == 0 and dense[c].sum() == 0
    # Without collapsing, the reload adds a second a-b pair.
    assert covisitation_matrix(ds, 1000, collapse_repeats=False).toarray()[a, b] == 8.0
    assert covisitation_matrix(ds, 1000, {"add_to_cart": 0.0}).nnz == 0
    row = covisitation_matrix(ds, 10_000, normalise="row").toarray()
    np.testing.assert_allclose(row.sum(axis=1), 1.0)
    with pytest.raises(ValueError, match="unknown event type"):
        covisitation_matrix(ds, 1000, {"teleport": 1.0})


def test_covisitation_gap_decay_weighs_the_next_item_most() -> None:
    frame = events(
        [("u", "a", "view", 0, "s"), ("u", "b", "view", 10, "s"), ("u", "c", "view", 20, "s")],
        columns=("user_id", "item_id", "event_type", "timestamp", "session_id"),
    )
    ds = Dataset.from_frame(frame)
    a, b, c = ds.items.index(["a", "b", "c"])
    flat = covisitation_matrix(ds, 1000, symmetric=False).toarray()
    decayed = covisitation_matrix(ds, 1000, symmetric=False, gap_decay=True).toarray()
    assert flat[a, b] == flat[a, c] == flat[b, c] == 1.0
    assert (decayed[a, b], decayed[a, c], decayed[b, c]) == (1.0, 0.5, 1.0), (
        "a pair k events apart weighs 1/k"
    )
    assert decayed[b, a] == decayed[c, a] == 0.0, "one way: only what follows"
    both = covisitation_matrix(ds, 1000, gap_decay=True).toarray()
    assert both[c, a] == both[a, c] == 0.5


# --- recommenders ------------------------------------------------------------------------------------


def complementary_shop(seed: int = 11) -> tuple[Dataset, list[tuple[str, str]]]:
    """Baskets of random fillers, where buying a planted item usually brings its partner along."""
    rng = np.random.default_rng(seed)
    pairs = [("p0", "q0"), ("p1", "q1"), ("p2", "q2")]
    rows = []
    for s in range(400):
        t = s * 10_000
        basket = [f"f{x}" for x in rng.choice(20, size=2, replace=False)]
        if rng.random() < 0.5:
            p, q = pairs[rng.integers(len(pairs))]
            basket += [p, q] if rng.random() < 0.9 else [p]
        for pos, item in enumerate(basket):
            rows.append((f"u{s % 150}", item, "view", t + pos * 30, f"s{s}"))
            rows.append((f"u{s % 150}", item, "purchase", t + pos * 30 + 10, f"s{s}"))
    frame = events(rows, columns=("user_id", "item_id", "event_type", "timestamp", "session_id"))
    return Dataset.from_frame(frame), pairs


def test_association_rules_find_planted_pairs() -> None:
    ds, pairs = complementary_shop()
    model = AssociationRulesRecommender().fit(ds)
    antecedents = ds.items.index([p for p, _ in pairs])
    items, scores = model.bought_together(antecedents, k=1)
    assert ds.items.id(items[:, 0]).tolist() == [q for _, q in pairs]
    assert (scores[:, 0] > 0.8).all(), "confidence of p -> q is about 0.9"
    # A user who just bought p1 is offered q1 first, from a live session too.
    history = ds.items.index(["f3", "p1"])
    recs, _ = model.recommend_from_history([history], k=1)
    assert ds.items.id(recs[0])[0] == "q1"


def test_association_rules_lift_metric_and_no_rules_fallback() -> None:
    ds, _ = complementary_shop()
    lift = AssociationRulesRecommender(metric="lift", min_confidence=0.5).fit(ds)
    assert lift.item_item_.nnz > 0 and lift.item_item_.data.min() > 1.0
    none = AssociationRulesRecommender(event_types=["favorite"]).fit(ds)
    assert none.item_item_.nnz == 0
    items, _ = none.recommend(np.array([0]), k=3, exclude=None)
    popular = np.argsort(-none.popularity_, kind="stable")[:3]
    np.testing.assert_array_equal(items[0], popular)


def test_covisitation_model_scores_recent_items() -> None:
    ds, _ = complementary_shop()
    model = CovisitationRecommender(window_seconds=600).fit(ds)
    items, _ = model.similar_items(ds.items.index(["p0"]), k=1)
    assert ds.items.id(items[0])[0] == "q0"
    # Scoring a stored user equals scoring the same recent items given as a history.
    user = int(np.argmax(np.diff(ds.matrix(binary=True).indptr)))
    indptr, seq = ds.sequences()
    history = seq[indptr[user] : indptr[user + 1]]
    cfg = CovisitationRecommender(window_seconds=600, weighting="binary").fit(ds)
    np.testing.assert_allclose(cfg.score_histories([history])[0], cfg.score(np.array([user]))[0], rtol=1e-5)
    # Recency: the newest item dominates a short half-life.
    newest = CovisitationRecommender(window_seconds=600, recency_half_life=0.2)
    recs, _ = newest.fit(ds).recommend_from_history([ds.items.index(["p2", "p0"])], k=1)
    assert ds.items.id(recs[0])[0] == "q0"


def test_covisitation_one_way_proposes_what_follows_not_what_came_before() -> None:
    """Every user goes a -> b -> c: one way, b's history proposes c (its follower) and never a."""
    rows = [(f"u{u}", item, "view", 100 * u + step) for u in range(20) for step, item in enumerate("abc")]
    ds = Dataset.from_frame(events(rows))
    a, b, c = ds.items.index(["a", "b", "c"])
    both = CovisitationRecommender(weighting="binary").fit(ds).score_histories([np.array([b])])[0]
    ahead = (
        CovisitationRecommender(weighting="binary", symmetric=False)
        .fit(ds)
        .score_histories([np.array([b])])[0]
    )
    assert both[a] > 0 and both[c] > 0
    assert ahead[c] > 0 and ahead[a] < ahead[c]
    assert CovisitationRecommender(symmetric=False).fit(ds).item_item_[b, a] == 0


# --- the synthetic shop's planted complements ----------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic_shop() -> tuple[Dataset, list[tuple[str, str, str]]]:
    synthetic = pytest.importorskip("fusionrec.data.synthetic")
    # More carts and checkouts than the default shop, so a small log holds enough baskets.
    config = synthetic.ShopConfig(cart_rate=0.06, checkout_rate=0.8)
    shop = synthetic.generate_frames(n_events=300_000, seed=0, config=config)
    return Dataset.from_frame(shop.events, shop.items, shop.users), shop.summary.complements


def test_rules_find_the_planted_complementary_pairs(synthetic_shop) -> None:
    ds, complements = synthetic_shop
    planted = {(a, c) for a, c, _ in complements} | {(c, a) for a, c, _ in complements}
    rules = mine_rules(baskets_from_dataset(ds), min_support=0.0, min_count=2, item_ids=ds.items.ids)
    is_planted = np.array([pair in planted for pair in zip(rules.antecedent, rules.consequent, strict=True)])
    assert len(rules) > 100
    assert is_planted[:20].mean() >= 0.8, "the strongest rules by lift are the planted pairs"
    assert is_planted.mean() >= 0.5
    assert rules.lift[is_planted].median() > 2 * rules.lift[~is_planted].median()


def test_bought_together_recovers_each_anchors_complement(synthetic_shop) -> None:
    ds, complements = synthetic_shop
    partners: dict[str, set[str]] = {}
    for anchor, complement, _ in complements:
        partners.setdefault(anchor, set()).add(complement)
    model = AssociationRulesRecommender().fit(ds)
    bought = np.bincount(ds.item_idx[ds.event_mask("purchase")], minlength=ds.n_items)
    anchors = [a for a in partners if bought[ds.items.index([a])[0]] >= 3]
    assert len(anchors) >= 50
    items, _ = model.bought_together(ds.items.index(anchors), k=3)
    found = [
        bool(set(ds.items.id(row[row >= 0])) & partners[a]) for a, row in zip(anchors, items, strict=True)
    ]
    assert np.mean(found) >= 0.75, f"only {np.mean(found):.2f} of anchors list a planted complement in top 3"
