"""Optuna / grid search on validation data, resumable studies, the best pipeline written as TOML."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pytest

from fusionrec.data.dataset import Dataset
from fusionrec.data.synthetic import generate_frames
from fusionrec.fusion.config import load_pipeline
from fusionrec.tuning.search import SearchError, best_pipeline_toml, set_path, tune, validation_fold

SOURCES = [
    {"model": "item_knn", "n": 20, "min_score": 0.0, "params": {"neighbours": 20}},
    {"model": "most_popular", "n": 10},
]


@pytest.fixture(scope="module")
def shop() -> Dataset:
    events, items, users = generate_frames(n_events=8_000, seed=5)
    return Dataset.from_frame(events, items, users)


def test_set_path_handles_nested_keys_and_list_indices() -> None:
    params = {"sources": [{"n": 1}, {"n": 2}], "ranker": {}}
    out = set_path(set_path(params, "sources.1.n", 50), "ranker.params.num_leaves", 7)
    assert out == {"sources": [{"n": 1}, {"n": 50}], "ranker": {"params": {"num_leaves": 7}}}
    assert params["sources"][1]["n"] == 2  # the input is not modified
    with pytest.raises(SearchError):
        set_path(params, "sources.5.n", 1)


def test_validation_fold_never_contains_the_test_part(shop: Dataset) -> None:
    from fusionrec.data.split import (
        fixed_split,  # noqa: F401 - the fixed-split case is the same code path
        temporal_split,
    )

    split = temporal_split(shop, test_days=7)  # no validation part: the fold is cut from train
    fold = validation_fold(split)
    test_rows = set(split.test.source_row.tolist())
    assert not test_rows & set(fold.train.source_row.tolist())
    assert not test_rows & set(fold.target.source_row.tolist())
    assert fold.target.n_events > 0


def test_grid_search_resumes_and_writes_the_best_pipeline(shop: Dataset, tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    space = {"k": {"type": "categorical", "choices": [1.0, 60.0]}}
    base = {"sources": SOURCES}
    first = tune(
        "rrf", shop, space, base_params=base, sampler="grid", n_trials=1, storage=storage, study_name="s"
    )
    assert len(first.trials) == 1
    again = tune(
        "rrf", shop, space, base_params=base, sampler="grid", n_trials=2, storage=storage, study_name="s"
    )
    assert len(again.trials) == 2  # resumed: one new trial, not two
    assert again.best_value == max(t["value"] for t in again.trials)
    path = best_pipeline_toml(again, tmp_path / "best.toml")
    pipeline = load_pipeline(path)
    assert pipeline.model == "rrf" and pipeline.config["k"] == again.best_params["k"]
    assert tomllib.loads(path.read_text())["pipeline"]["config"]["sources"][0]["model"] == "item_knn"


def test_tpe_tunes_a_single_model(shop: Dataset) -> None:
    result = tune("item_knn", shop, {"neighbours": {"type": "int", "low": 5, "high": 50}}, n_trials=3, seed=1)
    assert len(result.trials) == 3 and 5 <= result.best_params["neighbours"] <= 50
    assert np.isfinite(result.best_value)
