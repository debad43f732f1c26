"""The evaluation protocol: what is fitted on what, what is masked, and how results are labelled."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fusionrec.data.dataset import Dataset
from fusionrec.data.split import leave_last_out
from fusionrec.evaluation.benchmarks import BenchmarkError, resolve_benchmark
from fusionrec.evaluation.metrics import evaluate_rankings
from fusionrec.evaluation.protocol import evaluate_model, full_protocol, rank_held_out
from fusionrec.models.registry import create_model


@pytest.fixture(scope="module")
def split():
    rng = np.random.default_rng(5)
    rows = [
        (f"u{u}", f"i{item}", "click", 1_700_000_000 + u * 100 + t)
        for u in range(80)
        for t, item in enumerate(rng.choice(40, size=8, replace=False) + (0 if u % 2 else 10))
    ]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "timestamp"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], unit="s", utc=True)
    return leave_last_out(Dataset.from_frame(frame))


def test_models_without_early_stopping_learn_from_train_and_validation(split) -> None:
    result = evaluate_model("ease", split, params={"l2": 10.0}, ks=(5,))
    model = create_model("ease", l2=10.0).fit(split.train_full)  # the validation item included
    truth = split.test.matrix(binary=True)
    users = np.flatnonzero(np.diff(truth.indptr) > 0)
    recs, _ = model.recommend(users, k=5, exclude=split.train_full.matrix(binary=True)[users])
    expected = evaluate_rankings(recs, truth[users], ks=(5,), metrics=["NDCG", "HR"])
    assert result.metrics["NDCG@5"] == pytest.approx(expected["NDCG@5"])
    assert result.metrics["HR@5"] == pytest.approx(expected["HR@5"])


def test_rank_held_out_ranks_the_held_out_users_and_masks_their_history(split) -> None:
    model = create_model("most_popular").fit(split.train_full)
    users, recs, truth = rank_held_out(model, split.train_full, split.test, 5)
    held_out = split.test.matrix(binary=True)
    np.testing.assert_array_equal(users, np.flatnonzero(np.diff(held_out.indptr) > 0))
    assert recs.shape == (len(users), 5) and (truth != held_out[users]).nnz == 0
    history = split.train_full.matrix(binary=True)[users]
    assert not any(history[row, recs[row]].nnz for row in range(len(users)))
    _, unmasked, _ = rank_held_out(model, split.train_full, split.test, 5, mask_seen=False)
    assert any(history[row, unmasked[row]].nnz for row in range(len(users)))
    scored = evaluate_model("most_popular", split, ks=(5,))
    assert scored.metrics["NDCG@5"] == pytest.approx(evaluate_rankings(recs, truth, ks=(5,))["NDCG@5"])


def test_training_items_never_come_back_as_hits(split) -> None:
    # Most popular without masking would recommend items users already have; masked, it cannot.
    masked = evaluate_model("most_popular", split, ks=(10,), mask_seen=True)
    unmasked = evaluate_model("most_popular", split, ks=(10,), mask_seen=False)
    assert masked.metrics["HR@10"] != unmasked.metrics["HR@10"]


def test_sampled_evaluation_is_labelled_in_every_metric_and_the_protocol(split) -> None:
    result = evaluate_model("most_popular", split, ks=(10,), sampled=20)
    assert result.metrics and all("(sampled-20)" in name for name in result.metrics)
    protocol = full_protocol({"dataset": "x"}, (10,), seed=0, sampled=20)
    assert protocol["ranking"] == "sampled-20 negatives"
    assert full_protocol({}, (10,), 0, None)["ranking"] == "full ranking over all items"
    assert {"numpy", "fusionrec"} <= set(full_protocol({}, (10,), 0, None)["packages"])


def test_format_path_takes_the_format_standard_protocol(tmp_path) -> None:
    assert resolve_benchmark(f"s3rec:{tmp_path}/Toys.txt").protocol == "leave_one_out"
    assert resolve_benchmark(f"lightgcn:{tmp_path}").protocol == "fixed"
    assert resolve_benchmark("dunnhumby").mask_seen is False
    with pytest.raises(BenchmarkError, match="unknown format"):
        resolve_benchmark("nope:/x")
