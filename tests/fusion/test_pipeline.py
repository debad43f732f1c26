"""The fused models: no leakage, labels, persistence, explanations, the model repository."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from fusion.conftest import FAST_RANKER, FAST_SOURCES
from fusionrec.data.dataset import Dataset
from fusionrec.data.split import Split
from fusionrec.evaluation.protocol import evaluate_model
from fusionrec.fusion import pipeline as pipeline_module
from fusionrec.fusion.artifacts import ArtifactError, ModelRepository
from fusionrec.fusion.config import HoldoutConfig
from fusionrec.fusion.pipeline import holdout_split, label_matrix, label_windows
from fusionrec.models.base import Recommender
from fusionrec.models.registry import create_model


def fusion(**extra: object) -> Recommender:
    params: dict[str, object] = {"sources": FAST_SOURCES, "ranker": FAST_RANKER, "train_users": 500}
    return create_model("fusion", **{**params, **extra})


@pytest.fixture(scope="module")
def fitted(shop: Dataset) -> Recommender:
    return fusion(extra={"popular_in_category": 5}).fit(shop)


def test_holdout_last_keeps_window_after_history(shop: Dataset) -> None:
    before, window = holdout_split(shop, HoldoutConfig(mode="last", items=1), seed=0)
    assert before.n_events + window.n_events == shop.n_events
    assert np.bincount(window.user_idx, minlength=shop.n_users).max() == 1
    last_before = np.full(shop.n_users, -1)
    np.maximum.at(last_before, before.user_idx, before.timestamp)
    assert (window.timestamp >= last_before[window.user_idx]).all()


def test_holdout_days_is_a_time_cut(shop: Dataset) -> None:
    before, window = holdout_split(shop, HoldoutConfig(mode="days", days=3), seed=0)
    assert before.timestamp.max() <= window.timestamp.min()
    assert window.timestamp.min() > shop.timestamp.max() - 3 * 86_400


def test_holdout_random_is_seeded_and_per_pair(shop: Dataset) -> None:
    a = holdout_split(shop, HoldoutConfig(mode="random", fraction=0.2), seed=1)[1]
    b = holdout_split(shop, HoldoutConfig(mode="random", fraction=0.2), seed=1)[1]
    np.testing.assert_array_equal(a.source_row, b.source_row)
    before = holdout_split(shop, HoldoutConfig(mode="random", fraction=0.2), seed=1)[0]
    pairs = lambda d: set(zip(d.user_idx.tolist(), d.item_idx.tolist(), strict=True))  # noqa: E731
    assert not pairs(before) & pairs(a)  # an item is wholly before or wholly in the window


def test_day_windows_step_back_without_overlap(shop: Dataset) -> None:
    windows = label_windows(shop, HoldoutConfig(mode="days", days=3, windows=3), seed=0)
    assert len(windows) == 3
    for (before, window), (older_before, older) in itertools.pairwise(windows):
        assert older.timestamp.max() <= window.timestamp.min()  # the next window is older...
        assert older_before.n_events + older.n_events == before.n_events  # ...cut from this one's past
    for before, window in windows:  # each window's sources see only the data before it
        assert before.timestamp.max() <= window.timestamp.min()
    later_rows = set(windows[0][1].source_row.tolist())
    assert not later_rows & set(windows[1][1].source_row.tolist())


def test_random_windows_redraw_from_all_data(shop: Dataset) -> None:
    holdout = HoldoutConfig(mode="random", fraction=0.2, windows=2)
    (before_a, a), (before_b, b) = label_windows(shop, holdout, seed=4)
    assert before_a.n_events + a.n_events == before_b.n_events + b.n_events == shop.n_events
    assert set(a.source_row.tolist()) != set(b.source_row.tolist())
    np.testing.assert_array_equal(a.source_row, holdout_split(shop, holdout, seed=4)[1].source_row)


def test_more_windows_train_more_groups(shop: Dataset) -> None:
    one = fusion(holdout={"mode": "days", "days": 3}).fit(shop)
    three = fusion(holdout={"mode": "days", "days": 3, "windows": 3}).fit(shop)
    assert three.train_groups_ > one.train_groups_
    items, _ = three.recommend(np.arange(20), k=5)
    assert (items >= 0).all()


def test_labels_take_the_highest_gain(shop: Dataset) -> None:
    _, window = holdout_split(shop, HoldoutConfig(mode="days", days=7), seed=0)
    labels = label_matrix(window, {"purchase": 4, "add_to_cart": 2, "view": 1, "click": 1})
    bought = window.event_mask("purchase")
    assert (np.asarray(labels[window.user_idx[bought], window.item_idx[bought]]).ravel() == 4).all()
    assert set(np.unique(labels.data)) <= {1.0, 2.0, 4.0}


def test_fusion_explains_and_reports(fitted: Recommender, shop: Dataset) -> None:
    users = np.arange(50)
    importance = fitted.feature_importance()
    assert set(importance) == set(fitted.feature_names()) and sum(importance.values()) > 0
    contribution = fitted.source_contribution(users, k=10)
    assert set(contribution) == {"item_knn", "most_popular", "popular_in_category"}
    assert all(0 <= v["only"] <= v["share"] <= 1 for v in contribution.values())
    items, _ = fitted.recommend(users[:1], k=1)
    trace = fitted.explain(0, int(items[0, 0]))
    assert trace["candidate"] and trace["rank"] == 1 and trace["sources"]
    assert len(trace["features"]) == 8
    assert trace["reason"]["kind"] != "none" and trace["reason"]["text"]
    seen = fitted.explain(0, int(np.flatnonzero(fitted.seen_[0].toarray().ravel())[0]))
    assert seen["candidate"] is False and seen["reason"]["kind"] == "none"
    assert fitted.train_groups_ > 0 and 0 < fitted.train_recall_ <= 1


def test_repeat_candidates_need_seen_items_allowed(shop: Dataset) -> None:
    with pytest.raises(ValueError, match="exclude_seen"):
        fusion(extra={"repeat": 5})
    model = fusion(extra={"repeat": 5}, exclude_seen=False).fit(shop)
    users = np.arange(40)
    candidates = model._candidates(users)
    from_repeat = candidates.proposed()[:, candidates.sources.index("repeat")]
    seen = np.asarray(model.seen_[users[candidates.row], candidates.item]).ravel() > 0
    assert from_repeat.any() and seen[from_repeat].all()
    items, _ = model.recommend(users, k=5, exclude=None)
    assert (items >= 0).all()


def test_revenue_weighting_and_other_rankers_train(shop: Dataset) -> None:
    pytest.importorskip("xgboost")
    users = np.arange(30)
    for kind in ("xgboost", "catboost", "linear"):
        params = {"n_estimators": 10} if kind != "linear" else {}
        model = fusion(ranker={"kind": kind, "params": params}, revenue_weighting=True).fit(shop)
        items, scores = model.recommend(users, k=5)
        assert (items >= 0).all() and np.all(np.diff(scores, axis=1) <= 0), kind
        assert model.feature_importance(), kind


def test_save_load_every_ranker_kind(shop: Dataset, tmp_path: Path) -> None:
    pytest.importorskip("catboost")
    users = np.arange(40)
    for kind in ("xgboost", "catboost", "linear"):
        params = {"n_estimators": 10} if kind != "linear" else {}
        model = fusion(ranker={"kind": kind, "params": params}).fit(shop)
        model.save(tmp_path / kind)
        loaded = Recommender.load(tmp_path / kind).score(users)
        np.testing.assert_array_equal(loaded, model.score(users), err_msg=kind)


def test_bagged_ranker_averages_members_and_round_trips(shop: Dataset, tmp_path: Path) -> None:
    params = {**FAST_RANKER["params"], "bagging_fraction": 0.7, "bagging_freq": 1, "bagging_by_query": True}
    model = fusion(ranker={"params": params, "bags": 3}).fit(shop)
    members = model.ranker.members
    assert [m.seed for m in members] == [42, 43, 44]
    X = np.random.default_rng(0).random((50, len(model.feature_names())))
    each = np.array([m.predict(X) for m in members])
    assert not np.allclose(each[0], each[1]), "seeds gave identical members"
    np.testing.assert_allclose(model.ranker.predict(X), each.mean(axis=0))
    assert set(model.feature_importance()) == set(model.feature_names())
    contributions = model.ranker.contributions(X)
    np.testing.assert_allclose(contributions.sum(axis=1), model.ranker.predict(X), rtol=1e-6)
    model.save(tmp_path / "bagged")
    assert sorted(p.name for p in (tmp_path / "bagged").glob("bag*")) == ["bag0", "bag1", "bag2"]
    users = np.arange(40)
    np.testing.assert_array_equal(Recommender.load(tmp_path / "bagged").score(users), model.score(users))


def test_score_all_candidates_fills_each_sources_score_and_keeps_its_ranks(shop: Dataset) -> None:
    users = np.arange(60)
    plain = fusion().fit(shop)
    full = fusion(score_all_candidates=True).fit(shop)
    before, after = plain._candidates(users), full._candidates(users)
    np.testing.assert_array_equal(after.item, before.item)
    np.testing.assert_array_equal(after.ranks, before.ranks)  # who proposed what is unchanged
    assert np.isnan(before.scores).any() and not np.isnan(after.scores).any()
    for s, label in enumerate(after.sources):
        expected = full._sources[label].score(users)[after.row, after.item]
        np.testing.assert_allclose(after.scores[:, s], expected, rtol=1e-6)
    histories = [shop.sequences()[1][:5], np.array([], dtype=np.int32)]
    live = full._candidates(np.array([-1, -1]), histories)
    assert not np.isnan(live.scores[live.row == 0]).any()


def test_score_all_candidates_in_chunks_equals_one_batch(
    shop: Dataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    users = np.arange(60)
    histories = [shop.sequences()[1][: 3 + u % 4] for u in users]
    full = fusion(score_all_candidates=True).fit(shop)
    whole, whole_live = full._candidates(users), full._candidates(users, histories)
    # a budget of 7 users' dense scores: 60 users in 9 chunks, the last one short
    monkeypatch.setattr(pipeline_module, "DENSE_SCORE_BYTES", 7 * 4 * shop.n_items * len(full._sources))
    for one, chunked in ((whole, full._candidates(users)), (whole_live, full._candidates(users, histories))):
        np.testing.assert_array_equal(chunked.row, one.row)
        np.testing.assert_array_equal(chunked.item, one.item)
        np.testing.assert_array_equal(chunked.ranks, one.ranks)
        np.testing.assert_allclose(chunked.scores, one.scores, rtol=1e-6)


def test_saved_fusion_has_sources_in_subfolders_and_text_ranker(fitted: Recommender, tmp_path: Path) -> None:
    fitted.save(tmp_path / "m")
    assert (tmp_path / "m/sources/item_knn/manifest.json").is_file()
    assert (tmp_path / "m/ranker_lightgbm.txt").read_text().startswith("tree")
    (tmp_path / "m/ranker_lightgbm.txt").write_text("tree\nbroken")
    with pytest.raises(Exception, match="checksum"):
        Recommender.load(tmp_path / "m")


def test_live_histories_reach_the_fused_model(fitted: Recommender, shop: Dataset) -> None:
    history = shop.item_idx[shop.user_idx == 0][-3:]
    items, _ = fitted.recommend_live(np.array([-1]), 5, [history])
    assert (items >= 0).all() and not np.isin(items, history).any()


def test_model_repository_versions_and_checksums(fitted: Recommender, tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path / "registry")
    assert repo.versions() == [] and repo.latest() is None
    record = {"trained_by": "tests", "pipeline": {"model": fitted.name, "config": {}}}
    v1 = repo.add_version(fitted, record).version
    v2 = repo.add_version(fitted, record).version
    assert (v1, v2) == ("v0001", "v0002") and repo.versions() == [v1, v2]
    assert repo.manifest(v1).trained_by == "tests" and repo.manifest(v1).files
    with pytest.raises(ValidationError, match="metadata"):  # the manifest is typed: no loose keys
        repo.add_version(fitted, {**record, "metadata": {"metrics": {}}})
    assert repo.versions() == [v1, v2]  # and a refused manifest leaves nothing behind
    users = np.arange(20)
    np.testing.assert_array_equal(repo.load(v1).score(users), fitted.score(users))
    (tmp_path / "registry" / v2 / "model" / "features.npz").write_bytes(b"tampered")
    with pytest.raises(ArtifactError, match="checksum"):
        repo.load(v2)
    with pytest.raises(ArtifactError, match="not found"):
        repo.load("v0009")


def test_blend_and_rrf_compare_with_sources_in_one_run(shop_split: Split) -> None:
    results = {}
    for name, params in {
        "item_knn": FAST_SOURCES[0]["params"],
        "blend": {"sources": FAST_SOURCES, "trials": 8},
        "rrf": {"sources": FAST_SOURCES},
        "fusion": {"sources": FAST_SOURCES, "ranker": FAST_RANKER, "train_users": 500},
    }.items():
        results[name] = evaluate_model(name, shop_split, params=params, ks=(10,)).metrics["NDCG@10"]
    assert all(0 <= v <= 1 for v in results.values())
    assert results["fusion"] > 0 and results["blend"] > 0 and results["rrf"] > 0


def test_dropped_features_leave_the_ranker_and_the_explanations(shop: Dataset, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"drop_features: unknown features \['user_age'\]"):
        fusion(drop_features=["user_age"])
    dropped = ["item_age_days", "user_recency_days", "pop_1d", "item_knn_score"]
    model = fusion(drop_features=dropped).fit(shop)
    names = model.feature_names()
    assert not set(dropped) & set(names) and "item_knn_rank" in names
    users = np.arange(20)
    candidates = model._candidates(users)
    assert model._features(users, candidates).shape == (len(candidates), len(names))
    assert set(model.feature_importance()) == set(names)
    model.save(tmp_path / "m")
    np.testing.assert_array_equal(Recommender.load(tmp_path / "m").score(users), model.score(users))


def test_relative_features_rank_and_explain_with_the_users_other_candidates(shop: Dataset) -> None:
    model = fusion(relative_features=True).fit(shop)
    user = np.array([0])
    candidates, values = model.score_candidates(user)
    X = model._features(user, candidates)
    col = model.feature_names().index("item_knn_score")
    proposed = ~np.isnan(X[:, col])
    assert proposed.any() and np.nanmax(X[:, col]) == pytest.approx(1.0)
    best = int(np.argmax(values))
    trace = model.explain(0, int(candidates.item[best]), top=len(model.feature_names()))
    assert trace["features"]["item_knn_score"]["value"] == pytest.approx(float(X[best, col]), nan_ok=True)


# `fusionrec demo --no-serve` up to its offline metrics: generate a shop, ingest it into a fresh
# DuckDB store, read the Dataset back, score the default fused pipeline on the last 7 days.
_DEMO_METRICS = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    from fusionrec.data.dataset import Dataset
    from fusionrec.data.sources import ingest_source
    from fusionrec.data.split import temporal_split
    from fusionrec.data.store import open_store
    from fusionrec.data.synthetic import generate_shop
    from fusionrec.fusion.config import default_pipeline
    from fusionrec.tuning.search import Fold, score_on_fold

    work = Path(sys.argv[1])
    generate_shop(work / "shop", n_events=10_000, seed=0)
    with open_store(f"duckdb:///{work / 'shop.duckdb'}") as store:
        ingest_source(store, work / "shop")
        dataset = Dataset.from_store(store)
    pipeline = default_pipeline()
    split = temporal_split(dataset, test_days=7.0)
    metrics = score_on_fold(pipeline.model, pipeline.model_params(), Fold(split.train, split.test))
    print(json.dumps(metrics))
    """
)


def test_same_seed_gives_identical_metrics_in_separate_processes(tmp_path: Path) -> None:
    """Generation, ingestion (DuckDB storage order), Dataset, candidates and LightGBM: no run-to-run
    noise, whatever the process's string hashing."""
    runs = []
    for hash_seed in ("1", "2"):
        done = subprocess.run(
            [sys.executable, "-c", _DEMO_METRICS, str(tmp_path / f"run{hash_seed}")],
            env={**os.environ, "PYTHONHASHSEED": hash_seed},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr[-2000:]
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert runs[0]["NDCG@20"] > 0
    assert runs[0] == runs[1]
