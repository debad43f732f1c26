"""Every KPI against an independent pandas computation: generated shop (DuckDB and PostgreSQL) and the
real REES46, OTTO and Tianchi samples."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from analytics import reference as ref
from analytics.helpers import SAMPLES, exposures_frame, frames
from fusionrec.analytics import kpis
from fusionrec.analytics import queries as q
from fusionrec.analytics.engine import materialised
from fusionrec.analytics.funnel import funnel
from fusionrec.data.store import EventStore

MEASURES = list(q.SESSION_MEASURES)


def _iso(values: pd.Series) -> pd.Series:
    return values.map(lambda d: "all" if d is None or (isinstance(d, float) and np.isnan(d)) else str(d)[:10])


def assert_same(ours: pd.DataFrame, theirs: pd.DataFrame, keys: list[str], columns: list[str]) -> None:
    ours = ours.assign(period=_iso(ours["period"])) if "period" in ours else ours
    merged = theirs.merge(ours, on=keys, how="outer", suffixes=("_ref", ""), indicator=True)
    missing = merged[merged["_merge"] != "both"]
    assert missing.empty, f"rows only on one side:\n{missing[[*keys, '_merge']].head()}"
    for column in columns:
        np.testing.assert_allclose(
            merged[column].to_numpy(float),
            merged[f"{column}_ref"].to_numpy(float),
            rtol=1e-9,
            atol=1e-6,
            err_msg=column,
        )


def check_store(store: EventStore, filters: q.Filters = q.Filters()) -> None:
    events, items = frames(store)
    ev = ref.prepare(events, items, filters.start, filters.end, filters.category)
    assert len(ev) > 0
    for by in [(), ("category",), ("channel",), ("device",), ("category", "channel", "device")]:
        for grain in (None, "day", "week"):
            ours = kpis.session_kpis(store, filters, grain, by)
            assert_same(ours, ref.session_metrics(ev, by, grain), ["period", *by], MEASURES)
    for grain in (None, "day", "week"):
        ours = kpis.user_kpis(store, filters, grain)
        assert_same(ours, ref.user_metrics(ev, grain), ["period"], ["users", "buyers", "repeat_buyers"])
    cohorts = ref.retention_counts(ev)
    from fusionrec.analytics.engine import run

    ours = run(store, q.retention_cohorts(filters)).assign(
        cohort=lambda d: d["cohort"].astype(str).str[:10], week=lambda d: d["week"].astype(str).str[:10]
    )
    merged = cohorts.merge(ours, on=["cohort", "week"], how="outer", suffixes=("_ref", ""))
    np.testing.assert_array_equal(merged["users"].to_numpy(float), merged["users_ref"].to_numpy(float))


def test_generated_shop_duckdb(generated_duckdb: EventStore) -> None:
    check_store(generated_duckdb)


def test_generated_shop_filtered(generated_duckdb: EventStore) -> None:
    check_store(generated_duckdb, q.Filters(date(2026, 1, 20), date(2026, 2, 10), "Pets"))
    check_store(generated_duckdb, q.Filters(category="Electronics > Phones"))


@pytest.mark.postgres
def test_generated_shop_postgres(generated_postgres: EventStore) -> None:
    check_store(generated_postgres, q.Filters(end=date(2026, 2, 15)))
    summary = kpis.kpi_summary(generated_postgres)
    assert summary["ctr"] is not None and 0 < summary["ctr"] < 1
    assert summary["cpa"] is not None and summary["cpa"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SAMPLES))
def test_real_samples(sample_stores: dict[str, EventStore], name: str) -> None:
    if name not in sample_stores:
        pytest.skip(f"sample {SAMPLES[name]} not found")
    store = sample_stores[name]
    check_store(store)
    summary = kpis.kpi_summary(store)
    events, _ = frames(store)
    # A purchase happened in every sample, and the conversion rate is a share of sessions.
    assert summary["purchase_sessions"] > 0
    assert 0 < summary["conversion_rate"] <= 1
    assert summary["events"] == len(events[~events["is_bot"].fillna(False)])


def test_funnel_stages_and_rates(generated_duckdb: EventStore) -> None:
    whole = funnel(generated_duckdb)
    assert len(whole) == 1
    row = whole.iloc[0]
    assert row["view_sessions"] >= row["cart_sessions"] >= row["purchase_sessions"] > 0
    assert row["view_to_purchase"] == pytest.approx(row["purchase_sessions"] / row["view_sessions"])
    by_channel = funnel(generated_duckdb, by="channel")
    # Channel splits sessions: the parts add up to the whole.
    assert by_channel["sessions"].sum() == row["sessions"]
    with pytest.raises(ValueError, match="funnel by"):
        funnel(generated_duckdb, by="colour")


def test_summary_ratios_and_materialised_source(generated_duckdb: EventStore) -> None:
    f = q.Filters(start=date(2026, 2, 1))
    plain = kpis.kpi_summary(generated_duckdb, f)
    with materialised(generated_duckdb, (q.session_rows(f), f.params())) as source:
        shared = kpis.kpi_summary(generated_duckdb, f, source)
    assert plain == pytest.approx(shared)
    assert plain["conversion_rate"] == pytest.approx(plain["purchase_sessions"] / plain["sessions"])
    assert plain["bounce_rate"] == pytest.approx(plain["bounced"] / plain["sessions"])
    assert plain["aov"] == pytest.approx(plain["revenue"] / plain["purchase_sessions"])
    assert plain["repeat_purchase_rate"] == pytest.approx(plain["repeat_buyers"] / plain["buyers"])


def test_ctr_and_attribution_match_pandas(generated_duckdb: EventStore) -> None:
    events, items = frames(generated_duckdb)
    ev = ref.prepare(events, items)
    expected = ref.ctr(ev, exposures_frame(generated_duckdb))
    ours = kpis.ctr(generated_duckdb)
    totals = ours[list(q.EXPOSURE_MEASURES)].sum()
    for key, value in expected.items():
        assert totals[key] == pytest.approx(value), key
    assert 0 < ours["ctr"].iloc[0] < 1
    daily = kpis.ctr(generated_duckdb, grain="day")
    assert daily["exposures"].sum() == expected["exposures"]


def test_cpa_matches_pandas(generated_duckdb: EventStore) -> None:
    events, items = frames(generated_duckdb)
    ev = ref.prepare(events, items)
    buys = ev[ev["event_type"] == "purchase"]
    first = buys.groupby("user_key")["ts"].transform("min")
    firsts = buys[buys["ts"] == first].groupby("user_key")["channel"].min()
    costs = generated_duckdb.query_arrow("SELECT channel, sum(cost) AS cost FROM campaign_costs GROUP BY 1")
    cost = dict(zip(*(c.to_pylist() for c in costs.columns), strict=True))
    ours = kpis.cpa(generated_duckdb, by_channel=True).set_index("channel")
    for channel in ("web", "email"):
        acquisitions = int((firsts == channel).sum())
        assert ours.loc[channel, "acquisitions"] == acquisitions
        assert ours.loc[channel, "cpa"] == pytest.approx(cost[channel] / acquisitions)
    weekly = kpis.cpa(generated_duckdb, grain="week")
    assert weekly["acquisitions"].sum() == len(firsts)


def test_series_and_retention_shapes(generated_duckdb: EventStore) -> None:
    daily = kpis.kpi_series(generated_duckdb, "day")
    weekly = kpis.kpi_series(generated_duckdb, "week")
    assert daily["sessions"].sum() == weekly["sessions"].sum()
    for column in ("conversion_rate", "bounce_rate", "aov", "ctr", "cpa", "repeat_purchase_rate"):
        assert column in daily.columns, column
    matrix = kpis.retention(generated_duckdb)
    assert (matrix[0] == 1.0).all()
    shares = matrix.drop(columns=["cohort_size"]).stack().dropna()
    assert len(shares) and shares.between(0, 1).all()


def test_filters_validate() -> None:
    with pytest.raises(ValueError, match="start"):
        q.Filters.of("2026-02-30")
    with pytest.raises(ValueError, match="after end"):
        q.Filters.of("2026-03-01", "2026-02-01")
    with pytest.raises(ValueError, match="grain"):
        q.session_metrics(q.Filters(), grain="year")
    q.session_metrics(q.Filters(), grain="month")  # days, weeks and months are grains
