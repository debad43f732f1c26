"""Segments, forecasts, association rules, the experiment tables and the SQL's other dialects."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fusionrec.analytics import queries as q
from fusionrec.analytics.forecast import forecast_series
from fusionrec.analytics.rules import association_rules
from fusionrec.analytics.segments import rfm_scores, segment_users
from fusionrec.analytics.tables import costs_table, exposures_table, log_exposures
from fusionrec.data.store import EventStore, open_store


def test_segments_profiles_are_readable_and_complete(generated_duckdb: EventStore) -> None:
    result = segment_users(generated_duckdb, k=4)
    users = result.users
    assert len(users) > 100
    for method in ("rfm", "kmeans", "dbscan"):
        profile = result.profiles[method]
        assert profile["users"].sum() == len(users), method
        assert {"name", "spend_per_user", "conversion", "favourite_categories"} <= set(profile.columns)
    rfm = result.profiles["rfm"].set_index("segment")
    # Browsers spend nothing; champions order more often and more recently than hibernating buyers.
    assert rfm.loc["Browsers (no order)", "spend_per_user"] == 0
    assert rfm.loc["Champions", "orders_per_user"] >= rfm.loc["Hibernating", "orders_per_user"]
    assert rfm.loc["Champions", "recency_days"] < rfm.loc["Hibernating", "recency_days"]
    assert users["kmeans"].nunique() == 4
    assert result.profiles["kmeans"]["favourite_categories"].str.contains("%").all()


def test_rfm_scores_rank_buyers() -> None:
    features = pd.DataFrame(
        {"recency_days": [1, 50, 3, 80, 10], "orders": [5, 1, 0, 4, 2], "monetary": [500, 10, 0, 300, 50]},
        index=list("abcde"),
    )
    scores = rfm_scores(features, bins=4)
    assert scores.loc["c", ["r", "f", "m"]].tolist() == [0, 0, 0]
    assert scores.loc["a", "r"] == 4 and scores.loc["d", "r"] == 1
    assert scores.loc["a", "rfm_segment"] == "Champions"


def test_forecast_flags_a_planted_spike() -> None:
    rng = np.random.default_rng(0)
    days = pd.date_range("2026-01-01", periods=70)
    y = 1000 + 150 * np.sin(np.arange(70) * 2 * np.pi / 7) + rng.normal(0, 15, 70)
    y[45] += 400
    out = forecast_series(pd.Series(y, index=days), horizon=10)
    assert len(out) == 80 and out["actual"].iloc[-10:].isna().all()
    assert out.loc[days[45], "outside"]
    assert out["outside"].sum() <= 6  # about 5% of 70 days by chance, plus the spike
    assert (out["lower"].iloc[-10:] < out["fitted"].iloc[-10:]).all()
    arima = forecast_series(pd.Series(y, index=days), method="arima", horizon=5)
    assert arima.loc[days[45], "outside"]
    short = forecast_series(pd.Series([1.0, 2.0, 3.0], index=days[:3]))
    assert not short["outside"].any() and short["fitted"].isna().all()


def test_rules_reuse_the_miner_and_filter_by_category(generated_duckdb: EventStore) -> None:
    rules = association_rules(generated_duckdb, mode="session", min_count=3, top=None)
    assert len(rules) > 0
    assert (rules["lift"].diff().dropna() <= 1e-12).all()  # strongest lift first
    row = rules.iloc[0]
    assert row["confidence"] == pytest.approx(
        row["count"] / (row["support"] * 0 + row["count"] / row["confidence"])
    )
    pets = association_rules(generated_duckdb, mode="session", min_count=3, category="Pets", top=None)
    assert (
        len(pets)
        and (
            pets["antecedent_category"].str.startswith("Pets")
            | pets["consequent_category"].str.startswith("Pets")
        ).all()
    )
    with pytest.raises(ValueError, match="basket mode"):
        association_rules(generated_duckdb, mode="weekly")


def test_exposure_and_cost_validation_names_the_row() -> None:
    good = {"exposure_id": "x1", "timestamp": "2026-01-01T00:00:00Z", "user_id": "u1", "items": ["a", "b"]}
    table = exposures_table([good])
    assert table.column("items").to_pylist() == [["a", "b"]]
    with pytest.raises(ValueError, match="row 1: needs a user_id or a session_id"):
        exposures_table([good, {**good, "exposure_id": "x2", "user_id": None}])
    with pytest.raises(ValueError, match="row 1: items is empty"):
        exposures_table([good, {**good, "exposure_id": "x2", "items": []}])
    with pytest.raises(ValueError, match="row 1: exposure_id 'x1' repeats"):
        exposures_table([good, good])
    with pytest.raises(ValueError, match="row 0: cost is negative"):
        costs_table([{"date": "2026-01-01", "channel": "web", "cost": -1}])
    with pytest.raises(ValueError, match="row 0: date is missing"):
        costs_table([{"date": "soon", "channel": "web", "cost": 1}])
    summed = costs_table([{"date": "2026-01-01", "channel": "web", "cost": 1}] * 2)
    assert summed.column("cost").to_pylist() == [2.0] and summed.column("campaign").to_pylist() == ["(none)"]


@pytest.mark.postgres
def test_exposure_log_round_trip_postgres(postgres_url: str) -> None:
    from analytics.helpers import drop_schema, postgres_store

    store, schema = postgres_store(postgres_url)
    try:
        row = {
            "exposure_id": "x1",
            "timestamp": "2026-01-01T00:00:00Z",
            "session_id": "s1",
            "items": ["a", "b"],
        }
        assert log_exposures(store, [row]) == 1
        assert log_exposures(store, [row]) == 0  # known ids are skipped
        items = store.query_arrow("SELECT items FROM exposures").column(0).to_pylist()
        assert items == [["a", "b"]]
    finally:
        store.close()
        drop_schema(postgres_url, schema)


def test_every_query_transpiles_to_spark() -> None:
    f = q.Filters.of("2026-01-01", "2026-02-01", "Pets")
    statements = [
        q.session_rows(f),
        q.session_metrics(f, ("category", "channel"), "week")[0],
        q.user_metrics(f, "day", True)[0],
        q.retention_cohorts(f, True)[0],
        q.attribution(f)[0],
        q.exposure_metrics(f, "day", ("placement", "variant"))[0],
        q.acquisitions(f, "week")[0],
        q.user_profiles(f)[0],
        q.user_categories(f)[0],
        q.baskets(f, "session")[0],
        q.experiment_units("e")[0],
    ]
    for sql in statements:
        spark = q.to_dialect(sql, "spark")
        assert "`timestamp`" in spark or "timestamp" not in sql
        assert '"' not in spark.replace('\\"', "")  # Spark quotes identifiers with backticks
    assert "POSEXPLODE" in q.to_dialect(q.attribution(f)[0], "spark").upper()


def test_queries_run_on_an_empty_store() -> None:
    from fusionrec.analytics import kpis
    from fusionrec.analytics.tables import ensure_analytics_tables

    with open_store("duckdb:///:memory:") as store:
        ensure_analytics_tables(store)
        assert kpis.session_kpis(store).empty or kpis.session_kpis(store)["sessions"].fillna(0).sum() == 0
        assert kpis.ctr(store).empty
        assert kpis.retention(store).empty
