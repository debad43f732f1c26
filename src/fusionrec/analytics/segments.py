"""Customer segments: RFM scores, K-means and DBSCAN clusters, and readable profiles of each.

Per-user inputs come from one store query (`queries.user_profiles`); the scoring and clustering
are vectorised pandas / scikit-learn over users (not events).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import pandas as pd
from sklearn.cluster import DBSCAN, KMeans
from sklearn.neighbors import NearestNeighbors
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from fusionrec.analytics import queries as q
from fusionrec.analytics.engine import run
from fusionrec.analytics.queries import Filters
from fusionrec.data.store import EventStore

FEATURES = ("recency_days", "sessions", "orders", "monetary", "conversion")

# (R score range, F score range) -> name, checked in order; buyers only. After the usual RFM grid.
_RFM_NAMES = (
    ((4, 5), (4, 5), "Champions"),
    ((3, 5), (3, 5), "Loyal"),
    ((4, 5), (1, 2), "New customers"),
    ((3, 3), (1, 2), "Promising"),
    ((1, 2), (3, 5), "At risk"),
    ((1, 2), (1, 2), "Hibernating"),
)


@dataclass
class Segments:
    """Per-user features, RFM scores and cluster labels, plus one profile table per method."""

    users: pd.DataFrame  # index user_key; FEATURES, r/f/m scores, rfm_segment, kmeans, dbscan
    profiles: dict[str, pd.DataFrame]  # "rfm", "kmeans", "dbscan" -> one row per segment


def user_features(
    store: EventStore, filters: Filters | None = None, as_of: date | None = None, source: str | None = None
) -> pd.DataFrame:
    """RFM inputs per user: days since last activity, sessions, orders, spend, session conversion."""
    f = filters or Filters()
    frame = run(store, q.user_profiles(f, source)).set_index("user_key")
    if frame.empty:
        return frame.assign(**{c: pd.Series(dtype=float) for c in ("recency_days", "conversion")})
    last = pd.to_datetime(frame["last_seen"], utc=True)
    reference = pd.Timestamp(datetime(as_of.year, as_of.month, as_of.day), tz="UTC") if as_of else last.max()
    frame["recency_days"] = ((reference - last).dt.total_seconds() / 86400.0).clip(lower=0)
    frame["conversion"] = frame["orders"] / frame["sessions"].where(frame["sessions"] > 0)
    for name in ("sessions", "orders", "monetary", "events"):
        frame[name] = frame[name].astype(float)
    return frame


def rfm_scores(features: pd.DataFrame, bins: int = 5) -> pd.DataFrame:
    """R, F, M scores 1..``bins`` by quantile among buyers (recent = high R); non-buyers get 0."""
    out = pd.DataFrame(index=features.index)
    buyers = features["orders"] > 0
    for col, name, ascending in (
        ("recency_days", "r", False),
        ("orders", "f", True),
        ("monetary", "m", True),
    ):
        ranks = features.loc[buyers, col].rank(method="first", ascending=ascending, pct=True)
        out[name] = 0
        out.loc[buyers, name] = np.ceil(ranks.to_numpy() * bins).clip(1, bins).astype(int)
    out["rfm_segment"] = "Browsers (no order)"
    named = pd.Series(False, index=out.index)
    for (r_lo, r_hi), (f_lo, f_hi), label in _RFM_NAMES:
        hit = buyers & ~named & out["r"].between(r_lo, r_hi) & out["f"].between(f_lo, f_hi)
        out.loc[hit, "rfm_segment"] = label
        named |= hit
    out.loc[buyers & ~named, "rfm_segment"] = "Need attention"
    return out


def _matrix(features: pd.DataFrame) -> np.ndarray:
    """Log-scaled, standardised features for clustering (spend and counts are heavy-tailed)."""
    x = np.column_stack(
        [
            np.log1p(features["recency_days"].to_numpy(float)),
            np.log1p(features["sessions"].to_numpy(float)),
            np.log1p(features["orders"].to_numpy(float)),
            np.log1p(features["monetary"].to_numpy(float)),
            features["conversion"].fillna(0.0).to_numpy(float),
        ]
    )
    return StandardScaler().fit_transform(x)


def kmeans_labels(features: pd.DataFrame, k: int = 5, seed: int = 0) -> np.ndarray:
    """K-means cluster of each user (labels ordered by mean spend, 0 = lowest)."""
    if len(features) < k:
        return np.zeros(len(features), dtype=int)
    model = KMeans(n_clusters=k, n_init=4, random_state=seed).fit(_matrix(features))
    spend = pd.Series(features["monetary"].to_numpy()).groupby(model.labels_).mean()
    order = np.argsort(np.argsort(spend.reindex(range(k)).fillna(0).to_numpy()))
    return order[model.labels_]


def dbscan_labels(
    features: pd.DataFrame, min_samples: int = 20, sample: int = 20_000, seed: int = 0
) -> np.ndarray:
    """DBSCAN cluster of each user (-1 = outlier).

    DBSCAN runs on at most ``sample`` users (its cost grows fast with n), with ``eps`` the 90th
    percentile of the distance to the ``min_samples``-th neighbour; the other users take the label of
    their nearest core point when within ``eps``, else -1.
    """
    n = len(features)
    if n <= min_samples:
        return np.full(n, -1, dtype=int)
    x = _matrix(features)
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(n, size=min(n, sample), replace=False))
    xs = x[idx]
    distances, _ = NearestNeighbors(n_neighbors=min_samples).fit(xs).kneighbors(xs)
    eps = float(np.quantile(distances[:, -1], 0.9)) or 1e-6
    model = DBSCAN(eps=eps, min_samples=min_samples).fit(xs)
    labels = np.full(n, -1, dtype=int)
    labels[idx] = model.labels_
    cores = model.core_sample_indices_
    rest = np.setdiff1d(np.arange(n), idx)
    if len(cores) and len(rest):
        dist, nearest = NearestNeighbors(n_neighbors=1).fit(xs[cores]).kneighbors(x[rest])
        near = dist[:, 0] <= eps
        labels[rest[near]] = model.labels_[cores[nearest[near, 0]]]
    return labels


def profiles(
    features: pd.DataFrame, labels: pd.Series, categories: pd.DataFrame | None, top: int = 3
) -> pd.DataFrame:
    """One row per segment: size, share, mean recency / sessions / orders, spend, conversion, and
    favourite categories (share of the segment's events)."""
    frame = features.assign(segment=labels.reindex(features.index).to_numpy())
    grouped = frame.groupby("segment")
    out = pd.DataFrame(
        {
            "users": grouped.size(),
            "share": grouped.size() / max(len(frame), 1),
            "recency_days": grouped["recency_days"].mean(),
            "sessions_per_user": grouped["sessions"].mean(),
            "orders_per_user": grouped["orders"].mean(),
            "buyers_share": grouped["orders"].apply(lambda s: float((s > 0).mean())),
            "spend_total": grouped["monetary"].sum(),
            "spend_per_user": grouped["monetary"].mean(),
            "conversion": grouped["orders"].sum() / grouped["sessions"].sum().where(lambda s: s > 0),
        }
    )
    out["favourite_categories"] = ""
    if categories is not None and len(categories):
        cats = categories.assign(segment=labels.reindex(categories["user_key"]).to_numpy())
        per = cats.groupby(["segment", "category"])["events"].sum().reset_index()
        per["share"] = per["events"] / per.groupby("segment")["events"].transform("sum")
        per = per.sort_values(["segment", "share"], ascending=[True, False])
        per["label"] = per["category"] + " (" + (per["share"] * 100).round().astype(int).astype(str) + "%)"
        fav = per.groupby("segment").head(top).groupby("segment")["label"].agg(", ".join)
        out["favourite_categories"] = fav.reindex(out.index).fillna("")
    out = out.sort_values("spend_per_user", ascending=False)
    out.index.name = "segment"
    return out.reset_index()


def _cluster_names(profile: pd.DataFrame) -> dict[object, str]:
    """Readable names for clusters from how their means compare with the others'."""
    names = {}
    spend_hi = profile["spend_per_user"].quantile(0.66)
    for row in profile.itertuples():
        if row.segment == -1:
            names[row.segment] = "Outliers"
            continue
        if row.orders_per_user < 0.05:
            base = "Browsers"
        elif row.spend_per_user >= spend_hi and row.orders_per_user >= 1:
            base = "High spenders"
        else:
            base = "Occasional buyers"
        fresh = "recent" if row.recency_days <= profile["recency_days"].median() else "lapsing"
        names[row.segment] = f"{base}, {fresh}"
    return names


def segment_users(
    store: EventStore,
    filters: Filters | None = None,
    *,
    k: int = 5,
    min_samples: int = 20,
    seed: int = 0,
    as_of: date | None = None,
    source: str | None = None,
) -> Segments:
    """RFM scores, K-means and DBSCAN clusters of the filtered users, with a profile per segment."""
    f = filters or Filters()
    features = user_features(store, f, as_of, source)
    categories = run(store, q.user_categories(f, source))
    users = features[list(FEATURES)].copy()
    if features.empty:
        empty = pd.DataFrame(columns=["segment", "name", "users"])
        return Segments(users, {"rfm": empty, "kmeans": empty, "dbscan": empty})
    users = users.join(rfm_scores(features))
    # One OpenMP/BLAS thread: on a busy machine oversubscribed threads made K-means 50x slower.
    with threadpool_limits(1):
        users["kmeans"] = kmeans_labels(features, k, seed)
        users["dbscan"] = dbscan_labels(features, min_samples, seed=seed)
    result = {}
    for method, column in (("rfm", "rfm_segment"), ("kmeans", "kmeans"), ("dbscan", "dbscan")):
        profile = profiles(features, users[column], categories)
        if method == "rfm":
            profile.insert(1, "name", profile["segment"])
        else:
            names = _cluster_names(profile)
            profile.insert(1, "name", [f"{s}: {names[s]}" for s in profile["segment"]])
        result[method] = profile
    return Segments(users, result)
