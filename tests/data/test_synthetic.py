"""The synthetic shop: exact schemas, reproducibility, and every planted structure visible in the data."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fusionrec.data.schema import CATEGORY_SEPARATOR, EVENT_SCHEMA, ITEM_SCHEMA, USER_SCHEMA
from fusionrec.data.synthetic import ShopConfig, ShopSummary, generate_frames, generate_shop

N_EVENTS = 120_000


Shop = tuple[pa.Table, pa.Table, pa.Table, ShopSummary]


@pytest.fixture(scope="module")
def shop() -> Shop:
    frames = generate_frames(n_events=N_EVENTS, seed=7)
    return frames.events, frames.items, frames.users, frames.summary


@pytest.fixture(scope="module")
def events(shop: Shop) -> pd.DataFrame:
    return shop[0].to_pandas()


@pytest.fixture(scope="module")
def items(shop: Shop) -> pd.DataFrame:
    return shop[1].to_pandas()


@pytest.fixture(scope="module")
def summary(shop: Shop) -> ShopSummary:
    return shop[3]


@pytest.fixture(scope="module")
def humans(events: pd.DataFrame, summary: ShopSummary) -> pd.DataFrame:
    return events[~events["user_id"].isin(summary.bots)]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- shape and schema ------------------------------------------------------------------------------


def test_schemas_are_exactly_canonical(shop: Shop) -> None:
    events, items, users, _ = shop
    assert events.schema.equals(EVENT_SCHEMA)
    # Every item column but ``vectors``, which only a shop with --image-vectors has.
    assert items.schema.equals(ITEM_SCHEMA.remove(ITEM_SCHEMA.get_field_index("vectors")))
    assert users.schema.equals(USER_SCHEMA)


def test_sizes_follow_n_events(shop: Shop) -> None:
    events, items, users, summary = shop
    assert events.num_rows == summary.n_events == N_EVENTS
    assert users.num_rows == summary.n_users == N_EVENTS // 50
    assert items.num_rows == summary.n_items == int(10 * np.sqrt(N_EVENTS))
    assert sum(summary.event_counts.values()) == N_EVENTS


def test_events_are_unique_ordered_and_well_formed(events: pd.DataFrame, summary: ShopSummary) -> None:
    assert events["event_id"].is_unique
    assert events["event_id"].iloc[0] == "e0"
    assert events["timestamp"].is_monotonic_increasing
    assert str(events["timestamp"].dt.tz) == "UTC"
    start = pd.Timestamp(summary.planted.start)
    assert events["timestamp"].min() >= start
    assert events["timestamp"].max() < pd.Timestamp(summary.planted.end) + pd.Timedelta(hours=2)
    search = events["event_type"] == "search"
    assert search.any()
    assert events.loc[search, "item_id"].isna().all() and events.loc[search, "query"].notna().all()
    assert events.loc[~search, "item_id"].notna().all() and events.loc[~search, "query"].isna().all()
    assert (events.loc[~search, "price"] > 0).all() and events.loc[search, "price"].isna().all()
    assert set(events["channel"]) == {"web", "app", "email"}
    assert set(events["device"]) == {"desktop", "mobile", "tablet"}
    assert events["session_id"].notna().all() and events["user_id"].notna().all()
    assert events["is_bot"].isna().all()  # cleaning sets it; planted.json names the bots
    purchases = events[events["event_type"] == "purchase"]
    assert (purchases["quantity"] >= 1).all() and (purchases["quantity"] == 1).mean() > 0.8


def test_sessions_belong_to_one_user(events: pd.DataFrame) -> None:
    assert (events.groupby("session_id")["user_id"].nunique() == 1).all()


# --- reproducibility and streaming -----------------------------------------------------------------


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    a = generate_shop(tmp_path / "a", n_events=30_000, seed=3, progress=False)
    b = generate_shop(tmp_path / "b", n_events=30_000, seed=3, progress=False)
    c = generate_shop(tmp_path / "c", n_events=30_000, seed=4, progress=False)
    for name in ("events.parquet", "items.parquet", "users.parquet", "planted.json"):
        assert _sha(tmp_path / "a" / name) == _sha(tmp_path / "b" / name), name
    assert _sha(tmp_path / "a" / "events.parquet") != _sha(tmp_path / "c" / "events.parquet")
    ev_a = pq.read_table(tmp_path / "a" / "events.parquet")
    ev_c = pq.read_table(tmp_path / "c" / "events.parquet")
    assert not ev_a.column("item_id").equals(ev_c.column("item_id"))
    assert a.planted.complements == b.planted.complements
    assert a.planted.trending_items != c.planted.trending_items


def test_frames_equal_the_files(tmp_path: Path) -> None:
    summary = generate_shop(
        tmp_path, n_events=20_000, seed=5, progress=False, config=ShopConfig(promotions=3)
    )
    frames = generate_frames(n_events=20_000, seed=5, config=ShopConfig(promotions=3))
    events, items, users = frames
    assert pq.read_schema(tmp_path / "events.parquet").equals(EVENT_SCHEMA)
    assert pq.read_table(tmp_path / "events.parquet").equals(events)
    assert pq.read_table(tmp_path / "items.parquet").equals(items)
    assert pq.read_table(tmp_path / "users.parquet").equals(users)
    planted = json.loads((tmp_path / "planted.json").read_text())
    assert [tuple(p) for p in planted["complements"]] == summary.planted.complements
    files = ("events.parquet", "items.parquet", "users.parquet", "promotions.parquet", "planted.json")
    assert sorted(summary.files) == sorted(str(tmp_path / f) for f in files)
    assert frames.promotions is not None and pq.read_table(tmp_path / "promotions.parquet").equals(
        frames.promotions
    )
    assert planted["promotions"] == summary.planted.promotions and len(planted["promotions"]) == 3
    assert not list(tmp_path.glob("*.partial"))
    report = json.loads(json.dumps(summary.to_dict()))  # the CLI's --json: compact and serialisable
    assert report["n_events"] == 20_000 and report["planted"]["complement_pairs"] == len(summary.complements)


def test_small_windows_stay_in_time_order_across_boundaries(tmp_path: Path) -> None:
    # 1,000-event windows split each day into hour ranges; sessions spill over their ends.
    generate_shop(
        tmp_path, n_events=40_000, days=7, seed=1, progress=False, config=ShopConfig(chunk_events=1_000)
    )
    table = pq.read_table(tmp_path / "events.parquet")
    ts = table.column("timestamp").to_numpy()
    assert table.num_rows == 40_000
    assert np.all(ts[1:] >= ts[:-1])
    assert len(set(table.column("event_id").to_pylist())) == 40_000


def test_progress_goes_to_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    generate_shop(tmp_path, n_events=2_000, seed=0, progress=True)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"n_events": 0}, "n_events"),
        ({"n_events": 100, "n_items": 5}, "n_items"),
        ({"n_events": 100, "n_users": 0}, "n_users"),
        ({"n_events": 100, "days": 0}, "days"),
        ({"n_events": 100, "seed": -1}, "seed"),
        ({"n_events": 100, "start": "next tuesday"}, "start"),
        ({"n_events": 2.5}, "n_events"),
    ],
)
def test_bad_arguments_name_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        generate_frames(**kwargs)  # type: ignore[arg-type]


def test_bad_config_is_rejected() -> None:
    with pytest.raises(ValueError, match="cart_rat"):
        ShopConfig(cart_rat=0.1)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="search_probs"):
        ShopConfig(search_probs=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="weekday_factors"):
        ShopConfig(weekday_factors=(1, 1, 1, 1, 1, 1, 0))


def test_tiny_shops_still_work() -> None:
    for kwargs in ({"n_events": 1}, {"n_events": 50, "n_users": 1, "n_items": 39, "days": 1}):
        frames = generate_frames(**kwargs)  # type: ignore[arg-type]
        events, items, users, summary = frames.events, frames.items, frames.users, frames.summary
        assert events.num_rows == kwargs["n_events"] and events.schema.equals(EVENT_SCHEMA)
        assert items.num_rows == kwargs.get("n_items", 200) and users.num_rows == kwargs.get("n_users", 20)
        assert summary.n_events == kwargs["n_events"]


# --- catalogue and users ---------------------------------------------------------------------------


def test_catalogue_is_a_readable_tree(
    items: pd.DataFrame, summary: ShopSummary, events: pd.DataFrame
) -> None:
    paths = items["category"].str.split(CATEGORY_SEPARATOR)
    assert (paths.str.len() == 2).all()
    departments = paths.str[0]
    assert 6 <= departments.nunique() <= 10
    per_dept = paths.str[1].groupby(departments).nunique()
    assert per_dept.between(3, 7).all()
    assert (items["title"].str.split(" by ").str[-1] == items["brand"]).all()
    assert items["description"].str.len().gt(30).all()
    assert (items["price"] > 0).all()
    # Log-normal per category: electronics dearer than snacks.
    median = items.groupby("category")["price"].median()
    assert median["Electronics > Laptops"] > 20 * median["Food & Drink > Snacks"]
    assert 0.9 < items["in_stock"].mean() < 1.0 and 0 < items["hidden"].sum() < 0.05 * len(items)
    assert items["tags"].map(len).ge(3).all()
    for attrs in items["attributes"]:
        json.loads(attrs)
    # New items appear during the period, and nothing is seen before it exists.
    start = pd.Timestamp(summary.planted.start)
    new = items["created_at"] >= start
    assert 0.1 < new.mean() < 0.3
    created = events.merge(items[["item_id", "created_at"]], on="item_id")
    assert (created["timestamp"] >= created["created_at"]).all()


def test_users_signed_up_before_their_first_event(shop: Shop, events: pd.DataFrame) -> None:
    users = shop[2].to_pandas()
    attrs = pd.json_normalize(users["attributes"].map(json.loads))
    assert set(attrs.columns) >= {"signup_at", "country", "age_band", "preferred_channel"}
    signup = pd.Series(pd.to_datetime(attrs["signup_at"], utc=True).to_numpy(), index=users["user_id"])
    first = events.groupby("user_id")["timestamp"].min()
    assert (signup[first.index] <= first).all()
    late = signup > pd.Timestamp(shop[3].planted.start)
    assert 0.2 < late.mean() < 0.7  # users keep signing up during the period


# --- planted behaviour -----------------------------------------------------------------------------


def test_funnel_order_and_rates(events: pd.DataFrame) -> None:
    kinds = events["event_type"].value_counts()
    assert kinds["view"] > kinds["click"] > kinds["add_to_cart"] > kinds["purchase"] > 0
    assert kinds["remove_from_cart"] > 0 and kinds["favorite"] > 0
    buys = events.loc[events["event_type"] == "purchase", ["session_id", "item_id", "timestamp"]]
    carts = events.loc[events["event_type"] == "add_to_cart", ["session_id", "item_id", "timestamp"]]
    joined = buys.merge(carts, on=["session_id", "item_id"], how="left", suffixes=("", "_cart"))
    carted_before = (
        (joined["timestamp_cart"] <= joined["timestamp"])
        .groupby([joined["session_id"], joined["item_id"]])
        .any()
    )
    assert carted_before.mean() > 0.98
    sessions = events["session_id"].nunique()
    buying = buys["session_id"].nunique() / sessions
    carting = carts["session_id"].nunique() / sessions
    assert 0.015 < buying < 0.05, buying
    assert buying < carting < 0.2


def test_planted_complements_co_occur_in_baskets(events: pd.DataFrame, summary: ShopSummary) -> None:
    pairs = pd.DataFrame(summary.complements, columns=["anchor", "complement", "rule"])
    assert len(pairs) > 50 and pairs["rule"].nunique() >= 8
    baskets = events.loc[events["event_type"] == "purchase", ["session_id", "item_id"]].drop_duplicates()
    n_baskets = baskets["session_id"].nunique()
    bought = baskets["item_id"].value_counts()
    both = baskets.merge(baskets, on="session_id").groupby(["item_id_x", "item_id_y"]).size()
    n_ab = np.array([both.get((a, c), 0) for a, c in zip(pairs["anchor"], pairs["complement"], strict=True)])
    expected = (pairs["anchor"].map(bought).fillna(0) * pairs["complement"].map(bought).fillna(0)).sum()
    lift = n_ab.sum() * n_baskets / expected
    assert n_ab.sum() >= 10
    assert lift > 3, lift


def test_consumables_are_repurchased_on_their_cycle(
    events: pd.DataFrame, items: pd.DataFrame, summary: ShopSummary
) -> None:
    category = items.set_index("item_id")["category"]
    buys = events.loc[events["event_type"] == "purchase", ["user_id", "item_id", "timestamp"]].copy()
    buys["category"] = buys["item_id"].map(category)
    buys["consumable"] = buys["category"].isin(summary.planted.consumables)
    per_pair = buys.groupby(["user_id", "item_id", "consumable"]).size().reset_index(name="n")
    rate = per_pair.groupby("consumable")["n"].apply(lambda n: (n >= 2).mean())
    assert rate[True] > 0.2 and rate[True] > 5 * rate[False], rate.to_dict()
    # Gaps between re-buys sit near the category's cycle.
    buys = buys[buys["consumable"]].sort_values("timestamp")
    gap_days = buys.groupby(["user_id", "item_id"])["timestamp"].diff().dt.total_seconds() / 86_400
    cycle = buys["category"].map(summary.planted.consumables)
    ratio = (gap_days / cycle).dropna()
    assert 0.7 < ratio.median() < 1.3, ratio.median()


def test_weekend_uplift(humans: pd.DataFrame, summary: ShopSummary) -> None:
    per_day = humans["timestamp"].dt.floor("D").value_counts()
    per_day = per_day[per_day.index < pd.Timestamp(summary.planted.end)]
    weekend = per_day.index.day_of_week >= 5
    uplift = per_day[weekend].mean() / per_day[~weekend].mean()
    assert uplift > 1.15, uplift


def test_popularity_is_skewed(humans: pd.DataFrame, items: pd.DataFrame) -> None:
    views = humans.loc[humans["event_type"] == "view", "item_id"].value_counts().to_numpy()
    top = views[: len(items) // 10].sum() / views.sum()
    assert top > 0.4, top


def test_trending_items_rise(humans: pd.DataFrame, summary: ShopSummary) -> None:
    views = humans[humans["event_type"] == "view"]
    t = views["timestamp"]
    third = (t.max() - t.min()) / 3
    trending = views["item_id"].isin(list(summary.planted.trending_items))
    fading = views["item_id"].isin(list(summary.planted.fading_items))
    early, late = t < t.min() + third, t > t.max() - third
    assert trending[late].mean() > 1.5 * trending[early].mean()
    assert fading[late].mean() < 0.7 * fading[early].mean()


def test_bots_are_present_and_detectable_by_rate(events: pd.DataFrame, summary: ShopSummary) -> None:
    assert len(summary.bots) >= 2
    assert set(summary.bots) <= set(events["user_id"])
    per_hour = events.groupby(["user_id", events["timestamp"].dt.floor("h")]).size()
    peak = per_hour.groupby(level=0).max()
    flagged = set(peak[peak > 200].index)
    assert flagged == set(summary.bots)
    bot_share = events["user_id"].isin(summary.bots).mean()
    assert 0.01 < bot_share < 0.04


def test_users_have_tastes_that_drift() -> None:
    # With drift, a user's main department late in the period differs from the early one more often.
    def changed(config: ShopConfig) -> float:
        events, items, _ = generate_frames(n_events=30_000, seed=11, config=config)
        ev = events.to_pandas()
        ev = ev[ev["event_type"] == "view"]
        dept = ev["item_id"].map(items.to_pandas().set_index("item_id")["category"].str.split(" > ").str[0])
        t = ev["timestamp"]
        late = t >= t.min() + (t.max() - t.min()) / 2
        counts = pd.crosstab([ev["user_id"], late], dept)
        focus = (counts.max(axis=1) / counts.sum(axis=1))[counts.sum(axis=1) >= 10]
        assert focus.median() > 0.4  # tastes: a user's views concentrate on a few departments
        top = counts.idxmax(axis=1).unstack().dropna()
        return float((top[True] != top[False]).mean())

    assert changed(ShopConfig(drift_share=1.0)) > changed(ShopConfig(drift_share=0.0)) + 0.15


def test_feeds_the_dataset(shop: Shop) -> None:
    from fusionrec.data.dataset import Dataset

    events, items, users, summary = shop
    ds = Dataset.from_frame(events, items, users)
    assert ds.n_items == items.num_rows
    assert len(ds.user_idx) == summary.n_events - summary.event_counts["search"]  # searches have no item
    assert ds.matrix().nnz > 0


def test_promotions_are_left_out_by_default(tmp_path: Path) -> None:
    summary = generate_shop(tmp_path, n_events=5_000, seed=2, progress=False)
    assert not (tmp_path / "promotions.parquet").exists() and summary.planted.promotions == []
    assert generate_frames(n_events=5_000, seed=2).promotions is None


def test_attribute_tastes_is_opt_in_and_ties_age_band_to_the_favourite_department() -> None:
    from fusionrec.data.synthetic import AGE_BANDS

    plain = generate_frames(n_events=20_000, seed=5)
    off = generate_frames(n_events=20_000, seed=5, config=ShopConfig(attribute_tastes=0.0))
    planted = generate_frames(n_events=20_000, seed=5, config=ShopConfig(attribute_tastes=0.9))
    assert off.users.equals(plain.users)
    assert planted.events.equals(plain.events) and planted.items.equals(plain.items)  # behaviour as it was
    departments = plain.summary.planted.departments  # in the tree's order: department d -> band d % 6

    def matching_share(frames: object) -> float:
        events = frames.events.to_pandas()  # type: ignore[attr-defined]
        items = frames.items.to_pandas()[["item_id", "category"]]  # type: ignore[attr-defined]
        views = events.dropna(subset=["user_id", "item_id"]).merge(items, on="item_id")
        views["department"] = views["category"].str.split(CATEGORY_SEPARATOR).str[0]
        favourite = views.groupby("user_id")["department"].agg(lambda d: d.value_counts().index[0])
        users = frames.users.to_pandas().set_index("user_id")  # type: ignore[attr-defined]
        age = users["attributes"].map(lambda a: json.loads(a)["age_band"]).reindex(favourite.index)
        expected = favourite.map(lambda d: AGE_BANDS[departments.index(d) % len(AGE_BANDS)])
        return float((age == expected).mean())

    # Independent: about 1 in 6 by chance; planted: most users (a favourite department is not
    # always the planted primary one, so not all).
    assert matching_share(plain) < 0.3
    assert matching_share(planted) > 0.6
