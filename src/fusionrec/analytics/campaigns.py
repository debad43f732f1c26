"""Campaigns and promotions in one answer: CPA and ROAS per campaign, and each effect's lift.

Events carry a channel, not a campaign, so a channel's new customers and revenue of a day are
shared among the campaigns that spent on that channel that day, in proportion to their cost (equal
shares when they all cost 0). Days of a channel without cost rows belong to no campaign. CPA = cost /
new customers, ROAS = revenue / cost; either is null (unknown) when its denominator is 0 or the
campaign has no cost rows in the period, never 0.

`campaign_analysis` is the JSON-ready whole (``fusionrec campaigns``, the report; the dashboard can
call it too).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fusionrec.analytics import queries as q
from fusionrec.analytics.effects import campaign_effects, promotion_effects
from fusionrec.analytics.engine import run, table_exists
from fusionrec.analytics.kpis import ratio
from fusionrec.analytics.queries import Filters
from fusionrec.data.store import EventStore

KPI_COLUMNS = ["period", "campaign", "channel", "cost", "acquisitions", "revenue", "cpa", "roas"]


def _period(days: pd.Series, grain: str | None) -> pd.Series:
    """The day, Monday-starting week or month of each date (None when ungrouped)."""
    if grain is None:
        return pd.Series([None] * len(days), index=days.index, dtype=object)
    if grain not in q.GRAINS:
        raise ValueError(f"grain must be one of {q.GRAINS}, not {grain!r}")
    stamps = pd.to_datetime(days)
    if grain == "week":
        stamps = stamps - pd.to_timedelta(stamps.dt.weekday, unit="D")
    elif grain == "month":
        stamps = stamps.dt.to_period("M").dt.to_timestamp()
    return stamps.dt.date.astype(object)


def campaign_kpis(
    store: EventStore, filters: Filters | None = None, grain: str | None = None
) -> pd.DataFrame:
    """Cost, attributed new customers and revenue, CPA and ROAS per campaign (and channel, and
    period for a ``grain`` of day, week or month); empty without ``campaign_costs``."""
    if not table_exists(store, "campaign_costs"):
        return pd.DataFrame(columns=KPI_COLUMNS)
    f = filters or Filters()
    costs = run(store, q.campaign_cost_rows(f))
    if costs.empty:
        return pd.DataFrame(columns=KPI_COLUMNS)
    costs = costs.rename(columns={"date": "day"})
    acquired = run(store, q.acquisitions(f, "day"))[["period", "channel", "acquisitions"]]
    revenue = run(store, q.channel_revenue(f))[["period", "channel", "revenue"]]
    daily = acquired.merge(revenue, on=["period", "channel"], how="outer").rename(columns={"period": "day"})
    frame = costs.merge(daily, on=["day", "channel"], how="left").fillna({"acquisitions": 0, "revenue": 0.0})
    # Cost shares of the campaigns on one channel and day (equal when all of them cost 0).
    day_cost = frame.groupby(["day", "channel"])["cost"].transform("sum")
    day_count = frame.groupby(["day", "channel"])["cost"].transform("size")
    share = np.where(day_cost > 0, frame["cost"] / day_cost.where(day_cost > 0, 1.0), 1.0 / day_count)
    frame["acquisitions"] = frame["acquisitions"] * share
    frame["revenue"] = frame["revenue"] * share
    frame["period"] = _period(frame["day"], grain)
    out = frame.groupby(["period", "campaign", "channel"], dropna=False, as_index=False, sort=True)[
        ["cost", "acquisitions", "revenue"]
    ].sum()
    out["cpa"] = ratio(out["cost"], out["acquisitions"])
    out["roas"] = ratio(out["revenue"], out["cost"])
    return out[KPI_COLUMNS]


def campaign_analysis(
    store: EventStore,
    filters: Filters | None = None,
    *,
    grain: str | None = None,
    pre_days: int | None = None,
    level: float = 0.95,
) -> dict[str, Any]:
    """Everything about campaigns and promotions, JSON-ready: ``kpis`` (per campaign), ``promotions``
    and ``campaigns`` (effects with intervals and verdicts) and ``has`` (which tables exist)."""
    kpis = campaign_kpis(store, filters, grain)
    records = [
        {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in row.items()}
        for row in kpis.astype(object).where(kpis.notna(), None).to_dict("records")
    ]
    for row in records:
        if row["period"] is not None:
            row["period"] = row["period"].isoformat()
    return {
        "grain": grain,
        "level": level,
        "kpis": records,
        "promotions": [e.to_dict() for e in promotion_effects(store, pre_days=pre_days, level=level)],
        "campaigns": [e.to_dict() for e in campaign_effects(store, pre_days=pre_days, level=level)],
        "has": {
            "campaign_costs": table_exists(store, "campaign_costs"),
            "promotions": table_exists(store, "promotions"),
        },
    }
