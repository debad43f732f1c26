"""Independent pandas computations of the analytics KPIs, to cross-check the SQL.

Written from the definitions in docs/analytics.md, over the events and items the store holds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def prepare(events: pd.DataFrame, items: pd.DataFrame, start=None, end=None, category=None) -> pd.DataFrame:
    """Human events in the filters with session key, user key, top-level category and revenue."""
    ev = events[~events["is_bot"].fillna(False).astype(bool)].copy()
    cat = items.set_index("item_id")["category"] if len(items) else pd.Series(dtype=object)
    price = items.set_index("item_id")["price"] if len(items) else pd.Series(dtype=float)
    ev["path"] = ev["item_id"].map(cat)
    ts = pd.to_datetime(ev["timestamp"], utc=True)
    ev["ts"] = ts
    if start is not None:
        ev = ev[ev["ts"] >= pd.Timestamp(start, tz="UTC")]
    if end is not None:
        ev = ev[ev["ts"] < pd.Timestamp(end, tz="UTC") + pd.Timedelta(days=1)]
    if category is not None:
        path = ev["path"].astype(object).fillna("").astype(str)
        ev = ev[(path == category) | path.str.startswith(category + " > ")]
    day = ev["ts"].dt.strftime("%Y-%m-%d")
    ev["session_key"] = ev["session_id"].where(
        ev["session_id"].notna(), "u:" + ev["user_id"].astype(str) + ":" + day
    )
    ev["user_key"] = ev["user_id"].where(ev["user_id"].notna(), "s:" + ev["session_id"].astype(str))
    top = ev["path"].astype(object).fillna("").astype(str).str.split(" > ").str[0]
    ev["category"] = top.where(top != "", "(none)")
    ev["channel"] = ev["channel"].fillna("(none)") if "channel" in ev else "(none)"
    ev["device"] = ev["device"].fillna("(none)") if "device" in ev else "(none)"
    unit = ev["price"].where(ev["price"].notna(), ev["item_id"].map(price)).fillna(0.0)
    ev["revenue"] = np.where(ev["event_type"] == "purchase", unit * ev["quantity"].fillna(1.0), 0.0)
    return ev


def sessions(ev: pd.DataFrame, by_category: bool = False) -> pd.DataFrame:
    keys = ["session_key", "category"] if by_category else ["session_key"]
    ev = ev.assign(
        is_view=ev["event_type"].isin(["view", "click"]).astype(int),
        is_cart=(ev["event_type"] == "add_to_cart").astype(int),
        is_buy=(ev["event_type"] == "purchase").astype(int),
    )
    g = ev.groupby(keys)
    out = pd.DataFrame(
        {
            "user_key": g["user_key"].min(),
            "started": g["ts"].min(),
            "channel": g["channel"].min(),
            "device": g["device"].min(),
            "n_events": g.size(),
            "n_views": g["is_view"].sum(),
            "has_view": g["is_view"].max(),
            "has_cart": g["is_cart"].max(),
            "has_purchase": g["is_buy"].max(),
            "revenue": g["revenue"].sum(),
        }
    ).reset_index()
    if not by_category:
        out["category"] = "(all)"
    return out


def period_of(ts: pd.Series, grain: str | None) -> pd.Series:
    if grain is None:
        return pd.Series("all", index=ts.index)
    day = ts.dt.tz_convert("UTC").dt.tz_localize(None).dt.normalize()
    if grain == "week":
        day = day - pd.to_timedelta(day.dt.day_of_week, unit="D")
    return day.dt.strftime("%Y-%m-%d")


def session_metrics(ev: pd.DataFrame, by: tuple[str, ...] = (), grain: str | None = None) -> pd.DataFrame:
    s = sessions(ev, "category" in by)
    s["period"] = period_of(s["started"], grain)
    keys = ["period", *by]
    g = s.groupby(keys)
    return pd.DataFrame(
        {
            "sessions": g.size(),
            "bounced": g["n_events"].apply(lambda n: int((n == 1).sum())),
            "events": g["n_events"].sum(),
            "page_views": g["n_views"].sum(),
            "view_sessions": g["has_view"].sum(),
            "cart_sessions": g["has_cart"].sum(),
            "purchase_sessions": g["has_purchase"].sum(),
            "revenue": g["revenue"].sum(),
        }
    ).reset_index()


def user_metrics(ev: pd.DataFrame, grain: str | None = None) -> pd.DataFrame:
    s = sessions(ev).sort_values(["started", "session_key"])
    s["period"] = period_of(s["started"], grain)
    orders = s[s["has_purchase"] == 1].copy()
    orders["seq"] = orders.groupby("user_key").cumcount() + 1
    rows = []
    for period, group in s.groupby("period"):
        in_period = orders[orders["period"] == period]
        rows.append(
            {
                "period": period,
                "users": group["user_key"].nunique(),
                "buyers": in_period["user_key"].nunique(),
                "repeat_buyers": in_period.loc[in_period["seq"] > 1, "user_key"].nunique(),
            }
        )
    return pd.DataFrame(rows)


def retention_counts(ev: pd.DataFrame) -> pd.DataFrame:
    s = sessions(ev)
    s["week"] = period_of(s["started"], "week")
    act = s[["user_key", "week"]].drop_duplicates()
    act["cohort"] = act.groupby("user_key")["week"].transform("min")
    return act.groupby(["cohort", "week"]).size().rename("users").reset_index()


def attribution(
    ev: pd.DataFrame, exposures: pd.DataFrame, click_s: int = 1800, conv_s: int = 86400
) -> pd.DataFrame:
    """Each click/cart/purchase on a shown item, credited to the latest exposure before it."""
    shown = exposures.explode("items").rename(columns={"items": "item_id"})
    shown["position"] = shown.groupby("exposure_id").cumcount() + 1
    shown["user_key"] = shown["user_id"].where(
        shown["user_id"].notna(), "s:" + shown["session_id"].astype(str)
    )
    shown["shown_at"] = pd.to_datetime(shown["timestamp"], utc=True)
    out = ev[ev["event_type"].isin(["click", "add_to_cart", "purchase"])]
    pairs = out.merge(shown[["exposure_id", "shown_at", "user_key", "item_id"]], on=["user_key", "item_id"])
    window = np.where(pairs["event_type"] == "click", click_s, conv_s)
    delta = (pairs["ts"] - pairs["shown_at"]).dt.total_seconds()
    pairs = pairs[(delta >= 0) & (delta <= window)]
    pairs = pairs.sort_values(["event_id", "shown_at", "exposure_id"], ascending=[True, False, False])
    return pairs.drop_duplicates("event_id")


def ctr(ev: pd.DataFrame, exposures: pd.DataFrame) -> dict[str, float]:
    att = attribution(ev, exposures)
    clicked = att.loc[att["event_type"] == "click", "exposure_id"].nunique()
    return {
        "exposures": len(exposures),
        "clicked_exposures": clicked,
        "impressions": int(exposures["items"].map(len).sum()),
        "clicks": int((att["event_type"] == "click").sum()),
        "purchases": int((att["event_type"] == "purchase").sum()),
        "attributed_revenue": float(att["revenue"].sum()),
    }
