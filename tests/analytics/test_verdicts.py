"""Plain-language A/B verdicts: what a shop manager reads above the statistics table."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fusionrec.analytics.experiments import (
    analyse_units,
    expected_power,
    users_per_arm,
    verdict,
)


def test_users_per_arm_gives_the_power_it_promises() -> None:
    n = users_per_arm(0.10, 0.10)
    assert 14_000 < n < 15_500  # the textbook figure for 10 % -> 11 % at 80 % power
    assert 0.79 < expected_power(0.10, 0.10, n) < 0.82
    assert users_per_arm(0.0, 0.1) == 0 and users_per_arm(0.1, 0.0) == 0


def test_a_significant_lift_reads_as_better_with_its_interval() -> None:
    text = verdict("B", "A", "conversion", 0.100, 0.1041, (0.0012, 0.0070), True, 50_000)
    assert text == "B converts 4.1 % better than A, 95 % interval 1.2 % to 7.0 %, enough data"
    worse = verdict("B", "A", "ctr", 0.20, 0.18, (-0.03, -0.01), True, 9_000)
    assert worse is not None and worse.startswith("B gets clicks 10.0 % less often than A")


def test_too_few_users_reads_as_not_enough_data_with_how_many_more() -> None:
    text = verdict("B", "A", "conversion", 0.10, 0.104, (-0.01, 0.018), False, 1_000)
    needed = users_per_arm(0.10, 0.05)  # the observed 4 % is below the 5 % worth detecting
    assert text is not None and text.startswith(
        f"not enough data yet: about {needed - 1_000:,} more users per arm"
    )


def test_no_difference_with_plenty_of_users_says_so() -> None:
    text = verdict("B", "A", "conversion", 0.10, 0.1001, (-0.002, 0.0022), False, 2_000_000)
    assert text is not None and text.startswith("no clear difference between B and A")
    assert verdict("B", "A", "revenue_per_user", 10.0, 11.0, (0.1, 2.0), True, 100) is None


def test_the_analysis_carries_a_verdict_per_proportion_metric() -> None:
    rng = np.random.default_rng(0)
    n = 4_000
    units = pd.DataFrame(
        {
            "variant": ["control"] * n + ["treatment"] * n,
            "exposures": 1.0,
            "clicked_exposures": (rng.random(2 * n) < 0.2).astype(float),
            "orders": np.r_[rng.random(n) < 0.05, rng.random(n) < 0.08].astype(float),
            "revenue": 0.0,
            "attributed_revenue": 0.0,
            "sessions": 1.0,
            "bounced": 0.0,
        }
    )
    result = analyse_units(units, "reco", n_boot=50).to_dict()
    verdicts = {c["metric"]: c["verdict"] for c in result["comparisons"]}
    assert (
        verdicts["conversion"].startswith("treatment converts")
        and "better than control" in verdicts["conversion"]
    )
    assert verdicts["ctr"] is not None and verdicts["revenue_per_user"] is None
