"""Business rules, experiments, alerts and security helpers, without a server."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

from fusionrec.monitoring.alerts import evaluate
from fusionrec.monitoring.metrics import WindowStats
from fusionrec.serving.business_rules import (
    Boost,
    Pin,
    RuleRequest,
    RulesConfig,
    apply_rules,
    repurchase_blocked,
)
from fusionrec.serving.catalogue import Catalogue
from fusionrec.serving.experiments import ArmConfig, ExperimentConfig, assign, bucket
from fusionrec.serving.security import ApiKeys, TokenBuckets
from fusionrec.serving.settings import AlertConfig, SettingsError, load_settings

IDS = np.array([f"i{i}" for i in range(8)])


@pytest.fixture
def view():
    frame = pd.DataFrame(
        {
            "item_id": IDS,
            "category": [
                "Food > Tea",
                "Food > Tea",
                "Food > Coffee",
                "Home",
                "Home",
                "Home",
                None,
                "Food > Tea",
            ],
            "price": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, np.nan, 8.0],
            "hidden": [False, False, False, True, False, False, False, False],
            "in_stock": [True, None, True, True, False, True, True, True],
        }
    ).set_index("item_id")
    return Catalogue(frame).view(IDS)


SCORES = np.linspace(1.0, 0.3, 8)  # item 0 best ... item 7 worst
ALL = np.arange(8)


def run(view, rules=None, **request):
    items, _ = apply_rules(
        ALL, SCORES, view, rules or RulesConfig(), RuleRequest(n=request.pop("n", 8), **request)
    )
    return items.tolist()


def test_filters(view) -> None:
    assert run(view) == [0, 1, 2, 5, 6, 7]  # 3 hidden, 4 out of stock; unknown stock counts as in stock
    assert run(view, blocked=np.array([0, 2])) == [1, 5, 6, 7]
    assert run(view, category="Food") == [0, 1, 2, 7]  # a prefix includes its subcategories
    assert run(view, category="Food > Tea") == [0, 1, 7]
    assert run(view, exclude_categories=["Food"]) == [5, 6]
    assert run(view, min_price=2.0, max_price=6.0) == [1, 2, 5]  # unknown prices fail a price range
    assert run(view, RulesConfig(drop_hidden=False, drop_out_of_stock=False)) == list(range(8))


def test_boosts_pins_and_pages(view) -> None:
    boosted = RulesConfig(boosts=[Boost(category="Home", factor=10.0)])
    assert run(view, boosted)[0] == 5
    pinned = RulesConfig(pins=[Pin(item_id="i7", position=1), Pin(item_id="i3", position=2)])
    assert run(view, pinned, item_index={i: n for n, i in enumerate(IDS)})[:2] == [
        7,
        0,
    ]  # hidden i3 not forced
    assert run(view, n=3) == [0, 1, 2]


def test_diversity(view) -> None:
    capped = run(view, RulesConfig(diversity="category_cap", max_per_category=1))
    assert capped == [0, 2, 5, 6]  # one per category; uncategorised items are never capped
    mmr = run(view, RulesConfig(diversity="mmr", mmr_lambda=0.5), n=3)
    assert mmr[0] == 0 and 1 not in mmr  # the second tea loses to other categories


def test_repurchase_windows(view) -> None:
    now = time.time()
    day = 86_400.0
    rules = RulesConfig(repurchase_days={"Food > Tea": 14, "*": 365})
    bought = np.array([0, 2, 5])
    times = np.array([now - 20 * day, now - 20 * day, now - 400 * day])
    assert repurchase_blocked(bought, times, view, rules, now).tolist() == [
        2
    ]  # tea after 14 d, home after 365
    assert repurchase_blocked(bought, times, view, RulesConfig(), now).tolist() == [0, 2, 5]  # never again
    assert repurchase_blocked(bought, times, view, RulesConfig(exclude_purchased=False), now).tolist() == []


def test_bucketing_is_deterministic_and_weighted() -> None:
    assert bucket("s", "e", "u1") == bucket("s", "e", "u1") != bucket("t", "e", "u1")
    experiment = ExperimentConfig(
        name="e", salt="s", arms=[ArmConfig(name="a", weight=3), ArmConfig(name="b", weight=1)]
    )
    arms = [assign([experiment], f"u{i}", None, "home").variant for i in range(4000)]
    assert abs(arms.count("a") / 4000 - 0.75) < 0.03
    assert assign([experiment], "u1", None, "home") == assign([experiment], "u1", "other-session", "cart")
    only_home = experiment.model_copy(update={"placements": ["home"]})
    assert assign([only_home], "u1", None, "cart").variant == "default"
    with pytest.raises(ValueError, match="arm names repeat"):
        ExperimentConfig(name="x", arms=[ArmConfig(name="a"), ArmConfig(name="a")])


def test_alert_rules() -> None:
    config = AlertConfig(p99_latency_ms=10, error_rate=0.01, ctr_drop=0.3, min_requests=10)
    calm = WindowStats(requests=100, errors=0, p99_ms=5, exposures=100, clicks=10)
    assert evaluate(calm, calm, config) == []
    bad = WindowStats(requests=100, errors=5, p99_ms=50, exposures=100, clicks=2)
    assert {a.rule for a in evaluate(bad, calm, config)} == {"p99_latency", "error_rate", "ctr_drop"}
    tiny = WindowStats(requests=3, errors=3, p99_ms=500, exposures=3, clicks=0)
    assert evaluate(tiny, calm, config) == []  # too few requests to judge


def test_api_keys_and_rate_buckets() -> None:
    keys = ApiKeys({"r" * 20: ["read"], "a" * 20: ["admin"]})
    assert keys.scopes("r" * 20) == {"read"} and keys.scopes("r" * 19) is None and keys.scopes(None) is None
    buckets = TokenBuckets(rate=1.0, burst=2)
    assert [buckets.allow("c") == 0 for _ in range(3)] == [True, True, False]
    assert buckets.allow("other") == 0


def test_settings_file_env_and_errors(tmp_path, monkeypatch) -> None:
    config = tmp_path / "fusionrec.toml"
    config.write_text(
        '[store]\nurl = "duckdb:///x.duckdb"\n[serving]\nport = 9001\n[serving.rules]\nexclude_seen = false\n'
        '[[experiments]]\nname = "e"\n[[experiments.arms]]\nname = "a"\n[[experiments.arms]]\nname = "b"\n'
    )
    settings = load_settings(config)
    assert settings.port == 9001 and settings.store_url == "duckdb:///x.duckdb"
    assert settings.rules.exclude_seen is False and settings.experiments[0].arms[1].name == "b"
    monkeypatch.setenv("FUSIONREC_SERVING_PORT", "9002")
    assert load_settings(config).port == 9002
    assert load_settings(config, port=9003).port == 9003
    config.write_text("[serving.rules]\nexclude_sen = true\n")
    with pytest.raises(SettingsError, match=r"rules\.exclude_sen"):
        load_settings(config)


def test_metrics_window_counts_only_its_interval_after_the_ring_wraps() -> None:
    from fusionrec.monitoring.metrics import ServiceMetrics

    metrics = ServiceMetrics(window=50)
    for i in range(120):  # wraps the 50-row ring twice: only the newest 50 requests remain
        metrics.observe("/v1/popular", "GET", 500 if i % 10 == 0 else 200, 0.001 * (i % 7 + 1))
    metrics.exposed(4)
    metrics.clicked(1)
    stats = metrics.window(60)
    assert stats.requests == 50 and stats.errors == 5
    assert stats.p99_ms == pytest.approx(7.0, abs=0.1)
    assert (stats.exposures, stats.clicks) == (4, 1) and stats.ctr == 0.25
    assert metrics.window(60, end_ago=60).requests == 0  # nothing older than a minute


def test_an_item_bought_twice_keeps_its_latest_purchase_time_not_their_sum() -> None:
    """Serving's user x item purchase times: summing a repeat (a sparse matrix's default) dated an
    item bought twice decades ahead, so its repurchase window never passed."""
    from fusionrec.serving.preparation import latest_purchases

    day = 86_400.0
    now = time.time()
    users, items = np.array([0, 0, 0, 1]), np.array([3, 3, 1, 3])
    times = np.array([now - 400 * day, now - 30 * day, now - 5 * day, now - 2 * day])
    matrix = latest_purchases(users, items, times, shape=(2, 4))
    assert matrix[0, 3] == pytest.approx(now - 30 * day) and matrix[0, 1] == pytest.approx(now - 5 * day)
    assert matrix[1, 3] == pytest.approx(now - 2 * day) and matrix.nnz == 3
