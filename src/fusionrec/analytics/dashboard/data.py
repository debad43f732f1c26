"""The live dashboard's data: heavy queries computed once per version of the data, filters served
from them.

A filter change used to rebuild the whole payload (about 5 s of the service's CPU on a 1M-event
shop). Now the full payload (`build_payload` without filters: the session cube by day, category,
channel and device, retention cohorts, segments, experiments, exposures by day) is built once per
*data version*, beside the session rows kept in a temporary table and the model panels' series;
the page filters the cube, cohorts and series by date and category itself, as the static report
does. Per filter set only the small parts are computed: distinct users (from the kept session rows),
association rules, and the forecast of a category (cached per category).

The data version is a fingerprint of the tables (rows and latest time of events, exposures,
exposure links, items, costs), read at most every ``check_s`` seconds: an API call that stores
events or exposures shows on the next filter change instead of after a fixed 60 s. A busy shop
whose data changes all the time is rebuilt at most every ``refresh_s`` seconds (the page says how
old its data is).

Differences from a payload built for the filters: a session is dated by its first event and
counted in the categories it touched (as in the cube); segments cover every date (said on the page).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
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

VERSIONED_TABLES = ("events", "exposures", "exposure_events", "items", "campaign_costs")


class DashboardData:
    """Payloads for the dashboard's filters over one open store (thread-safe; one build at a time)."""

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
    ) -> None:
        self.store = store
        self.leaderboard = leaderboard
        self.n_boot = n_boot
        self.currency = currency
        self.check_s = check_s
        self.refresh_s = refresh_s
        self.cache_size = cache_size
        self.lock = threading.RLock()  # also serialises store access: the store has one connection
        self._version: tuple[Any, ...] | None = None
        self._checked = -float("inf")
        self._built = -float("inf")
        self._base: dict[str, Any] | None = None
        self._cube_frame: pd.DataFrame | None = None
        self._sessions: str | None = None  # temporary table of unfiltered session rows
        self._forecasts: dict[str, dict[str, Any]] = {}
        self._payloads: OrderedDict[tuple[Any, ...], dict[str, Any]] = OrderedDict()
        self.builds = 0  # full builds so far (tests and the benchmark read it)

    # --- versions ------------------------------------------------------------------------------

    def _read_version(self) -> tuple[Any, ...]:
        present = tuple(t for t in VERSIONED_TABLES if table_exists(self.store, t))
        row = run(self.store, q.data_version(present)).iloc[0]
        return (present, *(str(v) for v in row.tolist()))

    def invalidate(self) -> None:
        """Forget everything: the next request rebuilds (e.g. after a bulk load)."""
        with self.lock:
            self._version = None
            self._checked = -float("inf")
            self._built = -float("inf")

    def _current(self) -> None:
        """Rebuild the base when the data changed (checked every ``check_s``, rebuilt at most
        every ``refresh_s``)."""
        now = time.monotonic()
        if self._base is not None and now - self._checked < self.check_s:
            return
        version = self._read_version()
        self._checked = now
        if self._base is not None and version == self._version:
            return
        if self._base is not None and now - self._built < self.refresh_s:
            return  # changed again within refresh_s: served as of the last build
        self._build(version)

    def _build(self, version: tuple[Any, ...]) -> None:
        from fusionrec.analytics.engine import inline_params
        from fusionrec.analytics.report import build_payload

        began = time.perf_counter()
        if self._sessions is not None:
            self.store.execute(f"DROP TABLE IF EXISTS {self._sessions}")
            self._sessions = None
        base = build_payload(
            self.store,
            Filters(),
            leaderboard=self.leaderboard,
            n_boot=self.n_boot,
            currency=self.currency,
        )
        name = f"fr_dash_sessions_{id(self):x}"
        self.store.execute(f"DROP TABLE IF EXISTS {name}")
        self.store.execute(f"CREATE TEMPORARY TABLE {name} AS {inline_params(q.session_rows(Filters()), {})}")
        self._sessions = name
        base["model_panels"] = self._model_panels(base)
        self._base = base
        self._cube_frame = None
        self._version = version
        self._built = time.monotonic()
        self._forecasts = {q.ALL_LABEL: base["forecasts"]}
        self._payloads.clear()
        for category in base["categories"]:  # each category's forecast, ready for its first click
            self._forecast(category)
        self.builds += 1
        base["timings"]["dashboard_build"] = round(time.perf_counter() - began, 3)
        logger.info("dashboard data rebuilt in %.1f s", time.perf_counter() - began)

    def _model_panels(self, base: dict[str, Any]) -> dict[str, Any]:
        """CTR, conversion and attributed revenue per day by placement and model version, and the
        version timeline (from the exposure log)."""
        if not base["has"]["exposures"]:
            return {"series": None, "timeline": []}
        series = kpis.ctr(self.store, Filters(), "day", ("placement", "model_version"))
        timeline = run(self.store, q.version_timeline())
        from fusionrec.analytics.report import _columns, _records

        return {
            "series": _columns(series) if len(series) else None,
            "timeline": _records(timeline),
        }

    # --- per filter ----------------------------------------------------------------------------

    def payload(self, filters: Filters) -> dict[str, Any]:
        """The payload for ``filters`` (a shared dict: do not change it)."""
        with self.lock:
            self._current()
            assert self._base is not None
            key = (filters.start, filters.end, filters.category)
            hit = self._payloads.get(key)
            if hit is not None:
                self._payloads.move_to_end(key)
                return hit
            began = time.perf_counter()
            payload = dict(self._base)
            payload["filters"] = {
                "start": filters.start.isoformat() if filters.start else None,
                "end": filters.end.isoformat() if filters.end else None,
                "category": filters.category,
            }
            payload["data_as_of"] = self._base["generated_at"]
            payload["generated_at"] = datetime.now(UTC).isoformat(timespec="seconds")
            if filters != Filters():
                payload["cube"] = self._cube_in(filters)
                payload["users"] = self._users(filters)
                payload["rules"] = self._rules(filters)
            payload["forecasts"] = self._forecast(filters.category)
            payload["segments_scope"] = "every date and category"
            payload["timings"] = {
                **self._base["timings"],
                "filters": round(time.perf_counter() - began, 3),
            }
            self._payloads[key] = payload
            while len(self._payloads) > self.cache_size:
                self._payloads.popitem(last=False)
            return payload

    def _cube_in(self, filters: Filters) -> dict[str, list[Any]]:
        """The cube's rows in the filters' dates (and the category's rows beside the (all) rows)."""
        assert self._base is not None
        cube = self._base["cube"]
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

    def _sessions_in(self, filters: Filters) -> str:
        """The kept session rows within the filters (dated by their first event; a category path
        is matched by its top-level category, the grain of the rows)."""
        where = []
        if filters.start:
            where.append("started >= :start")
        if filters.end:
            where.append("started < :end")
        if filters.category:
            where.append("category = :top")
        clause = " WHERE " + " AND ".join(where) if where else ""
        return f"(SELECT * FROM {self._sessions}{clause}) AS s"

    def _params(self, filters: Filters) -> dict[str, Any]:
        params = Filters(filters.start, filters.end).params()
        if filters.category:
            params["top"] = filters.category.split(" > ")[0]
        return params

    def _users(self, filters: Filters) -> list[dict[str, Any]]:
        from fusionrec.analytics.report import _records

        source, params = self._sessions_in(filters), self._params(filters)
        frames = []
        for by_category in (False, True):
            sql, _ = q.user_metrics(Filters(), None, by_category, source)
            frame = kpis.derive(run(self.store, (sql, params)))
            if not by_category and filters.category:  # the page reads the category's own row
                frame = frame.assign(category=filters.category)
            frames.append(frame)
        return _records(pd.concat(frames, ignore_index=True).drop(columns=["period"]))

    def _rules(self, filters: Filters) -> dict[str, Any]:
        from fusionrec.analytics.report import RULES_MIN_BASKETS, _records
        from fusionrec.analytics.rules import association_rules

        return {
            mode: _records(
                association_rules(
                    self.store, filters, mode=mode, min_count=RULES_MIN_BASKETS, min_confidence=0.02, top=200
                )
            )
            for mode in ("purchase", "cart")
        }

    def _forecast(self, category: str | None) -> dict[str, Any]:
        """The forecast of a category's daily KPIs, from the cube (cached per category)."""
        from fusionrec.analytics.forecast import forecast_kpis
        from fusionrec.analytics.report import FORECAST_KPIS, _columns

        top = category.split(" > ")[0] if category else q.ALL_LABEL
        hit = self._forecasts.get(top)
        if hit is not None:
            return {**hit, "category": category}
        assert self._base is not None
        if self._cube_frame is None:
            self._cube_frame = pd.DataFrame(self._base["cube"])
        cube = self._cube_frame
        rows = cube[cube["category"] == top]
        daily = kpis.derive(rows.groupby("period", as_index=False)[list(q.SESSION_MEASURES)].sum())
        partial = self._base["forecasts"].get("partial_day")
        if partial is not None:
            daily = daily[daily["period"] != partial]
        frames = forecast_kpis(daily, FORECAST_KPIS, horizon=14) if len(daily) else {}
        result = {
            "category": category,
            "partial_day": partial,
            "series": {
                kpi: {
                    "dates": [d.date().isoformat() for d in frame.index],
                    **_columns(frame.reset_index(drop=True)),
                }
                for kpi, frame in frames.items()
            },
        }
        self._forecasts[top] = result
        return {**result, "category": category}

    def user_events(self, user_id: str, limit: int = 20) -> list[dict[str, Any]]:
        from fusionrec.analytics.report import _records

        sql, _ = q.user_recent_events(limit)
        with self.lock:
            return _records(run(self.store, (sql, {"user_id": user_id})))

    def close(self) -> None:
        with self.lock:
            if self._sessions is not None:
                with contextlib.suppress(Exception):  # the store may be closed already
                    self.store.execute(f"DROP TABLE IF EXISTS {self._sessions}")
                self._sessions = None
