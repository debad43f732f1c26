"""A/B analysis: the statistics (power, false-positive rate, SRM) and the store pipeline end to end."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.proportion import proportions_ztest

from fusionrec.analytics import experiments as ex
from fusionrec.analytics.simulate import plant_experiment
from fusionrec.data.store import open_store

N_SIM = 4000  # simulated experiments per check: the observed rate has a standard error under 0.7 points


def test_ztest_matches_statsmodels() -> None:
    ours = ex.two_proportion_ztest(120, 1000, 150, 1010)
    z, p = proportions_ztest([150, 120], [1010, 1000])
    assert float(ours["z"]) == pytest.approx(z)
    assert float(ours["p_value"]) == pytest.approx(p)


def test_planted_five_percent_uplift_detected_at_expected_power() -> None:
    # A 5% relative uplift of a 10% conversion needs ~58k users per arm for 80% power.
    p0, uplift, n = 0.10, 0.05, 58_000
    expected = ex.expected_power(p0, uplift, n)
    assert 0.78 < expected < 0.82
    rng = np.random.default_rng(7)
    control = rng.binomial(n, p0, N_SIM)
    treatment = rng.binomial(n, p0 * (1 + uplift), N_SIM)
    test = ex.two_proportion_ztest(control, n, treatment, n)
    detected = (test["p_value"] < 0.05) & (test["diff"] > 0)
    se = np.sqrt(expected * (1 - expected) / N_SIM)
    assert abs(detected.mean() - expected) < 4 * se, (detected.mean(), expected)


def test_aa_test_false_positive_rate_is_alpha() -> None:
    rng = np.random.default_rng(11)
    n, p, alpha = 5_000, 0.08, 0.05
    a, b = rng.binomial(n, p, N_SIM), rng.binomial(n, p, N_SIM)
    rate = (ex.two_proportion_ztest(a, n, b, n)["p_value"] < alpha).mean()
    se = np.sqrt(alpha * (1 - alpha) / N_SIM)
    assert abs(rate - alpha) < 4 * se, rate


def test_bootstrap_interval_false_positive_rate_in_aa_tests() -> None:
    # Revenue per user is zero-inflated and skewed; the user-level Poisson bootstrap CI of the
    # difference should exclude 0 in about alpha of A/A tests.
    rng = np.random.default_rng(3)
    runs, n, alpha = 200, 400, 0.05
    rejected = 0
    for _ in range(runs):
        spend = np.where(rng.random((2, n)) < 0.1, rng.lognormal(3, 1, (2, n)), 0.0)
        boots = [ex.bootstrap_sums(spend[i][:, None], 300, rng) for i in range(2)]
        diff = boots[1][:, 0] / boots[1][:, 1] - boots[0][:, 0] / boots[0][:, 1]
        low, high = ex.percentile_ci(diff, alpha)
        rejected += not (low <= 0 <= high)
    rate = rejected / runs
    assert rate < alpha + 4 * np.sqrt(alpha * (1 - alpha) / runs), rate


def test_srm_detects_a_skewed_split() -> None:
    assert ex.srm_test([5000, 5040])["p_value"] > 0.05
    assert ex.srm_test([5000, 5500])["p_value"] < 0.001
    assert ex.srm_test([2000, 1000], [2, 1])["p_value"] > 0.05
    with pytest.raises(ValueError, match="arms"):
        ex.srm_test([1, 2], [1, 1, 1])


def test_pipeline_finds_planted_uplift_and_reports_arms(tmp_path) -> None:
    with open_store(f"duckdb:///{tmp_path / 'ab.duckdb'}") as store:
        truth = plant_experiment(store, n_users=6000, conversion=0.1, uplift=0.5, seed=1)
        plant_experiment(store, n_users=6000, conversion=0.1, uplift=0.0, experiment="aa", seed=2)
        result = ex.analyse_experiment(store, "planted", n_boot=300)
        aa = ex.analyse_experiment(store, "aa", n_boot=300)
        listed = ex.list_experiments(store)
    arms = result.arms.set_index("variant")
    assert arms.loc["control", "users"] == truth["control_users"]
    assert arms.loc["treatment", "conversion"] == pytest.approx(truth["treatment_conversion"])
    conversion = result.comparisons.set_index("metric").loc["conversion"]
    assert conversion["significant"] and conversion["lift"] > 0.2
    low, high = conversion["bootstrap_ci"]
    assert 0 < low < conversion["diff"] < high
    # Every purchase is of a shown item within the window, so all revenue is attributed.
    assert arms["attributed_revenue"].sum() == pytest.approx(arms["revenue"].sum())
    assert not result.srm_detected
    assert set(result.guardrails["guardrail"]) == {"bounce_rate", "orders_per_user", "aov"}
    assert not aa.comparisons.set_index("metric").loc["conversion", "significant"]
    assert set(listed["experiment"]) == {"planted", "aa"}
    assert result.to_dict()["arms"][0]["variant"] == "control"


def test_analysis_rejects_bad_input() -> None:
    units = pd.DataFrame(
        {
            "variant": ["a"] * 3,
            "variants": 1,
            "exposures": 1,
            "clicked_exposures": 0,
            "sessions": 1,
            "bounced": 0,
            "orders": 0,
            "revenue": 0.0,
            "attributed_revenue": 0.0,
        }
    )
    with pytest.raises(ValueError, match="two variants"):
        ex.analyse_units(units, "one-arm")
    two = pd.concat([units, units.assign(variant="b", variants=[1, 1, 2])])
    result = ex.analyse_units(two, "x", n_boot=50)
    assert result.excluded_users == 1
    with pytest.raises(ValueError, match="control"):
        ex.analyse_units(two, "x", control="z")
