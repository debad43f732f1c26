"""Helpers for the analytics tests: filling stores, reading them back for the pandas references."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from fusionrec.analytics.simulate import exposures_from_events
from fusionrec.analytics.tables import load_campaign_costs
from fusionrec.data.store import EventStore, open_store

SAMPLES = {
    "rees46": "rees46_2019-Oct_first1000.csv",
    "otto": "otto_train_20sessions.jsonl",
    "tianchi": "tianchi_mobile_sample_user_behavior.csv",
}


def postgres_store(base: str) -> tuple[EventStore, str]:
    schema = f"fr_test_{uuid.uuid4().hex[:12]}"
    return open_store(f"{base}?schema={schema}"), schema


def drop_schema(base: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(base, autocommit=True) as con:
        con.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def fill_generated(store: EventStore, n_events: int = 40_000, seed: int = 5) -> None:
    from fusionrec.data.synthetic import generate_frames

    shop = generate_frames(n_events=n_events, seed=seed)
    store.upsert_items(shop.items)
    store.insert_events(shop.events)
    store.flag_bots(120)
    exposures_from_events(store, seed=seed)
    days = pd.date_range("2026-01-01", periods=91)
    rng = np.random.default_rng(seed)
    costs = pd.DataFrame(
        {
            "date": list(days) * 2,
            "channel": ["web"] * len(days) + ["email"] * len(days),
            "campaign": ["search"] * len(days) + ["newsletter"] * len(days),
            "cost": rng.uniform(20, 80, 2 * len(days)).round(2),
        }
    )
    load_campaign_costs(store, costs)


def fill_sample(store: EventStore, name: str, root: Path) -> None:
    from fusionrec.data.formats import read_format
    from fusionrec.data.ingest import ingest_frame

    data = read_format(name, root / "event-samples" / SAMPLES[name])
    if data.items is not None:
        store.upsert_items(data.items)
    ingest_frame(store, data.events, source=name)


def frames(store: EventStore) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The store's events (bots included) and items as pandas, for the reference computations."""
    return store.events_arrow(exclude_bots=False).to_pandas(), store.items_arrow().to_pandas()


def exposures_frame(store: EventStore) -> pd.DataFrame:
    table = store.query_arrow(
        'SELECT exposure_id, "timestamp", user_id, session_id, experiment, variant, items FROM exposures'
    )
    return table.to_pandas()


def write_leaderboard(path: Path) -> Path:
    path.write_text(
        json.dumps(
            {
                "protocol": {"dataset": "amazon-beauty"},
                "results": [{"model": "ease", "metrics": {"NDCG@20": 0.051, "Recall@20": 0.1}}],
                "published": {"source": "S3-Rec", "results": {"SASRec": {"NDCG@20": 0.0394}}},
            }
        )
    )
    return path
