"""The analytics payload (every view's data as JSON) and the static, offline HTML report built from it.

`build_payload` runs the store queries once for a set of filters: the events are scanned once into
a temporary table of session rows that the KPI, funnel, retention and segment queries share.
The page (`dashboard/page.html` + `dashboard/app.js`) draws it with plotly.js, which ships in the
``plotly`` Python package and is inlined into the report, so the file works with no network.
In the static report the date-range and category filters re-aggregate the embedded daily cube in
the browser; the live dashboard asks the server for a new payload instead.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from contextlib import ExitStack
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fusionrec.analytics import kpis
from fusionrec.analytics import queries as q
from fusionrec.analytics.campaign_section import with_campaign_section
from fusionrec.analytics.campaigns import campaign_analysis
from fusionrec.analytics.engine import materialised, run, table_exists
from fusionrec.analytics.experiments import analyse_experiment, list_experiments
from fusionrec.analytics.forecast import forecast_kpis
from fusionrec.analytics.queries import Filters
from fusionrec.analytics.rules import association_rules
from fusionrec.analytics.segments import segment_users
from fusionrec.data.store import EventStore, open_store

FORECAST_KPIS = ("sessions", "revenue", "conversion_rate", "aov")
PAYLOAD_VERSION = 1
# A rule seen in fewer baskets is noise (two baskets of two rare items give a lift in the hundreds).
RULES_MIN_BASKETS = 5
# The last day counts as complete only with events in its last hour: a store loaded at 19:19 has a
# partial last day, which must not be judged against a full day's forecast.
COMPLETE_DAY_FROM_HOUR = 23


def plotly_js_path() -> Path:
    """plotly.min.js as shipped inside the ``plotly`` Python package (never a CDN)."""
    path = Path(str(resources.files("plotly"))) / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise FileNotFoundError(f"plotly.min.js not found at {path}: reinstall the plotly package")
    return path


def _asset(name: str) -> str:
    return (resources.files("fusionrec.analytics.dashboard") / name).read_text(encoding="utf-8")


def _columns(frame: pd.DataFrame) -> dict[str, list[Any]]:
    """A frame as JSON-ready columns (dates as ISO strings, NaN as null)."""
    out: dict[str, list[Any]] = {}
    for name in frame.columns:
        values = frame[name]
        if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
            out[str(name)] = [_json_value(v) for v in values]
        else:
            array = values.to_numpy(dtype=float)
            out[str(name)] = [
                None if not math.isfinite(v) else (int(v) if v.is_integer() else v) for v in array
            ]
    return out


def _json_value(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, pd.Timestamp | datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, float | np.floating):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, list | tuple | np.ndarray):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if value is pd.NA or value is pd.NaT:
        return None
    return value


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{str(k): _json_value(v) for k, v in row.items()} for row in frame.to_dict("records")]


def _registry_rows(directory: Path) -> list[dict[str, Any]]:
    """One row per trained version of a model repository, with its offline metrics from the
    manifest; then the candidates the newest version was chosen among (its leaderboard)."""
    from fusionrec.versions import read_manifests

    manifests = read_manifests(directory)
    rows = [
        {
            "dataset": "model registry",
            "model": f"{manifest.version} ({manifest.model})",
            "source": "registry",
            "metrics": manifest.metrics,
        }
        for manifest in manifests
    ]
    newest = manifests[-1].evaluation if manifests else None
    if newest is not None and len(newest.leaderboard) > 1:
        where = "validation folds" if manifests[-1].search is not None else "validation days"
        rows.extend(
            {
                "dataset": f"{manifests[-1].version} candidates ({where})",
                "model": candidate.label + (" (shipped)" if candidate.label == newest.chosen else ""),
                "source": "registry",
                "metrics": candidate.metrics,
            }
            for candidate in newest.leaderboard
        )
    return rows


def _leaderboard(paths: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Rows (model, source, metrics) from ``fusionrec evaluate --json`` files and model repositories
    (folders written by ``fusionrec train --out``: one row per version, from its manifest)."""
    rows: list[dict[str, Any]] = []
    for path in paths:
        # A model repository is a folder, and one that no training has made yet has no versions.
        if Path(path).is_dir() or (not Path(path).exists() and Path(path).suffix != ".json"):
            rows.extend(_registry_rows(Path(path)))
            continue
        data = json.loads(Path(path).read_text())
        dataset = data.get("protocol", {}).get("dataset") or Path(path).stem
        for result in data.get("results", []):
            rows.append(
                {
                    "dataset": dataset,
                    "model": result.get("model"),
                    "source": "fusionrec",
                    "metrics": result.get("metrics", {}),
                }
            )
        for name, metrics in (data.get("published", {}).get("results") or {}).items():
            rows.append({"dataset": dataset, "model": name, "source": "published", "metrics": metrics})
    return rows


def _earliest(*days: Any) -> Any:
    known = [d for d in days if d is not None and not pd.isna(d)]
    return min(known) if known else None


def _latest(*days: Any) -> Any:
    known = [d for d in days if d is not None and not pd.isna(d)]
    return max(known) if known else None


def _partial_last_day(last_at: Any) -> date | None:
    """The last event day when its events stop before its last hour (a store loaded mid-day)."""
    if last_at is None or pd.isna(last_at):
        return None
    stamp = pd.Timestamp(last_at)
    stamp = stamp.tz_convert("UTC") if stamp.tzinfo is not None else stamp
    return None if stamp.hour >= COMPLETE_DAY_FROM_HOUR else stamp.date()


def build_payload(
    store: EventStore | str,
    filters: Filters | None = None,
    *,
    leaderboard: Sequence[str | Path] = (),
    n_boot: int = 1000,
    horizon: int = 14,
    seed: int = 0,
    currency: str | None = None,
) -> dict[str, Any]:
    """Every view's data for the filters, JSON-serialisable (see docs/analytics.md for the fields).

    ``store`` is an open store, or a URL opened (and closed) for the call. ``currency`` (an ISO
    4217 code) is how the page shows money; None shows plain numbers.
    """
    if isinstance(store, str):
        with open_store(store) as opened:
            return build_payload(
                opened,
                filters,
                leaderboard=leaderboard,
                n_boot=n_boot,
                horizon=horizon,
                seed=seed,
                currency=currency,
            )
    began = time.perf_counter()
    f = filters or Filters()
    timings: dict[str, float] = {}

    def timed(name: str, started: float) -> None:
        timings[name] = round(time.perf_counter() - started, 3)

    t = time.perf_counter()
    bounds = run(store, q.date_bounds()).iloc[0]
    has_exposures = table_exists(store, "exposures")
    shown = (
        run(store, q.exposure_bounds()).iloc[0] if has_exposures else {"first_day": None, "last_day": None}
    )
    cats = run(store, q.categories())
    timed("bounds", t)
    partial_day = _partial_last_day(bounds["last_at"])
    payload: dict[str, Any] = {
        "version": PAYLOAD_VERSION,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "currency": currency,
        "filters": {"start": _json_value(f.start), "end": _json_value(f.end), "category": f.category},
        # The pickers span events and exposures alike: exposures are stamped when served (today),
        # and a range ending at the last event day would hide every one of them.
        "bounds": {
            "first_day": _json_value(_earliest(bounds["first_day"], shown["first_day"])),
            "last_day": _json_value(_latest(bounds["last_day"], shown["last_day"])),
            "last_event_day": _json_value(bounds["last_day"]),
            "partial_day": _json_value(partial_day),
        },
        "categories": [c for c in cats["category"].tolist() if c],
    }
    with ExitStack() as stack:
        # One scan of the events into session rows feeds the KPI, retention and segment queries,
        # and (without filters) the experiments; the attribution join runs once for CTR and A/B.
        t = time.perf_counter()
        source = stack.enter_context(materialised(store, (q.session_rows(f), f.params()), "fr_sessions"))
        timed("session_rows", t)
        attributed = None
        if has_exposures:
            t = time.perf_counter()
            attributed = stack.enter_context(
                materialised(store, (q.attributed_events(Filters()), {}), "fr_attr")
            )
            timed("attribution", t)

        t = time.perf_counter()
        by_cat = kpis.session_kpis(store, f, "day", ("category", "channel", "device"), source)
        overall = kpis.session_kpis(store, f, "day", ("channel", "device"), source)
        cube = pd.concat([overall.assign(category=q.ALL_LABEL), by_cat], ignore_index=True)
        payload["cube"] = _columns(cube[["period", "category", "channel", "device", *q.SESSION_MEASURES]])
        timed("session_cube", t)

        t = time.perf_counter()
        users = pd.concat(
            [kpis.user_kpis(store, f, None, False, source), kpis.user_kpis(store, f, None, True, source)]
        )
        payload["users"] = _records(users.drop(columns=["period"]))
        daily_users = kpis.user_kpis(store, f, "day", False, source)
        payload["user_series"] = _columns(daily_users.drop(columns=["category"]))
        timed("users", t)

        t = time.perf_counter()
        cohorts = [run(store, q.retention_cohorts(f, by, source)) for by in (False, True)]
        payload["retention"] = _columns(pd.concat(cohorts))
        timed("retention", t)

        t = time.perf_counter()
        segments = segment_users(store, f, seed=seed, source=source)
        payload["segments"] = {m: _records(p) for m, p in segments.profiles.items()}
        timed("segments", t)

        t = time.perf_counter()
        exposures = kpis.ctr(store, f, "day", ("placement",), attributed_source=attributed)
        payload["exposures"] = _columns(exposures) if len(exposures) else None
        costs = kpis.cpa(store, f, "day", by_channel=True)
        payload["costs"] = _columns(costs) if len(costs) else None
        timed("ctr_cpa", t)

        t = time.perf_counter()
        experiments = []
        listing = list_experiments(store)
        for name in sorted(listing["experiment"].dropna().unique()) if len(listing) else []:
            try:
                result = analyse_experiment(
                    store,
                    name,
                    n_boot=n_boot,
                    seed=seed,
                    sessions_source=source if f == Filters() else None,
                    attributed_source=attributed,
                )
                experiments.append(result.to_dict())
            except ValueError as err:  # e.g. one variant only so far
                experiments.append({"experiment": name, "error": str(err)})
        payload["experiments"] = _json_value(experiments)
        timed("experiments", t)

    t = time.perf_counter()
    daily = kpis.derive(overall.groupby("period", as_index=False)[list(q.SESSION_MEASURES)].sum())
    if partial_day is not None:  # a partial day would always look like a slump: left out of the fit
        daily = daily[pd.to_datetime(daily["period"]).dt.date != partial_day]
    forecasts = forecast_kpis(daily, FORECAST_KPIS, horizon=horizon)
    payload["forecasts"] = {
        "category": f.category,
        "partial_day": _json_value(partial_day),
        "series": {
            kpi: {
                "dates": [d.date().isoformat() for d in frame.index],
                **_columns(frame.reset_index(drop=True)),
            }
            for kpi, frame in forecasts.items()
        },
    }
    timed("forecasts", t)

    t = time.perf_counter()
    payload["rules"] = {
        "purchase": _records(
            association_rules(store, f, min_count=RULES_MIN_BASKETS, min_confidence=0.02, top=200)
        ),
        "cart": _records(
            association_rules(
                store, f, mode="cart", min_count=RULES_MIN_BASKETS, min_confidence=0.02, top=200
            )
        ),
    }
    payload["rules_min_baskets"] = RULES_MIN_BASKETS
    timed("rules", t)

    t = time.perf_counter()
    # CPA/ROAS per campaign in the date filters, and every promotion's and campaign's effect (their
    # own windows). A batch engine (Spark) has no promotions calendar: the store answers those.
    payload["campaigns"] = None if hasattr(store, "has_table") else campaign_analysis(store, f)
    timed("campaigns", t)

    payload["leaderboard"] = _leaderboard(leaderboard)
    payload["has"] = {
        "exposures": has_exposures,
        "campaign_costs": table_exists(store, "campaign_costs"),
        "promotions": table_exists(store, "promotions"),
    }
    timings["total"] = round(time.perf_counter() - began, 3)
    payload["timings"] = timings
    return payload


def render_html(
    payload: dict[str, Any] | None, *, plotly_src: str | None = None, data_url: str | None = None
) -> str:
    """The page: plotly.js inlined (or loaded from ``plotly_src``), the app script, and the data
    (embedded, or fetched from ``data_url`` by the live dashboard)."""
    page = _asset("page.html")
    if plotly_src is None:
        plotly = "<script>" + plotly_js_path().read_text(encoding="utf-8") + "</script>"
    else:
        plotly = f'<script src="{plotly_src}"></script>'
    data = json.dumps(payload, allow_nan=False, separators=(",", ":")) if payload is not None else "null"
    config = json.dumps({"dataUrl": data_url})
    # "</" inside the JSON would end the script element early.
    data = data.replace("</", "<\\/")
    # The script and the data go in first, plotly.js last, each marker replaced once, so that no
    # inserted text is searched for a later marker.
    page = page.replace("/*APP*/", _asset("app.js"), 1).replace("/*CONFIG*/null", config, 1)
    page = page.replace("/*DATA*/null", data, 1)
    head, _, tail = page.partition("<!--PLOTLY-->")
    return head + plotly + tail


def build_report(
    store: EventStore | str,
    out_path: str | Path,
    *,
    start: date | str | None = None,
    end: date | str | None = None,
    category: str | None = None,
    leaderboard: Sequence[str | Path] = (),
    currency: str | None = None,
) -> Path:
    """Write the static, offline HTML report for the filters to ``out_path``; return the path
    (money in ``currency``, an ISO 4217 code, when given)."""
    filters = Filters.of(start, end, category)
    if isinstance(store, str):
        with open_store(store) as opened:
            payload = build_payload(opened, filters, leaderboard=leaderboard, currency=currency)
    else:
        payload = build_payload(store, filters, leaderboard=leaderboard, currency=currency)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    page = with_campaign_section(render_html(payload), payload.get("campaigns"))
    out.write_text(page, encoding="utf-8")
    return out
