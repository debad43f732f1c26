"""A/B analysis of recommendation experiments from the exposure log.

The unit is the user (or anonymous session): `queries.experiment_units` gives one row per user of
an experiment with their variant and outcomes after their first exposure. Per arm: CTR (exposures
with an attributed click), conversion (users with an order), revenue per user and revenue
attributed to shown items, each with a confidence interval; each treatment against the control:
a two-proportion z-test for CTR and conversion, Welch's t-test for revenue, and user-level
(Poisson) bootstrap intervals for every difference; a sample-ratio-mismatch chi-square test; and
guardrails (bounce rate, orders per user, AOV) that flag a significant degradation.

The statistics are vectorised numpy functions over arrays, so many simulated experiments are as
cheap to analyse as one (the tests check power and the false-positive rate that way).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from fusionrec.analytics import queries as q
from fusionrec.analytics.engine import run, table_exists
from fusionrec.data.store import EventStore

# A verdict calls for data enough to see this relative effect (or the observed one, when larger)
# with `VERDICT_POWER`: smaller lifts rarely matter to a shop, and chasing them needs huge samples.
MIN_RELATIVE_EFFECT = 0.05
VERDICT_POWER = 0.8
# How a verdict names the change of each proportion metric: (verb, up, down, the unit per arm).
VERDICT_WORDS = {
    "conversion": ("converts", "better", "worse", "users"),
    "ctr": ("gets clicks", "more often", "less often", "exposures"),
}

# Guardrails: (metric, numerator, denominator, higher_is_better)
GUARDRAILS = (
    ("bounce_rate", "bounced", "sessions", False),
    ("orders_per_user", "orders", None, True),
    ("aov", "revenue", "orders", True),
)


# --- statistics ------------------------------------------------------------------------------------


def two_proportion_ztest(x1: Any, n1: Any, x2: Any, n2: Any, alpha: float = 0.05) -> dict[str, np.ndarray]:
    """Pooled two-sided z-test of p2 - p1 (arrays broadcast: one test per element).

    Returns ``diff``, ``z``, ``p_value`` and the unpooled Wald interval ``ci_low``/``ci_high``.
    """
    x1, n1, x2, n2 = (np.asarray(v, dtype=float) for v in (x1, n1, x2, n2))
    p1, p2 = x1 / n1, x2 / n2
    pooled = (x1 + x2) / (n1 + n2)
    se0 = np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(se0 > 0, (p2 - p1) / se0, 0.0)
    p_value = 2 * stats.norm.sf(np.abs(z))
    se = np.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    crit = stats.norm.ppf(1 - alpha / 2)
    return {
        "diff": p2 - p1,
        "z": z,
        "p_value": p_value,
        "ci_low": p2 - p1 - crit * se,
        "ci_high": p2 - p1 + crit * se,
    }


def proportion_ci(x: Any, n: Any, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a proportion."""
    x, n = np.asarray(x, dtype=float), np.asarray(n, dtype=float)
    z = stats.norm.ppf(1 - alpha / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = x / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def expected_power(p_control: float, relative_uplift: float, n_per_arm: int, alpha: float = 0.05) -> float:
    """Power of the two-sided two-proportion z-test to detect ``p * (1 + uplift)`` with n users per arm."""
    p1, p2 = p_control, p_control * (1 + relative_uplift)
    pooled = (p1 + p2) / 2
    se0 = np.sqrt(2 * pooled * (1 - pooled) / n_per_arm)
    se1 = np.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / n_per_arm)
    z = stats.norm.ppf(1 - alpha / 2)
    d = abs(p2 - p1)
    return float(stats.norm.cdf((d - z * se0) / se1) + stats.norm.cdf((-d - z * se0) / se1))


def users_per_arm(p_control: float, relative_effect: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Users per arm for the two-sided two-proportion z-test to detect ``p * (1 + effect)`` with
    ``power`` (the normal approximation; 0 when the control proportion is 0 or 1)."""
    p1 = p_control
    p2 = min(max(p_control * (1 + relative_effect), 0.0), 1.0)
    if not 0 < p1 < 1 or p1 == p2:
        return 0
    z = stats.norm.ppf(1 - alpha / 2) + stats.norm.ppf(power)
    return math.ceil(z * z * (p1 * (1 - p1) + p2 * (1 - p2)) / (p2 - p1) ** 2)


def verdict(
    variant: str,
    control: str,
    metric: str,
    base: float,
    value: float,
    ci: tuple[float, float],
    significant: bool,
    users: int,
    alpha: float = 0.05,
) -> str | None:
    """A sentence a shop manager reads without help, e.g. "B converts 4.1 % better than A, 95 %
    interval 1.2 % to 7.0 %, enough data" or "not enough data yet: about 1,200 more users per arm".

    ``ci`` is the interval of the difference ``value - base``, shown relative to ``base``;
    ``users`` is the smaller arm's size (users, or exposures for CTR). None for a metric without
    words, or without a base.
    """
    if metric not in VERDICT_WORDS or not base or not math.isfinite(base) or not math.isfinite(value):
        return None
    verb, up, down, unit = VERDICT_WORDS[metric]
    lift = (value - base) / base
    level = round(100 * (1 - alpha))
    interval = f"{level} % interval {100 * ci[0] / base:.1f} % to {100 * ci[1] / base:.1f} %"
    if significant:
        return f"{variant} {verb} {abs(100 * lift):.1f} % {up if lift > 0 else down} than {control}, {interval}, enough data"
    needed = users_per_arm(base, max(abs(lift), MIN_RELATIVE_EFFECT), alpha, VERDICT_POWER)
    if needed > users:
        return f"not enough data yet: about {needed - users:,} more {unit} per arm ({variant} vs {control}, {interval})"
    return (
        f"no clear difference between {variant} and {control} ({interval}), enough data to see "
        f"a {100 * MIN_RELATIVE_EFFECT:.0f} % change"
    )


def poisson_weights(rng: np.random.Generator, n_boot: int, n: int) -> np.ndarray:
    """Poisson(1) bootstrap weights, ``n_boot x n`` (each user counted 0, 1, 2... times)."""
    return rng.poisson(1.0, size=(n_boot, n)).astype(np.float32)


def bootstrap_sums(values: np.ndarray, n_boot: int, rng: np.random.Generator, chunk: int = 100) -> np.ndarray:
    """Bootstrap replicates of the column sums of ``values`` (users x metrics) and of the user count.

    Returns ``n_boot x (metrics + 1)``; the last column is the resampled number of users. The
    matrix product with Poisson weights resamples every metric with the same users at once.
    """
    values = np.column_stack([np.asarray(values, dtype=np.float64), np.ones(len(values))])
    out = np.empty((n_boot, values.shape[1]))
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        out[start:stop] = poisson_weights(rng, stop - start, len(values)) @ values
    return out


def percentile_ci(samples: np.ndarray, alpha: float = 0.05) -> tuple[float, float]:
    finite = samples[np.isfinite(samples)]
    if not len(finite):
        return float("nan"), float("nan")
    low, high = np.quantile(finite, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def srm_test(counts: Sequence[int], weights: Sequence[float] | None = None) -> dict[str, float]:
    """Sample-ratio mismatch: chi-square of the users per arm against the planned split."""
    observed = np.asarray(counts, dtype=float)
    w = np.ones(len(observed)) if weights is None else np.asarray(weights, dtype=float)
    if len(w) != len(observed):
        raise ValueError(f"SRM: {len(observed)} arms but {len(w)} planned weights")
    expected = observed.sum() * w / w.sum()
    chi2, p = stats.chisquare(observed, expected)
    return {"chi2": float(chi2), "p_value": float(p)}


# --- the analysis ------------------------------------------------------------------------------------


@dataclass
class ExperimentResult:
    """Everything the analysis found for one experiment (`to_dict` for JSON)."""

    experiment: str
    control: str
    arms: pd.DataFrame  # one row per variant
    comparisons: pd.DataFrame  # one row per (treatment, metric)
    guardrails: pd.DataFrame  # one row per (treatment, guardrail)
    srm: dict[str, float]
    excluded_users: int  # users seen in two variants (left out)
    alpha: float
    notes: list[str] = field(default_factory=list)

    @property
    def srm_detected(self) -> bool:
        return self.srm["p_value"] < 0.001

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "control": self.control,
            "alpha": self.alpha,
            "srm": {**self.srm, "detected": self.srm_detected},
            "excluded_users": self.excluded_users,
            "arms": _records(self.arms),
            "comparisons": _records(self.comparisons),
            "guardrails": _records(self.guardrails),
            "notes": self.notes,
        }


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in row.items()}
        for row in frame.astype(object).to_dict("records")
    ]


def analyse_units(
    units: pd.DataFrame,
    experiment: str = "",
    *,
    control: str | None = None,
    weights: Mapping[str, float] | None = None,
    alpha: float = 0.05,
    n_boot: int = 1000,
    seed: int = 0,
) -> ExperimentResult:
    """Analyse per-user rows (columns of `queries.experiment_units`) of one experiment.

    ``control`` defaults to a variant named control (or A), else the first in sort order.
    ``weights`` is the planned traffic split (equal by default) for the SRM test.
    """
    notes: list[str] = []
    excluded = int((units["variants"] > 1).sum()) if "variants" in units else 0
    if excluded:
        notes.append(f"{excluded} users were exposed to more than one variant and are left out")
        units = units[units["variants"] <= 1]
    variants = sorted(units["variant"].dropna().astype(str).unique())
    if len(variants) < 2:
        raise ValueError(f"experiment {experiment!r}: needs two variants at least, found {variants}")
    if control is None:
        control = next((v for v in variants if v.lower() in ("control", "a", "baseline")), variants[0])
    if control not in variants:
        raise ValueError(f"experiment {experiment!r}: control {control!r} is not one of {variants}")
    rng = np.random.default_rng(seed)
    metrics = [
        "exposures",
        "clicked_exposures",
        "converted",
        "revenue",
        "attributed_revenue",
        "sessions",
        "bounced",
        "orders",
    ]
    units = units.assign(converted=(units["orders"] > 0).astype(float))
    groups = {v: units.loc[units["variant"].astype(str) == v, metrics].to_numpy(float) for v in variants}
    boots = {v: bootstrap_sums(groups[v], n_boot, rng) for v in variants}
    col = {m: i for i, m in enumerate(metrics)}
    users_col = len(metrics)

    def boot_metric(v: str, num: str, den: str | None) -> np.ndarray:
        b = boots[v]
        d = b[:, users_col] if den is None else b[:, col[den]]
        with np.errstate(divide="ignore", invalid="ignore"):
            return b[:, col[num]] / d

    arms = []
    for v in variants:
        x = groups[v]
        n = len(x)
        sums = x.sum(axis=0)
        ctr_low, ctr_high = proportion_ci(sums[col["clicked_exposures"]], sums[col["exposures"]], alpha)
        cv_low, cv_high = proportion_ci(sums[col["converted"]], n, alpha)
        rpu = boot_metric(v, "revenue", None)
        arpu = boot_metric(v, "attributed_revenue", None)
        arms.append(
            {
                "variant": v,
                "users": n,
                "exposures": int(sums[col["exposures"]]),
                "ctr": _div(sums[col["clicked_exposures"]], sums[col["exposures"]]),
                "ctr_ci": [float(ctr_low), float(ctr_high)],
                "conversion": _div(sums[col["converted"]], n),
                "conversion_ci": [float(cv_low), float(cv_high)],
                "revenue_per_user": _div(sums[col["revenue"]], n),
                "revenue_per_user_ci": list(percentile_ci(rpu, alpha)),
                "attributed_revenue": float(sums[col["attributed_revenue"]]),
                "attributed_revenue_per_user": _div(sums[col["attributed_revenue"]], n),
                "attributed_revenue_per_user_ci": list(percentile_ci(arpu, alpha)),
                "revenue": float(sums[col["revenue"]]),
            }
        )
    arms_frame = pd.DataFrame(arms)

    comparisons, guardrails = [], []
    c = groups[control]
    for v in variants:
        if v == control:
            continue
        t = groups[v]
        for metric, num, den in (
            ("ctr", "clicked_exposures", "exposures"),
            ("conversion", "converted", None),
        ):
            cn = c[:, col[den]].sum() if den else len(c)
            tn = t[:, col[den]].sum() if den else len(t)
            test = two_proportion_ztest(c[:, col[num]].sum(), cn, t[:, col[num]].sum(), tn, alpha)
            diff_boot = boot_metric(v, num, den) - boot_metric(control, num, den)
            row = _comparison(
                v,
                metric,
                _div(c[:, col[num]].sum(), cn),
                _div(t[:, col[num]].sum(), tn),
                float(test["p_value"]),
                "two-proportion z-test",
                diff_boot,
                alpha,
            )
            ci = (float(test["ci_low"]), float(test["ci_high"]))
            # Conversion counts users; CTR counts exposures, so its sample is the exposures.
            size = int(min(len(c), len(t)) if den is None else min(cn, tn))
            row["verdict"] = verdict(
                v, control, metric, row["control"], row["treatment"], ci, row["significant"], size, alpha
            )
            comparisons.append(row)
        for metric, num in (
            ("revenue_per_user", "revenue"),
            ("attributed_revenue_per_user", "attributed_revenue"),
        ):
            welch = stats.ttest_ind(t[:, col[num]], c[:, col[num]], equal_var=False)
            diff_boot = boot_metric(v, num, None) - boot_metric(control, num, None)
            comparisons.append(
                _comparison(
                    v,
                    metric,
                    float(c[:, col[num]].mean()),
                    float(t[:, col[num]].mean()),
                    float(welch.pvalue),
                    "Welch t-test",
                    diff_boot,
                    alpha,
                )
            )
        for name, num, den, higher_better in GUARDRAILS:
            diff_boot = boot_metric(v, num, den) - boot_metric(control, num, den)
            low, high = percentile_ci(diff_boot, alpha)
            base = _div(c[:, col[num]].sum(), c[:, col[den]].sum() if den else len(c))
            value = _div(t[:, col[num]].sum(), t[:, col[den]].sum() if den else len(t))
            harmed = (high < 0) if higher_better else (low > 0)
            guardrails.append(
                {
                    "variant": v,
                    "guardrail": name,
                    "control": base,
                    "treatment": value,
                    "diff_ci": [low, high],
                    "status": "harmed" if harmed else "ok",
                }
            )
    counts = [len(groups[v]) for v in variants]
    planned = [weights.get(v, 0.0) for v in variants] if weights else None
    srm = srm_test(counts, planned)
    if srm["p_value"] < 0.001:
        notes.append(
            f"sample ratio mismatch (p={srm['p_value']:.2g}): check the bucketing before trusting results"
        )
    return ExperimentResult(
        experiment,
        control,
        arms_frame,
        pd.DataFrame(comparisons),
        pd.DataFrame(guardrails),
        srm,
        excluded,
        alpha,
        notes,
    )


def _div(a: float, b: float) -> float:
    return float(a) / float(b) if b else float("nan")


def _comparison(
    variant: str,
    metric: str,
    base: float,
    value: float,
    p: float,
    test: str,
    diff_boot: np.ndarray,
    alpha: float,
) -> dict[str, Any]:
    low, high = percentile_ci(diff_boot, alpha)
    return {
        "variant": variant,
        "metric": metric,
        "control": base,
        "treatment": value,
        "diff": value - base,
        "lift": (value - base) / base if base else float("nan"),
        "p_value": p,
        "test": test,
        "significant": bool(p < alpha),
        "bootstrap_ci": [low, high],
    }


def experiment_units(store: EventStore, experiment: str, **options: Any) -> pd.DataFrame:
    """Per-user rows of one experiment from the store (options of `queries.experiment_units`)."""
    return run(store, q.experiment_units(experiment, **options))


def list_experiments(store: EventStore) -> pd.DataFrame:
    """Experiments and variants in the exposure log (empty without one)."""
    if not table_exists(store, "exposures"):
        return pd.DataFrame(
            columns=["experiment", "variant", "users", "exposures", "first_seen", "last_seen"]
        )
    return run(store, q.experiments_list())


def analyse_experiment(store: EventStore, experiment: str, **options: Any) -> ExperimentResult:
    """Load one experiment's users from the store and analyse them (options as `analyse_units`)."""
    names = ("click_window_s", "conversion_window_s", "sessions_source", "attributed_source")
    query_options = {k: options.pop(k) for k in names if k in options}
    units = experiment_units(store, experiment, **query_options)
    if units.empty:
        raise ValueError(f"experiment {experiment!r} has no exposures in the store")
    return analyse_units(units, experiment, **options)
