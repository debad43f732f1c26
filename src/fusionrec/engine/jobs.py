"""The batch jobs, defined once as DuckDB SQL and run by any `Engine` (Spark through SQLGlot).

Each job defines one named relation in the engine, reading relations defined before it:

========================  =====================================================  ==================
job                       relation and columns                                    reads
========================  =====================================================  ==================
`interactions`            ``interactions``: user_id, item_id, weight, events,     events
                          last_ts (the weighted, time-decayed user x item matrix)
`item_popularity`         ``popularity``: item_id, users, score, then users_Nd,   events,
                          events_Nd per window of N days                          interactions
`covisitation`            ``covisitation``: item_a, item_b, weight                events
`candidates`              ``candidates``: user_id, item_id, pop_score, pop_rank,  interactions,
                          covis_score, covis_rank (top-N of each source)          popularity,
                                                                                  covisitation
`ranking_features`        ``features``: each candidate's source, item, user and   candidates,
                          user x item features (the ranker's inputs)              popularity, items
`kpis`                    the analytics KPIs (`fusionrec.analytics.queries` SQL)   events, items
========================  =====================================================  ==================

Conventions shared with the in-memory path (`Dataset`, so both give the same numbers): a user is
``user_id``, else ``"session:" + session_id``; events without an item or flagged as bots are left
out; time is whole unix seconds; decay and windows count back from the newest event. Numbers are
put into the SQL as validated literals, so every job is one plain statement on both engines.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import pandas as pd

from fusionrec.data.dataset import ANONYMOUS_PREFIX
from fusionrec.data.schema import EventTypes
from fusionrec.engine.base import Engine, EngineError
from fusionrec.mining.covisitation import covisitation_type_weights

if TYPE_CHECKING:
    from fusionrec.analytics.queries import Filters

SECONDS_PER_DAY = 86_400


def _number(value: float, name: str) -> str:
    """A finite number as an SQL literal (DOUBLE), or a clear error naming the option."""
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return f"CAST({number!r} AS DOUBLE)"


def _string(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def _weight_case(weights: Mapping[str, float]) -> str:
    """``CASE event_type WHEN 'view' THEN 1.0 ... END``; unknown types give NULL (checked first)."""
    whens = " ".join(
        f"WHEN {_string(name)} THEN {_number(w, f'weight of {name}')}" for name, w in weights.items()
    )
    return f"CASE event_type {whens} ELSE NULL END"


def _base_events(weights: Mapping[str, float]) -> str:
    """Human events with an item, keyed by user, with whole-second time and the type's weight."""
    return (
        'SELECT event_id, item_id, event_type, session_id, "timestamp" AS ts, '
        f"coalesce(user_id, {_string(ANONYMOUS_PREFIX)} || session_id) AS user_key, "
        'CAST(floor(epoch("timestamp")) AS BIGINT) AS t, '
        f"{_weight_case(weights)} AS w "
        "FROM events WHERE item_id IS NOT NULL AND NOT coalesce(is_bot, FALSE) "
        "AND coalesce(user_id, session_id) IS NOT NULL"
    )


def check_event_types(engine: Engine, event_types: EventTypes) -> None:
    """Raise naming the unknown event types in ``events`` (they would silently weigh nothing)."""
    known = ", ".join(_string(n) for n in event_types.names)
    rows = engine.query(
        f"SELECT event_type, count(*) AS n FROM events WHERE event_type NOT IN ({known}) "
        "GROUP BY event_type ORDER BY n DESC LIMIT 10"
    ).to_pylist()
    if rows:
        found = ", ".join(f"{r['event_type']!r} ({r['n']} events)" for r in rows)
        raise EngineError(f"events: unknown event type(s) {found}; configured: {event_types.names}")


# --- interactions ------------------------------------------------------------------------------------


def interactions(
    engine: Engine,
    *,
    event_types: EventTypes | None = None,
    half_life_days: float | None = None,
    now: int | None = None,
    materialise: bool = True,
) -> str:
    """Define ``interactions``: per (user, item) the summed signed event-type weight, each event
    decayed by ``0.5 ** (age_days / half_life_days)``, rows with a sum <= 0 dropped.

    Equals ``Dataset.matrix(half_life_days=...)`` cell by cell; age counts back from ``now`` (unix
    seconds), by default the newest event. ``events`` counts the pair's events, ``last_ts`` is the
    newest. Returns the relation name.
    """
    event_types = event_types or EventTypes()
    check_event_types(engine, event_types)
    if half_life_days is not None and half_life_days <= 0:
        raise ValueError(f"half_life_days must be > 0, got {half_life_days}")
    if half_life_days is None:
        weight = "e.w"
    else:
        newest = "(SELECT max(t) FROM e)" if now is None else str(int(now))
        # a DOUBLE divisor: Spark reads a literal such as 86400.0 as a DECIMAL and would round
        half_life_s = _number(half_life_days * SECONDS_PER_DAY, "half_life_days")
        weight = f"e.w * pow(0.5, ({newest} - e.t) / {half_life_s})"
    sql = (
        f"WITH e AS ({_base_events(event_types.signed_weights())}), "
        f"x AS (SELECT e.user_key, e.item_id, {weight} AS w, e.ts FROM e) "
        "SELECT user_key AS user_id, item_id, CAST(sum(w) AS DOUBLE) AS weight, count(*) AS events, "
        "max(ts) AS last_ts FROM x GROUP BY user_key, item_id HAVING sum(w) > 0"
    )
    engine.define("interactions", sql, materialise=materialise)
    return "interactions"


# --- popularity ----------------------------------------------------------------------------------------


def item_popularity(
    engine: Engine,
    *,
    windows_days: Sequence[int] = (1, 7, 30),
    event_types: EventTypes | None = None,
    materialise: bool = True,
) -> str:
    """Define ``popularity``: per item ``users`` (users with a positive interaction: the column sums
    of ``Dataset.matrix(binary=True)``, what `MostPopular` ranks by) and ``score`` (summed
    interaction weight), then for each window of N days before the newest event ``users_Nd``
    (distinct users with a positively weighted event) and ``events_Nd``. Needs ``interactions``.
    """
    engine._require("interactions")
    event_types = event_types or EventTypes()
    days = sorted({int(d) for d in windows_days})
    if any(d <= 0 for d in days):
        raise ValueError(f"windows_days must be positive whole days, got {list(windows_days)}")
    windowed = "".join(
        f", count(DISTINCT CASE WHEN e.w > 0 AND e.t > n.t_max - {d * SECONDS_PER_DAY} THEN e.user_key END) "
        f"AS users_{d}d, sum(CASE WHEN e.t > n.t_max - {d * SECONDS_PER_DAY} THEN 1 ELSE 0 END) AS events_{d}d"
        for d in days
    )
    window_cols = "".join(
        f", coalesce(win.users_{d}d, 0) AS users_{d}d, coalesce(win.events_{d}d, 0) AS events_{d}d"
        for d in days
    )
    sql = (
        f"WITH e AS ({_base_events(event_types.signed_weights())}), n AS (SELECT max(t) AS t_max FROM e), "
        f"win AS (SELECT e.item_id{windowed} FROM e CROSS JOIN n GROUP BY e.item_id), "
        "pos AS (SELECT item_id, count(*) AS users, CAST(sum(weight) AS DOUBLE) AS score "
        "FROM interactions GROUP BY item_id) "
        f"SELECT win.item_id, coalesce(pos.users, 0) AS users, coalesce(pos.score, 0.0) AS score{window_cols} "
        "FROM win LEFT JOIN pos ON pos.item_id = win.item_id"
    )
    engine.define("popularity", sql, materialise=materialise)
    return "popularity"


# --- co-visitation ---------------------------------------------------------------------------------------


def covisitation(
    engine: Engine,
    *,
    window_seconds: int = SECONDS_PER_DAY,
    max_span_events: int = 30,
    type_weights: Mapping[str, float] | None = None,
    event_types: EventTypes | None = None,
    group: str = "session",
    symmetric: bool = True,
    max_neighbours: int | None = None,
    materialise: bool = True,
) -> str:
    """Define ``covisitation`` (item_a, item_b, weight): what
    `fusionrec.mining.covisitation.covisitation_matrix` computes with ``normalise="none"``.

    Within a group (the session, else the user; or always the user), events ordered by time
    (then event id), back-to-back repeats of one item merged (keeping the highest weight), event
    ``j`` pairs with an earlier event ``i`` when it is at most ``max_span_events`` positions and
    ``window_seconds`` after it. Pair ``a -> b`` adds ``b``'s type weight (``symmetric`` adds
    ``b -> a`` with ``a``'s). Negative types weigh 0 and are skipped. The positional window is one
    equi-join per offset (linear in events), not a per-group cross product.
    ``max_neighbours`` keeps each item's strongest pairs (ties: lower item id).
    """
    event_types = event_types or EventTypes()
    if window_seconds <= 0 or max_span_events < 1:
        raise ValueError("window_seconds must be > 0 and max_span_events >= 1")
    if group not in ("session", "user"):
        raise ValueError(f"group must be 'session' or 'user', not {group!r}")
    weights = covisitation_type_weights(event_types, type_weights)
    check_event_types(engine, event_types)
    key = "coalesce('s:' || session_id, 'u:' || user_key)" if group == "session" else "user_key"
    offsets = ", ".join(f"({k})" for k in range(1, int(max_span_events) + 1))
    sql = (
        f"WITH e AS (SELECT {key} AS g, item_id, t, ts, event_id, w FROM ({_base_events(weights)}) x WHERE w > 0), "
        # runs of the same item inside a group collapse into one event (a reload is not a pair)
        "r AS (SELECT *, CASE WHEN lag(item_id) OVER (PARTITION BY g ORDER BY ts, event_id) = item_id "
        "THEN 0 ELSE 1 END AS new_run FROM e), "
        "rid AS (SELECT *, sum(new_run) OVER (PARTITION BY g ORDER BY ts, event_id "
        "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS run FROM r), "
        "runs AS (SELECT g, run AS pos, min(item_id) AS item_id, min(t) AS t, max(w) AS w "
        "FROM rid GROUP BY g, run), "
        f"o AS (SELECT * FROM (VALUES {offsets}) AS v(k)), "
        "pairs_src AS (SELECT a.item_id AS a_item, b.item_id AS b_item, a.w AS a_w, b.w AS b_w "
        "FROM runs a CROSS JOIN o JOIN runs b ON b.g = a.g AND b.pos = a.pos + o.k "
        f"WHERE b.t - a.t <= {int(window_seconds)} AND a.item_id <> b.item_id), "
        "pairs AS (SELECT a_item AS item_a, b_item AS item_b, b_w AS w FROM pairs_src"
        + (
            " UNION ALL SELECT b_item AS item_a, a_item AS item_b, a_w AS w FROM pairs_src"
            if symmetric
            else ""
        )
        + "), "
        "agg AS (SELECT item_a, item_b, CAST(sum(w) AS DOUBLE) AS weight FROM pairs GROUP BY item_a, item_b) "
    )
    if max_neighbours is None:
        sql += "SELECT item_a, item_b, weight FROM agg"
    else:
        if max_neighbours < 1:
            raise ValueError(f"max_neighbours must be >= 1, got {max_neighbours}")
        sql += (
            "SELECT item_a, item_b, weight FROM (SELECT *, row_number() OVER (PARTITION BY item_a "
            f"ORDER BY weight DESC, item_b) AS rk FROM agg) ranked WHERE rk <= {int(max_neighbours)}"
        )
    engine.define("covisitation", sql, materialise=materialise)
    return "covisitation"


# --- candidates --------------------------------------------------------------------------------------------


def candidates(
    engine: Engine,
    *,
    n: int = 50,
    last_n: int = 20,
    popular_pool: int = 200,
    materialise: bool = True,
) -> str:
    """Define ``candidates``: for every user with interactions, the top-``n`` unseen items of two
    sources side by side (one row per user and item, NULL where a source did not propose it):

    * popularity: the most popular items by ``users`` (ties: lower item id) the user has not
      interacted with, drawn from the ``popular_pool`` most popular (so a user who has seen more
      than ``popular_pool - n`` of them gets fewer than ``n``);
    * co-visitation: ``score(c) = sum of covisitation(h, c)`` over the user's ``last_n`` most recently
      used items ``h``, unseen ``c`` only.

    Ranks count from 1 (higher score first, then lower item id). Needs ``interactions``,
    ``popularity`` and ``covisitation``.
    """
    for name in ("interactions", "popularity", "covisitation"):
        engine._require(name)
    if n < 1 or last_n < 1 or popular_pool < n:
        raise ValueError(
            f"need n >= 1, last_n >= 1 and popular_pool >= n (got {n}, {last_n}, {popular_pool})"
        )
    sql = (
        "WITH users AS (SELECT DISTINCT user_id FROM interactions), "
        f"top AS (SELECT item_id, CAST(users AS DOUBLE) AS score FROM popularity WHERE users > 0 "
        f"ORDER BY users DESC, item_id LIMIT {int(popular_pool)}), "
        "pop_all AS (SELECT u.user_id, top.item_id, top.score FROM users u CROSS JOIN top "
        "LEFT JOIN interactions s ON s.user_id = u.user_id AND s.item_id = top.item_id "
        "WHERE s.item_id IS NULL), "
        "pop AS (SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY user_id ORDER BY score DESC, "
        f"item_id) AS rk FROM pop_all) x WHERE rk <= {int(n)}), "
        "hist AS (SELECT * FROM (SELECT user_id, item_id, row_number() OVER (PARTITION BY user_id "
        f"ORDER BY last_ts DESC, item_id) AS recent FROM interactions) x WHERE recent <= {int(last_n)}), "
        "cov_all AS (SELECT h.user_id, c.item_b AS item_id, CAST(sum(c.weight) AS DOUBLE) AS score "
        "FROM hist h JOIN covisitation c ON c.item_a = h.item_id GROUP BY h.user_id, c.item_b), "
        "cov_new AS (SELECT c.* FROM cov_all c LEFT JOIN interactions s ON s.user_id = c.user_id "
        "AND s.item_id = c.item_id WHERE s.item_id IS NULL), "
        "cov AS (SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY user_id ORDER BY score DESC, "
        f"item_id) AS rk FROM cov_new) x WHERE rk <= {int(n)}) "
        "SELECT coalesce(p.user_id, c.user_id) AS user_id, coalesce(p.item_id, c.item_id) AS item_id, "
        "p.score AS pop_score, p.rk AS pop_rank, c.score AS covis_score, c.rk AS covis_rank "
        "FROM pop p FULL OUTER JOIN cov c ON c.user_id = p.user_id AND c.item_id = p.item_id"
    )
    engine.define("candidates", sql, materialise=materialise)
    return "candidates"


# --- ranking features ---------------------------------------------------------------------------------------


def ranking_features(
    engine: Engine, *, windows_days: Sequence[int] = (1, 7, 30), materialise: bool = True
) -> str:
    """Define ``features``: one row per candidate with the ranker's inputs, computed where the
    candidates are (so the feature table of every user never passes through one machine):

    * sources: ``pop_score``, ``pop_rank``, ``covis_score``, ``covis_rank`` (NULL where the source
      did not propose the item), ``n_sources``;
    * item: ``item_users`` and ``users_Nd`` / ``events_Nd`` per popularity window, ``item_price``;
    * user: ``user_items`` (distinct items), ``user_events``, ``user_idle_days`` (since the user's
      last event, counted from the newest event), ``user_mean_price`` of the items they used;
    * user x item: ``user_category_share`` (share of the user's items in the candidate's category)
      and ``price_ratio`` (item price over the user's mean price).

    Needs ``interactions``, ``popularity`` (with these windows), ``candidates`` and ``items``.
    """
    for name in ("interactions", "popularity", "candidates", "items"):
        engine._require(name)
    days = sorted({int(d) for d in windows_days})
    windows = "".join(
        f", coalesce(p.users_{d}d, 0) AS users_{d}d, coalesce(p.events_{d}d, 0) AS events_{d}d" for d in days
    )
    seconds = "CAST(floor(epoch({})) AS BIGINT)"
    sql = (
        "WITH n AS (SELECT max(last_ts) AS now_ts FROM interactions), "
        "it AS (SELECT item_id, category, CAST(price AS DOUBLE) AS price FROM items), "
        "ui AS (SELECT i.user_id, i.item_id, i.events, i.last_ts, it.category, it.price "
        "FROM interactions i LEFT JOIN it ON it.item_id = i.item_id), "
        "u AS (SELECT user_id, count(*) AS user_items, CAST(sum(events) AS BIGINT) AS user_events, "
        "max(last_ts) AS user_last_ts, avg(price) AS user_mean_price FROM ui GROUP BY user_id), "
        "uc AS (SELECT user_id, category, count(*) AS in_category FROM ui WHERE category IS NOT NULL "
        "GROUP BY user_id, category) "
        "SELECT c.user_id, c.item_id, c.pop_score, c.pop_rank, c.covis_score, c.covis_rank, "
        "(CASE WHEN c.pop_rank IS NULL THEN 0 ELSE 1 END) + (CASE WHEN c.covis_rank IS NULL THEN 0 ELSE 1 END) "
        f"AS n_sources, coalesce(p.users, 0) AS item_users{windows}, it.price AS item_price, "
        "u.user_items, u.user_events, "
        f"CAST({seconds.format('n.now_ts')} - {seconds.format('u.user_last_ts')} AS DOUBLE) / "
        f"{_number(SECONDS_PER_DAY, 'seconds per day')} AS user_idle_days, u.user_mean_price, "
        "CAST(coalesce(uc.in_category, 0) AS DOUBLE) / u.user_items AS user_category_share, "
        "it.price / nullif(u.user_mean_price, 0) AS price_ratio "
        "FROM candidates c JOIN u ON u.user_id = c.user_id CROSS JOIN n "
        "LEFT JOIN popularity p ON p.item_id = c.item_id "
        "LEFT JOIN it ON it.item_id = c.item_id "
        "LEFT JOIN uc ON uc.user_id = c.user_id AND uc.category = it.category"
    )
    engine.define("features", sql, materialise=materialise)
    return "features"


def run_all(engine: Engine, *, n: int = 50, half_life_days: float | None = None) -> dict[str, int]:
    """Every recommendation job in order; returns each relation's row count."""
    interactions(engine, half_life_days=half_life_days)
    item_popularity(engine)
    covisitation(engine, max_neighbours=100)
    candidates(engine, n=n)
    ranking_features(engine)
    return {name: engine.count(name) for name in OUTPUTS}


OUTPUTS = ("interactions", "popularity", "covisitation", "candidates", "features")


def write_outputs(engine: Engine, directory: str) -> dict[str, str]:
    """Write every job output the engine holds as Parquet under ``directory`` (any path the engine
    writes: local, ``hdfs://``, ``s3a://`` for Spark); returns relation -> path."""
    written = {}
    if "://" not in directory:
        from pathlib import Path

        Path(directory).mkdir(parents=True, exist_ok=True)
    for name in OUTPUTS:
        if engine.has_relation(name):
            path = f"{directory.rstrip('/')}/{name}" + (".parquet" if engine.name == "duckdb" else "")
            engine.write_parquet(name, path)
            written[name] = path
    return written


# --- analytics KPIs ----------------------------------------------------------------------------------------


def kpis(engine: Engine, filters: Filters | None = None, grain: str | None = None) -> dict[str, pd.DataFrame]:
    """The report's KPI tables from the analytics SQL (written once in `analytics.queries`), with
    the ratios of `analytics.kpis.derive`: ``sessions`` (funnel, conversion, bounce, AOV),
    ``users`` (user conversion, repeat purchase) and ``retention`` (weekly cohorts)."""
    from fusionrec.analytics import queries as q
    from fusionrec.analytics.kpis import derive

    f = filters or q.Filters()
    built = {
        "sessions": q.session_metrics(f, (), grain),
        "users": q.user_metrics(f, grain),
        "retention": q.retention_cohorts(f),
    }
    out = {}
    for name, (sql, params) in built.items():
        frame = engine.query(sql, params, dialect="postgres").to_pandas()
        out[name] = derive(frame) if name != "retention" else frame
    return out
