"""Draw the fusion leaderboards of docs/benchmarks.md: each dataset's single models, `fusion`,
`blend` and `rrf` on the test split, with the issue's bar (best single model + 5 %).

Reads the documented runs in ``benchmarks/results/`` (written by ``bench_fusion.py``) and writes
``docs/img/fusion_leaderboard.png``::

    python benchmarks/plot_fusion.py
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "results"
IMAGES = HERE.parent / "docs" / "img"
FUSIONS = ("fusion", "blend", "rrf")
TARGET_GAIN = 1.05


@dataclass(frozen=True)
class Board:
    """One dataset's panel: its metric and the result files of its documented runs."""

    dataset: str
    metric: str
    files: tuple[str, ...]
    # single models that ran but are not sources of the shipped pipeline (left out of the bar)
    skip: tuple[str, ...] = ()


BOARDS = (
    Board(
        "amazon-beauty",
        "NDCG@20",
        ("fusion-amazon-beauty-sasrec.json", "fusion-amazon-beauty-sasrec-blend-rrf.json"),
    ),
    Board(
        "gowalla",
        "NDCG@20",
        (
            # iALS and user-kNN alone (28 Nov, same parameters); its fusions, with GF-CF, are
            # replaced by the rows of the same names in the later files
            "fusion-gowalla.json",
            "fusion-gowalla-cheby-single.json",
            "fusion-gowalla-g23.json",  # the shipped pipeline, then blend and rrf of its sources
            "fusion-gowalla-g23-blend.json",
            "fusion-gowalla-g23-rrf.json",
        ),
        # sources of earlier pipelines only: ChebyCF replaced GF-CF, and RP3beta was dropped (g23)
        skip=("gf_cf", "rp3beta"),
    ),
    Board(
        "dunnhumby",
        "NDCG@10",
        # TIFU-kNN alone (not a source: it did not help the fusion on validation) raises the bar
        ("fusion-dunnhumby.json", "fusion-dunnhumby-tifu-single.json"),
    ),
)


def row_label(row: dict) -> str:  # type: ignore[type-arg]
    """The model's name, with the parameter that tells two runs of one model apart."""
    if row["model"] == "repeat_purchase":
        half_life = row.get("params", {}).get("half_life_days")
        return f"repeat_purchase ({half_life:g}-day half-life)" if half_life else "repeat_count"
    return row["model"]


def leaderboard(board: Board) -> dict[str, float]:
    """Label -> metric; a later file's row replaces an earlier one of the same label."""
    scores: dict[str, float] = {}
    for name in board.files:
        for row in json.loads((RESULTS / name).read_text())["rows"]:
            label = row_label(row)
            if label not in board.skip:
                scores[label] = row["metrics"][board.metric]
    return scores


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(BOARDS), figsize=(5.2 * len(BOARDS), 3.8))
    for ax, board in zip(axes, BOARDS, strict=True):
        scores = leaderboard(board)
        labels = sorted(scores, key=scores.get)  # type: ignore[arg-type]
        best_single = max(v for k, v in scores.items() if k not in FUSIONS)
        colours = ["tab:orange" if k == "fusion" else "tab:blue" if k in FUSIONS else "0.6" for k in labels]
        ax.barh(labels, [scores[k] for k in labels], color=colours)
        for y, k in enumerate(labels):
            ax.text(scores[k], y, f" {scores[k]:.4f}", va="center", fontsize=8)
        ax.axvline(best_single * TARGET_GAIN, color="red", ls=":", lw=1, label="best single + 5 % (bar)")
        ax.set_xlim(0, max(scores.values()) * 1.45)
        ax.set_title(f"{board.dataset}, test {board.metric}")
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="x", alpha=0.3)
        ax.legend(loc="lower right", fontsize=7)
    fig.suptitle("Fusion vs its sources alone (grey: single models, orange: LambdaRank fusion)", fontsize=10)
    print(save_figure(fig, "fusion_leaderboard.png"))


def save_figure(fig, name: str) -> Path:  # type: ignore[no-untyped-def]
    """Lay out ``fig``, write it to ``docs/img/<name>`` and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    IMAGES.mkdir(parents=True, exist_ok=True)
    out = IMAGES / name
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


if __name__ == "__main__":
    main()
