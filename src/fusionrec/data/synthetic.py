"""A synthetic online shop: catalogue, users and a stream of behaviour with known, planted structure.

The demo's default data, and a test bed whose ground truth is written down: `generate_shop` writes
``events.parquet``, ``items.parquet``, ``users.parquet`` (the canonical schemas of
`fusionrec.data.schema`), ``promotions.parquet`` (the promotions calendar, when promotions are
planted) and ``planted.json`` (what was planted: complementary pairs, consumables and their cycles,
trending items, bots, seasonality, promotions and their effects, image vectors when planted),
streaming events in bounded memory.
`generate_frames` returns the same tables in memory for small tests. docs/synthetic.md describes
the model and its parameters.

Events are written in time order (timestamp, then session, then position in the session), event ids
``e0, e1, ...`` follow that order. The same arguments and seed give byte-identical files.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field, model_validator
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from fusionrec.data._synthetic_catalogue import (
    COMPLEMENT_RULES,
    US_PER_DAY,
    Catalogue,
    build_catalogue,
    build_tree,
    int_strings,
    query_pool,
)
from fusionrec.data._synthetic_promotions import PromotionEffects, plan_promotions, promotions_table
from fusionrec.data._synthetic_sessions import (
    CHANNELS,
    DEVICES,
    EVENT_NAMES,
    PAGES,
    PURCHASE,
    Simulator,
    Users,
    draw_users,
)
from fusionrec.data._synthetic_vectors import FACTOR_NAMES, image_vectors
from fusionrec.data.schema import EVENT_SCHEMA, ITEM_SCHEMA, USER_SCHEMA, UTC_TIMESTAMP

US_PER_HOUR = 3_600_000_000
IMAGE_VECTOR = "image_embedding"  # the name of the planted item vectors
# Relative traffic per hour of the day (the shop's clock is UTC): quiet nights, an evening peak.
DIURNAL = (
    0.35,
    0.2,
    0.12,
    0.1,
    0.1,
    0.15,
    0.3,
    0.55,
    0.75,
    0.85,
    0.9,
    0.95,
    1.0,
    0.95,
    0.9,
    0.9,
    0.95,
    1.05,
    1.2,
    1.35,
    1.4,
    1.25,
    0.95,
    0.6,
)
DEFAULT_DAYS = 91  # 13 whole weeks: every weekday occurs equally often
_WRITE_ROWS = 131_072  # small windows are buffered into row groups of at least this many rows


class ShopConfig(BaseModel):
    """Behaviour parameters of the synthetic shop (defaults give ~3% of sessions with a purchase)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weekday_factors: tuple[float, float, float, float, float, float, float] = (
        0.92,
        0.9,
        0.92,
        0.95,
        1.05,
        1.3,
        1.25,
    )  # Monday .. Sunday: weekend uplift
    traffic_growth: float = Field(0.2, ge=0.0)  # traffic at the end of the period is 1 + this times the start
    zipf_exponent: float = Field(1.0, gt=0.0)  # popularity ~ 1 / rank**exponent within a category
    new_item_share: float = Field(0.2, ge=0.0, le=1.0)  # items created during the period
    trending_share: float = Field(0.03, ge=0.0, le=0.5)  # items whose popularity rises 5-12x over the period
    fading_share: float = Field(0.03, ge=0.0, le=0.5)  # items whose popularity falls 4-8x
    drift_share: float = Field(0.5, ge=0.0, le=1.0)  # users whose taste drifts to another department
    search_probs: tuple[float, float, float] = (0.65, 0.25, 0.10)  # P(0, 1, 2 searches in a session)
    views_per_session: float = Field(4.0, ge=1.0)  # mean viewed items per session (geometric)
    click_rate: float = Field(0.3, ge=0.0, le=1.0)  # a view is preceded by a click on a listing
    favorite_rate: float = Field(0.02, ge=0.0, le=1.0)
    cart_rate: float = Field(0.02, ge=0.0, le=1.0)  # per viewed item, before user and price factors
    remove_rate: float = Field(0.12, ge=0.0, le=1.0)  # a carted item is removed again
    checkout_rate: float = Field(0.3, ge=0.0, le=1.0)  # a session with a non-empty cart buys it
    complement_rate: float = Field(0.6, ge=0.0, le=1.0)  # a carted anchor pulls each planted complement in
    repeat_rate: float = Field(0.6, ge=0.0, le=1.0)  # a consumable purchase schedules a re-buy
    cycle_jitter: float = Field(0.2, ge=0.0)  # log-normal sigma of the re-buy interval around the cycle
    replenish_checkout_rate: float = Field(0.9, ge=0.0, le=1.0)
    sale_share: float = Field(0.06, ge=0.0, le=1.0)  # item-weeks on sale
    sale_discount: float = Field(0.2, ge=0.0, lt=1.0)
    bot_share: float = Field(0.02, ge=0.0, lt=0.5)  # share of all events made by bots
    n_bots: int | None = Field(None, ge=0)  # default: n_users / 2000, between 2 and 25
    bot_gap_s: float = Field(1.5, gt=0.0)  # mean seconds between bot events
    # Planted promotions (promotions.parquet), see docs/synthetic.md. Off by default so that the
    # default shop, and every benchmark and test number taken from it, stays as it was.
    promotions: int = Field(0, ge=0, le=12)
    promotion_days: int = Field(14, ge=1)  # length of each promotion window
    # Planted image vectors (items' ``vectors`` {"image_embedding": [...]}, this many floats): a
    # noisy projection of the hidden item factors, see `_synthetic_vectors`. Off by default too.
    image_vectors: int = Field(0, ge=0, le=1024)
    image_noise: float = Field(1.0, ge=0.0)  # noise sd over signal sd, per dimension
    # Share of users whose age band follows the department of their (early) primary taste:
    # department d -> AGE_BANDS[d % 6], so that segment models have a real relation to learn.
    # Off by default (age band independent of taste, the shop as it was); only users.parquet changes.
    attribute_tastes: float = Field(0.0, ge=0.0, le=1.0)
    chunk_events: int = Field(250_000, ge=1_000)  # events per generation window, at most (bounds memory)

    @model_validator(mode="after")
    def _check(self) -> ShopConfig:
        if abs(sum(self.search_probs) - 1.0) > 1e-9 or min(self.search_probs) < 0:
            raise ValueError(f"search_probs: must be non-negative and sum to 1, got {self.search_probs}")
        if min(self.weekday_factors) <= 0:
            raise ValueError(f"weekday_factors: must all be positive, got {self.weekday_factors}")
        if self.trending_share + self.fading_share > 1.0:
            raise ValueError("trending_share + fading_share: must be at most 1")
        return self


class Planted(BaseModel):
    """The ground truth a model or analysis should find (also written to ``planted.json``)."""

    seed: int
    start: str
    end: str
    departments: list[str]
    categories: list[str]
    consumables: dict[str, float]  # category path -> re-buy cycle in days
    complement_rules: list[dict[str, object]]
    complements: list[tuple[str, str, str]]  # (anchor item, complement item, rule name)
    trending_items: dict[str, float]  # item -> popularity multiplier reached at the end of the period
    fading_items: dict[str, float]
    bots: list[str]
    diurnal: list[float]
    config: ShopConfig
    # Each promotion's target, window (dates inclusive), discount and planted effect factors.
    promotions: list[dict[str, object]] = Field(default_factory=list)
    # The planted image vectors: name, dimensions, noise and the hidden factors they project.
    image_vectors: dict[str, object] = Field(default_factory=dict)

    def to_json(self) -> str:
        """planted.json's text; a shop without image vectors or attribute tastes leaves their keys
        out (so the default shop's file is byte for byte what it was before they existed)."""
        exclude: dict[str, Any] = {}
        if not self.config.image_vectors:
            exclude = {"image_vectors": True, "config": {"image_vectors", "image_noise"}}
        if not self.config.attribute_tastes:
            exclude["config"] = {*exclude.get("config", set()), "attribute_tastes"}
        return self.model_dump_json(indent=1, exclude=exclude or None) + "\n"


class ShopSummary(BaseModel):
    """What `generate_shop` / `generate_frames` produced."""

    out_dir: str | None
    n_events: int
    n_users: int
    n_items: int
    n_sessions: int
    n_purchase_sessions: int
    n_active_users: int
    days: int
    event_counts: dict[str, int]
    files: list[str]
    elapsed_s: float
    planted: Planted

    @property
    def complements(self) -> list[tuple[str, str, str]]:
        return self.planted.complements

    @property
    def bots(self) -> list[str]:
        return self.planted.bots

    def to_dict(self) -> dict[str, object]:
        """A compact JSON-able report (for ``--json``): counts, files, and the planted truth by size;
        the full truth is in planted.json."""
        out = self.model_dump(mode="json", exclude={"planted"})
        p = self.planted
        out["planted"] = {
            "complement_pairs": len(p.complements),
            "complement_rules": len(p.complement_rules),
            "consumable_categories": len(p.consumables),
            "trending_items": len(p.trending_items),
            "fading_items": len(p.fading_items),
            "promotions": len(p.promotions),
            "bots": p.bots,
        }
        return out


@dataclass(frozen=True)
class ShopFrames:
    """`generate_frames`' result; unpacks as ``events, items, users = generate_frames(...)``."""

    events: pa.Table
    items: pa.Table
    users: pa.Table
    summary: ShopSummary
    promotions: pa.Table | None = None  # the promotions calendar; None when none are planted

    def __iter__(self) -> Iterator[pa.Table]:
        return iter((self.events, self.items, self.users))


# --- public entry points -----------------------------------------------------------------------------


def generate_shop(
    out_dir: str | os.PathLike[str],
    *,
    n_events: int,
    n_users: int | None = None,
    n_items: int | None = None,
    seed: int = 0,
    start: str | date | datetime = "2026-01-01",
    days: int | None = None,
    progress: bool = True,
    config: ShopConfig | None = None,
) -> ShopSummary:
    """Write a synthetic shop into ``out_dir``: events, items and users as Parquet, and planted.json.

    Sizes left out scale with ``n_events``: users = n_events / 50, items = 10 * sqrt(n_events),
    days = 91. Events stream to disk window by window; memory stays bounded by
    ``config.chunk_events`` and the catalogue and user tables.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "events.parquet.partial"
    writer = pq.ParquetWriter(tmp, EVENT_SCHEMA, compression="zstd")
    buffered: list[pa.Table] = []

    def sink(table: pa.Table | None) -> None:
        if table is not None:
            buffered.append(table)
        if buffered and (table is None or sum(len(t) for t in buffered) >= _WRITE_ROWS):
            writer.write_table(pa.concat_tables(buffered))
            buffered.clear()

    try:
        summary, items, users, promotions = _generate(
            sink,
            n_events=n_events,
            n_users=n_users,
            n_items=n_items,
            seed=seed,
            start=start,
            days=days,
            progress=progress,
            config=config,
        )
        sink(None)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)  # no half-written events file is left behind
        raise
    writer.close()
    tmp.replace(out / "events.parquet")
    pq.write_table(items, out / "items.parquet", compression="zstd")
    pq.write_table(users, out / "users.parquet", compression="zstd")
    files = ["events.parquet", "items.parquet", "users.parquet"]
    if promotions is not None:
        pq.write_table(promotions, out / "promotions.parquet", compression="zstd")
        files.append("promotions.parquet")
    (out / "planted.json").write_text(summary.planted.to_json())
    files.append("planted.json")
    return summary.model_copy(update={"out_dir": str(out), "files": [str(out / f) for f in files]})


def generate_frames(
    *,
    n_events: int,
    n_users: int | None = None,
    n_items: int | None = None,
    seed: int = 0,
    start: str | date | datetime = "2026-01-01",
    days: int | None = None,
    config: ShopConfig | None = None,
) -> ShopFrames:
    """The same shop as `generate_shop`, in memory, for small sizes: the three tables and the summary.

    ``events, items, users = generate_frames(...)`` unpacks the tables; ``.summary`` holds the rest.
    """
    parts: list[pa.Table] = []
    summary, items, users, promotions = _generate(
        lambda t: parts.append(t) if t is not None else None,
        n_events=n_events,
        n_users=n_users,
        n_items=n_items,
        seed=seed,
        start=start,
        days=days,
        progress=False,
        config=config,
    )
    events = pa.concat_tables(parts).combine_chunks() if parts else EVENT_SCHEMA.empty_table()
    return ShopFrames(events, items, users, summary, promotions)


# --- the generation loop -----------------------------------------------------------------------------


def _parse_start(start: str | date | datetime) -> datetime:
    if isinstance(start, str):
        try:
            start = datetime.fromisoformat(start)
        except ValueError as exc:
            raise ValueError(f"start: {start!r} is not an ISO date such as 2026-01-01") from exc
    if not isinstance(start, datetime):
        start = datetime(start.year, start.month, start.day)
    start = start.replace(tzinfo=UTC) if start.tzinfo is None else start.astimezone(UTC)
    return start.replace(minute=0, second=0, microsecond=0)


def _check_sizes(n_events: int, n_users: int, n_items: int, days: int, seed: int, n_cats: int) -> None:
    checks = [
        ("n_events", n_events, 1),
        ("n_users", n_users, 1),
        ("n_items", n_items, n_cats),
        ("days", days, 1),
        ("seed", seed, 0),
    ]
    for name, value, low in checks:
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise ValueError(f"{name}: expected an integer, got {value!r}")
        if value < low:
            why = " (one item per category at least)" if name == "n_items" else ""
            raise ValueError(f"{name}: must be at least {low}{why}, got {value}")


def _hour_budgets(n: int, start: datetime, days: int, cfg: ShopConfig) -> np.ndarray:
    """Human events per hour of the period: weekday x hour-of-day x growth, summing exactly to ``n``."""
    hours = np.arange(days * 24)
    dow = (start.weekday() + (start.hour + hours) // 24) % 7
    w = (
        np.asarray(cfg.weekday_factors)[dow]
        * np.asarray(DIURNAL)[(start.hour + hours) % 24]
        * (1.0 + cfg.traffic_growth * hours / len(hours))
    )
    return _largest_remainder(n, w)


def _largest_remainder(n: int, w: np.ndarray) -> np.ndarray:
    """Integers proportional to ``w`` that sum to exactly ``n``."""
    raw = n * w / w.sum()
    out = np.floor(raw).astype(np.int64)
    short = n - int(out.sum())
    out[np.argsort(-(raw - out), kind="stable")[:short]] += 1
    return out


def _windows(budget: np.ndarray, chunk_events: int) -> list[tuple[int, int]]:
    """Hour ranges [h0, h1): whole days, split into equal parts when a day exceeds ``chunk_events``."""
    out = []
    for d0 in range(0, len(budget), 24):  # one loop per day
        day = budget[d0 : d0 + 24]
        parts = min(len(day), max(1, math.ceil(day.sum() / chunk_events)))
        for part in np.array_split(np.arange(d0, d0 + len(day)), parts):
            out.append((int(part[0]), int(part[-1]) + 1))
    return out


def _plan_bots(
    rng: np.random.Generator,
    users: Users,
    n_bot_events: int,
    start_us: int,
    end_us: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bot sessions of ~600 events each at random times; every bot gets at least one."""
    bots = users.bots
    if n_bot_events == 0 or len(bots) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    n = max(1, min(n_bot_events, max(len(bots), math.ceil(n_bot_events / 600))))
    length = rng.multinomial(n_bot_events, np.full(n, 1.0 / n)).astype(np.int64)
    who = np.concatenate([bots, rng.choice(bots, max(0, n - len(bots)))])[:n]
    t = start_us + (rng.random(n) * (end_us - start_us - US_PER_HOUR)).astype(np.int64)
    order = np.argsort(t, kind="stable")
    return who[order], (t[order] // 1_000_000) * 1_000_000, length[order]


def _generate(
    sink: Callable[[pa.Table | None], None],
    *,
    n_events: int,
    n_users: int | None,
    n_items: int | None,
    seed: int,
    start: str | date | datetime,
    days: int | None,
    progress: bool,
    config: ShopConfig | None,
) -> tuple[ShopSummary, pa.Table, pa.Table, pa.Table | None]:
    began = time.perf_counter()
    cfg = config or ShopConfig()
    start_dt = _parse_start(start)
    n_users = max(20, n_events // 50) if n_users is None else n_users
    n_items = min(500_000, max(200, int(10 * math.sqrt(max(n_events, 1))))) if n_items is None else n_items
    days = DEFAULT_DAYS if days is None else days
    _check_sizes(n_events, n_users, n_items, days, seed, build_tree().n_cats)
    start_us = int(start_dt.timestamp()) * 1_000_000
    end_us = start_us + days * US_PER_DAY

    catalogue = build_catalogue(
        np.random.default_rng([seed, 0]),
        n_items,
        start_us,
        end_us,
        zipf_exponent=cfg.zipf_exponent,
        new_item_share=cfg.new_item_share,
        trending_share=cfg.trending_share,
        fading_share=cfg.fading_share,
    )
    if cfg.image_vectors:  # its own random stream: every other draw stays as without vectors
        vectors = image_vectors(
            np.random.default_rng([seed, 5]), catalogue, cfg.image_vectors, cfg.image_noise
        )
        catalogue.table = catalogue.table.append_column(ITEM_SCHEMA.field("vectors"), _vector_cells(vectors))
    tree = catalogue.tree
    cat_pop = np.bincount(catalogue.cat, weights=catalogue.base_weight, minlength=tree.n_cats)
    n_bots = cfg.n_bots if cfg.n_bots is not None else int(np.clip(round(n_users / 2000), 2, 25))
    n_bots = min(n_bots, n_users // 10)
    users = draw_users(
        np.random.default_rng([seed, 1]),
        n_users,
        n_bots,
        cat_pop,
        tree.cat_dept,
        start_us,
        end_us,
        cfg.drift_share,
    )
    n_bot_events = round(n_events * cfg.bot_share) if n_bots else 0
    bot_plan = _plan_bots(np.random.default_rng([seed, 2]), users, n_bot_events, start_us, end_us)
    queries, q_offsets, q_sizes = query_pool()
    promos = plan_promotions(catalogue, start_us, days, cfg.promotions, cfg.promotion_days)
    effects = PromotionEffects(promos, catalogue.n_items) if promos else None
    sim = Simulator(cfg, catalogue, users, start_us, end_us, (q_offsets, q_sizes), seed, effects)

    hour_budget = _hour_budgets(n_events - n_bot_events, start_dt, days, cfg)
    windows = _windows(hour_budget, cfg.chunk_events)
    lookups = _Lookups(catalogue, users, queries)
    stats = _Stats(n_users)
    carry: dict[str, np.ndarray] | None = None
    next_session = 0
    written = 0
    console = Console(stderr=True)
    columns = (
        TextColumn("generating events"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, disable=not progress, transient=False) as bar:
        task = bar.add_task("events", total=n_events)
        for w, (h0, h1) in enumerate(windows):
            t0, t1 = start_us + h0 * US_PER_HOUR, start_us + h1 * US_PER_HOUR
            in_window = (bot_plan[1] >= t0) & (bot_plan[1] < t1)
            ev = sim.window(
                np.random.default_rng([seed, 100, w]),
                t0,
                t1,
                hour_budget[h0:h1],
                tuple(a[in_window] for a in bot_plan),
            )
            n_window_sessions = int(ev["sess"].max(initial=-1)) + 1
            ev["sess"] = ev["sess"] + next_session
            next_session += n_window_sessions
            stats.add(ev)
            # Sessions run past the window's end; hold their late events back so the file stays in order.
            merged = ev if carry is None else {k: np.concatenate([carry[k], ev[k]]) for k in ev}
            order = np.lexsort((merged["pos"], merged["sess"], merged["ts"]))
            merged = {k: v[order] for k, v in merged.items()}
            last = w == len(windows) - 1
            cut = len(order) if last else int(np.searchsorted(merged["ts"], t1, side="left"))
            out = {k: v[:cut] for k, v in merged.items()}
            carry = {k: v[cut:] for k, v in merged.items()}
            if cut:
                sink(lookups.table(out, written))
                written += cut
            bar.update(task, completed=written)
    assert written == n_events, f"generated {written} events, expected {n_events}"

    planted = _planted(catalogue, users, seed, start_us, end_us, cfg)
    planted.promotions = [p.to_dict() for p in promos]
    if cfg.image_vectors:
        planted.image_vectors = {
            "name": IMAGE_VECTOR,
            "dims": cfg.image_vectors,
            "noise": cfg.image_noise,
            "factors": list(FACTOR_NAMES),
        }
    summary = ShopSummary(
        out_dir=None,
        n_events=n_events,
        n_users=n_users,
        n_items=n_items,
        n_sessions=stats.sessions,
        n_purchase_sessions=stats.purchase_sessions,
        n_active_users=int(stats.active.sum()),
        days=days,
        event_counts={name: int(c) for name, c in zip(EVENT_NAMES, stats.counts, strict=True)},
        files=[],
        elapsed_s=round(time.perf_counter() - began, 3),
        planted=planted,
    )
    calendar = promotions_table(promos, catalogue.table.column("item_id")) if promos else None
    user_table = _user_table(np.random.default_rng([seed, 3]), users, tree.cat_dept, cfg.attribute_tastes)
    return summary, catalogue.table, user_table, calendar


def _vector_cells(vectors: np.ndarray) -> pa.Array:
    """One ``{IMAGE_VECTOR: row}`` map per item, built from flat buffers (no Python loop per item)."""
    n, dim = vectors.shape
    values = pa.ListArray.from_arrays(
        pa.array(np.arange(n + 1, dtype=np.int32) * dim), pa.array(vectors.ravel(), pa.float32())
    )
    return pa.MapArray.from_arrays(
        pa.array(np.arange(n + 1, dtype=np.int32)), pa.array([IMAGE_VECTOR] * n, pa.string()), values
    ).cast(ITEM_SCHEMA.field("vectors").type)


class _Stats:
    """Running counts for the summary."""

    def __init__(self, n_users: int) -> None:
        self.counts = np.zeros(len(EVENT_NAMES), np.int64)
        self.active = np.zeros(n_users, bool)
        self.sessions = 0
        self.purchase_sessions = 0

    def add(self, ev: dict[str, np.ndarray]) -> None:
        self.counts += np.bincount(ev["etype"], minlength=len(EVENT_NAMES))
        self.active[ev["user"]] = True
        self.sessions += len(np.unique(ev["sess"]))
        self.purchase_sessions += len(np.unique(ev["sess"][ev["etype"] == PURCHASE]))


class _Lookups:
    """Id strings and word tables, built once; events are turned into Arrow by `take`."""

    def __init__(self, catalogue: Catalogue, users: Users, queries: pa.StringArray) -> None:
        self.items = catalogue.table.column("item_id").combine_chunks()
        self.users = int_strings("u", np.arange(users.n_users))
        self.types = pa.array(EVENT_NAMES, pa.string())
        self.channels = pa.array(CHANNELS, pa.string())
        self.devices = pa.array(DEVICES, pa.string())
        self.pages = pa.array(PAGES, pa.string())
        self.queries = queries

    def table(self, ev: dict[str, np.ndarray], first_id: int) -> pa.Table:
        n = len(ev["ts"])
        item = pa.array(ev["item"], mask=ev["item"] < 0)
        query = pa.array(ev["query"], mask=ev["query"] < 0)
        sessions, inverse = np.unique(ev["sess"], return_inverse=True)
        return pa.Table.from_arrays(
            [
                int_strings("e", np.arange(first_id, first_id + n)),
                self.users.take(pa.array(ev["user"])),
                self.items.take(item),
                self.types.take(pa.array(ev["etype"])),
                pa.array(ev["ts"], type=UTC_TIMESTAMP),
                int_strings("s", sessions).take(pa.array(inverse)),
                pa.array(ev["qty"], mask=np.isnan(ev["qty"])),
                pa.array(ev["price"], mask=np.isnan(ev["price"])),
                self.channels.take(pa.array(ev["channel"])),
                self.devices.take(pa.array(ev["device"])),
                self.queries.take(query),
                self.pages.take(pa.array(ev["page"])),
                pa.nulls(n, pa.bool_()),  # is_bot is for cleaning to set; planted.json names the bots
            ],
            schema=EVENT_SCHEMA,
        )


COUNTRIES = ("DE", "FR", "GB", "NL", "ES", "IT", "PL", "SE")
COUNTRY_SHARE = np.array([0.24, 0.17, 0.17, 0.1, 0.1, 0.1, 0.07, 0.05])
AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
AGE_SHARE = np.array([0.14, 0.28, 0.24, 0.17, 0.11, 0.06])


def _user_table(
    rng: np.random.Generator, users: Users, cat_dept: np.ndarray, attribute_tastes: float = 0.0
) -> pa.Table:
    """user_id and a JSON attributes object: signup time, country, age band, preferred channel.

    Country, age band and channel are independent of taste unless ``attribute_tastes`` > 0: then
    that share of users gets the age band of their primary department (``d % 6``). Its draw
    comes after the others, so the default table is unchanged.
    """
    n = users.n_users
    signup = pc.strftime(pa.array(users.signup_us, type=UTC_TIMESTAMP), format="%Y-%m-%dT%H:%M:%SZ")
    country = np.asarray(COUNTRIES, dtype=object)[rng.choice(len(COUNTRIES), n, p=COUNTRY_SHARE)]
    age = np.asarray(AGE_BANDS, dtype=object)[rng.choice(len(AGE_BANDS), n, p=AGE_SHARE)]
    if attribute_tastes > 0:
        planted = rng.random(n) < attribute_tastes
        department = cat_dept[users.prim[:, 0]]
        age[planted] = np.asarray(AGE_BANDS, dtype=object)[department[planted] % len(AGE_BANDS)]
    channel = np.asarray(CHANNELS, dtype=object)[users.channel]
    attrs = (
        '{"signup_at": "'
        + np.asarray(signup.to_pylist(), dtype=object)
        + '", "country": "'
        + country
        + '", "age_band": "'
        + age
        + '", "preferred_channel": "'
        + channel
        + '"}'
    )
    return pa.Table.from_arrays(
        [int_strings("u", np.arange(n)), pa.array(attrs.tolist(), pa.string())], schema=USER_SCHEMA
    )


def _planted(
    catalogue: Catalogue, users: Users, seed: int, start_us: int, end_us: int, cfg: ShopConfig
) -> Planted:
    ids = np.asarray(catalogue.table.column("item_id").to_pylist(), dtype=object)
    counts = np.diff(catalogue.comp_indptr)
    anchors = np.repeat(np.arange(catalogue.n_items), counts)
    rule_names = [r.name for r in COMPLEMENT_RULES]
    complements = [
        (str(a), str(c), rule_names[r])
        for a, c, r in zip(ids[anchors], ids[catalogue.comp_items], catalogue.comp_rule, strict=True)
    ]
    rising = np.flatnonzero(catalogue.growth > 1.0)
    fading = np.flatnonzero(catalogue.growth < 1.0)

    def iso(us: int) -> str:
        return datetime.fromtimestamp(us / 1e6, tz=UTC).isoformat().replace("+00:00", "Z")

    return Planted(
        seed=seed,
        start=iso(start_us),
        end=iso(end_us),
        departments=catalogue.tree.dept_names,
        categories=catalogue.tree.cat_paths,
        consumables=catalogue.tree.consumables(),
        complement_rules=[
            {
                "name": r.name,
                "anchor_category": r.anchor_category,
                "anchor_types": list(r.anchor_nouns) if r.anchor_nouns else None,
                "complement_category": r.complement_category,
                "complement_types": list(r.complement_nouns),
            }
            for r in COMPLEMENT_RULES
        ],
        complements=complements,
        trending_items={str(ids[i]): round(float(catalogue.growth[i]), 3) for i in rising},
        fading_items={str(ids[i]): round(float(catalogue.growth[i]), 3) for i in fading},
        bots=[f"u{b}" for b in users.bots],
        diurnal=list(DIURNAL),
        config=cfg,
    )


__all__ = ["Planted", "ShopConfig", "ShopFrames", "ShopSummary", "generate_frames", "generate_shop"]
