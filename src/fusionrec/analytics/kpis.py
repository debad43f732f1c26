"""Shop KPIs from the store: totals, daily and weekly series, CTR, CPA and weekly retention.

The SQL is in `fusionrec.analytics.queries`; here the additive measures it returns become ratios
(`derive`), the one place each ratio is defined. The dashboard's JavaScript mirrors these
formulas to re-aggregate after a filter change.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from fusionrec.analytics import queries as q
from fusionrec.analytics.engine import run, table_exists
from fusionrec.analytics.queries import Filters
from fusionrec.data.store import EventStore

# ratio name -> (numerator, denominator)
RATIOS: dict[str, tuple[str, str]] = {
    "conversion_rate": ("purchase_sessions", "sessions"),  # sessions with an order
    "bounce_rate": ("bounced", "sessions"),  # sessions of one event
    "events_per_session": ("events", "sessions"),  # visit depth in events
    "pages_per_session": ("page_views", "sessions"),  # visit depth in product views
    "cart_rate": ("cart_sessions", "view_sessions"),  # funnel step view -> cart
    "checkout_rate": ("purchase_sessions", "cart_sessions"),  # funnel step cart -> purchase
    "aov": ("revenue", "purchase_sessions"),  # average order value
    "user_conversion_rate": ("buyers", "users"),
    "repeat_purchase_rate": ("repeat_buyers", "buyers"),
    "ctr": ("clicked_exposures", "exposures"),  # exposures with an attributed click
    "item_ctr": ("clicks", "impressions"),  # attributed clicks per shown item
    "cpa": ("cost", "acquisitions"),  # campaign cost per new customer
}


def ratio(numerator: Any, denominator: Any) -> Any:
    """``numerator / denominator``, NaN where the denominator is 0."""
    num = np.asarray(numerator, dtype=float)
    den = np.asarray(denominator, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    return out if out.ndim else float(out)


def derive(frame: pd.DataFrame) -> pd.DataFrame:
    """Add every ratio of `RATIOS` whose inputs the frame has."""
    out = frame.copy()
    for name, (num, den) in RATIOS.items():
        if num in out.columns and den in out.columns:
            out[name] = ratio(out[num], out[den])
    return out


def session_kpis(
    store: EventStore,
    filters: Filters | None = None,
    grain: str | None = None,
    by: tuple[str, ...] = (),
    source: str | None = None,
) -> pd.DataFrame:
    """Session measures and their ratios (conversion, bounce, depth, AOV) per period / dimension.

    ``source`` names a table of `queries.session_rows` for the same filters (see `engine.materialised`).
    """
    frame = run(store, q.session_metrics(filters or Filters(), by, grain, source))
    return derive(frame)


def user_kpis(
    store: EventStore,
    filters: Filters | None = None,
    grain: str | None = None,
    by_category: bool = False,
    source: str | None = None,
) -> pd.DataFrame:
    """Users, buyers, repeat buyers, user conversion and repeat-purchase rate per period."""
    return derive(run(store, q.user_metrics(filters or Filters(), grain, by_category, source)))


def ctr(
    store: EventStore,
    filters: Filters | None = None,
    grain: str | None = None,
    by: tuple[str, ...] = (),
    **options: Any,
) -> pd.DataFrame:
    """Recommendation CTR from the exposure log (empty when there is none); ``options`` are the
    attribution windows and ``attributed_source`` of `queries.exposure_metrics`."""
    if not table_exists(store, "exposures"):
        return pd.DataFrame(columns=["period", *by, *q.EXPOSURE_MEASURES, "ctr", "item_ctr"])
    return derive(run(store, q.exposure_metrics(filters or Filters(), grain, by, **options)))


def cpa(
    store: EventStore, filters: Filters | None = None, grain: str | None = None, by_channel: bool = False
) -> pd.DataFrame:
    """Cost per acquisition (new customers) from ``campaign_costs``; empty without costs.

    A period (and channel) without cost rows has cost and CPA NaN (unknown), not 0.
    `fusionrec.analytics.campaigns.campaign_kpis` has CPA and ROAS per campaign.
    """
    if not table_exists(store, "campaign_costs"):
        return pd.DataFrame(columns=["period", "channel", "acquisitions", "cost", "cpa"])
    frame = run(store, q.acquisitions(filters or Filters(), grain))
    keys = ["period", "channel"] if by_channel else ["period"]
    frame["period"] = frame["period"].astype(object)
    groups = frame.groupby(keys, dropna=False, as_index=False)
    # min_count=1: a group whose every cost is unknown stays unknown instead of summing to 0.
    grouped = groups.agg(acquisitions=("acquisitions", "sum"), cost=("cost", lambda c: c.sum(min_count=1)))
    return derive(grouped)


def retention(store: EventStore, filters: Filters | None = None, source: str | None = None) -> pd.DataFrame:
    """Weekly cohort retention: rows = first-activity week, columns = weeks since (0 = 100%)."""
    frame = run(store, q.retention_cohorts(filters or Filters(), source=source))
    return retention_matrix(frame)


def retention_matrix(frame: pd.DataFrame) -> pd.DataFrame:
    """Pivot (cohort, week, users) rows into shares of each cohort's size by week offset."""
    if frame.empty:
        return pd.DataFrame()
    cohort = pd.to_datetime(frame["cohort"])
    offset = ((pd.to_datetime(frame["week"]) - cohort).dt.days // 7).astype(int)
    counts = frame.assign(offset=offset.to_numpy(), cohort=cohort.dt.date).pivot_table(
        index="cohort", columns="offset", values="users", aggfunc="sum", fill_value=0
    )
    size = counts[0] if 0 in counts.columns else counts.max(axis=1)
    shares = counts.div(size.replace(0, np.nan), axis=0)
    # Weeks not yet reached by a cohort are unknown, not 0%.
    last = max(counts.index)
    for c in shares.index:
        horizon = (pd.Timestamp(last) - pd.Timestamp(c)).days // 7
        shares.loc[c, shares.columns > horizon] = np.nan
    shares.insert(0, "cohort_size", size.astype(int))
    return shares


def kpi_summary(
    store: EventStore, filters: Filters | None = None, source: str | None = None
) -> dict[str, float | int | None]:
    """Every headline KPI for the filters, as one flat dict (ratios NaN -> None)."""
    f = filters or Filters()
    sessions = session_kpis(store, f, source=source).iloc[0].to_dict()
    users = user_kpis(store, f, source=source).iloc[0].to_dict()
    out: dict[str, Any] = {k: v for k, v in {**sessions, **users}.items() if k not in ("period", "category")}
    exposures = ctr(store, f)
    if len(exposures):
        out.update(exposures[list(q.EXPOSURE_MEASURES)].sum().to_dict())
        out.update(derive(pd.DataFrame([out]))[["ctr", "item_ctr"]].iloc[0].to_dict())
    costs = cpa(store, f, "day", by_channel=True)  # per day and channel: where cost is known
    if len(costs):
        totals = costs[["acquisitions", "cost"]].sum()
        out.update(acquisitions=int(totals["acquisitions"]), cost=float(totals["cost"]))
        # CPA over the periods whose cost is known only: new customers of days without cost rows
        # would make it look cheaper than it was.
        known = costs[costs["cost"].notna()]
        out["cpa"] = ratio(known["cost"].sum(), known["acquisitions"].sum()) if len(known) else None
    return {k: _plain(v) for k, v in out.items()}


def _plain(value: Any) -> float | int | None:
    if value is None:
        return None
    if isinstance(value, int | np.integer):
        return int(value)
    value = float(value)
    return None if np.isnan(value) else value


def kpi_series(
    store: EventStore, grain: str = "day", filters: Filters | None = None, source: str | None = None
) -> pd.DataFrame:
    """One row per day (or week, or month) with every KPI and its inputs; periods without traffic are absent."""
    f = filters or Filters()
    frame = session_kpis(store, f, grain, source=source)
    users = user_kpis(store, f, grain, source=source).drop(columns=["category"])
    frame = frame.merge(users, on="period", how="outer")
    exposures = ctr(store, f, grain)
    if len(exposures):
        exp = exposures.groupby("period", as_index=False)[list(q.EXPOSURE_MEASURES)].sum()
        frame = frame.merge(exp, on="period", how="left")
    costs = cpa(store, f, grain)
    if len(costs):
        frame = frame.merge(costs[["period", "acquisitions", "cost"]], on="period", how="outer")
    frame = derive(frame).sort_values("period").reset_index(drop=True)
    return frame
