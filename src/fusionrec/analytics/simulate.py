"""Exposure logs and experiments for generated data (until serving writes real ones), with known truth.

* `exposures_from_events`: an exposure log consistent with a store's events: every click logged
  on a recommendation (``page = 'recommendation'``) gets an exposure a few seconds before it that
  shows the clicked item among others, and a sample of other sessions get exposures nobody
  clicked. Users are bucketed into variants by a hash of their id.
* `plant_experiment`: users, exposures, clicks and purchases of an A/B test with a planted
  conversion uplift, written into a store, to check the analysis end to end.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from fusionrec.analytics.engine import run
from fusionrec.analytics.tables import log_exposures
from fusionrec.data.store import EventStore


def bucket(ids: pd.Series, variants: Sequence[str], salt: str) -> np.ndarray:
    """Deterministic variant per id: a hash of ``salt:id`` modulo the number of variants."""
    codes, uniques = pd.factorize(ids)
    digests = np.array(
        [
            int.from_bytes(hashlib.blake2b(f"{salt}:{u}".encode(), digest_size=8).digest(), "little")
            for u in uniques
        ],
        dtype=np.uint64,
    )  # one hash per distinct id, not per row
    return np.asarray(variants, dtype=object)[(digests % np.uint64(len(variants))).astype(np.int64)[codes]]


def exposures_from_events(
    store: EventStore,
    *,
    experiment: str = "reco-v2",
    variants: Sequence[str] = ("control", "treatment"),
    list_size: int = 10,
    unclicked_share: float = 0.3,
    seed: int = 0,
    write: bool = True,
) -> pd.DataFrame:
    """Build (and by default log) an exposure log matching the store's recommendation clicks."""
    rng = np.random.default_rng(seed)
    clicks = run(
        store,
        (
            'SELECT user_id, session_id, item_id, "timestamp" AS ts FROM events '
            "WHERE event_type = 'click' AND page = 'recommendation' AND NOT coalesce(is_bot, FALSE) "
            'AND item_id IS NOT NULL ORDER BY "timestamp", event_id',
            {},
        ),
    )
    sessions = run(
        store,
        (
            'SELECT user_id, session_id, min("timestamp") AS ts FROM events '
            "WHERE session_id IS NOT NULL AND NOT coalesce(is_bot, FALSE) "
            "GROUP BY user_id, session_id ORDER BY 2",
            {},
        ),
    )
    items = run(store, ("SELECT item_id FROM items ORDER BY item_id", {}))["item_id"].to_numpy(object)
    if not len(items):
        raise ValueError("exposures_from_events: the store has no items")
    n_extra = int(len(sessions) * unclicked_share)
    extra = sessions.iloc[rng.choice(len(sessions), size=min(n_extra, len(sessions)), replace=False)]
    shown = pd.concat(
        [
            clicks.assign(
                ts=pd.to_datetime(clicks["ts"], utc=True)
                - pd.to_timedelta(rng.uniform(1, 20, len(clicks)), "s")
            ),
            extra.assign(item_id=None, ts=pd.to_datetime(extra["ts"], utc=True)),
        ],
        ignore_index=True,
    )
    n = len(shown)
    fill = items[rng.integers(0, len(items), size=(n, list_size))]
    slot = rng.integers(0, list_size, size=n)
    has_click = shown["item_id"].notna().to_numpy()
    fill[np.arange(n)[has_click], slot[has_click]] = shown["item_id"].to_numpy(object)[has_click]
    who = shown["user_id"].where(shown["user_id"].notna(), "s:" + shown["session_id"].astype(str))
    variant = bucket(who, variants, experiment)
    frame = pd.DataFrame(
        {
            "exposure_id": [f"x{i}" for i in range(n)],
            "timestamp": shown["ts"].to_numpy(),
            "user_id": shown["user_id"].to_numpy(object),
            "session_id": shown["session_id"].to_numpy(object),
            "placement": np.where(has_click, "pdp", "home"),
            "experiment": experiment,
            "variant": variant,
            "model_version": np.where(variant == variants[0], "popular-1", "fusion-2"),
            "items": list(fill),
        }
    ).sort_values("timestamp", kind="stable")
    if write:
        log_exposures(store, frame)
    return frame


def plant_experiment(
    store: EventStore,
    *,
    n_users: int,
    conversion: float = 0.1,
    uplift: float = 0.05,
    ctr: float = 0.2,
    price: float = 40.0,
    experiment: str = "planted",
    start: str = "2026-03-01",
    seed: int = 0,
) -> dict[str, float]:
    """Write an A/B test with a known relative conversion ``uplift`` for ``treatment``; return the truth.

    Each user sees one exposure of 5 items, clicks the first with probability ``ctr``, and buys it
    the same hour with probability ``conversion`` (control) or ``conversion * (1 + uplift)``.
    """
    rng = np.random.default_rng(seed)
    users = np.array([f"{experiment}-u{i}" for i in range(n_users)], dtype=object)
    variant = np.where(rng.random(n_users) < 0.5, "control", "treatment")
    p = np.where(variant == "treatment", conversion * (1 + uplift), conversion)
    t0 = pd.Timestamp(start, tz="UTC") + pd.to_timedelta(rng.integers(0, 7 * 86400, n_users), "s")
    item = np.array([f"{experiment}-i{i}" for i in range(50)], dtype=object)
    shown = item[rng.integers(0, 50, size=(n_users, 5))]
    exposures = pd.DataFrame(
        {
            "exposure_id": [f"{experiment}-x{i}" for i in range(n_users)],
            "timestamp": t0,
            "user_id": users,
            "session_id": [f"{experiment}-s{i}" for i in range(n_users)],
            "placement": "home",
            "experiment": experiment,
            "variant": variant,
            "model_version": np.where(variant == "control", "v1", "v2"),
            "items": list(shown),
        }
    )
    clicked = rng.random(n_users) < ctr
    bought = rng.random(n_users) < p
    rows = []
    for kind, mask, offset in (
        ("view", np.ones(n_users, bool), 2),
        ("click", clicked, 5),
        ("purchase", bought, 600),
    ):
        idx = np.nonzero(mask)[0]
        rows.append(
            pd.DataFrame(
                {
                    "event_id": [f"{experiment}-{kind}-{i}" for i in idx],
                    "user_id": users[idx],
                    "item_id": shown[idx, 0],
                    "event_type": kind,
                    "timestamp": t0[idx] + pd.Timedelta(seconds=offset),
                    "session_id": exposures["session_id"].to_numpy(object)[idx],
                    "quantity": 1.0,
                    "price": price,
                }
            )
        )
    events = pd.concat(rows, ignore_index=True)
    store.insert_events(pa.Table.from_pandas(events, preserve_index=False))
    log_exposures(store, exposures)
    return {
        "control_users": int((variant == "control").sum()),
        "treatment_users": int((variant == "treatment").sum()),
        "control_conversion": float(bought[variant == "control"].mean()),
        "treatment_conversion": float(bought[variant == "treatment"].mean()),
    }
