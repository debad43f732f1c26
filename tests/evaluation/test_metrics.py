"""Ranking metrics: hand-computed cases, and agreement with ranx (an independent implementation)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from fusionrec.evaluation.metrics import evaluate_rankings, gini, grouped_ndcg, rating_errors

# ranx's numba kernels warn about an internal cast; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:unsafe cast from uint64 to int64")

L3 = math.log2(3.0)  # discount at rank 2 is 1/log2(3); rank 1 -> 1/log2(2) = 1, rank 3 -> 1/log2(4) = 1/2


def truth_from_sets(rel: list[dict[int, float]], n_items: int) -> sp.csr_array:
    rows = [u for u, r in enumerate(rel) for _ in r]
    cols = [i for r in rel for i in r]
    vals = [g for r in rel for g in r.values()]
    return sp.csr_array((vals, (rows, cols)), shape=(len(rel), n_items))


# ----------------------------------------------------------------------------------------------------
# hand-computed accuracy metrics
# ----------------------------------------------------------------------------------------------------

# u0: hits at ranks 2 and 3 of {1, 2}; u1: one hit at rank 1 of {3, 4, 5}, list padded;
# u2: no relevant item (excluded); u3: no hit.
HAND_RECS = np.array([[0, 1, 2], [3, -1, -1], [4, 5, 0], [5, 4, 3]])
HAND_TRUTH = truth_from_sets([{1: 1, 2: 1}, {3: 1, 4: 1, 5: 1}, {}, {0: 1}], n_items=6)


def test_hand_computed_at_3() -> None:
    got = evaluate_rankings(
        HAND_RECS, HAND_TRUTH, ks=3, metrics=["Recall", "Precision", "HR", "NDCG", "MAP", "MRR"]
    )
    ndcg_u0 = (1 / L3 + 1 / 2) / (1 + 1 / L3)  # = 0.693426...
    ndcg_u1 = 1 / (1 + 1 / L3 + 1 / 2)  # IDCG over min(R=3, K=3) ranks = 0.469279...
    assert ndcg_u0 == pytest.approx(0.6934264036)
    assert ndcg_u1 == pytest.approx(0.4692787282)
    expected = {
        "Recall@3": (1 + 1 / 3 + 0) / 3,
        "Precision@3": (2 / 3 + 1 / 3 + 0) / 3,  # padding counts as a miss
        "HR@3": 2 / 3,
        "NDCG@3": (ndcg_u0 + ndcg_u1 + 0) / 3,
        "MAP@3": ((1 / 2 + 2 / 3) / 2 + 1 / 3 + 0) / 3,  # AP u0 = (P@2 + P@3) / min(2, 3)
        "MRR@3": (1 / 2 + 1 + 0) / 3,
    }
    assert got == pytest.approx(expected, abs=1e-12)


def test_hand_computed_at_2_and_per_user() -> None:
    summary, per = evaluate_rankings(
        HAND_RECS, HAND_TRUTH, ks=(2,), metrics=["Recall", "TruncRecall", "NDCG", "MAP"], per_user=True
    )
    # u0 top-2 = [0, 1], one hit at rank 2; u1 top-2 = [3, pad], R = 3 > K = 2
    np.testing.assert_allclose(per["NDCG@2"], [(1 / L3) / (1 + 1 / L3), 1 / (1 + 1 / L3), np.nan, 0.0])
    np.testing.assert_allclose(per["Recall@2"], [1 / 2, 1 / 3, np.nan, 0.0])
    np.testing.assert_allclose(per["TruncRecall@2"], [1 / 2, 1 / 2, np.nan, 0.0])  # hits / min(R, K)
    np.testing.assert_allclose(per["MAP@2"], [(1 / 2) / 2, 1 / 2, np.nan, 0.0])  # u1: 1 / min(3, 2)
    assert summary["NDCG@2"] == pytest.approx(np.nanmean(per["NDCG@2"]))
    assert set(summary) == {"Recall@2", "TruncRecall@2", "NDCG@2", "MAP@2"}


def test_graded_ndcg_hand_computed() -> None:
    # recs [0, 1, 2]; gains: item 0 -> 1, item 2 -> 3, item 3 -> 2 (not recommended)
    recs = np.array([[0, 1, 2]])
    truth = truth_from_sets([{0: 1.0, 2: 3.0, 3: 2.0}], n_items=4)
    lin = evaluate_rankings(recs, truth, ks=3, metrics=["NDCG"], gain="linear")["NDCG@3"]
    exp = evaluate_rankings(recs, truth, ks=3, metrics=["NDCG"], gain="exponential")["NDCG@3"]
    binary = evaluate_rankings(recs, truth, ks=3, metrics=["NDCG"])["NDCG@3"]
    assert lin == pytest.approx((1 + 3 / 2) / (3 + 2 / L3 + 1 / 2))  # 0.525006...
    assert exp == pytest.approx((1 + 7 / 2) / (7 + 3 / L3 + 1 / 2))  # 2**g - 1
    assert binary == pytest.approx((1 + 1 / 2) / (1 + 1 / L3 + 1 / 2))


def test_grouped_ndcg_known_values() -> None:  # the fused models' candidate groups
    row = np.array([0, 0, 0, 1, 1])
    labels = np.array([0, 1, 0, 1, 0], dtype=np.float32)
    perfect = np.array([0.1, 0.9, 0.2, 0.8, 0.1])
    assert grouped_ndcg(perfect, labels, row, 10) == pytest.approx(1.0)
    worst = np.array([0.9, 0.1, 0.5, 0.8, 0.1])  # row 0's relevant item ranked 3rd
    assert grouped_ndcg(worst, labels, row, 10) == pytest.approx((1 / np.log2(4) + 1) / 2)


def test_grouped_ndcg_graded_ties_cutoff_and_groups_without_labels() -> None:
    row = np.array([0, 0, 0, 1, 1, 2])
    labels = np.array([2, 0, 1, 0, 0, 1], dtype=np.float32)  # group 1 has no positive label
    scores = np.array([0.5, 0.5, 0.1, 0.3, 0.2, 0.7])  # a tie: the earlier entry ranks first
    expected = (3 / (3 + 1 / L3) + 1) / 2  # group 0 at k=2: gains 2**2 - 1, then 0; group 2: 1
    assert grouped_ndcg(scores, labels, row, 2) == pytest.approx(expected)
    assert grouped_ndcg(scores, np.zeros(6), row, 2) == 0.0
    assert grouped_ndcg(np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64), 5) == 0.0


def test_perfect_list_scores_one_even_when_more_relevant_than_k() -> None:
    recs = np.array([[4, 3, 2]])
    truth = truth_from_sets([{0: 1, 1: 1, 2: 1, 3: 1, 4: 1}], n_items=6)
    got = evaluate_rankings(recs, truth, ks=3, metrics=["NDCG", "MAP", "Precision", "Recall", "TruncRecall"])
    assert got == pytest.approx(
        {"NDCG@3": 1.0, "MAP@3": 1.0, "Precision@3": 1.0, "Recall@3": 3 / 5, "TruncRecall@3": 1.0}
    )


def test_duplicates_in_truth_are_summed_and_explicit_zeros_not_relevant() -> None:
    truth = sp.csr_array(([1.0, 1.0, 0.0], ([0, 0, 0], [1, 1, 2])), shape=(1, 3))  # (0,1) twice, (0,2)=0
    recs = np.array([[2, 1]])
    got = evaluate_rankings(recs, truth, ks=2, metrics=["Recall", "NDCG"], gain="linear")
    assert got["Recall@2"] == pytest.approx(1.0)  # one relevant item, not two
    assert got["NDCG@2"] == pytest.approx(1 / L3 / 1.0)  # gain 2 at rank 2 over ideal gain 2 at rank 1


# ----------------------------------------------------------------------------------------------------
# agreement with ranx on random cases
# ----------------------------------------------------------------------------------------------------


def random_case(
    seed: int, n_users: int = 400, n_items: int = 60, k_max: int = 20, graded: bool = False
) -> tuple[np.ndarray, sp.csr_array]:
    rng = np.random.default_rng(seed)
    recs = np.full((n_users, k_max), -1, dtype=np.int64)
    rel: list[dict[int, float]] = []
    for u in range(n_users):  # test data construction only; the code under test is vectorised
        n_rec = int(rng.integers(0, k_max + 1)) if u % 5 else k_max  # short (padded) and empty lists
        recs[u, :n_rec] = rng.permutation(n_items)[:n_rec]
        n_rel = int(rng.integers(0, 35)) if u % 7 else int(rng.integers(1, 4))  # R < K, R > K, R = 0
        items = rng.choice(n_items, size=min(n_rel, n_items), replace=False)
        # integer grades 1..3 give many ties among the gains
        rel.append({int(i): float(rng.integers(1, 4)) if graded else 1.0 for i in items})
    return recs, truth_from_sets(rel, n_items)


def ranx_scores(recs: np.ndarray, truth: sp.csr_array, metrics: list[str]) -> dict[str, np.ndarray]:
    ranx = pytest.importorskip("ranx")
    keep = np.flatnonzero(np.diff(truth.indptr) > 0)
    qrels: dict[str, dict[str, int]] = {}
    run: dict[str, dict[str, float]] = {}
    for u in keep:  # zero-padded ids: ranx returns per-query scores in sorted-id order
        lo, hi = truth.indptr[u], truth.indptr[u + 1]
        qrels[f"q{u:06d}"] = {
            f"d{i:05d}": int(g) for i, g in zip(truth.indices[lo:hi], truth.data[lo:hi], strict=True)
        }
        items = recs[u][recs[u] >= 0]
        run[f"q{u:06d}"] = {f"d{i:05d}": float(len(items) - r) for r, i in enumerate(items)} or {"none": 0.0}
    out = ranx.evaluate(ranx.Qrels(qrels), ranx.Run(run), metrics, return_mean=False, make_comparable=False)
    return {m: np.asarray(out[m]) for m in metrics}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_binary_metrics_match_ranx(seed: int) -> None:
    recs, truth = random_case(seed)
    ks = (1, 5, 10, 20)
    _, ours = evaluate_rankings(
        recs, truth, ks=ks, metrics=["Recall", "Precision", "HR", "NDCG", "MAP", "MRR"], per_user=True
    )
    names = {"Recall": "recall", "Precision": "precision", "HR": "hit_rate", "NDCG": "ndcg", "MRR": "mrr"}
    theirs = ranx_scores(recs, truth, [f"{r}@{k}" for r in [*names.values(), "map"] for k in ks])
    keep = np.diff(truth.indptr) > 0
    n_rel = np.diff(truth.indptr)[keep]
    assert keep.sum() < len(keep) and (n_rel > 20).any() and (n_rel < 5).any()  # the case covers the edges
    for k in ks:
        for mine, their in names.items():
            np.testing.assert_allclose(
                ours[f"{mine}@{k}"][keep], theirs[f"{their}@{k}"], atol=1e-12, err_msg=f"{mine}@{k}"
            )
        # ranx divides AP by R; we divide by min(R, K): ours * min(R, K) == ranx * R
        np.testing.assert_allclose(
            ours[f"MAP@{k}"][keep] * np.minimum(n_rel, k), theirs[f"map@{k}"] * n_rel, atol=1e-12
        )
        short = n_rel <= k  # where R <= K the two conventions coincide, elsewhere they must differ
        np.testing.assert_allclose(ours[f"MAP@{k}"][keep][short], theirs[f"map@{k}"][short], atol=1e-12)
        differ = ~np.isclose(ours[f"MAP@{k}"][keep], theirs[f"map@{k}"], atol=1e-12)
        assert differ.any() and (n_rel[differ] > k).all()


@pytest.mark.parametrize("seed", [3, 4])
def test_graded_ndcg_matches_ranx(seed: int) -> None:
    recs, truth = random_case(seed, graded=True)
    ks = (3, 10, 20)
    keep = np.diff(truth.indptr) > 0
    theirs = ranx_scores(recs, truth, [f"ndcg@{k}" for k in ks] + [f"ndcg_burges@{k}" for k in ks])
    _, lin = evaluate_rankings(recs, truth, ks=ks, metrics=["NDCG"], gain="linear", per_user=True)
    _, expo = evaluate_rankings(recs, truth, ks=ks, metrics=["NDCG"], gain="exponential", per_user=True)
    for k in ks:
        np.testing.assert_allclose(lin[f"NDCG@{k}"][keep], theirs[f"ndcg@{k}"], atol=1e-12)
        np.testing.assert_allclose(expo[f"NDCG@{k}"][keep], theirs[f"ndcg_burges@{k}"], atol=1e-12)


def test_means_exclude_users_without_relevant_items_and_chunking_is_invisible() -> None:
    recs, truth = random_case(5)
    keep = np.diff(truth.indptr) > 0
    whole, per = evaluate_rankings(recs, truth, ks=(5, 20), per_user=True)
    chunked = evaluate_rankings(recs, truth, ks=(5, 20), chunk_users=7)
    assert chunked == pytest.approx(whole, abs=1e-12)
    assert np.isnan(per["NDCG@20"][~keep]).all() and not np.isnan(per["NDCG@20"][keep]).any()
    assert whole["Recall@20"] == pytest.approx(per["Recall@20"][keep].mean())
    # the same users scored without the excluded ones give the same means
    assert evaluate_rankings(recs[keep], truth[keep], ks=(5, 20)) == pytest.approx(whole, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 8))
def test_bounds_and_monotonicity(seed: int, k: int) -> None:
    recs, truth = random_case(seed, n_users=30, n_items=15, k_max=8)
    _, per = evaluate_rankings(recs, truth, ks=sorted({k, 8}), per_user=True)
    for name, v in per.items():
        v = v[~np.isnan(v)]
        assert ((v >= -1e-12) & (v <= 1 + 1e-12)).all() or name.startswith("Novelty"), name
    for m in ("Recall", "HR", "MRR"):  # cannot drop with a larger cut-off
        assert (np.nan_to_num(per[f"{m}@8"]) >= np.nan_to_num(per[f"{m}@{k}"]) - 1e-12).all()


# ----------------------------------------------------------------------------------------------------
# beyond accuracy, hand-computed
# ----------------------------------------------------------------------------------------------------

# users 0-2 are evaluated; user 3 has no relevant item, so its list must not count anywhere
BEY_RECS = np.array([[0, 1, 2], [1, 3, -1], [2, 4, -1], [3, 4, -1]])
BEY_TRUTH = truth_from_sets([{0: 1}, {0: 1}, {0: 1}, {}], n_items=5)
POP = np.array([4.0, 2.0, 1.0, 1.0, 0.0])  # shares 1/2, 1/4, 1/8, 1/8, unseen -> 1/8
CATS = np.array(["a", "a", "b", None, "b"], dtype=object)
EMB = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0], [0.0, 0.0]])  # item 4: no direction


def test_beyond_accuracy_hand_computed() -> None:
    got = evaluate_rankings(
        BEY_RECS,
        BEY_TRUTH,
        ks=(1, 3),
        metrics=["Coverage", "Gini", "Novelty", "ARP", "ILD", "ILD-Emb"],
        train_popularity=POP,
        item_categories=CATS,
        item_embeddings=EMB,
    )
    # K=3 counts over items [1, 2, 2, 1, 1] (user 3 excluded): all 5 covered
    assert got["Coverage@3"] == pytest.approx(1.0)
    # Gini = sum_i |x_i - x_j| / (2 n^2 mean): 6 unequal pairs, both orders -> 12 / (2 * 25 * 1.4)
    assert got["Gini@3"] == pytest.approx(12 / 70)
    # K=1: items 0, 1, 2 once each -> [1, 1, 1, 0, 0]
    assert got["Coverage@1"] == pytest.approx(3 / 5)
    assert got["Gini@1"] == pytest.approx(12 / 30)
    # -log2 share: items -> 1, 2, 3, 3, 3 bits; users: (1+2+3)/3, (2+3)/2, (3+3)/2
    assert got["Novelty@3"] == pytest.approx((2 + 2.5 + 3) / 3)
    assert got["Novelty@1"] == pytest.approx((1 + 2 + 3) / 3)
    assert got["ARP@3"] == pytest.approx((7 / 3 + 3 / 2 + 1 / 2) / 3)
    # categories: u0 a,a,b -> 2 of 3 pairs differ; u1 has one known category (undefined, skipped);
    # u2 b,b -> 0
    assert got["ILD@3"] == pytest.approx((2 / 3 + 0) / 2)
    assert math.isnan(got["ILD@1"])  # no pairs at K=1
    # embeddings: u0 distances 1, 1 - 1/sqrt2, 1 - 1/sqrt2; u1 1 (orthogonal); u2 only one usable item
    assert got["ILD-Emb@3"] == pytest.approx(((3 - math.sqrt(2)) / 3 + 1) / 2)


def test_category_codes_as_integers_with_negative_unknown() -> None:
    cats = np.array([7, 7, 9, -1, 9])
    got = evaluate_rankings(BEY_RECS, BEY_TRUTH, ks=3, metrics=["ILD"], item_categories=cats)
    assert got["ILD@3"] == pytest.approx(1 / 3)


def test_embedding_ild_matches_explicit_pairs() -> None:
    rng = np.random.default_rng(9)
    emb = rng.normal(size=(30, 8))
    recs = np.stack([rng.permutation(30)[:6] for _ in range(50)])
    truth = sp.csr_array(np.ones((50, 30)))
    _, per = evaluate_rankings(recs, truth, ks=6, metrics=["ILD-Emb"], item_embeddings=emb, per_user=True)
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    iu = np.triu_indices(6, 1)
    explicit = [np.mean(1 - (unit[r] @ unit[r].T)[iu]) for r in recs]
    np.testing.assert_allclose(per["ILD-Emb@6"], explicit, atol=1e-12)


def test_gini_extremes() -> None:
    assert gini(np.array([3, 3, 3])) == 0.0
    assert gini(np.zeros(4)) == 0.0
    assert gini(np.array([0, 0, 0, 10])) == pytest.approx(3 / 4)  # (n - 1) / n for one item taking all


def test_default_metrics_follow_inputs() -> None:
    plain = evaluate_rankings(BEY_RECS, BEY_TRUTH, ks=(2,))
    assert set(plain) == {
        f"{m}@2" for m in ("Recall", "Precision", "HR", "NDCG", "MAP", "MRR", "Coverage", "Gini")
    }
    full = evaluate_rankings(
        BEY_RECS, BEY_TRUTH, ks=(2,), train_popularity=POP, item_categories=CATS, item_embeddings=EMB
    )
    assert {"Novelty@2", "ARP@2", "ILD@2", "ILD-Emb@2"} <= set(full)


# ----------------------------------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("recs", "message"),
    [
        (
            np.array([[0, 0, 1], [1, 2, 3], [0, 1, 2], [0, 1, 2]]),
            "row 0: item 0 is recommended more than once",
        ),
        (
            np.array([[0, 1, 2], [1, -1, 3], [0, 1, 2], [0, 1, 2]]),
            "row 1: item at position 2 follows -1 padding",
        ),
        (np.array([[0, 1, 2], [1, 2, 3], [0, 1, 5], [0, 1, 2]]), r"recs\[2, 2\] = 5 is not an item index"),
        (np.array([[0, 1, 2], [1, 2, 3], [0, 1, 2]]), "recs has 3 rows but truth has 4 users"),
        (np.zeros((4, 3)), "integer item indices"),
    ],
)
def test_bad_recs_are_named(recs: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        evaluate_rankings(recs, BEY_TRUTH, ks=2)


def test_other_bad_inputs() -> None:
    with pytest.raises(ValueError, match="k=4 exceeds the 3 recommendations"):
        evaluate_rankings(BEY_RECS, BEY_TRUTH, ks=(2, 4))
    with pytest.raises(ValueError, match="Novelty needs train_popularity"):
        evaluate_rankings(BEY_RECS, BEY_TRUTH, ks=2, metrics=["Novelty"])
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate_rankings(BEY_RECS, BEY_TRUTH, ks=2, metrics=["nDCG"])
    with pytest.raises(ValueError, match="truth row 1 holds a negative"):
        evaluate_rankings(BEY_RECS, truth_from_sets([{0: 1}, {1: -1}, {}, {}], 5), ks=2)
    with pytest.raises(ValueError, match="train_popularity must have one value per item"):
        evaluate_rankings(BEY_RECS, BEY_TRUTH, ks=2, metrics=["ARP"], train_popularity=POP[:3])
    with pytest.raises(ValueError, match="unknown gain"):
        evaluate_rankings(BEY_RECS, BEY_TRUTH, ks=2, gain="log")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="scipy sparse"):
        evaluate_rankings(BEY_RECS, np.ones((4, 5)), ks=2)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------------
# ratings
# ----------------------------------------------------------------------------------------------------


def test_rating_errors_hand_computed() -> None:
    got = rating_errors(np.array([3.0, 4.0, 5.0, 1.0]), np.array([4.0, 4.0, 3.0, 1.0]))
    assert got == pytest.approx({"RMSE": math.sqrt((1 + 0 + 4 + 0) / 4), "MAE": (1 + 0 + 2 + 0) / 4})


def test_rating_errors_bad_input() -> None:
    with pytest.raises(ValueError, match="shape"):
        rating_errors(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match=r"pred at position \[1\] is not finite"):
        rating_errors(np.array([1.0, np.nan]), np.zeros(2))
    with pytest.raises(ValueError, match="no ratings"):
        rating_errors(np.zeros(0), np.zeros(0))
