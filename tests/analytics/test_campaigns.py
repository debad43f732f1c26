"""Promotions calendar, CPA/ROAS per campaign and promotion effects recovered from the synthetic shop."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from fusionrec.analytics import kpis
from fusionrec.analytics.campaigns import campaign_analysis, campaign_kpis
from fusionrec.analytics.effects import Promotion, promotion_effect, promotion_effects, stored_promotions
from fusionrec.analytics.promotions import load_promotions, promotions_frame
from fusionrec.analytics.tables import load_campaign_costs
from fusionrec.data.store import EventStore, open_store
from fusionrec.data.synthetic import ShopConfig, generate_frames


@pytest.fixture(scope="module")
def promoted_shop() -> Iterator[tuple[EventStore, list[dict[str, object]]]]:
    """A shop with planted promotions, big enough (about 25k purchases) to measure them."""
    shop = generate_frames(n_events=1_000_000, seed=3, config=ShopConfig(cart_rate=0.1, promotions=3))
    store = open_store("duckdb:///:memory:")
    store.upsert_items(shop.items)
    store.insert_events(shop.events)
    assert shop.promotions is not None
    load_promotions(store, shop.promotions)
    yield store, shop.summary.planted.promotions
    store.close()


def test_planted_promotions_are_recovered_within_their_intervals(promoted_shop) -> None:
    store, planted = promoted_shop
    truth = {p["promotion_id"]: p for p in planted}
    effects = {e.name: e for e in promotion_effects(store)}
    assert set(effects) == set(truth)
    for name, effect in effects.items():
        for lift, factor in (
            (effect.conversion, truth[name]["conversion_factor"]),
            (effect.revenue, truth[name]["revenue_factor"]),
        ):
            assert lift.low is not None and lift.high is not None, lift.verdict
            assert lift.low <= factor - 1 <= lift.high, (name, lift.metric, factor, lift)
    # Each effect carries its pre-trend check (the pre-period as a window) where the data reach back
    # far enough, and says so in a note exactly when that check fails.
    assert effects["promo1"].pretrend is None  # its pre-period starts on the data's first day
    for effect in effects.values():
        failed = [n for n in effect.notes if n.startswith("pre-trend check failed")]
        assert bool(failed) == effect.diverged
        if effect.pretrend is not None:
            assert effect.to_dict()["pretrend"]["diverged"] == effect.diverged
    assert (
        effects["promo2"].pretrend is not None and effects["promo2"].pretrend.end == effects["promo2"].pre_end
    )
    # Where earlier windows free of promotions of the same items exist, their spread widens the
    # intervals (shared shocks), and a note says on how many.
    assert effects["promo1"].placebo_windows == 0  # the data start two weeks before it
    for effect in effects.values():
        widened = [n for n in effect.notes if n.startswith("intervals include the shocks")]
        assert bool(widened) == (effect.placebo_windows > 0)
    assert max(e.placebo_windows for e in effects.values()) >= 1
    # The strongest planted effect (x2 conversion) is detected, and said so in words.
    strong = max(truth, key=lambda n: truth[n]["conversion_factor"] if truth[n]["category"] else 0)
    assert effects[strong].conversion.detected
    assert effects[strong].conversion.verdict.startswith("conversion of promoted items rose")
    # The promotion planted with no conversion effect shows none.
    null = next(n for n in truth if truth[n]["conversion_factor"] == 1.0)
    assert not effects[null].conversion.detected
    assert effects[null].conversion.verdict.startswith("no detectable effect")


def test_placebo_window_shows_no_effect(promoted_shop) -> None:
    store, _ = promoted_shop
    promotions = stored_promotions(store)
    first = promotions[0]
    shift = timedelta(days=28)  # the next two weeks after it, and its pre-period, hold no promotion
    placebo = Promotion("placebo", first.start + shift, first.end + shift, first.items, first.categories)
    effect = promotion_effect(store, placebo, others=promotions)
    assert effect.pre_start > first.end  # the pre-period is clear of the real promotion
    assert effect.conversion.estimate is not None and not effect.conversion.detected
    assert not effect.revenue.detected


def _small_store(url: str) -> EventStore:
    shop = generate_frames(n_events=20_000, seed=1, config=ShopConfig(promotions=3))
    store = open_store(url)
    store.upsert_items(shop.items)
    store.insert_events(shop.events)
    return store


@pytest.mark.parametrize("backend", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_promotions_calendar_on_both_backends(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from data.conftest import drop_schema, fresh_postgres_url

    if backend == "duckdb":
        url, cleanup = f"duckdb:///{tmp_path / 's.duckdb'}", None
    else:
        base = request.getfixturevalue("postgres_url")
        url, schema = fresh_postgres_url(base)
        cleanup = (base, schema)
    rows = [
        {
            "promotion_id": "p1",
            "item_id": "i1",
            "start": "2026-01-05",
            "end": "2026-01-11",
            "discount": "0.1",
        },
        {"promotion_id": "p1", "item_id": "i2", "start": "2026-01-05", "end": "2026-01-11", "discount": ""},
        {
            "promotion_id": "p2",
            "category": "Pets",
            "start": "2026-02-01",
            "end": "2026-01-01",
            "discount": "0.2",
        },
        {
            "promotion_id": "p3",
            "item_id": "i3",
            "category": "Pets",
            "start": "2026-01-01",
            "end": "2026-01-02",
        },
        {"promotion_id": "p4", "category": "Pets", "start": "soon", "end": "2026-01-02", "discount": "15"},
        {
            "promotion_id": "p5",
            "category": "Pets",
            "start": "2026-01-01",
            "end": "2026-01-02",
            "discount": "15",
        },
    ]
    try:
        with open_store(url) as store:
            loaded = load_promotions(store, pd.DataFrame(rows), source="calendar.csv")
            assert loaded.stored == 2 and loaded.promotions == ["p1"]
            assert loaded.quarantined == {
                "end is before start": 1,
                "has both an item_id and a category (one row per target)": 1,
                "start is missing or not a date": 1,
                "discount is not a share in [0, 1)": 1,
            }
            rejected = store.quarantine_arrow().to_pandas().sort_values("row_number")
            assert rejected["row_number"].tolist() == [3, 4, 5, 6]
            assert rejected["reason"].str.startswith("promotions: ").all()
            # Loading p1 again replaces its rows instead of adding to them.
            load_promotions(store, pd.DataFrame(rows[:1]))
            stored = promotions_frame(store)
            assert stored["item_id"].tolist() == ["i1"] and stored["discount"].tolist() == [0.1]
            with pytest.raises(ValueError, match="missing column"):
                load_promotions(store, pd.DataFrame([{"promotion_id": "x", "start": "2026-01-01"}]))
            with pytest.raises(ValueError, match="no usable row"):
                load_promotions(store, pd.DataFrame(rows[2:3]))
    finally:
        if cleanup:
            drop_schema(*cleanup)


@pytest.mark.parametrize("backend", ["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_cpa_and_roas_per_campaign_unknown_without_costs(
    backend: str, request: pytest.FixtureRequest
) -> None:
    from data.conftest import drop_schema, fresh_postgres_url

    if backend == "duckdb":
        url, cleanup = "duckdb:///:memory:", None
    else:
        base = request.getfixturevalue("postgres_url")
        url, schema = fresh_postgres_url(base)
        cleanup = (base, schema)
    try:
        _check_campaign_kpis(url)
    finally:
        if cleanup:
            drop_schema(*cleanup)


def _check_campaign_kpis(url: str) -> None:
    store = _small_store(url)
    days = pd.date_range("2026-01-05", periods=14)
    costs = pd.DataFrame(
        {
            "date": list(days) * 2,
            "channel": ["web"] * 28,
            "campaign": ["search"] * 14 + ["social"] * 14,
            "cost": [30.0] * 14 + [10.0] * 14,
        }
    )
    load_campaign_costs(store, costs)
    per = campaign_kpis(store).set_index("campaign")
    assert per.loc["search", "cost"] == pytest.approx(420.0) and per.loc["social", "cost"] == pytest.approx(
        140.0
    )
    # Cost shares 3:1 split the channel's new customers and revenue of those days.
    assert per.loc["search", "acquisitions"] == pytest.approx(3 * per.loc["social", "acquisitions"])
    assert per.loc["search", "roas"] == pytest.approx(per.loc["search", "revenue"] / 420.0)
    assert per.loc["search", "cpa"] == pytest.approx(420.0 / per.loc["search", "acquisitions"])
    weekly = kpis.cpa(store, grain="week", by_channel=True)
    uncovered = weekly[(weekly["channel"] != "web") | (pd.to_datetime(weekly["period"]) >= "2026-01-19")]
    assert len(uncovered) and uncovered["cost"].isna().all() and uncovered["cpa"].isna().all()
    monthly = kpis.cpa(store, grain="month")
    assert [str(p) for p in monthly["period"]][:2] == ["2026-01-01", "2026-02-01"]
    assert pd.isna(monthly["cpa"].iloc[1])
    assert len(campaign_kpis(store, grain="month")) == 2
    series = kpis.kpi_series(store, "month")
    assert [str(p) for p in series["period"]] == ["2026-01-01", "2026-02-01", "2026-03-01", "2026-04-01"]
    assert series["sessions"].sum() == kpis.kpi_series(store, "week")["sessions"].sum()
    store.close()


def test_campaign_analysis_json_and_cli(tmp_path: Path) -> None:
    from fusionrec.cli import app

    url = f"duckdb:///{tmp_path / 'shop.duckdb'}"
    store = _small_store(url)
    load_campaign_costs(
        store,
        pd.DataFrame(
            {
                "date": pd.date_range("2026-02-01", periods=21),
                "channel": "email",
                "campaign": "nl",
                "cost": 5.0,
            }
        ),
    )
    result = campaign_analysis(store)
    store.close()
    assert result["has"] == {"campaign_costs": True, "promotions": False}
    (effect,) = result["campaigns"]
    assert effect["name"] == "nl" and effect["pre_start"] == "2026-01-11"
    assert set(effect["conversion"]) >= {"estimate", "low", "high", "verdict", "detected"}
    runner = CliRunner()
    out = runner.invoke(app, ["campaigns", "--store", url, "--grain", "month", "--json", "-"])
    assert out.exit_code == 0, out.output
    payload = json.loads(out.stdout[out.stdout.index("{") :])
    assert payload["kpis"][0]["campaign"] == "nl" and payload["grain"] == "month"
    bad = runner.invoke(app, ["campaigns", "--store", url, "--grain", "year"])
    assert bad.exit_code == 2 and "error: --grain must be one of day, week, month" in bad.output
    csv = tmp_path / "promos.csv"
    csv.write_text("promotion_id,start\np1,2026-01-01\n")
    bad = runner.invoke(app, ["ingest", str(csv), "--format", "promotions", "--store", url])
    assert bad.exit_code == 2 and "missing column(s) end, item_id or category" in " ".join(bad.output.split())


def test_report_has_a_campaigns_section(tmp_path: Path) -> None:
    from fusionrec.analytics.report import build_report

    shop = generate_frames(n_events=20_000, seed=1, config=ShopConfig(promotions=3))
    store = open_store("duckdb:///:memory:")
    store.upsert_items(shop.items)
    store.insert_events(shop.events)
    assert shop.promotions is not None
    load_promotions(store, shop.promotions)
    costs = pd.DataFrame(
        {"date": pd.date_range("2026-02-01", periods=14), "channel": "web", "campaign": "spring"}
    )
    load_campaign_costs(store, costs.assign(cost=12.5))
    html = build_report(store, tmp_path / "report.html").read_text()
    store.close()
    section = html[html.index('id="campaigns-section"') :]
    section = section[: section.index("</section>")]
    assert "Campaigns and promotions" in section and "plot-campaign-effects" in section
    assert "spring" in section and "promo1" in section and "175.00" in section  # 14 days x 12.5
    assert (
        section.count("<tr>") == 1 + 1 + 1 + 3 + 1
    )  # header, one campaign; header, 3 promotions, 1 campaign


def test_ingesting_a_generated_shop_loads_its_promotions(tmp_path: Path) -> None:
    from fusionrec.cli import app
    from fusionrec.data.synthetic import generate_shop

    generate_shop(tmp_path / "shop", n_events=5_000, seed=4, progress=False, config=ShopConfig(promotions=3))
    url = f"duckdb:///{tmp_path / 'shop.duckdb'}"
    out = CliRunner().invoke(app, ["ingest", str(tmp_path / "shop"), "--store", url, "--json", "-"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout[out.stdout.index("{") :])["promotions"]["promotions"] == [
        "promo1",
        "promo2",
        "promo3",
    ]
    with open_store(url) as store:
        assert sorted(promotions_frame(store)["promotion_id"].unique()) == ["promo1", "promo2", "promo3"]


def test_did_lift_on_a_simulated_panel() -> None:
    import numpy as np

    from fusionrec.analytics.did import did_lift, verdict

    rng = np.random.default_rng(0)
    n = 400
    views = rng.integers(50, 400, size=(n, 2))
    treated = (np.arange(n) < n // 2).astype(int)
    base = rng.uniform(0.01, 0.05, n)  # each item's own conversion rate
    trend = 1.1  # every item converts 10 % better in the window
    rate = np.column_stack([base, base * trend * np.where(treated == 1, 1.3, 1.0)])  # +30 % promoted
    panel = pd.DataFrame(
        {
            "item_id": np.repeat(np.arange(n), 2),
            "post": np.tile([0, 1], n),
            "treated": np.repeat(treated, 2),
            "views": views.ravel(),
            "purchases": rng.poisson(views * rate).ravel(),
        }
    )
    lift = did_lift(
        panel, outcome="purchases", exposure="views", cluster="item_id", metric="conversion", subject="x"
    )
    assert lift.low < 0.3 < lift.high and lift.detected and lift.high - lift.low < 0.3
    assert lift.verdict.startswith("conversion of x rose")
    empty = panel.assign(purchases=np.where(panel["treated"] == 1, 0, panel["purchases"]))
    none = did_lift(
        empty, outcome="purchases", exposure="views", cluster="item_id", metric="conversion", subject="x"
    )
    assert none.estimate is None and "not estimable" in none.verdict
    assert verdict("revenue", "y", -0.05, -0.2, 0.1, 0.95) == (
        "no detectable effect on the revenue of y (95 % interval \u221220 % to 10 %)"
    )


def test_the_live_dashboard_shows_the_campaigns_section_and_sees_a_new_calendar() -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from fusionrec.analytics.dashboard import dashboard_router

    shop = generate_frames(n_events=20_000, seed=1, config=ShopConfig(promotions=3))
    store = open_store("duckdb:///:memory:")
    store.upsert_items(shop.items)
    store.insert_events(shop.events)
    app = FastAPI()
    app.include_router(dashboard_router(store, n_boot=20, check_s=0.0), prefix="/dashboard")
    client = TestClient(app)
    before = client.get("/dashboard/").text
    section = before[before.index('id="campaigns-section"') :]
    assert "No campaign costs and no promotions calendar" in section[: section.index("</section>")]
    assert shop.promotions is not None
    load_promotions(store, shop.promotions)  # the calendar changes the data's version
    after = client.get("/dashboard/").text
    section = after[after.index('id="campaigns-section"') :]
    section = section[: section.index("</section>")]
    assert "promo1" in section and "plot-campaign-effects" in section and "Every date" in section
    assert after.index("campaigns-section") < after.index("</main>")
    store.close()


def test_shared_shocks_measured_on_placebo_windows_widen_the_interval() -> None:
    import math

    from fusionrec.analytics.did import _lift, with_shared_shocks

    lift = _lift("conversion", "promoted items", math.log(1.3), 0.05, 0.95)
    assert lift.detected and lift.low > 0.15
    # Earlier windows whose estimates stray far beyond their own sampling error: a shared shock.
    shocked = [_lift("conversion", "x", math.log(v), 0.05, 0.95) for v in (1.35, 0.75, 1.25)]
    wide = with_shared_shocks(lift, shocked, "promoted items")
    assert wide.estimate == lift.estimate and wide.se > 4 * lift.se and not wide.detected
    assert wide.shock_se is not None and 0.25 < wide.shock_se < 0.3
    assert wide.verdict.startswith("no detectable effect on the conversion of promoted items")
    # Placebos within their own noise add nothing; no usable placebo leaves the lift as it was.
    quiet = [_lift("conversion", "x", math.log(v), 0.05, 0.95) for v in (1.02, 0.97)]
    assert with_shared_shocks(lift, quiet, "promoted items") == replace(lift, shock_se=0.0)
    assert with_shared_shocks(lift, [], "promoted items") is lift
