"""Draw `auto` (the automatic pipeline search) against every single model of the same run, per
dataset, on the test split.

Reads the `fusionrec evaluate --json` results in ``benchmarks/results/auto-<dataset>.json`` (the
runs documented in docs/benchmarks.md, "The automatic search") and writes
``docs/img/auto_leaderboard.png``::

    fusionrec evaluate --dataset synthetic \\
        --models most_popular,popular_in_category,ease,item_knn,session_knn,auto \\
        --json benchmarks/results/auto-synthetic.json
    python benchmarks/plot_auto.py
"""

from __future__ import annotations

import json

from plot_fusion import RESULTS, save_figure

# dataset -> the metric its target is stated in (docs/benchmarks.md)
METRICS = {
    "synthetic": "NDCG@20",
    "diginetica-sample": "NDCG@20",
    "dunnhumby": "NDCG@10",
    "amazon-beauty": "NDCG@20",
    "gowalla": "NDCG@20",
}

# dataset -> the bar on test: a number, or a factor over the best single model of the run
TARGETS: dict[str, tuple[str, float]] = {
    "synthetic": ("factor", 1.05),
    "diginetica-sample": ("factor", 1.0),
    "dunnhumby": ("value", 0.4266),
    "amazon-beauty": ("value", 0.0750),
    "gowalla": ("value", 0.1609),
}


def scores(dataset: str) -> dict[str, float] | None:
    """Model -> the dataset's metric on test, or None when the run is not there."""
    path = RESULTS / f"auto-{dataset}.json"
    if not path.is_file():
        return None
    rows = json.loads(path.read_text())["results"]
    return {row["model"]: row["metrics"][METRICS[dataset]] for row in rows}


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    boards = {name: board for name in METRICS if (board := scores(name)) is not None}
    fig, axes = plt.subplots(1, len(boards), figsize=(4.6 * len(boards), 3.6), squeeze=False)
    for ax, (dataset, board) in zip(axes[0], boards.items(), strict=True):
        labels = sorted(board, key=board.get)  # type: ignore[arg-type]
        best_single = max(v for k, v in board.items() if k != "auto")
        colours = ["tab:orange" if k == "auto" else "0.6" for k in labels]
        ax.barh(labels, [board[k] for k in labels], color=colours)
        for y, k in enumerate(labels):
            ax.text(board[k], y, f" {board[k]:.4f}", va="center", fontsize=8)
        ax.axvline(best_single, color="0.3", ls="--", lw=1, label="best single model")
        kind, value = TARGETS[dataset]
        bar = best_single * value if kind == "factor" else value
        ax.axvline(bar, color="red", ls=":", lw=1.2, label=f"target {bar:.4f}")
        ax.set_xlim(0, max(board.values()) * 1.4)
        ax.set_title(f"{dataset}, test {METRICS[dataset]}", fontsize=9)
        ax.set_xlabel(METRICS[dataset])
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="x", alpha=0.3)
        ax.legend(loc="lower right", fontsize=7)
    fig.suptitle("`auto` (orange) against every single model of the same run", fontsize=10)
    print(save_figure(fig, "auto_leaderboard.png"))


if __name__ == "__main__":
    main()
