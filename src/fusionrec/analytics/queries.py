"""Every KPI's SQL, written once.

The statements are plain SQL that DuckDB and PostgreSQL both run unchanged (``:name`` parameters,
as `EventStore.query_arrow` takes them); `to_dialect` transpiles any of them with SQLGlot for
another engine (Spark), so there is no second copy. Builders return ``(sql, params)``; the filters
(date range, category subtree) are applied once, in `filtered_events`.

Definitions (docs/analytics.md has the long form):

* session key: ``session_id``, else the user's UTC day; user key: ``user_id``, else ``s:`` + session.
* revenue of a purchase: ``coalesce(event price, catalogue price, 0) * coalesce(quantity, 1)``.
* an order is a session with at least one purchase; a bounce is a session with one event.
* a view is a ``view`` or ``click`` event (sources such as OTTO and Tianchi log clicks only).
* bot-flagged events are never counted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

Query = tuple[str, dict[str, Any]]

VIEW_TYPES = ("view", "click")
DIMENSIONS = ("category", "channel", "device")
GRAINS = ("day", "week", "month")
NONE_LABEL = "(none)"  # a missing category, channel or device
ALL_LABEL = "(all)"  # the category of rows that cover every category
DEFAULT_CLICK_WINDOW_S = 30 * 60  # a click counts for an exposure shown at most 30 minutes before
DEFAULT_CONVERSION_WINDOW_S = 24 * 3600  # carts and purchases: 24 hours


@dataclass(frozen=True)
class Filters:
    """The report and dashboard filters: UTC dates (both inclusive) and a category subtree."""

    start: date | None = None
    end: date | None = None
    category: str | None = None  # a category path or its prefix at a " > " boundary

    def __post_init__(self) -> None:
        if self.start and self.end and self.start > self.end:
            raise ValueError(f"filters: start {self.start} is after end {self.end}")
        if self.category is not None and not self.category.strip():
            raise ValueError("filters: category is empty (leave it out for every category)")

    @classmethod
    def of(
        cls, start: date | str | None = None, end: date | str | None = None, category: str | None = None
    ) -> Filters:
        """Build from ISO strings or dates (empty strings mean no filter)."""
        return cls(_as_date(start, "start"), _as_date(end, "end"), category or None)

    def params(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if self.start:
            params["start"] = datetime(self.start.year, self.start.month, self.start.day, tzinfo=UTC)
        if self.end:
            params["end"] = datetime(self.end.year, self.end.month, self.end.day, tzinfo=UTC) + timedelta(1)
        if self.category:
            params["category"] = self.category
            params["category_prefix"] = self.category + " > "
            params["category_len"] = len(self.category) + 3
        return params


def _as_date(value: date | str | None, name: str) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ValueError(f"filters: {name} {value!r} is not an ISO date such as 2026-01-31") from None


# --- building blocks -------------------------------------------------------------------------------

SESSION_KEY = (
    "coalesce(e.session_id, 'u:' || e.user_id || ':' || CAST(CAST(e.\"timestamp\" AS DATE) AS VARCHAR))"
)
USER_KEY = "coalesce(e.user_id, 's:' || e.session_id)"


def _time_where(column: str, f: Filters) -> list[str]:
    where = []
    if f.start:
        where.append(f"{column} >= :start")
    if f.end:
        where.append(f"{column} < :end")
    return where


def category_where(column: str) -> str:
    """A category path equal to ``:category`` or below it (no LIKE: ``%`` is special in psycopg)."""
    return f"({column} = :category OR substr({column}, 1, :category_len) = :category_prefix)"


def filtered_events(f: Filters, event_types: Sequence[str] | None = None) -> str:
    """The ``ev`` relation: human events in the filters, with keys, top-level category and revenue."""
    where = ["NOT coalesce(e.is_bot, FALSE)", *_time_where('e."timestamp"', f)]
    if f.category:
        where.append(category_where("i.category"))
    if event_types:
        where.append("e.event_type IN (" + ", ".join(_literal(t) for t in event_types) + ")")
    return (
        'SELECT e.event_id, e.item_id, e.event_type, e."timestamp" AS ts, '
        f"{SESSION_KEY} AS session_key, {USER_KEY} AS user_key, "
        f"coalesce(e.channel, '{NONE_LABEL}') AS channel, coalesce(e.device, '{NONE_LABEL}') AS device, "
        f"coalesce(NULLIF(split_part(i.category, ' > ', 1), ''), '{NONE_LABEL}') AS category, "
        "CASE WHEN e.event_type = 'purchase' "
        "THEN CAST(coalesce(e.price, i.price, 0) * coalesce(e.quantity, 1) AS DOUBLE PRECISION) "
        "ELSE 0.0 END AS revenue "
        "FROM events e LEFT JOIN items i ON i.item_id = e.item_id "
        "WHERE " + " AND ".join(where)
    )


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _is(types: Sequence[str]) -> str:
    return "event_type IN (" + ", ".join(_literal(t) for t in types) + ")"


def period(column: str, grain: str | None) -> str:
    """The UTC day, (Monday-starting) week or month of a timestamp, as a DATE; NULL when ungrouped."""
    if grain is None:
        return "CAST(NULL AS DATE)"
    if grain not in GRAINS:
        raise ValueError(f"grain must be one of {GRAINS}, not {grain!r}")
    if grain == "day":
        return f"CAST({column} AS DATE)"
    return f"CAST(date_trunc('{grain}', {column}) AS DATE)"


def session_rows(f: Filters) -> str:
    """The ``sc`` relation: one row per (session, top-level category it touched), from ``ev``.

    Every session KPI, retention and the user profiles read this (or a temporary table made from
    it by `fusionrec.analytics.engine.materialise`), so the events are scanned once per report.
    """
    return (
        f"WITH ev AS ({filtered_events(f)}) "
        "SELECT session_key, category, min(user_key) AS user_key, min(ts) AS started, max(ts) AS ended, "
        "min(channel) AS channel, min(device) AS device, count(*) AS n_events, "
        f"sum(CASE WHEN {_is(VIEW_TYPES)} THEN 1 ELSE 0 END) AS n_views, "
        f"max(CASE WHEN {_is(VIEW_TYPES)} THEN 1 ELSE 0 END) AS has_view, "
        "max(CASE WHEN event_type = 'add_to_cart' THEN 1 ELSE 0 END) AS has_cart, "
        "max(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END) AS has_purchase, "
        "CAST(sum(revenue) AS DOUBLE PRECISION) AS revenue "
        "FROM ev GROUP BY session_key, category"
    )


def _with_sessions(f: Filters, source: str | None, by_category: bool) -> str:
    """``WITH sc AS (...), sess AS (...)``: sessions per category, or whole sessions (category (all)).

    ``source`` names a table holding `session_rows` for the same filters; without it the rows
    are computed from the events inside the statement.
    """
    sc = f"SELECT * FROM {source}" if source else session_rows(f)
    if by_category:
        sess = "SELECT * FROM sc"
    else:
        sess = (
            f"SELECT session_key, '{ALL_LABEL}' AS category, min(user_key) AS user_key, "
            "min(started) AS started, max(ended) AS ended, min(channel) AS channel, min(device) AS device, "
            "sum(n_events) AS n_events, sum(n_views) AS n_views, max(has_view) AS has_view, "
            "max(has_cart) AS has_cart, max(has_purchase) AS has_purchase, sum(revenue) AS revenue "
            "FROM sc GROUP BY session_key"
        )
    return f"WITH sc AS ({sc}), sess AS ({sess})"


def _check_dims(group_by: Sequence[str]) -> None:
    unknown = [d for d in group_by if d not in DIMENSIONS]
    if unknown:
        raise ValueError(f"unknown dimension(s) {unknown}; known: {', '.join(DIMENSIONS)}")


# --- session KPIs: funnel, conversion, bounce, depth, AOV ------------------------------------------

SESSION_MEASURES = (
    "sessions",
    "bounced",
    "events",
    "page_views",
    "view_sessions",
    "cart_sessions",
    "purchase_sessions",
    "revenue",
)


def session_metrics(
    f: Filters, group_by: Sequence[str] = (), grain: str | None = None, source: str | None = None
) -> Query:
    """Additive session measures (`SESSION_MEASURES`) per period and dimensions.

    A session is dated by its first event. Grouped by category, a session counts once in each
    category it touched, with only that category's events (as if filtered to it).
    """
    _check_dims(group_by)
    dims = list(group_by)
    select_dims = "".join(f", {d}" for d in dims)
    keys = ", ".join(["period", *dims])
    sql = (
        f"{_with_sessions(f, source, 'category' in dims)} "
        f"SELECT {period('started', grain)} AS period{select_dims}, "
        "count(*) AS sessions, sum(CASE WHEN n_events = 1 THEN 1 ELSE 0 END) AS bounced, "
        "sum(n_events) AS events, sum(n_views) AS page_views, sum(has_view) AS view_sessions, "
        "sum(has_cart) AS cart_sessions, sum(has_purchase) AS purchase_sessions, "
        "CAST(sum(revenue) AS DOUBLE PRECISION) AS revenue "
        f"FROM sess GROUP BY {keys} ORDER BY {keys}"
    )
    return sql, f.params()


# --- user KPIs: user conversion, repeat purchase ---------------------------------------------------

USER_MEASURES = ("users", "buyers", "repeat_buyers")


def user_metrics(
    f: Filters, grain: str | None = None, by_category: bool = False, source: str | None = None
) -> Query:
    """Distinct users, buyers and repeat buyers per period (and category).

    A repeat buyer of a period ordered in it, and had ordered before (an earlier session with a
    purchase, inside the filters). Ungrouped (``grain=None``): buyers with two orders or more.
    """
    sql = (
        f"{_with_sessions(f, source, by_category)}, "
        "ord AS (SELECT user_key, category, started, row_number() OVER (PARTITION BY user_key, category "
        "ORDER BY started, session_key) AS seq FROM sess WHERE has_purchase = 1), "
        f"per AS (SELECT {period('started', grain)} AS period, user_key, category, "
        "max(has_purchase) AS bought FROM sess GROUP BY 1, 2, 3), "
        f"rep AS (SELECT {period('started', grain)} AS period, user_key, category, "
        "max(CASE WHEN seq > 1 THEN 1 ELSE 0 END) AS again FROM ord GROUP BY 1, 2, 3) "
        "SELECT per.period, per.category, count(*) AS users, sum(per.bought) AS buyers, "
        "sum(coalesce(rep.again, 0)) AS repeat_buyers "
        "FROM per LEFT JOIN rep ON rep.user_key = per.user_key AND rep.category = per.category "
        "AND (rep.period = per.period OR (rep.period IS NULL AND per.period IS NULL)) "
        "GROUP BY per.period, per.category ORDER BY per.period, per.category"
    )
    return sql, f.params()


# --- retention -------------------------------------------------------------------------------------


def retention_cohorts(f: Filters, by_category: bool = False, source: str | None = None) -> Query:
    """Users active per (first-activity week, activity week), per category when asked.

    A user is active in the weeks in which one of their sessions started.
    """
    sql = (
        f"{_with_sessions(f, source, by_category)}, "
        f"act AS (SELECT DISTINCT user_key, category, {period('started', 'week')} AS week FROM sess), "
        "cohort AS (SELECT user_key, category, min(week) AS cohort FROM act GROUP BY user_key, category) "
        "SELECT a.category, c.cohort, a.week, count(*) AS users "
        "FROM act a JOIN cohort c ON a.user_key = c.user_key AND a.category = c.category "
        "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"
    )
    return sql, f.params()


# --- exposures, attribution, CTR -------------------------------------------------------------------


def exposure_items(f: Filters) -> str:
    """One row per shown item of each exposure in the date filters (position counts from 1)."""
    where = _time_where('x."timestamp"', f)
    return (
        "SELECT x.exposure_id, x.\"timestamp\" AS shown_at, coalesce(x.user_id, 's:' || x.session_id) "
        "AS user_key, x.placement, x.experiment, x.variant, x.model_version, u.item_id, u.position "
        "FROM exposures AS x CROSS JOIN unnest(x.items) WITH ORDINALITY AS u(item_id, position)"
        + (" WHERE " + " AND ".join(where) if where else "")
    )


def attributed_events(
    f: Filters,
    click_window_s: int = DEFAULT_CLICK_WINDOW_S,
    conversion_window_s: int = DEFAULT_CONVERSION_WINDOW_S,
) -> str:
    """Clicks, carts and purchases of a shown item by the same user (or session) after it was shown.

    Clicks count within ``click_window_s`` of the exposure, carts and purchases within
    ``conversion_window_s``. Each event is credited once, to the latest exposure before it (last
    touch). Events are not restricted to the category filter: exposures have no category.
    """
    click_s, conv_s = int(click_window_s), int(conversion_window_s)
    if click_s <= 0 or conv_s <= 0:
        raise ValueError("attribution windows must be positive numbers of seconds")
    unfiltered = Filters()
    return (
        f"WITH xi AS ({exposure_items(f)}), "
        f"oe AS ({filtered_events(unfiltered, ('click', 'add_to_cart', 'purchase'))}), "
        "hit AS (SELECT oe.event_id, oe.event_type, oe.ts, oe.revenue, xi.exposure_id, xi.shown_at, "
        "xi.user_key, xi.item_id, xi.position, xi.placement, xi.experiment, xi.variant, xi.model_version, "
        "row_number() OVER (PARTITION BY oe.event_id ORDER BY xi.shown_at DESC, xi.exposure_id DESC, "
        "xi.position) AS rn "
        "FROM oe JOIN xi ON oe.user_key = xi.user_key AND oe.item_id = xi.item_id "
        "AND oe.ts >= xi.shown_at AND oe.ts <= xi.shown_at + CASE WHEN oe.event_type = 'click' "
        f"THEN INTERVAL '{click_s} seconds' ELSE INTERVAL '{conv_s} seconds' END) "
        "SELECT event_id, event_type, ts, revenue, exposure_id, shown_at, user_key, item_id, position, "
        "placement, experiment, variant, model_version FROM hit WHERE rn = 1"
    )


def _attributed(source: str | None, click_window_s: int, conversion_window_s: int) -> str:
    if source:
        return f"SELECT * FROM {source}"
    return attributed_events(Filters(), click_window_s, conversion_window_s)


def attribution(
    f: Filters,
    click_window_s: int = DEFAULT_CLICK_WINDOW_S,
    conversion_window_s: int = DEFAULT_CONVERSION_WINDOW_S,
) -> Query:
    """The attributed events themselves (see `attributed_events`)."""
    return attributed_events(f, click_window_s, conversion_window_s) + " ORDER BY ts, event_id", f.params()


EXPOSURE_MEASURES = (
    "exposures",
    "impressions",
    "clicked_exposures",
    "clicks",
    "carts",
    "purchases",
    "attributed_revenue",
)


def exposure_metrics(
    f: Filters,
    grain: str | None = "day",
    by: Sequence[str] = ("placement",),
    click_window_s: int = DEFAULT_CLICK_WINDOW_S,
    conversion_window_s: int = DEFAULT_CONVERSION_WINDOW_S,
    attributed_source: str | None = None,
) -> Query:
    """CTR inputs per period of showing: exposures, shown items, exposures with a click, attributed
    clicks, carts, purchases and revenue. ``by`` picks from placement, experiment, variant, model_version.

    Credit is decided over all exposures (an event's last touch does not depend on the filters);
    the filters then pick the exposures. ``attributed_source`` names a table holding
    `attributed_events` (unfiltered, same windows).
    """
    known = ("placement", "experiment", "variant", "model_version")
    bad = [b for b in by if b not in known]
    if bad:
        raise ValueError(f"exposure_metrics: cannot group by {bad}; known: {', '.join(known)}")
    dims = "".join(f", coalesce(x.{b}, '{NONE_LABEL}') AS {b}" for b in by)
    shown = period('x."timestamp"', grain)
    keys = ", ".join(["period", *by])
    where = _time_where('x."timestamp"', f)
    sql = (
        f"WITH att AS ({_attributed(attributed_source, click_window_s, conversion_window_s)}), "
        "per_x AS (SELECT exposure_id, sum(CASE WHEN event_type = 'click' THEN 1 ELSE 0 END) AS clicks, "
        "sum(CASE WHEN event_type = 'add_to_cart' THEN 1 ELSE 0 END) AS carts, "
        "sum(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END) AS purchases, "
        "sum(revenue) AS revenue FROM att GROUP BY exposure_id) "
        f"SELECT {shown} AS period{dims}, count(*) AS exposures, "
        "sum(cardinality(x.items)) AS impressions, "
        "sum(CASE WHEN coalesce(p.clicks, 0) > 0 THEN 1 ELSE 0 END) AS clicked_exposures, "
        "sum(coalesce(p.clicks, 0)) AS clicks, sum(coalesce(p.carts, 0)) AS carts, "
        "sum(coalesce(p.purchases, 0)) AS purchases, "
        "CAST(sum(coalesce(p.revenue, 0)) AS DOUBLE PRECISION) AS attributed_revenue "
        "FROM exposures AS x LEFT JOIN per_x p ON p.exposure_id = x.exposure_id"
        + (" WHERE " + " AND ".join(where) if where else "")
        + f" GROUP BY {keys} ORDER BY {keys}"
    )
    return sql, f.params()


# --- cost per acquisition --------------------------------------------------------------------------


def acquisitions(f: Filters, grain: str | None = "day") -> Query:
    """New customers (first purchase ever, over all stored events) per period and channel, beside
    the campaign cost of that period and channel: NULL (unknown) where no cost row covers them, never
    0. The category filter does not apply (costs have none).
    """
    unfiltered = Filters()
    time_where = _time_where("first_at", f)
    cost_where = []
    if f.start:
        cost_where.append('c."date" >= CAST(:start AS DATE)')
    if f.end:
        cost_where.append('c."date" < CAST(:end AS DATE)')
    cost_period = period('c."date"', grain)
    sql = (
        f"WITH ev AS ({filtered_events(unfiltered, ('purchase',))}), "
        "firsts AS (SELECT user_key, min(ts) AS first_at FROM ev GROUP BY user_key), "
        "acq AS (SELECT f.user_key, f.first_at, min(ev.channel) AS channel FROM firsts f "
        "JOIN ev ON ev.user_key = f.user_key AND ev.ts = f.first_at GROUP BY f.user_key, f.first_at), "
        f"a AS (SELECT {period('first_at', grain)} AS period, channel, count(*) AS acquisitions FROM acq"
        + (" WHERE " + " AND ".join(time_where) if time_where else "")
        + " GROUP BY 1, 2), "
        f"c AS (SELECT {cost_period} AS period, c.channel, "
        "CAST(sum(c.cost) AS DOUBLE PRECISION) AS cost FROM campaign_costs c"
        + (" WHERE " + " AND ".join(cost_where) if cost_where else "")
        + " GROUP BY 1, 2) "
        "SELECT coalesce(a.period, c.period) AS period, coalesce(a.channel, c.channel) AS channel, "
        "coalesce(a.acquisitions, 0) AS acquisitions, c.cost AS cost "
        "FROM a FULL OUTER JOIN c ON (a.period = c.period OR (a.period IS NULL AND c.period IS NULL)) "
        "AND a.channel = c.channel ORDER BY 1, 2"
    )
    return sql, f.params()


# --- campaigns and promotions ------------------------------------------------------------------------


def item_periods() -> Query:
    """Per item: views, purchases and revenue before (``post`` = 0: ``:pre_start`` to
    ``:window_start``) and during a promotion window (``post`` = 1: up to ``:window_end``)."""
    sql = (
        'SELECT e.item_id, CASE WHEN e."timestamp" >= :window_start THEN 1 ELSE 0 END AS post, '
        f"sum(CASE WHEN {_is(VIEW_TYPES)} THEN 1 ELSE 0 END) AS views, "
        "sum(CASE WHEN e.event_type = 'purchase' THEN 1 ELSE 0 END) AS purchases, "
        "CAST(sum(CASE WHEN e.event_type = 'purchase' "
        "THEN coalesce(e.price, i.price, 0) * coalesce(e.quantity, 1) ELSE 0 END) AS DOUBLE PRECISION) "
        "AS revenue FROM events e LEFT JOIN items i ON i.item_id = e.item_id "
        "WHERE NOT coalesce(e.is_bot, FALSE) AND e.item_id IS NOT NULL "
        'AND e."timestamp" >= :pre_start AND e."timestamp" < :window_end GROUP BY 1, 2 ORDER BY 1, 2'
    )
    return sql, {}


def campaign_cost_rows(f: Filters) -> Query:
    """Every campaign cost row (date, channel, campaign, cost) in the date filters."""
    where = []
    if f.start:
        where.append('"date" >= CAST(:start AS DATE)')
    if f.end:
        where.append('"date" < CAST(:end AS DATE)')
    sql = (
        'SELECT "date", channel, campaign, CAST(cost AS DOUBLE PRECISION) AS cost FROM campaign_costs'
        + (" WHERE " + " AND ".join(where) if where else "")
        + ' ORDER BY "date", channel, campaign'
    )
    return sql, f.params()


def channel_revenue(f: Filters) -> Query:
    """Revenue and orders (sessions with a purchase) per UTC day and channel, in the date filters
    (the category filter does not apply: campaigns are not per category)."""
    unfiltered = Filters(f.start, f.end)
    sql = (
        f"WITH ev AS ({filtered_events(unfiltered, ('purchase',))}) "
        "SELECT CAST(ts AS DATE) AS period, channel, count(DISTINCT session_key) AS orders, "
        "CAST(sum(revenue) AS DOUBLE PRECISION) AS revenue FROM ev GROUP BY 1, 2 ORDER BY 1, 2"
    )
    return sql, unfiltered.params()


# --- segments, rules ---------------------------------------------------------------------------------


def user_profiles(f: Filters, source: str | None = None) -> Query:
    """Per user: last activity, sessions, orders, spend, events and cart sessions (RFM inputs)."""
    sql = (
        f"{_with_sessions(f, source, False)} "
        "SELECT user_key, max(started) AS last_seen, min(started) AS first_seen, count(*) AS sessions, "
        "sum(has_purchase) AS orders, CAST(sum(revenue) AS DOUBLE PRECISION) AS monetary, "
        "sum(n_events) AS events, sum(has_cart) AS cart_sessions "
        "FROM sess GROUP BY user_key ORDER BY user_key"
    )
    return sql, f.params()


def user_categories(f: Filters, source: str | None = None) -> Query:
    """Events per user and top-level category (favourite categories of segments)."""
    sql = (
        f"{_with_sessions(f, source, True)} SELECT user_key, category, sum(n_events) AS events "
        f"FROM sc WHERE category <> '{NONE_LABEL}' GROUP BY user_key, category ORDER BY user_key, category"
    )
    return sql, f.params()


BASKET_TYPES = {
    "purchase": ("purchase",),
    "cart": ("add_to_cart", "purchase"),
    "session": (*VIEW_TYPES, "add_to_cart", "purchase"),
}


def baskets(f: Filters, mode: str = "purchase") -> Query:
    """(basket, item) rows for association rules: items bought in one session (``purchase``), put in
    the cart or bought in one session (``cart``), or viewed, carted or bought in one (``session``)."""
    if mode not in BASKET_TYPES:
        raise ValueError(f"basket mode must be 'purchase', 'cart' or 'session', not {mode!r}")
    sql = (
        f"WITH ev AS ({filtered_events(f, BASKET_TYPES[mode])}) "
        "SELECT DISTINCT session_key AS basket_id, item_id FROM ev WHERE item_id IS NOT NULL "
        "ORDER BY basket_id, item_id"
    )
    return sql, f.params()


def basket_rows(mode: str = "purchase") -> Query:
    """`baskets` of every day with the day of each row and the item's category path, so that a
    date range and a category subtree can be applied later, in memory (the live dashboard)."""
    if mode not in BASKET_TYPES:
        raise ValueError(f"basket mode must be 'purchase', 'cart' or 'session', not {mode!r}")
    sql = (
        f"WITH ev AS ({filtered_events(Filters(), BASKET_TYPES[mode])}) SELECT DISTINCT ev.session_key AS basket_id, ev.item_id, CAST(ev.ts AS DATE) AS day, "
        "i.category AS path FROM ev LEFT JOIN items i ON i.item_id = ev.item_id "
        "WHERE ev.item_id IS NOT NULL ORDER BY basket_id, ev.item_id"
    )
    return sql, {}


def item_categories() -> Query:
    """Catalogue id, title and category path (to label rules)."""
    return "SELECT item_id, title, category FROM items ORDER BY item_id", {}


def categories() -> Query:
    """Top-level categories of the catalogue with their number of items."""
    sql = (
        "SELECT split_part(category, ' > ', 1) AS category, count(*) AS items FROM items "
        "WHERE category IS NOT NULL AND category <> '' GROUP BY 1 ORDER BY 1"
    )
    return sql, {}


def date_bounds() -> Query:
    """First and last UTC day with a human event, and the time of the last one."""
    sql = (
        'SELECT CAST(min("timestamp") AS DATE) AS first_day, CAST(max("timestamp") AS DATE) AS last_day, '
        'max("timestamp") AS last_at, count(*) AS events FROM events WHERE NOT coalesce(is_bot, FALSE)'
    )
    return sql, {}


def exposure_bounds() -> Query:
    """First and last UTC day with an exposure (serving stamps them with today's date, which may
    lie past the last event of a store loaded from files)."""
    sql = (
        'SELECT CAST(min("timestamp") AS DATE) AS first_day, CAST(max("timestamp") AS DATE) AS last_day '
        "FROM exposures"
    )
    return sql, {}


# --- experiments -------------------------------------------------------------------------------------


def experiment_units(
    experiment: str,
    click_window_s: int = DEFAULT_CLICK_WINDOW_S,
    conversion_window_s: int = DEFAULT_CONVERSION_WINDOW_S,
    sessions_source: str | None = None,
    attributed_source: str | None = None,
) -> Query:
    """One row per user of an experiment: variant, exposures, clicked exposures, and the outcomes of
    their sessions active at or after their first exposure (sessions, bounces, orders, revenue), and
    the revenue attributed to shown items.

    Users logged in two variants get ``variants > 1`` (a bucketing fault the analysis reports).
    ``sessions_source`` / ``attributed_source`` name tables of unfiltered `session_rows` /
    `attributed_events` to reuse.
    """
    sql = (
        f"{_with_sessions(Filters(), sessions_source, False)}, "
        "asg AS (SELECT coalesce(user_id, 's:' || session_id) AS user_key, min(variant) AS variant, "
        'count(DISTINCT variant) AS variants, min("timestamp") AS first_seen, count(*) AS exposures '
        "FROM exposures WHERE experiment = :experiment GROUP BY 1), "
        f"att AS ({_attributed(attributed_source, click_window_s, conversion_window_s)}), "
        "clk AS (SELECT user_key, count(DISTINCT CASE WHEN event_type = 'click' THEN exposure_id END) "
        "AS clicked_exposures, CAST(sum(revenue) AS DOUBLE PRECISION) AS attributed_revenue "
        "FROM att WHERE experiment = :experiment GROUP BY user_key), "
        "out AS (SELECT s.user_key, count(*) AS sessions, sum(CASE WHEN s.n_events = 1 THEN 1 ELSE 0 END) "
        "AS bounced, sum(s.has_purchase) AS orders, CAST(sum(s.revenue) AS DOUBLE PRECISION) AS revenue "
        "FROM sess s JOIN asg ON asg.user_key = s.user_key AND s.ended >= asg.first_seen GROUP BY s.user_key) "
        "SELECT asg.user_key, asg.variant, asg.variants, asg.exposures, "
        "coalesce(clk.clicked_exposures, 0) AS clicked_exposures, coalesce(o.sessions, 0) AS sessions, "
        "coalesce(o.bounced, 0) AS bounced, coalesce(o.orders, 0) AS orders, "
        "coalesce(o.revenue, 0.0) AS revenue, coalesce(clk.attributed_revenue, 0.0) AS attributed_revenue "
        "FROM asg LEFT JOIN clk ON clk.user_key = asg.user_key LEFT JOIN out o ON o.user_key = asg.user_key "
        "ORDER BY asg.user_key"
    )
    return sql, {"experiment": experiment}


def experiments_list() -> Query:
    """Experiments in the exposure log, with their variants, users and time span."""
    sql = (
        "SELECT experiment, variant, count(DISTINCT coalesce(user_id, 's:' || session_id)) AS users, "
        'count(*) AS exposures, min("timestamp") AS first_seen, max("timestamp") AS last_seen '
        "FROM exposures WHERE experiment IS NOT NULL GROUP BY experiment, variant ORDER BY 1, 2"
    )
    return sql, {}


# --- other engines -------------------------------------------------------------------------------------

# Every builder above, by name: the Spark engine runs the same statements through `to_dialect`.
BUILDERS = {
    "session_rows": session_rows,
    "session_metrics": session_metrics,
    "user_metrics": user_metrics,
    "retention_cohorts": retention_cohorts,
    "attribution": attribution,
    "exposure_metrics": exposure_metrics,
    "acquisitions": acquisitions,
    "user_profiles": user_profiles,
    "user_categories": user_categories,
    "baskets": baskets,
    "experiment_units": experiment_units,
}


def to_dialect(sql: str, dialect: str) -> str:
    """The statement in another SQL dialect (``spark``, ``duckdb``, ``postgres``...), by SQLGlot.

    ``:name`` parameters become that dialect's placeholders (Spark keeps ``:name``).
    """
    import sqlglot

    return sqlglot.transpile(sql, read="postgres", write=dialect)[0]


# --- the live dashboard's model panels -------------------------------------------------------------


def version_timeline() -> Query:
    """Which model version served when: per version, its first and last exposure, exposures and
    the days it served on (exposures carry the version that answered)."""
    sql = (
        f"SELECT coalesce(model_version, '{NONE_LABEL}') AS model_version, "
        'min("timestamp") AS first_shown, max("timestamp") AS last_shown, count(*) AS exposures, '
        'count(DISTINCT CAST("timestamp" AS DATE)) AS days '
        "FROM exposures GROUP BY 1 ORDER BY 2, 1"
    )
    return sql, {}


def user_recent_events(limit: int = 20) -> Query:
    """A user's latest events (``:user_id``), newest first, with the catalogue's title and category."""
    sql = (
        'SELECT e."timestamp" AS ts, e.event_type, e.item_id, i.title, i.category, e.session_id '
        "FROM events e LEFT JOIN items i ON i.item_id = e.item_id WHERE e.user_id = :user_id "
        f'ORDER BY e."timestamp" DESC, e.event_id DESC LIMIT {int(limit)}'
    )
    return sql, {}


def data_version(tables: Sequence[str]) -> Query:
    """A cheap fingerprint of the analytics tables (rows and latest time of each named table):
    it changes when events, exposures, links, items, costs or promotions are written."""
    parts = []
    stamps = {"items": "count(*)", "campaign_costs": 'max("date")', "promotions": 'max("end_date")'}
    for name in tables:
        stamp = stamps.get(name, 'max("timestamp")')
        parts.append(
            f"(SELECT count(*) FROM {name}) AS {name}_rows, (SELECT {stamp} FROM {name}) AS {name}_last"
        )
    return "SELECT " + ", ".join(parts), {}
