"""Progress of long work (issue 25): library loops report steps, the command line shows them as
Rich bars with an ETA."""

from __future__ import annotations

from typing import Any

from typer.testing import CliRunner

from fusionrec.cli import app
from fusionrec.data.dataset import Dataset
from fusionrec.data.synthetic import generate_frames
from fusionrec.fusion.pipeline import FusionRecommender
from fusionrec.progress import listening, step
from fusionrec.tuning.search import tune


def recorded() -> tuple[list[tuple[str, int, int | None, str]], Any]:
    steps: list[tuple[str, int, int | None, str]] = []
    return steps, lambda *args: steps.append(args)


def test_a_step_without_a_listener_does_nothing_and_listening_ends_with_its_block() -> None:
    steps, listener = recorded()
    step("nobody", 1, 2)
    with listening(listener):
        step("work", 1, 2, "half")
    step("work", 2, 2)
    assert steps == [("work", 1, 2, "half")]


def test_fused_sources_and_tuning_trials_report_as_they_go() -> None:
    events, items, _ = generate_frames(n_events=6_000, seed=4)
    dataset = Dataset.from_frame(events, items)
    steps, listener = recorded()
    sources = [{"model": "item_knn", "n": 20}, {"model": "most_popular", "n": 10}]
    with listening(listener):
        FusionRecommender(sources=sources, train_users=500).fit(dataset)
        tune("item_knn", dataset, {"neighbours": {"type": "int", "low": 5, "high": 50}}, n_trials=3, seed=1)
    fitting = [(done, total, what) for task, done, total, what in steps if task == "fusion sources"]
    assert fitting[:2] == [(0, 2, "fitting item_knn"), (1, 2, "fitting most_popular")]
    assert fitting[-1] == (2, 2, "fitted")
    trials = [(done, what) for task, done, _, what in steps if task == "tune trials"]
    assert [done for done, _ in trials] == [1, 2, 3]
    assert all("best NDCG@20 0." in what for _, what in trials)


def test_evaluate_shows_a_bar_per_model_and_per_epoch_loop() -> None:
    args = [
        "evaluate",
        "--dataset",
        "movielens-100k",
        "--models",
        "most_popular,svd",
        "--set",
        "svd.epochs=2",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = [" ".join(line.split()) for line in result.stderr.splitlines()]
    assert any(line.startswith("models") and "2/2" in line and "eta" in line for line in lines), lines
    assert any(line.startswith("svd epochs") and "2/2" in line and "train RMSE" in line for line in lines)
