"""The conversion funnel: sessions that viewed, carted and bought, overall or per dimension."""

from __future__ import annotations

import pandas as pd

from fusionrec.analytics.kpis import ratio, session_kpis
from fusionrec.analytics.queries import DIMENSIONS, Filters
from fusionrec.data.store import EventStore

STAGES = ("view_sessions", "cart_sessions", "purchase_sessions")


def funnel(store: EventStore, filters: Filters | None = None, by: str | None = None) -> pd.DataFrame:
    """Sessions reaching each stage (view or click, add to cart, purchase) and the step rates.

    ``by`` is ``None`` (one row), ``category`` (top-level; a session counts in every category it
    touched, with that category's events only), ``channel`` or ``device``. Stages are not nested:
    a session with a purchase but no logged cart counts at the purchase stage.
    """
    if by is not None and by not in DIMENSIONS:
        raise ValueError(f"funnel by {by!r}: choose one of {', '.join(DIMENSIONS)} or None")
    frame = session_kpis(store, filters, None, (by,) if by else ())
    keys = [by] if by else []
    out = frame[[*keys, "sessions", *STAGES]].copy()
    out["view_to_cart"] = ratio(out["cart_sessions"], out["view_sessions"])
    out["cart_to_purchase"] = ratio(out["purchase_sessions"], out["cart_sessions"])
    out["view_to_purchase"] = ratio(out["purchase_sessions"], out["view_sessions"])
    return out.sort_values([*keys] or ["sessions"]).reset_index(drop=True)
