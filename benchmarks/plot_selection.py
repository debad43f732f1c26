"""Draw the pipeline selections of docs/benchmarks.md: every fused variant scored on validation,
in the order the variants were run, against the best single models and the issue's bar (the best
single + 5 %). The test split is never part of these runs.

Reads ``benchmarks/results/select-*.json`` (written by ``select_pipeline.py``) and writes
``docs/img/pipeline_selection.png``::

    python benchmarks/plot_selection.py
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from plot_fusion import RESULTS, TARGET_GAIN, save_figure


@dataclass(frozen=True)
class Selection:
    """One dataset's panel: its result file, metric and the pipeline file that was shipped."""

    dataset: str
    file: str
    metric: str
    shipped: str


SELECTIONS = (
    Selection("gowalla", "select-gowalla.json", "NDCG@20", "g23_without_rp3beta.toml"),
    Selection("dunnhumby", "select-dunnhumby-folds3.json", "NDCG@10", "q_windows3_user_knn.toml"),
)


def split_rows(selection: Selection) -> tuple[list[dict], dict[str, float]]:  # type: ignore[type-arg]
    """The pipeline rows in run order, and each single model's best score over its settings."""
    pipelines, singles = [], {}
    for row in json.loads((RESULTS / selection.file).read_text())["rows"]:
        if row["candidate"].endswith(".toml"):
            pipelines.append(row)
        else:
            model = row["candidate"].split(" (")[0]
            singles[model] = max(singles.get(model, 0.0), row["metrics"][selection.metric])
    return pipelines, singles


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(SELECTIONS), figsize=(6.4 * len(SELECTIONS), 6.2))
    for ax, selection in zip(axes, SELECTIONS, strict=True):
        pipelines, singles = split_rows(selection)
        names = [row["candidate"].removesuffix(".toml") for row in pipelines]
        means = [row["metrics"][selection.metric] for row in pipelines]
        y = list(range(len(pipelines)))[::-1]  # the first variant run at the top
        for pos, row in zip(y, pipelines, strict=True):
            folds = row.get("fold_ndcg", {}).get(selection.metric, [])
            if len(folds) > 1:  # the folds' spread, where there were folds
                ax.plot([min(folds), max(folds)], [pos, pos], color="0.7", lw=3, solid_capstyle="round")
        colours = ["tab:orange" if row["candidate"] == selection.shipped else "tab:blue" for row in pipelines]
        ax.scatter(means, y, color=colours, zorder=3, s=22)
        ax.set_yticks(y, names, fontsize=7)
        best_single = max(singles.values())
        # the three best single models, their labels stacked so that close ones stay readable
        for step, (model, score) in enumerate(sorted(singles.items(), key=lambda item: -item[1])[:3]):
            ax.axvline(score, color="0.4", ls="--", lw=0.8)
            ax.text(score, len(y) + 1.1 * step, f" {model} {score:.4f}", fontsize=6.5, va="bottom")
        bar = best_single * TARGET_GAIN
        ax.axvline(bar, color="red", ls=":", lw=1.2, label=f"best single + 5 % (bar) {bar:.4f}")
        low, high = min(*means, *singles.values()), max(*means, bar)
        ax.set_xlim(low - 0.08 * (high - low), high + 0.08 * (high - low))
        ax.set_ylim(-1, len(y) + 3.6)
        ax.set_title(f"{selection.dataset}: validation {selection.metric}, variants in run order", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
        ax.legend(loc="lower left", fontsize=7)
    fig.suptitle(
        "Pipeline selection (orange: shipped; grey bars: range over the validation folds; dashed: single models)",
        fontsize=9,
    )
    print(save_figure(fig, "pipeline_selection.png"))


if __name__ == "__main__":
    main()
