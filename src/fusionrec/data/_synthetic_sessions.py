"""The synthetic shop's behaviour: users with drifting tastes, sessions, and their events.

Private helper of `fusionrec.data.synthetic`. Everything is vectorised per chunk of sessions:
sessions are drawn as arrays, expanded into steps (one viewed item each), and steps into events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from fusionrec.data._synthetic_catalogue import US_PER_DAY, Catalogue

if TYPE_CHECKING:
    from fusionrec.data._synthetic_promotions import PromotionEffects
    from fusionrec.data.synthetic import ShopConfig

EVENT_NAMES = ("view", "click", "search", "favorite", "add_to_cart", "remove_from_cart", "purchase")
VIEW, CLICK, SEARCH, FAVORITE, CART, REMOVE, PURCHASE = range(7)
CHANNELS = ("web", "app", "email")
CHANNEL_SHARE = np.array([0.55, 0.35, 0.10])
DEVICES = ("desktop", "mobile", "tablet")
# P(device | channel): rows web, app, email.
DEVICE_GIVEN_CHANNEL = np.array([[0.55, 0.38, 0.07], [0.0, 0.82, 0.18], [0.4, 0.55, 0.05]])
PAGES = ("search", "product", "listing", "recommendation", "email", "cart", "checkout")
P_SEARCH, P_PRODUCT, P_LISTING, P_RECOMMENDATION, P_EMAIL, P_CART, P_CHECKOUT = range(7)
HUMAN, REPLENISH, BOT = range(3)
# Mean seconds before an event of each type (a view right after its click uses VIEW_AFTER_CLICK_S).
GAP_S = np.array([35.0, 15.0, 20.0, 10.0, 20.0, 40.0, 60.0])
VIEW_AFTER_CLICK_S = 2.0
NEXT_PURCHASE_S = 1.0
MAX_STEPS = 60


def mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser: a stateless hash of uint64 keys (stable attributes without stored tables)."""
    z = np.asarray(x, dtype=np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def hash_uniform(*keys: np.ndarray | int) -> np.ndarray:
    """A uniform [0, 1) number per row, a pure function of the integer keys."""
    h = np.zeros(1, dtype=np.uint64)
    for k in keys:
        h = mix64(h ^ np.asarray(k).astype(np.uint64))
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


# --- users -----------------------------------------------------------------------------------------


@dataclass
class Users:
    """Latent user state: activity, signup, tastes A (early) and B (late), price sensitivity, bots."""

    activity: np.ndarray  # float64 relative session rate (0 for bots: their traffic is planned apart)
    signup_us: np.ndarray  # int64
    prim: np.ndarray  # int32[n, 2]: primary category under taste A and under taste B
    sec: np.ndarray  # int32[n, 2]: secondary category under taste A and under taste B
    drift: np.ndarray  # float64: P(taste B) = drift * fraction of the period elapsed
    price_sens: np.ndarray  # float64 in [0, 1]: 1 = strongly prefers cheap items
    propensity: np.ndarray  # float64 multiplier of the cart rate
    channel: np.ndarray  # int8 preferred channel
    bots: np.ndarray  # int64 user indices of the bots

    @property
    def n_users(self) -> int:
        return len(self.activity)

    @property
    def tier(self) -> np.ndarray:
        """Preferred price tier (0 budget, 1 mid, 2 premium) from price sensitivity."""
        return np.where(self.price_sens > 0.66, 0, np.where(self.price_sens < 0.33, 2, 1)).astype(np.int8)


def draw_users(
    rng: np.random.Generator,
    n_users: int,
    n_bots: int,
    cat_pop: np.ndarray,
    cat_dept: np.ndarray,
    start_us: int,
    end_us: int,
    drift_share: float,
) -> Users:
    """Users with heavy-tailed activity, signups spread before and during the period, and two tastes."""
    n_cats = len(cat_pop)
    p = cat_pop**0.7 / (cat_pop**0.7).sum()

    def taste() -> tuple[np.ndarray, np.ndarray]:
        prim = rng.choice(n_cats, n_users, p=p)
        same_dept = rng.random(n_users) < 0.7
        # A secondary category in the same department (when it has another), else anywhere.
        sibling = (prim + rng.integers(1, n_cats, n_users)) % n_cats
        for _ in range(8):  # a few redraws reach a sibling for almost all; the rest stay anywhere
            redo = same_dept & (cat_dept[sibling] != cat_dept[prim])
            sibling[redo] = rng.integers(0, n_cats, redo.sum())
        sibling = np.where(sibling == prim, (prim + 1) % n_cats, sibling)
        return prim, sibling

    prim_a, sec_a = taste()
    prim_b, sec_b = taste()
    # The late taste moves to another department, so drift is visible at department level too.
    moved = cat_dept[prim_b] == cat_dept[prim_a]
    prim_b[moved] = (prim_b[moved] + n_cats // 2) % n_cats
    span = end_us - start_us
    before = rng.random(n_users) < 0.55
    signup = np.where(
        before,
        start_us - (rng.random(n_users) * 730 * US_PER_DAY).astype(np.int64) - US_PER_DAY,
        start_us + (rng.random(n_users) * 0.9 * span).astype(np.int64),
    )
    bots = np.sort(rng.choice(n_users, n_bots, replace=False)) if n_bots else np.zeros(0, dtype=np.int64)
    signup[bots] = start_us - 30 * US_PER_DAY
    activity = rng.lognormal(0.0, 1.0, n_users)
    activity[bots] = 0.0
    drift = np.where(rng.random(n_users) < drift_share, rng.uniform(0.4, 1.0, n_users), 0.0)
    return Users(
        activity=activity,
        signup_us=(signup // 1_000_000) * 1_000_000,
        prim=np.stack([prim_a, prim_b], axis=1).astype(np.int32),
        sec=np.stack([sec_a, sec_b], axis=1).astype(np.int32),
        drift=drift,
        price_sens=rng.beta(2.0, 2.0, n_users),
        propensity=rng.lognormal(0.0, 0.5, n_users),
        channel=rng.choice(3, n_users, p=CHANNEL_SHARE).astype(np.int8),
        bots=bots.astype(np.int64),
    )


# --- item sampling ---------------------------------------------------------------------------------


class GroupSampler:
    """Draws items within groups (category, category x brand, category x tier) by current weight."""

    def __init__(self, key: np.ndarray, n_groups: int) -> None:
        self.order = np.argsort(key, kind="stable")
        sorted_key = key[self.order]
        self.lo = np.searchsorted(sorted_key, np.arange(n_groups), side="left")
        self.hi = np.searchsorted(sorted_key, np.arange(n_groups), side="right")
        self.cw = np.zeros(0)
        self.base = np.zeros(n_groups)
        self.total = np.zeros(n_groups)

    def set_weights(self, weight: np.ndarray) -> None:
        self.cw = np.cumsum(weight[self.order])
        padded = np.concatenate([[0.0], self.cw])
        self.base = padded[self.lo]
        self.total = padded[self.hi] - self.base

    def draw(self, group: np.ndarray, u: np.ndarray) -> np.ndarray:
        """One item per row of ``group`` (-1 where the group has no weight now)."""
        idx = np.searchsorted(self.cw, self.base[group] + u * self.total[group], side="right")
        idx = np.clip(idx, self.lo[group], np.maximum(self.hi[group] - 1, self.lo[group]))
        return np.where(self.total[group] > 0, self.order[np.minimum(idx, len(self.order) - 1)], -1)


# --- sessions, steps, events -----------------------------------------------------------------------


@dataclass
class Sessions:
    """A batch of sessions and their steps (one viewed item each), before expansion into events."""

    user: np.ndarray
    start: np.ndarray
    channel: np.ndarray
    device: np.ndarray
    kind: np.ndarray
    n_search: np.ndarray
    intent: np.ndarray  # category searched for
    bot_len: np.ndarray  # events of a bot session (0 for others)
    # steps
    sess: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    order: np.ndarray = field(default_factory=lambda: np.zeros(0))
    item: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    click: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    page: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int8))
    fav: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    cart: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    removed: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    bought: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))
    qty: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def n(self) -> int:
        return len(self.user)

    def lengths(self) -> np.ndarray:
        """Events each session expands to."""
        per_step = 1 + self.click.astype(np.int64) + self.fav + self.cart + self.removed + self.bought
        return (
            self.n_search
            + np.bincount(self.sess, weights=per_step, minlength=self.n).astype(np.int64)
            + self.bot_len
        )

    @staticmethod
    def concat(parts: list[Sessions]) -> Sessions:
        offsets = np.cumsum([0] + [p.n for p in parts[:-1]])
        out = {}
        for name in Sessions.__dataclass_fields__:
            arrays = [getattr(p, name) for p in parts]
            if name == "sess":
                arrays = [a + o for a, o in zip(arrays, offsets, strict=True)]
            out[name] = np.concatenate(arrays)
        return Sessions(**out)

    def take(self, keep: np.ndarray) -> Sessions:
        """The first ``keep`` sessions (a prefix), with their steps."""
        step = self.sess < keep
        out = {
            name: getattr(self, name)[:keep]
            for name in ("user", "start", "channel", "device", "kind", "n_search", "intent", "bot_len")
        }
        for name in ("sess", "order", "item", "click", "page", "fav", "cart", "removed", "bought", "qty"):
            out[name] = getattr(self, name)[step]
        return Sessions(**out)


class Simulator:
    """Generates the events of one time window at a time; carries re-buy schedules across windows."""

    def __init__(
        self,
        config: ShopConfig,
        cat: Catalogue,
        users: Users,
        start_us: int,
        end_us: int,
        queries: tuple[np.ndarray, np.ndarray],
        seed: int,
        promotions: PromotionEffects | None = None,
    ) -> None:
        self.cfg = config
        self.promotions = promotions
        self.cat = cat
        self.users = users
        self.start_us = start_us
        self.end_us = end_us
        self.seed = seed
        self.query_offsets, self.query_sizes = queries
        tree = cat.tree
        self.n_cats = tree.n_cats
        self.by_cat = GroupSampler(cat.cat.astype(np.int64), tree.n_cats)
        self.by_brand = GroupSampler(
            cat.cat.astype(np.int64) * tree.n_brands + cat.brand, tree.n_cats * tree.n_brands
        )
        self.by_tier = GroupSampler(cat.cat.astype(np.int64) * 3 + cat.tier, tree.n_cats * 3)
        self.uniform = GroupSampler(np.zeros(cat.n_items, dtype=np.int64), 1)
        self.log_growth = np.log(cat.growth)
        med = np.zeros(tree.n_cats)
        for c in range(tree.n_cats):  # one loop per category: median list price for price sensitivity
            med[c] = np.median(cat.price[cat.cat == c]) if np.any(cat.cat == c) else 1.0
        self.rel_price = np.log(cat.price / med[cat.cat])
        self.cycle = tree.cat_cycle[cat.cat]
        self.pending = {
            "user": np.zeros(0, np.int64),
            "item": np.zeros(0, np.int64),
            "due": np.zeros(0, np.int64),
        }
        self.mean_len = 6.0

    # -- weights at a time ------------------------------------------------------------------------------

    def _fraction(self, t_us: np.ndarray | int) -> np.ndarray:
        return np.clip((np.asarray(t_us) - self.start_us) / (self.end_us - self.start_us), 0.0, 1.0)

    def set_time(self, t0: int, t1: int) -> None:
        """Item weights for a window [t0, t1): popularity x trend at its middle, zero for items not
        yet created at its start (so no item is seen before it exists), low when hidden."""
        c = self.cat
        available = c.created_us <= t0
        w = c.base_weight * np.exp(self.log_growth * self._fraction((t0 + t1) // 2))
        w = w * available * np.where(c.hidden, 0.05, 1.0)
        for s in (self.by_cat, self.by_brand, self.by_tier):
            s.set_weights(w)
        self.uniform.set_weights(available.astype(np.float64))
        self.cat_p = self.by_cat.total / self.by_cat.total.sum()

    def sale_factor(self, item: np.ndarray, t_us: np.ndarray) -> np.ndarray:
        """Price multiplier: items go on sale for whole weeks (a stateless hash of item and week)."""
        week = (np.asarray(t_us) - self.start_us) // (7 * US_PER_DAY)
        on_sale = hash_uniform(self.seed, item, week + 1000) < self.cfg.sale_share
        return np.where(on_sale, 1.0 - self.cfg.sale_discount, 1.0)

    # -- session kinds ----------------------------------------------------------------------------------

    def humans(self, rng: np.random.Generator, n: int, t0: int, hour_p: np.ndarray) -> Sessions:
        """``n`` ordinary shopping sessions starting in the window at hour offsets drawn from ``hour_p``."""
        cfg, users = self.cfg, self.users
        eligible_w = users.activity * (users.signup_us < t0)
        if not eligible_w.any():  # nobody signed up yet (tiny shops): let anyone visit
            eligible_w = users.activity.copy()
        cw = np.cumsum(eligible_w)
        user = np.searchsorted(cw, rng.random(n) * cw[-1], side="right").clip(0, users.n_users - 1)
        hour = rng.choice(len(hour_p), n, p=hour_p)
        start = t0 + hour * 3_600_000_000 + rng.integers(0, 3_600, n) * 1_000_000  # whole seconds
        taste = (rng.random(n) < users.drift[user] * self._fraction(start)).astype(np.int64)
        prim, sec = users.prim[user, taste], users.sec[user, taste]
        r = rng.random(n)
        anywhere = rng.choice(self.n_cats, n, p=self.cat_p)
        intent = np.where(r < 0.7, prim, np.where(r < 0.9, sec, anywhere))
        channel = np.where(rng.random(n) < 0.7, users.channel[user], rng.choice(3, n, p=CHANNEL_SHARE))
        device = _draw_rows(rng, DEVICE_GIVEN_CHANNEL[channel])
        n_search = rng.choice(3, n, p=cfg.search_probs)
        n_steps = np.minimum(rng.geometric(1.0 / cfg.views_per_session, n), MAX_STEPS)

        s = Sessions(
            user=user,
            start=start,
            channel=channel.astype(np.int8),
            device=device.astype(np.int8),
            kind=np.full(n, HUMAN, np.int8),
            n_search=n_search,
            intent=intent,
            bot_len=np.zeros(n, np.int64),
        )
        sess = np.repeat(np.arange(n), n_steps)
        m = len(sess)
        first = np.concatenate([[0], np.cumsum(n_steps)[:-1]])
        pos = np.arange(m) - first[sess]
        r = rng.random(m)
        step_cat = np.where(
            r < 0.8, intent[sess], np.where(r < 0.9, sec[sess], rng.choice(self.n_cats, m, p=self.cat_p))
        )
        item = self._draw_items(rng, step_cat, user[sess])
        # Some steps re-view the previous item (comparison, hesitation).
        again = (pos > 0) & (rng.random(m) < 0.12)
        src = np.where(again, 0, np.arange(m))
        np.maximum.accumulate(src, out=src)
        item = item[src]
        ok = item >= 0
        sess, pos, item = sess[ok], pos[ok], item[ok]
        m = len(sess)
        email_first = (channel[sess] == 2) & (pos == 0)
        click = email_first | (rng.random(m) < cfg.click_rate)
        page = np.where(email_first, P_EMAIL, np.where(rng.random(m) < 0.4, P_RECOMMENDATION, P_LISTING))
        fav = rng.random(m) < cfg.favorite_rate
        # Cart: the user's propensity, cheaper-than-usual items for price-sensitive users, sales.
        u_step = user[sess]
        sens = users.price_sens[u_step]
        sale = self.sale_factor(item, start[sess])
        p_cart = (
            cfg.cart_rate
            * users.propensity[u_step]
            * np.exp(-1.5 * (sens - 0.3) * self.rel_price[item])
            * np.where(sale < 1.0, 1.0 + 2.0 * sens, 1.0)
        )
        if self.promotions is not None:
            p_cart = p_cart * self.promotions.cart_factor(item, start[sess])
        cart = rng.random(m) < np.clip(p_cart, 0.0, 0.9)
        cart = _first_per_key(cart, sess, item)
        removed = cart & (rng.random(m) < cfg.remove_rate)
        kept = np.bincount(sess, weights=cart & ~removed, minlength=n) > 0
        checkout = kept & (rng.random(n) < cfg.checkout_rate)
        bought = cart & ~removed & checkout[sess]
        s.sess, s.order, s.item, s.click, s.page, s.fav = sess, pos.astype(np.float64), item, click, page, fav
        s.cart, s.removed, s.bought = cart, removed, bought
        s.qty = self._quantity(rng, item)
        self._add_complements(rng, s, checkout)
        return s

    def _draw_items(self, rng: np.random.Generator, cat: np.ndarray, user: np.ndarray) -> np.ndarray:
        """Items in ``cat``: by popularity, or within the user's brand, or within the user's price tier."""
        users, n_brands = self.users, self.cat.tree.n_brands
        mode = rng.random(len(cat))
        u = rng.random(len(cat))
        item = self.by_cat.draw(cat, u)
        dept = self.cat.tree.cat_dept[cat]
        brand = (hash_uniform(self.seed, user, dept) * n_brands).astype(np.int64)
        in_brand = self.by_brand.draw(cat * n_brands + brand, u)
        in_tier = self.by_tier.draw(cat * 3 + users.tier[user], u)
        item = np.where((mode < 0.25) & (in_brand >= 0), in_brand, item)
        return np.where((mode >= 0.75) & (in_tier >= 0), in_tier, item)

    def _quantity(self, rng: np.random.Generator, item: np.ndarray) -> np.ndarray:
        """1 for most; consumables sometimes 2 or 3."""
        extra = rng.choice(3, len(item), p=[0.8, 0.15, 0.05])
        return np.where(np.isnan(self.cycle[item]), 1.0, 1.0 + extra)

    def _add_complements(self, rng: np.random.Generator, s: Sessions, checkout: np.ndarray) -> None:
        """Carted anchors pull their planted complements into the cart (a 'bought together' widget)."""
        c = self.cat
        anchor = np.flatnonzero(s.cart & ~s.removed)
        counts = c.comp_indptr[s.item[anchor] + 1] - c.comp_indptr[s.item[anchor]]
        step = np.repeat(anchor, counts)
        if len(step) == 0:
            return
        j = np.arange(len(step)) - np.repeat(np.cumsum(counts) - counts, counts)
        comp = c.comp_items[c.comp_indptr[s.item[step]] + j]
        sess = s.sess[step]
        keep = (rng.random(len(step)) < self.cfg.complement_rate) & (c.created_us[comp] <= s.start[sess])
        step, comp, sess, j = step[keep], comp[keep], sess[keep], j[keep]
        k = len(step)
        all_sess = np.concatenate([s.sess, sess])
        order = np.concatenate([s.order, s.order[step] + 0.5 + 0.01 * j])
        idx = np.lexsort((order, all_sess))
        s.sess, s.order = all_sess[idx], order[idx]
        s.item = np.concatenate([s.item, comp])[idx]
        s.click = np.concatenate([s.click, np.ones(k, bool)])[idx]
        s.page = np.concatenate([s.page, np.full(k, P_RECOMMENDATION)])[idx]
        s.fav = np.concatenate([s.fav, np.zeros(k, bool)])[idx]
        s.removed = np.concatenate([s.removed, np.zeros(k, bool)])[idx]
        # A complement already in the cart (or pulled in twice) is only viewed again.
        s.cart = _first_per_key(np.concatenate([s.cart, np.ones(k, bool)])[idx], s.sess, s.item)
        s.bought = np.concatenate([s.bought, checkout[sess]])[idx] & s.cart & ~s.removed
        s.qty = np.concatenate([s.qty, self._quantity(rng, comp)])[idx]

    def replenish(self, rng: np.random.Generator, t0: int, t1: int) -> Sessions:
        """Sessions that re-buy a consumable when its cycle comes due (view, cart, purchase)."""
        p = self.pending
        due = (p["due"] >= t0) & (p["due"] < t1)
        user, item, start = p["user"][due], p["item"][due], p["due"][due]
        self.pending = {k: v[~due] for k, v in p.items()}
        n = len(user)
        channel = np.where(rng.random(n) < 0.35, 2, self.users.channel[user]).astype(np.int8)
        s = Sessions(
            user=user,
            start=start,
            channel=channel,
            device=_draw_rows(rng, DEVICE_GIVEN_CHANNEL[channel]).astype(np.int8),
            kind=np.full(n, REPLENISH, np.int8),
            n_search=np.zeros(n, np.int64),
            intent=self.cat.cat[item].astype(np.int64),
            bot_len=np.zeros(n, np.int64),
        )
        s.sess, s.order, s.item = np.arange(n), np.zeros(n), item
        s.click = channel == 2
        s.page = np.full(n, P_EMAIL, np.int8)
        s.fav = np.zeros(n, bool)
        s.cart = np.ones(n, bool)
        s.removed = np.zeros(n, bool)
        s.bought = rng.random(n) < self.cfg.replenish_checkout_rate
        s.qty = self._quantity(rng, item)
        return s

    def bots(self, user: np.ndarray, start: np.ndarray, length: np.ndarray) -> Sessions:
        """Crawler sessions: long runs of views of random items, about one a second."""
        n = len(user)
        return Sessions(
            user=user,
            start=start,
            channel=np.zeros(n, np.int8),
            device=np.zeros(n, np.int8),
            kind=np.full(n, BOT, np.int8),
            n_search=np.zeros(n, np.int64),
            intent=np.zeros(n, np.int64),
            bot_len=length,
        )

    # -- a whole window ---------------------------------------------------------------------------------

    def window(
        self,
        rng: np.random.Generator,
        t0: int,
        t1: int,
        hour_budget: np.ndarray,
        bot_sessions: tuple[np.ndarray, np.ndarray, np.ndarray],
    ) -> dict[str, np.ndarray]:
        """All events of sessions starting in [t0, t1): the planned bot events plus exactly
        ``hour_budget.sum()`` human events (the last session is cut short to hit it)."""
        self.set_time(t0, t1)
        bot = self.bots(*bot_sessions)
        parts = [bot, self.replenish(rng, t0, t1)]
        budget = int(bot.bot_len.sum() + hour_budget.sum())
        have = int(sum(p.lengths().sum() for p in parts))
        while have < budget:
            need = budget - have
            n = int(np.ceil(need / self.mean_len * 1.15)) + 4
            part = self.humans(rng, n, t0, hour_budget / hour_budget.sum())
            lens = part.lengths()
            if lens.sum() == 0:  # cannot happen with a valid config; guards against an endless loop
                raise RuntimeError("synthetic sessions produced no events")
            self.mean_len = 0.9 * self.mean_len + 0.1 * float(lens.mean())
            parts.append(part)
            have += int(lens.sum())
        s = Sessions.concat(parts)
        lengths = s.lengths()
        cum = np.cumsum(lengths)
        n_keep = int(np.searchsorted(cum, budget, side="left")) + 1 if budget > 0 else 0
        n_keep = min(n_keep, s.n)
        s = s.take(n_keep)
        keep_len = lengths[:n_keep].copy()
        if n_keep:
            keep_len[-1] -= int(cum[n_keep - 1] - budget)
        events = self._expand(rng, s, keep_len)
        self._schedule_rebuys(rng, events)
        return events

    def _expand(self, rng: np.random.Generator, s: Sessions, keep_len: np.ndarray) -> dict[str, np.ndarray]:
        """Sessions -> events: searches, then per step [click] view [favorite] [add_to_cart], then
        removals, then purchases; timestamps from per-type gaps; cut to ``keep_len`` per session."""
        steps = np.arange(len(s.sess))
        pieces = []  # (session, phase, order, sub, type, step or -1)

        def piece(
            sess: np.ndarray, phase: int, order: np.ndarray, sub: int, etype: int, step: np.ndarray
        ) -> None:
            pieces.append(
                (
                    sess,
                    np.full(len(sess), phase),
                    order,
                    np.full(len(sess), sub),
                    np.full(len(sess), etype, np.int8),
                    step,
                )
            )

        srch = np.repeat(np.arange(s.n), s.n_search)
        j = np.arange(len(srch)) - np.repeat(np.cumsum(s.n_search) - s.n_search, s.n_search)
        piece(srch, 0, j.astype(np.float64), 0, SEARCH, np.full(len(srch), -1))
        for mask, sub, etype in (
            (s.click, 0, CLICK),
            (None, 1, VIEW),
            (s.fav, 2, FAVORITE),
            (s.cart, 3, CART),
        ):
            st = steps if mask is None else steps[mask]
            piece(s.sess[st], 1, s.order[st], sub, etype, st)
        st = steps[s.removed]
        piece(s.sess[st], 2, s.order[st], 0, REMOVE, st)
        st = steps[s.bought]
        piece(s.sess[st], 3, s.order[st], 0, PURCHASE, st)
        bsess = np.repeat(np.arange(s.n), s.bot_len)
        piece(bsess, 1, np.arange(len(bsess), dtype=np.float64), 1, VIEW, np.full(len(bsess), -1))

        sess, phase, order, sub, etype, step = (np.concatenate(col) for col in zip(*pieces, strict=True))
        idx = np.lexsort((sub, order, phase, sess))
        sess, etype, step = sess[idx], etype[idx], step[idx]
        counts = np.bincount(sess, minlength=s.n)
        first = np.cumsum(counts) - counts
        pos = np.arange(len(sess)) - first[sess]
        keep = pos < keep_len[sess]
        sess, etype, step, pos = sess[keep], etype[keep], step[keep], pos[keep]
        n = len(sess)

        kind = s.kind[sess]
        item = np.full(n, -1, np.int64)
        item[step >= 0] = s.item[step[step >= 0]]
        is_bot_view = (kind == BOT) & (etype == VIEW)
        item[is_bot_view] = self.uniform.draw(
            np.zeros(is_bot_view.sum(), np.int64), rng.random(is_bot_view.sum())
        )
        # Gaps: per-type means; a view right after its click is quick; basket items check out together.
        prev = np.concatenate([[-1], etype[:-1]])
        mean = GAP_S[etype]
        mean = np.where((etype == VIEW) & (prev == CLICK), VIEW_AFTER_CLICK_S, mean)
        mean = np.where((etype == PURCHASE) & (prev == PURCHASE), NEXT_PURCHASE_S, mean)
        mean = np.where(kind == BOT, self.cfg.bot_gap_s, mean)
        gap = rng.exponential(1.0, n) * mean
        gap[pos == 0] = 0.0
        elapsed = np.cumsum(gap)
        starts = np.flatnonzero(pos == 0)
        base = np.repeat(elapsed[starts], np.diff(np.append(starts, n)))
        ts = s.start[sess] + ((elapsed - base) * 1000.0).astype(np.int64) * 1000

        has_item = item >= 0
        price = np.full(n, np.nan)
        paid = self.sale_factor(item[has_item], ts[has_item])
        if self.promotions is not None:
            paid = paid * self.promotions.price_factor(item[has_item], ts[has_item])
        price[has_item] = np.round(self.cat.price[item[has_item]] * paid, 2)
        qty = np.full(n, np.nan)
        carty = (etype == CART) | (etype == REMOVE) | (etype == PURCHASE)
        qty[carty] = s.qty[step[carty]]
        page = np.full(n, P_PRODUCT, np.int8)
        page[etype == SEARCH] = P_SEARCH
        page[etype == CLICK] = s.page[step[etype == CLICK]]
        page[etype == REMOVE] = P_CART
        page[etype == PURCHASE] = P_CHECKOUT
        query = np.full(n, -1, np.int64)
        is_q = etype == SEARCH
        qc = s.intent[sess[is_q]]
        query[is_q] = self.query_offsets[qc] + (rng.random(is_q.sum()) * self.query_sizes[qc]).astype(
            np.int64
        )
        return {
            "sess": sess,
            "pos": pos,
            "user": s.user[sess],
            "item": item,
            "etype": etype,
            "ts": ts,
            "qty": qty,
            "price": price,
            "channel": s.channel[sess],
            "device": s.device[sess],
            "page": page,
            "query": query,
            "kind": kind,
        }

    def _schedule_rebuys(self, rng: np.random.Generator, ev: dict[str, np.ndarray]) -> None:
        """Each consumable purchase schedules a re-buy one cycle (with jitter) later, with some chance."""
        buy = (ev["etype"] == PURCHASE) & (ev["kind"] != BOT)
        cycle = self.cycle[np.maximum(ev["item"], 0)]
        buy &= ~np.isnan(cycle)
        user, item, ts, cycle = ev["user"][buy], ev["item"][buy], ev["ts"][buy], cycle[buy]
        due = ts + (cycle * np.exp(rng.normal(0.0, self.cfg.cycle_jitter, len(ts))) * US_PER_DAY).astype(
            np.int64
        )
        ok = (rng.random(len(ts)) < self.cfg.repeat_rate) & (due < self.end_us)
        p = self.pending
        user = np.concatenate([p["user"], user[ok]])
        item = np.concatenate([p["item"], item[ok]])
        due = np.concatenate([p["due"], due[ok]])
        # One open re-buy per user and item: the earliest.
        order = np.lexsort((due, item, user))
        user, item, due = user[order], item[order], due[order]
        first = np.ones(len(user), bool)
        first[1:] = (user[1:] != user[:-1]) | (item[1:] != item[:-1])
        self.pending = {"user": user[first], "item": item[first], "due": due[first]}


def _draw_rows(rng: np.random.Generator, p: np.ndarray) -> np.ndarray:
    """One categorical draw per row of the probability matrix ``p``."""
    cum = np.cumsum(p, axis=1)
    u = rng.random(len(p))[:, None]
    return np.minimum((u >= cum).sum(axis=1), p.shape[1] - 1)


def _first_per_key(flag: np.ndarray, sess: np.ndarray, item: np.ndarray) -> np.ndarray:
    """``flag`` kept only on the first flagged row of each (session, item); rows are in session order."""
    rows = np.flatnonzero(flag)
    key = sess[rows].astype(np.int64) * (int(item.max(initial=0)) + 1) + item[rows]
    _, first = np.unique(key, return_index=True)
    out = np.zeros(len(flag), bool)
    out[rows[first]] = True
    return out
