"""The live dashboard's data: heavy queries computed once per version of the data, filters served
from memory.

A filter change used to rebuild the whole payload (about 5 s of the service's CPU on a 1M-event
shop). Now a *snapshot* is built once per version of the data: the full payload (`build_payload`
without filters: the session cube by day, category, channel and device, retention cohorts,
segments, experiments, exposures by day), the session rows and basket rows (in memory, as pandas
frames), the catalogue, each category's forecast, and the model panels' series. The page filters
the cube, cohorts and series by date and category itself, as the static report does; per filter
set the server computes only the distinct users and the association rules, from the frames in
memory, without touching the store.

The data version is a fingerprint of the tables (rows and latest time of events, exposures,
exposure links, items, costs, promotions), read at most every ``check_s`` seconds: an API call that stores
events or exposures shows at the next filter change (the old cache kept a filter set for 60 s).
A page load (``fresh``) waits for a snapshot of the data as it is; a filter change never waits
for one: when the data changed, a newer snapshot is built in the background (at most every
``refresh_s`` seconds) while the last is served, its age on the page. So a shop whose data changes
all the time keeps fast filter changes, and pays one build per ``refresh_s`` only while someone
uses the dashboard.

Differences from a payload built for the filters: a session is dated by its first event and
counted in the categories it touched (as in the cube); segments cover every date (said on the page).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from fusionrec.analytics import kpis
from fusionrec.analytics import queries as q
from fusionrec.analytics.engine import run, table_exists
from fusionrec.analytics.queries import Filters
from fusionrec.data.store import EventStore

logger = logging.getLogger(__name__)

VERSIONED_TABLES = ("events", "exposures", "exposure_events", "items", "campaign_costs", "promotions")
RULE_MODES = ("purchase", "cart")


@dataclass
class Snapshot:
    """Everything the dashboard serves for one version of the data."""

    version: tuple[Any, ...]
    built_at: float  # time.monotonic()
    base: dict[str, Any]  # the unfiltered payload, with the model panels
    sessions: pd.DataFrame  # `queries.session_rows` without filters
    baskets: dict[str, pd.DataFrame]  # `queries.basket_rows` per rule mode
    catalogue: pd.DataFrame  # `queries.item_categories`, indexed by item_id
    whole: pd.DataFrame  # one row per session: user_key, day (of its first event), has_purchase
    forecasts: dict[str, dict[str, Any]] = field(default_factory=dict)  # per top-level category
    payloads: OrderedDict[tuple[Any, ...], dict[str, Any]] = field(default_factory=OrderedDict)


class DashboardData:
    """Payloads for the dashboard's filters over one open store (thread-safe)."""

    def __init__(
        self,
        store: EventStore,
        *,
        leaderboard: Sequence[str | Path] = (),
        n_boot: int = 500,
        currency: str | None = None,
        check_s: float = 1.0,
        refresh_s: float = 10.0,
        cache_size: int = 32,
        background: bool = True,
    ) -> None:
        self.store = store
        self.leaderboard = leaderboard
        self.n_boot = n_boot
        self.currency = currency
        self.check_s = check_s
        self.refresh_s = refresh_s
        self.cache_size = cache_size
        self.background = background  # later snapshots built in a thread (tests turn it off)
        self.store_lock = threading.Lock()  # the store has one connection: one user at a time
        self.lock = threading.Lock()  # the snapshot and its caches
        self._snapshot: Snapshot | None = None
        self._checked = -float("inf")
        self._building: threading.Thread | None = None
        self.builds = 0  # snapshots built so far (tests and the benchmark read it)

    # --- versions ------------------------------------------------------------------------------

    def _read_version(self) -> tuple[Any, ...]:
        present = tuple(t for t in VERSIONED_TABLES if table_exists(self.store, t))
        row = run(self.store, q.data_version(present)).iloc[0]
        return (present, *(str(v) for v in row.tolist()))

    def invalidate(self) -> None:
        """Forget the snapshot: the next request builds one (e.g. after a bulk load)."""
        with self.lock:
            self._snapshot = None
            self._checked = -float("inf")

    def _current(self, fresh: bool = False) -> Snapshot:
        """The snapshot to serve. None yet, or ``fresh`` (a page load) and the data changed: one
        is built while the request waits. Otherwise (a filter change), when the data changed and
        the snapshot is older than ``refresh_s``, a newer one is built in the background while
        this one is served."""
        with self.lock:
            snapshot = self._snapshot
            now = time.monotonic()
            due = fresh or snapshot is None or now - self._checked >= self.check_s
            if due:
                self._checked = now
        if snapshot is None or fresh:
            with self.store_lock:  # waits for a build in the background, if any
                version = self._read_version()
                snapshot = self._snapshot
                if snapshot is not None and snapshot.version == version:
                    return snapshot
                return self._build(version)
        if not due or (self._building is not None and self._building.is_alive()):
            return snapshot
        if not self.store_lock.acquire(blocking=False):
            return snapshot  # the store is busy: look again at the next request
        try:
            version = self._read_version()
        finally:
            self.store_lock.release()
        if version == snapshot.version or now - snapshot.built_at < self.refresh_s:
            return snapshot
        if not self.background:
            with self.store_lock:
                return self._build(version)
        self._building = threading.Thread(
            target=self._build_locked, args=(version,), name="fusionrec-dashboard", daemon=True
        )
        self._building.start()
        return snapshot

    def _build_locked(self, version: tuple[Any, ...]) -> None:
        try:
            with self.store_lock:
                self._build(version)
        except Exception:  # the old snapshot stays; the next change tries again
            logger.exception("dashboard data: building a snapshot failed")

    def _build(self, version: tuple[Any, ...]) -> Snapshot:
        """Build a snapshot (the caller holds ``store_lock``) and make it the served one."""
        from fusionrec.analytics.report import build_payload

        began = time.perf_counter()
        base = build_payload(
            self.store,
            Filters(),
            leaderboard=self.leaderboard,
            n_boot=self.n_boot,
            currency=self.currency,
        )
        base["model_panels"] = self._model_panels(base)
        snapshot = Snapshot(
            version=version,
            built_at=time.monotonic(),
            base=base,
            sessions=run(self.store, (q.session_rows(Filters()), {})),
            baskets={mode: run(self.store, q.basket_rows(mode)) for mode in RULE_MODES},
            catalogue=run(self.store, q.item_categories()).set_index("item_id"),
            whole=pd.DataFrame(),
        )
        sessions = snapshot.sessions
        sessions["day"] = pd.to_datetime(sessions["started"], utc=True).dt.strftime("%Y-%m-%d")
        whole = sessions.groupby("session_key", as_index=False).agg(
            user_key=("user_key", "min"), day=("day", "min"), has_purchase=("has_purchase", "max")
        )
        whole["user_key"] = whole["user_key"].astype("category")
        snapshot.whole = whole
        for name in ("user_key", "category"):  # grouped by per filter change: codes group fast
            sessions[name] = sessions[name].astype("category")
        for rows in snapshot.baskets.values():
            rows["day"] = pd.to_datetime(rows["day"]).dt.strftime("%Y-%m-%d")
            rows["path"] = rows["path"].fillna("")
        cube = pd.DataFrame(base["cube"])
        snapshot.forecasts[q.ALL_LABEL] = base["forecasts"]
        for category in base["categories"]:  # each category's forecast, ready for its first click
            snapshot.forecasts[category] = _forecast(cube, category, base["forecasts"].get("partial_day"))
        base["timings"]["dashboard_build"] = round(time.perf_counter() - began, 3)
        with self.lock:
            self._snapshot = snapshot
            self.builds += 1
        logger.info("dashboard data: snapshot built in %.1f s", time.perf_counter() - began)
        return snapshot

    def _model_panels(self, base: dict[str, Any]) -> dict[str, Any]:
        """CTR, conversion and attributed revenue per day by placement and model version, and the
        version timeline (from the exposure log)."""
        from fusionrec.analytics.report import _columns, _records

        if not base["has"]["exposures"]:
            return {"series": None, "timeline": []}
        series = kpis.ctr(self.store, Filters(), "day", ("placement", "model_version"))
        timeline = run(self.store, q.version_timeline())
        return {"series": _columns(series) if len(series) else None, "timeline": _records(timeline)}

    # --- per filter ----------------------------------------------------------------------------

    def payload(self, filters: Filters, fresh: bool = False) -> dict[str, Any]:
        """The payload for ``filters`` (a shared dict: do not change it); ``fresh``: the data as
        it is now (a page load), else perhaps up to ``refresh_s`` older (a filter change)."""
        snapshot = self._current(fresh)
        key = (filters.start, filters.end, filters.category)
        with self.lock:
            hit = snapshot.payloads.get(key)
            if hit is not None:
                snapshot.payloads.move_to_end(key)
                return hit
        began = time.perf_counter()
        base = snapshot.base
        payload = dict(base)
        payload["filters"] = {
            "start": filters.start.isoformat() if filters.start else None,
            "end": filters.end.isoformat() if filters.end else None,
            "category": filters.category,
        }
        payload["data_as_of"] = base["generated_at"]
        payload["generated_at"] = datetime.now(UTC).isoformat(timespec="seconds")
        if filters != Filters():
            payload["cube"] = _cube_in(base["cube"], filters)
            payload["users"] = _users(snapshot, filters)
            payload["rules"] = _rules(snapshot, filters)
        top = filters.category.split(" > ")[0] if filters.category else q.ALL_LABEL
        forecast = snapshot.forecasts.get(top)
        if forecast is None:  # a category the catalogue did not list
            forecast = _forecast(pd.DataFrame(base["cube"]), top, base["forecasts"].get("partial_day"))
        payload["forecasts"] = {**forecast, "category": filters.category}
        payload["segments_scope"] = "every date and category"
        payload["timings"] = {**base["timings"], "filters": round(time.perf_counter() - began, 3)}
        with self.lock:
            snapshot.payloads[key] = payload
            while len(snapshot.payloads) > self.cache_size:
                snapshot.payloads.popitem(last=False)
        return payload

    def user_events(self, user_id: str, limit: int = 20) -> list[dict[str, Any]]:
        """A user's latest events, newest first, with titles and categories."""
        from fusionrec.analytics.report import _records

        sql, _ = q.user_recent_events(limit)
        with self.store_lock:
            return _records(run(self.store, (sql, {"user_id": user_id})))


def _in_dates(days: pd.Series, filters: Filters) -> pd.Series:
    keep = pd.Series(True, index=days.index)
    if filters.start:
        keep &= days >= filters.start.isoformat()
    if filters.end:
        keep &= days <= filters.end.isoformat()
    return keep


def _cube_in(cube: dict[str, list[Any]], filters: Filters) -> dict[str, list[Any]]:
    """The cube's rows in the filters' dates (and the category's rows beside the (all) rows)."""
    start = filters.start.isoformat() if filters.start else None
    end = filters.end.isoformat() if filters.end else None
    top = filters.category.split(" > ")[0] if filters.category else None
    keep = [
        i
        for i, (day, cat) in enumerate(zip(cube["period"], cube["category"], strict=True))
        if (start is None or day >= start)
        and (end is None or day <= end)
        and (top is None or cat in (top, q.ALL_LABEL))
    ]
    return {name: [column[i] for i in keep] for name, column in cube.items()}


def _user_counts(orders: pd.Series) -> dict[str, int]:
    """Users, buyers (an order) and repeat buyers (two orders or more) from orders per user, as
    `queries.user_metrics` counts them without a grain."""
    return {
        "users": len(orders),
        "buyers": int((orders > 0).sum()),
        "repeat_buyers": int((orders > 1).sum()),
    }


def _users(snapshot: Snapshot, filters: Filters) -> list[dict[str, Any]]:
    """Distinct users, buyers and repeat buyers of the sessions in the filters: over whole sessions
    (the filters' category, or (all)) and per category."""
    from fusionrec.analytics.report import _records

    rows = snapshot.sessions[_in_dates(snapshot.sessions["day"], filters)]
    if filters.category:  # one row per session in one category: the rows are the sessions
        rows = rows[rows["category"] == filters.category.split(" > ")[0]]
        whole = rows.groupby("user_key", observed=True)["has_purchase"].sum()
    else:
        sessions = snapshot.whole[_in_dates(snapshot.whole["day"], filters)]
        whole = sessions.groupby("user_key", observed=True)["has_purchase"].sum()
    out = [{"period": None, "category": filters.category or q.ALL_LABEL, **_user_counts(whole)}]
    per = rows.groupby(["category", "user_key"], observed=True)["has_purchase"].sum()
    for category, orders in per.groupby(level=0, observed=True):
        out.append({"period": None, "category": category, **_user_counts(orders)})
    return _records(kpis.derive(pd.DataFrame(out)).drop(columns=["period"]))


def _rules(snapshot: Snapshot, filters: Filters) -> dict[str, Any]:
    """Association rules of the baskets in the filters (days of the events, items in the category)."""
    from fusionrec.analytics.report import RULES_MIN_BASKETS, _records
    from fusionrec.analytics.rules import association_rules

    out = {}
    for mode, rows in snapshot.baskets.items():
        keep = _in_dates(rows["day"], filters)
        if filters.category:
            prefix = filters.category + " > "
            keep &= (rows["path"] == filters.category) | rows["path"].str.startswith(prefix)
        chosen = rows.loc[keep, ["basket_id", "item_id"]].drop_duplicates()
        out[mode] = _records(
            association_rules(
                None,  # type: ignore[arg-type]  # rows and catalogue given: the store is not read
                filters,
                mode=mode,
                min_count=RULES_MIN_BASKETS,
                min_confidence=0.02,
                top=200,
                rows=chosen.sort_values(["basket_id", "item_id"]).reset_index(drop=True),
                catalogue=snapshot.catalogue,
            )
        )
    return out


def _forecast(cube: pd.DataFrame, top: str, partial: str | None) -> dict[str, Any]:
    """The forecast of a top-level category's (or (all)'s) daily KPIs, from the cube."""
    from fusionrec.analytics.forecast import forecast_kpis
    from fusionrec.analytics.report import FORECAST_KPIS, _columns

    rows = cube[cube["category"] == top]
    daily = kpis.derive(rows.groupby("period", as_index=False)[list(q.SESSION_MEASURES)].sum())
    if partial is not None:
        daily = daily[daily["period"] != partial]
    frames = forecast_kpis(daily, FORECAST_KPIS, horizon=14) if len(daily) else {}
    return {
        "category": top,
        "partial_day": partial,
        "series": {
            kpi: {
                "dates": [d.date().isoformat() for d in frame.index],
                **_columns(frame.reset_index(drop=True)),
            }
            for kpi, frame in frames.items()
        },
    }
