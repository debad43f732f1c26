"""What a promotion or a campaign did to conversion and revenue, against a counterfactual.

A promotion: its items (or every item of its categories) are the treated units; the control units
are comparable items that no promotion touched between the pre-period and the window's end, taken
from the same category (item promotions) or the same department outside the promoted categories
(category promotions), and trimmed to the treated items' range of pre-period views (a common
support of pre-period traffic). The pre-period is the same number of days just before the window
(cut at the data's first day, with a note). `fusionrec.analytics.did.did_lift` compares the two groups' change: the lift of the
conversion rate (purchases per view) and of revenue per item, with an interval clustered by item.

A campaign (``campaign_costs``: days with spend on one channel): the treated unit is its channel's
traffic per day, the controls the other channels' days, the window the days it spent on, the
pre-period as long, just before. Clustered by day. Campaigns overlapping on one channel share it,
so their effects are not told apart.

`promotion_effects` and `campaign_effects` add two checks to each (`with_placebo_checks`): a
pre-trend check, the same analysis with the pre-period as the window, noted when treated and
controls had already moved apart; and up to PLACEBO_WINDOWS earlier windows of the same length
where nothing of the kind ran, whose spread widens the intervals by the shocks the treated units
share (`fusionrec.analytics.did.with_shared_shocks`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd

from fusionrec.analytics import queries as q
from fusionrec.analytics.did import Lift, did_lift, with_shared_shocks
from fusionrec.analytics.engine import run, table_exists
from fusionrec.analytics.promotions import promotions_frame
from fusionrec.analytics.queries import Filters
from fusionrec.data.store import EventStore

MIN_CONTROLS = 20  # fewer comparable items in the category: widen the pool to the department
PLACEBO_WINDOWS = 3  # earlier windows that measure the shocks the treated units share


@dataclass(frozen=True)
class Promotion:
    """A promotion's targets and window (UTC days, both inclusive)."""

    promotion_id: str
    start: date
    end: date
    items: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    discount: float | None = None

    def covers(self, catalogue: pd.DataFrame) -> np.ndarray:
        """Boolean mask over ``catalogue`` (item_id, category): the items this promotion covers."""
        mask = catalogue["item_id"].isin(self.items).to_numpy().copy()
        category = catalogue["category"].fillna("")
        for path in self.categories:
            mask |= ((category == path) | category.str.startswith(path + " > ")).to_numpy()
        return mask


@dataclass(frozen=True)
class Effect:
    """The estimated effect of one promotion or campaign."""

    kind: str  # "promotion" or "campaign"
    name: str
    target: str
    start: date
    end: date
    pre_start: date
    pre_end: date
    treated: int  # treated units (items; channel-days for a campaign)
    controls: int
    control_rule: str
    subject: str  # what the verdicts name, e.g. "promoted items", "email traffic"
    conversion: Lift
    revenue: Lift
    discount: float | None = None
    notes: list[str] = field(default_factory=list)
    # The same analysis one window earlier (the pre-period as the window): a parallel-trends check.
    pretrend: Effect | None = None
    placebo_windows: int = 0  # earlier windows whose spread widened the intervals

    @property
    def diverged(self) -> bool:
        """Whether treated and controls already moved apart before the window (a detected placebo)."""
        return self.pretrend is not None and (
            self.pretrend.conversion.detected or self.pretrend.revenue.detected
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "name": self.name,
            "target": self.target,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "pre_start": self.pre_start.isoformat(),
            "pre_end": self.pre_end.isoformat(),
            "treated": self.treated,
            "controls": self.controls,
            "control_rule": self.control_rule,
            "discount": self.discount,
            "conversion": self.conversion.to_dict(),
            "revenue": self.revenue.to_dict(),
            "notes": self.notes,
            "placebo_windows": self.placebo_windows,
            "pretrend": None
            if self.pretrend is None
            else {
                "start": self.pretrend.start.isoformat(),
                "end": self.pretrend.end.isoformat(),
                "conversion": self.pretrend.conversion.to_dict(),
                "revenue": self.pretrend.revenue.to_dict(),
                "diverged": self.diverged,
            },
        }


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _windows(start: date, end: date, pre_days: int | None) -> tuple[date, date]:
    """The pre-period (first and last day): ``pre_days``, else as long as the window, just before."""
    length = pre_days or (end - start).days + 1
    return start - timedelta(days=length), start - timedelta(days=1)


def _clip_pre(store: EventStore, pre_start: date, start: date) -> tuple[date, list[str]]:
    """The pre-period's first day moved up to the first day with data, with a note when it was."""
    first_day = run(store, q.date_bounds()).iloc[0]["first_day"]
    if first_day is None or pd.isna(first_day) or first_day <= pre_start:
        return pre_start, []
    first_day = min(first_day, start)
    note = f"the data start on {first_day}: the pre-period has {(start - first_day).days} day(s)"
    return first_day, [note]


def stored_promotions(store: EventStore) -> list[Promotion]:
    """The promotions of the store's calendar, one per ``promotion_id``."""
    rows = promotions_frame(store)
    out = []
    for pid, group in rows.groupby("promotion_id", sort=True):
        discounts = group["discount"].dropna()
        out.append(
            Promotion(
                promotion_id=str(pid),
                start=min(group["start_date"]),
                end=max(group["end_date"]),
                items=tuple(sorted(group["item_id"].dropna().astype(str))),
                categories=tuple(sorted(group["category"].dropna().astype(str))),
                discount=round(float(discounts.mean()), 6) if len(discounts) else None,
            )
        )
    return out


def _controls(
    catalogue: pd.DataFrame, treated: np.ndarray, untouched: np.ndarray, promo: Promotion
) -> tuple[np.ndarray, str]:
    """Control items: same category for item promotions, same department outside the promoted
    categories for category promotions; every untouched item when those are too few."""
    category = catalogue["category"].fillna("")
    department = category.str.split(" > ").str[0].to_numpy()
    if promo.items and not promo.categories:
        same = np.isin(category.to_numpy(), category[treated].unique()) & untouched
        if same.sum() >= MIN_CONTROLS:
            return same, "unpromoted items of the same category"
    same_dept = np.isin(department, np.unique(department[treated])) & untouched
    if same_dept.sum() >= MIN_CONTROLS:
        return same_dept, "unpromoted items of the same department"
    return untouched, "every unpromoted item"


def _trim(panel: pd.DataFrame) -> pd.DataFrame:
    """Controls outside the treated items' range of pre-period views dropped (common support)."""
    pre = panel[panel["post"] == 0].set_index("item_id")
    treated_views = pre.loc[pre["treated"] == 1, "views"]
    if treated_views.empty:
        return panel
    low, high = treated_views.min(), treated_views.max()
    keep = pre.index[(pre["treated"] == 1) | pre["views"].between(low, high)]
    return panel[panel["item_id"].isin(keep)]


def promotion_effect(
    store: EventStore,
    promotion: Promotion,
    *,
    others: Sequence[Promotion] = (),
    pre_days: int | None = None,
    level: float = 0.95,
) -> Effect:
    """The promotion's effect on conversion (purchases per view) and revenue per item. Items of
    ``others`` running between the pre-period and the window's end are never controls."""
    pre_start, pre_end = _windows(promotion.start, promotion.end, pre_days)
    pre_start, notes = _clip_pre(store, pre_start, promotion.start)
    window_end = promotion.end + timedelta(days=1)
    catalogue = run(store, q.item_categories())[["item_id", "category"]]
    treated_mask = promotion.covers(catalogue)
    touched = treated_mask.copy()
    for other in others:
        if (
            other.promotion_id != promotion.promotion_id
            and other.start < window_end
            and other.end >= pre_start
        ):
            touched |= other.covers(catalogue)
    pool, rule = _controls(catalogue, treated_mask, ~touched, promotion)
    params = {
        "pre_start": _midnight(pre_start),
        "window_start": _midnight(promotion.start),
        "window_end": _midnight(window_end),
    }
    counts = run(store, (q.item_periods()[0], params))
    treated_ids = set(catalogue["item_id"][treated_mask])
    units = treated_ids | set(catalogue["item_id"][pool])
    counts = counts[counts["item_id"].isin(units)]
    # Every (item, period) cell, zeros included, for items seen in the pre-period.
    seen = counts.loc[(counts["post"] == 0) & (counts["views"] > 0), "item_id"].unique()
    grid = pd.MultiIndex.from_product([seen, [0, 1]], names=["item_id", "post"])
    panel = (
        counts.set_index(["item_id", "post"])[["views", "purchases", "revenue"]]
        .reindex(grid, fill_value=0)
        .reset_index()
    )
    panel["treated"] = panel["item_id"].isin(treated_ids).astype(int)
    panel = _trim(panel)
    panel["days"] = np.where(
        panel["post"] == 1, (window_end - promotion.start).days, (pre_end - pre_start).days + 1
    )
    subject = "promoted items"
    target = ", ".join(promotion.categories) or f"{len(promotion.items)} items"
    n_treated = int(panel.loc[panel["post"] == 0, "treated"].sum())
    return Effect(
        kind="promotion",
        name=promotion.promotion_id,
        target=target,
        start=promotion.start,
        end=promotion.end,
        pre_start=pre_start,
        pre_end=pre_end,
        treated=n_treated,
        controls=int((panel["post"] == 0).sum()) - n_treated,
        control_rule=rule + ", within the promoted items' range of pre-period views",
        subject=subject,
        **_lifts(panel, ("purchases", "views"), cluster="item_id", subject=subject, level=level),
        discount=promotion.discount,
        notes=notes,
    )


def _lifts(
    panel: pd.DataFrame, conversion: tuple[str, str], *, cluster: str, subject: str, level: float
) -> dict[str, Lift]:
    """An effect's two lifts on ``panel``: conversion (``conversion`` = outcome, exposure) and
    revenue per day."""
    common = {"cluster": cluster, "subject": subject, "level": level}
    outcome, exposure = conversion
    return {
        "conversion": did_lift(panel, outcome=outcome, exposure=exposure, metric="conversion", **common),
        "revenue": did_lift(panel, outcome="revenue", exposure="days", metric="revenue", **common),
    }


Blocked = Callable[[date, date], bool]


def with_placebo_checks(
    estimate: Callable[[date, date], Effect],
    start: date,
    end: date,
    pre_days: int | None,
    check: bool,
    blocked: Blocked | None = None,
) -> Effect:
    """``estimate`` over its window and, with ``check``, its pre-trend check (the same analysis
    with the pre-period as the window) and intervals widened by the spread of up to
    PLACEBO_WINDOWS earlier windows of the window's length. A window is left out when its own
    pre-period runs past the data's first day, or ``blocked(first, last day)`` says something of
    the kind ran then (another promotion of the same items)."""
    effect = estimate(start, end)
    if not check:
        return effect
    pre_start, pre_end = _windows(start, end, pre_days)
    pretrend = estimate(pre_start, pre_end)
    effect = _checked(effect, pretrend)
    length = end - start + timedelta(days=1)
    placebos = []
    for k in range(1, PLACEBO_WINDOWS + 1):
        first, last = start - k * length, end - k * length
        if blocked is not None and blocked(first - length, last):
            continue
        placebo = pretrend if (first, last) == (pre_start, pre_end) else estimate(first, last)
        if placebo.notes:  # cut at the data's first day: so is every earlier one
            break
        placebos.append(placebo)
    if not placebos:
        return effect
    note = (
        f"intervals include the shocks the treated units share, measured on {len(placebos)} earlier "
        f"window(s) of {length.days} days"
    )
    return replace(
        effect,
        conversion=with_shared_shocks(effect.conversion, [p.conversion for p in placebos], effect.subject),
        revenue=with_shared_shocks(effect.revenue, [p.revenue for p in placebos], effect.subject),
        placebo_windows=len(placebos),
        notes=[*effect.notes, note],
    )


def _checked(effect: Effect, placebo: Effect) -> Effect:
    """``effect`` with its pre-trend check, and a note when the check failed."""
    if placebo.notes:  # no full period before the pre-period: nothing to check
        return effect
    checked = replace(effect, pretrend=placebo)
    if not checked.diverged:
        return checked
    lift = placebo.conversion if placebo.conversion.detected else placebo.revenue
    note = (
        f"pre-trend check failed: treated and controls already moved apart from {placebo.start} to "
        f"{placebo.end} ({lift.verdict}); the verdict may show a trend, not this {effect.kind}"
    )
    return replace(checked, notes=[*effect.notes, note])


def promotion_effects(
    store: EventStore, *, pre_days: int | None = None, level: float = 0.95, check: bool = True
) -> list[Effect]:
    """`promotion_effect` of every promotion in the store's calendar (empty without one); with
    ``check``, each with its pre-trend check (the same analysis with the pre-period as the window)."""
    promotions = stored_promotions(store)
    if not promotions:
        return []
    catalogue = run(store, q.item_categories())[["item_id", "category"]]
    covered = {p.promotion_id: p.covers(catalogue) for p in promotions}

    def estimate(promotion: Promotion) -> Callable[[date, date], Effect]:
        return lambda start, end: promotion_effect(
            store, replace(promotion, start=start, end=end), others=promotions, pre_days=pre_days, level=level
        )

    def blocked(promotion: Promotion) -> Blocked:
        """Whether a promotion of any of ``promotion``'s items ran between two days."""
        mine = covered[promotion.promotion_id]
        return lambda first, last: any(
            other.start <= last and other.end >= first and (covered[other.promotion_id] & mine).any()
            for other in promotions
        )

    return [with_placebo_checks(estimate(p), p.start, p.end, pre_days, check, blocked(p)) for p in promotions]


@dataclass(frozen=True)
class Campaign:
    """A campaign: its channel and the days it spent money on (first and last, inclusive)."""

    campaign: str
    channel: str
    start: date
    end: date
    cost: float


def stored_campaigns(store: EventStore) -> list[Campaign]:
    """One `Campaign` per (campaign, channel) of ``campaign_costs`` with any spend."""
    if not table_exists(store, "campaign_costs"):
        return []
    rows = run(store, q.campaign_cost_rows(Filters()))
    rows = rows[rows["cost"] > 0]
    spans = rows.groupby(["campaign", "channel"], sort=True).agg(
        start=("date", "min"), end=("date", "max"), cost=("cost", "sum")
    )
    return [Campaign(str(c), str(ch), r.start, r.end, float(r.cost)) for (c, ch), r in spans.iterrows()]


def campaign_effect(
    store: EventStore, campaign: Campaign, *, pre_days: int | None = None, level: float = 0.95
) -> Effect:
    """The campaign's effect on its channel's conversion (orders per session) and daily revenue,
    against the other channels' days."""
    pre_start, pre_end = _windows(campaign.start, campaign.end, pre_days)
    pre_start, notes = _clip_pre(store, pre_start, campaign.start)
    f = Filters(pre_start, campaign.end)
    sessions = run(store, q.session_metrics(f, ("channel",), "day"))
    panel = sessions.groupby(["period", "channel"], as_index=False)[
        ["sessions", "purchase_sessions", "revenue"]
    ].sum()
    panel["post"] = (pd.to_datetime(panel["period"]).dt.date >= campaign.start).astype(int)
    panel["treated"] = (panel["channel"] == campaign.channel).astype(int)
    panel["days"] = 1
    subject = f"{campaign.channel} traffic"
    treated = panel["treated"] == 1
    return Effect(
        kind="campaign",
        name=campaign.campaign,
        target=f"channel {campaign.channel}",
        start=campaign.start,
        end=campaign.end,
        pre_start=pre_start,
        pre_end=pre_end,
        treated=int(treated.sum()),
        controls=int((~treated).sum()),
        control_rule="the other channels' days",
        subject=subject,
        **_lifts(panel, ("purchase_sessions", "sessions"), cluster="period", subject=subject, level=level),
        notes=notes,
    )


def campaign_effects(
    store: EventStore, *, pre_days: int | None = None, level: float = 0.95, check: bool = True
) -> list[Effect]:
    """`campaign_effect` of every campaign with costs in the store (empty without costs); with
    ``check``, each with its pre-trend check."""

    campaigns = stored_campaigns(store)

    def estimate(campaign: Campaign) -> Callable[[date, date], Effect]:
        return lambda start, end: campaign_effect(
            store, replace(campaign, start=start, end=end), pre_days=pre_days, level=level
        )

    def blocked(campaign: Campaign) -> Blocked:
        """Whether any campaign spent on ``campaign``'s channel between two days."""
        return lambda first, last: any(
            other.channel == campaign.channel and other.start <= last and other.end >= first
            for other in campaigns
        )

    return [with_placebo_checks(estimate(c), c.start, c.end, pre_days, check, blocked(c)) for c in campaigns]
