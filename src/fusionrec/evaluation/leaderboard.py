"""A leaderboard: our results beside the published anchors, as a Rich table, Markdown, JSON and a plot."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

from fusionrec.evaluation.benchmarks import Benchmark
from fusionrec.evaluation.protocol import EvaluationResult

# Metrics shown first, in this order, when present.
_PREFERRED = (
    "Recall",
    "NDCG",
    "HR",
    "Precision",
    "MAP",
    "MRR",
    "Coverage",
    "Novelty",
    "ILD",
    "Gini",
    "RMSE",
    "MAE",
)


@dataclass
class Leaderboard:
    benchmark: Benchmark
    protocol: dict[str, Any]
    results: list[EvaluationResult] = field(default_factory=list)

    def metric_names(self, limit: int | None = None) -> list[str]:
        names: list[str] = []
        for result in self.results:
            names.extend(k for k in result.metrics if k not in names)
        for anchors in self.benchmark.anchors.values():
            names.extend(k for k in anchors if k not in names)

        def key(name: str) -> tuple[int, int, str]:
            base, _, cutoff = name.partition("@")
            rank = next((i for i, p in enumerate(_PREFERRED) if base.startswith(p)), len(_PREFERRED))
            digits = "".join(ch for ch in cutoff if ch.isdigit())
            return rank, int(digits) if digits else 0, name

        names.sort(key=key)
        return names[:limit] if limit else names

    def table_metrics(self, limit: int = 6) -> list[str]:
        """The columns worth a glance: the published anchors' metrics, then NDCG/Recall/HR, RMSE/MAE."""
        names = self.metric_names()
        anchored = {m for anchors in self.benchmark.anchors.values() for m in anchors}
        core = ("NDCG@", "Recall@", "HR@", "RMSE", "MAE")
        chosen = [n for n in names if n in anchored]
        chosen += [n for n in names if n.startswith(core) and n not in chosen]
        return sorted(chosen[:limit], key=names.index)

    def headline_metric(self) -> str:
        """The metric the plot draws: NDCG at the largest cut-off, else the first one."""
        names = self.metric_names()
        ndcg = [n for n in names if n.startswith("NDCG@") and "(" not in n]
        return ndcg[-1] if ndcg else (names[0] if names else "")

    def rows(self) -> list[dict[str, Any]]:
        rows = [
            {"model": r.model, "source": "fusionrec", "metrics": r.metrics, "fit_seconds": r.fit_seconds}
            for r in self.results
        ]
        rows += [
            {"model": name, "source": "published", "metrics": metrics, "fit_seconds": None}
            for name, metrics in self.benchmark.anchors.items()
        ]
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {
            "protocol": self.protocol,
            "results": [r.to_dict() for r in self.results],
            "published": {"source": self.benchmark.anchor_source, "results": self.benchmark.anchors},
        }

    def rich_table(self, max_metrics: int = 6) -> Table:
        metrics = self.table_metrics(max_metrics)
        table = Table(title=f"{self.benchmark.name}: {self.protocol.get('ranking', '')}", show_lines=False)
        table.add_column("model", no_wrap=True)
        table.add_column("source", no_wrap=True)
        for metric in metrics:
            table.add_column(metric, justify="right", no_wrap=True)
        table.add_column("fit s", justify="right")
        for row in self.rows():
            style = None if row["source"] == "fusionrec" else "dim"
            cells = [_fmt(row["metrics"].get(m)) for m in metrics]
            fit = "" if row["fit_seconds"] is None else f"{row['fit_seconds']:.1f}"
            table.add_row(row["model"], row["source"], *cells, fit, style=style)
        return table

    def markdown(self, max_metrics: int = 8) -> str:
        metrics = self.metric_names(max_metrics)
        header = "| model | source | " + " | ".join(metrics) + " | fit s |"
        rule = "|" + "---|" * (len(metrics) + 3)
        lines = [header, rule]
        for row in self.rows():
            fit = "" if row["fit_seconds"] is None else f"{row['fit_seconds']:.1f}"
            cells = " | ".join(_fmt(row["metrics"].get(m)) for m in metrics)
            lines.append(f"| {row['model']} | {row['source']} | {cells} | {fit} |")
        return "\n".join(lines)

    def plot(self, path: str | Path, metric: str | None = None) -> Path:
        """A horizontal bar chart of one metric: our models in colour, published anchors in grey."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        metric = metric or self.headline_metric()
        rows = [r for r in self.rows() if metric in r["metrics"]]
        rows.sort(key=lambda r: r["metrics"][metric])
        fig, ax = plt.subplots(figsize=(7, 0.4 * len(rows) + 1.5))
        colours = ["#2a6fdb" if r["source"] == "fusionrec" else "#b0b0b0" for r in rows]
        ax.barh([f"{r['model']}" for r in rows], [r["metrics"][metric] for r in rows], color=colours)
        ax.set_xlabel(metric)
        ax.set_title(f"{self.benchmark.name} — {metric} (blue: fusionrec, grey: published)")
        fig.tight_layout()
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.4f}"
