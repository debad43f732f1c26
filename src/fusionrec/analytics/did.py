"""Difference-in-differences on a two-period panel, as a relative lift with a confidence interval.

The model is a Poisson regression (quasi-likelihood: only the mean is assumed, counts or money
alike) with an offset, estimated by statsmodels with standard errors clustered by unit:

    log E[y] = a + b * treated + c * post + d * treated * post + log(exposure)

``exp(d)`` is the ratio of the treated units' change (window / pre-period) to the control units'
change: the multiplicative effect, so a lift of ``exp(d) - 1``. With ``exposure`` = views and
``y`` = purchases this is the effect on the conversion rate; with exposure = days and y = revenue,
the effect on revenue. Clustering by unit (item, or day for channel panels) allows any correlation
of a unit's two periods and any spread of the counts.

It does not see shocks that all treated units share (one category's shoppers, sessions and
trends): on a shop with nothing planted, 11 % of clustered intervals excluded 0 at the nominal 5 %.
`with_shared_shocks` adds that variance, measured on earlier windows where nothing was done
(placebos): the spread of their estimates beyond what their own sampling error explains.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from scipy import stats

MIN_CLUSTERS = 10  # below this, cluster-robust standard errors are not to be trusted


@dataclass(frozen=True)
class Lift:
    """A relative effect (0.18 = +18 %) with its interval, or the reason there is none."""

    metric: str  # "conversion" or "revenue"
    estimate: float | None
    low: float | None
    high: float | None
    p_value: float | None
    level: float
    verdict: str
    se: float | None = None  # standard error of log(1 + estimate)
    shock_se: float | None = None  # the shared-shock part of ``se``, from placebo windows

    @property
    def detected(self) -> bool:
        """Whether the interval excludes no change."""
        return self.low is not None and self.high is not None and (self.low > 0 or self.high < 0)

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "detected": self.detected}


def _pct(value: float) -> str:
    return f"{value * 100:.0f} %" if value >= 0 else f"\u2212{abs(value) * 100:.0f} %"


def verdict(metric: str, subject: str, estimate: float, low: float, high: float, level: float) -> str:
    """The result in plain words, e.g. "conversion of promoted items rose 18 % (95 % interval 9 %
    to 27 %)", or "no detectable effect on ..." when the interval holds 0."""
    interval = f"({level * 100:.0f} % interval {_pct(low)} to {_pct(high)})"
    if low > 0 or high < 0:
        direction = "rose" if estimate > 0 else "fell"
        return f"{metric} of {subject} {direction} {_pct(abs(estimate))} {interval}"
    return f"no detectable effect on the {metric} of {subject} {interval}"


def did_lift(
    panel: pd.DataFrame,
    *,
    outcome: str,
    exposure: str,
    cluster: str,
    metric: str,
    subject: str,
    level: float = 0.95,
) -> Lift:
    """The treated x post effect on ``outcome`` per unit of ``exposure`` in ``panel`` (columns
    ``treated`` and ``post`` of 0/1, ``outcome``, ``exposure`` > 0 and ``cluster``)."""
    import statsmodels.api as sm

    data = panel[panel[exposure] > 0]

    def none(reason: str) -> Lift:
        return Lift(metric, None, None, None, None, level, f"{metric}: {reason}")

    cells = data.groupby(["treated", "post"])[outcome].sum()
    if len(cells) < 4:
        return none("not estimable (no pre-period or no comparable items)")
    if (cells <= 0).any():
        return none("not estimable (no sales in one of the groups or periods)")
    design = pd.DataFrame(
        {
            "const": 1.0,
            "treated": data["treated"].astype(float),
            "post": data["post"].astype(float),
            "did": (data["treated"] * data["post"]).astype(float),
        }
    )
    groups = pd.factorize(data[cluster])[0]
    if len(np.unique(groups)) < MIN_CLUSTERS:
        return none(f"not estimable (fewer than {MIN_CLUSTERS} units to cluster by)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter on tiny panels; checked below
        model = sm.GLM(
            data[outcome].astype(float), design, family=sm.families.Poisson(), offset=np.log(data[exposure])
        )
        fit = model.fit(cov_type="cluster", cov_kwds={"groups": groups})
    d, se = float(fit.params["did"]), float(fit.bse["did"])
    if not (math.isfinite(d) and math.isfinite(se)):
        return none("not estimable (the model did not converge)")
    return _lift(metric, subject, d, se, level)


def _lift(
    metric: str, subject: str, d: float, se: float, level: float, shock_se: float | None = None
) -> Lift:
    """The lift ``exp(d) - 1`` with its normal interval on the log scale."""
    z = float(stats.norm.ppf(0.5 + level / 2))
    estimate, low, high = math.expm1(d), math.expm1(d - z * se), math.expm1(d + z * se)
    p_value = float(2 * stats.norm.sf(abs(d) / se)) if se > 0 else 0.0
    return Lift(
        metric,
        estimate,
        low,
        high,
        p_value,
        level,
        verdict(metric, subject, estimate, low, high, level),
        se,
        shock_se,
    )


def with_shared_shocks(lift: Lift, placebos: Sequence[Lift], subject: str) -> Lift:
    """``lift`` with the variance of shocks its treated units share added to its own: estimated
    from ``placebos`` (the same analysis on earlier windows where nothing was done) as the mean of
    each placebo's squared log effect beyond its own sampling variance (0 where it is within)."""
    usable = [p for p in placebos if p.estimate is not None and p.se is not None]
    if lift.estimate is None or lift.se is None or not usable:
        return lift
    excess = [max(math.log1p(p.estimate) ** 2 - p.se**2, 0.0) for p in usable]  # type: ignore[arg-type,operator]
    shock = math.sqrt(sum(excess) / len(excess))
    se = math.sqrt(lift.se**2 + shock**2)
    return _lift(lift.metric, subject, math.log1p(lift.estimate), se, lift.level, shock)
