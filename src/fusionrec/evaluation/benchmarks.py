"""Registered benchmark datasets: where their files are, their standard protocol, published anchors.

``fusionrec evaluate --dataset NAME`` takes one of `BENCHMARKS`, or ``FORMAT:PATH`` for any file or
folder in a supported public format, evaluated with that format's standard protocol.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fusionrec.data.dataset import Dataset
from fusionrec.data.paths import data_root
from fusionrec.data.split import Split, fixed_split, leave_last_out, temporal_split


class BenchmarkError(ValueError):
    """An unknown benchmark name, a missing data folder, or a malformed ``FORMAT:PATH``."""


@dataclass(frozen=True)
class Benchmark:
    """A dataset with its evaluation protocol and the published numbers to compare against."""

    name: str
    format: str
    path: str  # relative to the data root; "" for generated data
    protocol: str  # fixed | leave_one_out | temporal | ratings_kfold | session_next_item
    mask_seen: bool = True
    description: str = ""
    protocol_options: dict[str, Any] = field(default_factory=dict)
    # model -> metric -> value, with the source of each table in `anchor_source`
    anchors: dict[str, dict[str, float]] = field(default_factory=dict)
    anchor_source: str = ""

    @property
    def horizon_days(self) -> float | None:
        """How many days ahead the test judges a temporal protocol (None: not a time window)."""
        if self.protocol != "temporal" or "test_days" not in self.protocol_options:
            return None
        return float(self.protocol_options["test_days"])


BENCHMARKS: dict[str, Benchmark] = {
    "gowalla": Benchmark(
        name="gowalla",
        format="lightgcn",
        path="gowalla",
        protocol="fixed",
        description="Gowalla check-ins, the LightGCN/NGCF split: full ranking, training items masked",
        anchors={
            "most_popular (independent)": {"Recall@20": 0.0416, "NDCG@20": 0.0317},
            "NGCF": {"Recall@20": 0.1570, "NDCG@20": 0.1327},
            "Mult-VAE": {"Recall@20": 0.1641, "NDCG@20": 0.1335},
            "LightGCN": {"Recall@20": 0.1830, "NDCG@20": 0.1554},
            "GF-CF": {"Recall@20": 0.1849, "NDCG@20": 0.1518},
            "UltraGCN": {"Recall@20": 0.1862, "NDCG@20": 0.1580},
        },
        anchor_source="LightGCN, GF-CF and UltraGCN papers (same split)",
    ),
    "amazon-beauty": Benchmark(
        name="amazon-beauty",
        format="s3rec",
        path="amazon-beauty/Beauty.txt",
        protocol="leave_one_out",
        description="Amazon Beauty 5-core sequences: leave-one-out, full ranking, training items masked",
        anchors={
            "PopRec": {"HR@20": 0.0217, "NDCG@20": 0.0084},
            "GRU4Rec": {"HR@20": 0.0479, "NDCG@20": 0.0187},
            "SASRec": {"HR@20": 0.0902, "NDCG@20": 0.0394},
            "S3-Rec": {"HR@20": 0.0994, "NDCG@20": 0.0414},
        },
        anchor_source="S3-Rec repository, full-ranking table",
    ),
    "movielens-100k": Benchmark(
        name="movielens-100k",
        format="movielens",
        path="movielens-100k",
        protocol="ratings_kfold",
        description="MovieLens 100K: rating models by seeded random 5-fold RMSE/MAE, ranking models by "
        "leave-last-out full ranking",
        protocol_options={"folds": 5},
        anchors={"SVD": {"RMSE": 0.93}, "SVD++": {"RMSE": 0.92}},
        anchor_source="well-known 5-fold results",
    ),
    "dunnhumby": Benchmark(
        name="dunnhumby",
        format="dunnhumby",
        path="dunnhumby-completejourney",
        protocol="temporal",
        mask_seen=False,  # a grocery: buying again is the point, so bought items stay rankable
        description="Dunnhumby Complete Journey purchases: last 4 weeks test, the 4 before validation; "
        "previously bought items are NOT masked (repurchase)",
        protocol_options={"test_days": 28, "valid_days": 28, "event_types": ["purchase"]},
    ),
    "diginetica-sample": Benchmark(
        name="diginetica-sample",
        format="diginetica",
        path="sessions/diginetica-sample",
        protocol="session_next_item",
        description="DIGINETICA sample views: sessions of the last 7 days, predict each session's last "
        "item from the items before it",
        protocol_options={"test_days": 7},
    ),
    "synthetic": Benchmark(
        name="synthetic",
        format="synthetic",
        path="",
        protocol="temporal",
        description="The generated shop (seeded, 300k events): last 7 days test, 7 before validation",
        protocol_options={"test_days": 7, "valid_days": 7, "events": 300_000},
    ),
}


def resolve_benchmark(spec: str) -> Benchmark:
    """A registered name, or ``FORMAT:PATH`` for a user's own copy of a supported format."""
    if spec in BENCHMARKS:
        return BENCHMARKS[spec]
    if ":" in spec:
        from fusionrec.data.formats import FORMATS

        format_name, path = spec.split(":", 1)
        if format_name not in FORMATS:
            raise BenchmarkError(f"unknown format {format_name!r} in {spec!r}; formats: {', '.join(FORMATS)}")
        protocol = FORMATS[format_name].protocol
        options: dict[str, Any] = {"test_days": 7, "valid_days": 7} if protocol == "temporal" else {}
        if protocol == "session_next_item":
            options = {"test_days": 7}
        return Benchmark(
            name=spec,
            format=format_name,
            path=str(Path(path).expanduser().resolve()),
            protocol=protocol,
            protocol_options=options,
        )
    raise BenchmarkError(f"unknown dataset {spec!r}; registered: {', '.join(BENCHMARKS)}, or FORMAT:PATH")


def benchmark_path(benchmark: Benchmark) -> Path:
    path = Path(benchmark.path)
    if not path.is_absolute():
        path = data_root() / path
    if not path.exists():
        raise BenchmarkError(f"data for {benchmark.name!r} not found at {path} (set FUSIONREC_DATA)")
    return path


def load_benchmark(benchmark: Benchmark, *, seed: int = 0) -> tuple[Split, dict[str, Any]]:
    """Read a benchmark's files and split them by its protocol; returns the split and its description."""
    if benchmark.format == "synthetic":
        from fusionrec.data.synthetic import generate_frames

        events, items, users = generate_frames(
            n_events=benchmark.protocol_options.get("events", 300_000), seed=seed
        )
        dataset = Dataset.from_frame(events, items, users)
        split = temporal_split(
            dataset,
            test_days=benchmark.protocol_options["test_days"],
            valid_days=benchmark.protocol_options["valid_days"],
        )
        return split, _describe(benchmark, split)

    from fusionrec.data.formats import read_format

    source = read_format(benchmark.format, benchmark_path(benchmark))
    if benchmark.protocol == "fixed":
        if source.test_events is None:
            raise BenchmarkError(f"{benchmark.name}: format {benchmark.format} ships no test split")
        split = fixed_split(source.events, source.test_events, source.items, source.users)
    else:
        dataset = Dataset.from_frame(source.events, source.items, source.users)
        options = benchmark.protocol_options
        if benchmark.protocol == "temporal":
            if "event_types" in options:
                dataset = dataset.select(dataset.event_mask(*options["event_types"]))
            split = temporal_split(
                dataset, test_days=options["test_days"], valid_days=options.get("valid_days", 0)
            )
        elif benchmark.protocol == "session_next_item":
            split = session_split(dataset, test_days=options.get("test_days", 7))
        else:  # leave_one_out, and ratings_kfold's ranking part
            split = leave_last_out(dataset)
    return split, _describe(benchmark, split)


def session_split(dataset: Dataset, *, test_days: float) -> Split:
    """Sessions that start in the last ``test_days`` are the test; the rest trains.

    Each test session's last event is its target; the events before it are the history the model
    sees at request time (``Split.protocol["history"] == "test_session_prefix"``).
    """
    sessions = dataset.user_idx  # anonymous sessions are the users of a session dataset
    first_seen = np.full(dataset.n_users, np.iinfo(np.int64).max)
    np.minimum.at(first_seen, sessions, dataset.timestamp)
    cutoff = dataset.timestamp.max() - int(test_days * 86_400)
    in_test = first_seen[sessions] > cutoff
    split = temporal_split(dataset, test_days=test_days)  # for its bookkeeping only
    parent = split.train._cache["parent"]
    train = parent.select(~in_test)
    test = parent.select(in_test)
    for part in (train, test):
        part._cache["parent"] = parent
    return Split(
        train=train,
        validation=None,
        test=test,
        protocol={"split": "session_next_item", "test_days": test_days},
    )


def _describe(benchmark: Benchmark, split: Split) -> dict[str, Any]:
    return {
        "dataset": benchmark.name,
        "format": benchmark.format,
        "protocol": benchmark.protocol,
        "split": split.protocol,
        "masking": "training items masked" if benchmark.mask_seen else "nothing masked (repurchase allowed)",
        "users": split.train.n_users,
        "items": split.train.n_items,
        "train_events": split.train.n_events,
        "validation_events": 0 if split.validation is None else split.validation.n_events,
        "test_events": split.test.n_events,
    }
