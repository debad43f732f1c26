"""Planted promotions of the synthetic shop: whole categories or sets of items, for a window of days,
at a discount, multiplying the chance that a viewed item is carted (hence bought) by a known factor.

The analysis in `fusionrec.analytics.effects` must find these factors again: the conversion factor
is the planted one, the revenue factor is that times the price paid (``1 - discount``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from fusionrec.data._synthetic_catalogue import US_PER_DAY, Catalogue

# Cycled over the planted promotions: (purchase-probability factor, discount). The third has no
# effect on conversion at all, so that "no detectable effect" is tested on planted data too.
PROMOTION_PLAN = ((2.0, 0.15), (2.5, 0.1), (1.0, 0.2))
ITEMS_PER_ITEM_PROMOTION = 80

PROMOTION_SCHEMA_FIELDS = (
    ("promotion_id", pa.string()),
    ("item_id", pa.string()),
    ("category", pa.string()),
    ("start", pa.date32()),
    ("end", pa.date32()),
    ("discount", pa.float64()),
)


@dataclass(frozen=True)
class PlantedPromotion:
    """One promotion: its target (a category or items), its window [start_us, end_us) and its effect."""

    promotion_id: str
    category: str | None  # a whole category; None for an item promotion
    items: np.ndarray  # int64 item indices covered
    start_us: int
    end_us: int
    discount: float
    factor: float  # multiplies the cart (and so purchase) probability of a view in the window

    def to_dict(self) -> dict[str, object]:
        """The ground truth as written to planted.json."""
        return {
            "promotion_id": self.promotion_id,
            "category": self.category,
            "n_items": len(self.items),
            "start": _day(self.start_us),
            "end": _day(self.end_us - US_PER_DAY),
            "discount": self.discount,
            "conversion_factor": self.factor,
            "revenue_factor": round(self.factor * (1.0 - self.discount), 6),
        }


def _day(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, tz=UTC).date().isoformat()


def plan_promotions(
    catalogue: Catalogue, start_us: int, days: int, n: int, length: int
) -> list[PlantedPromotion]:
    """``n`` promotions of ``length`` days on the busiest non-consumable categories (re-buys of
    consumables ignore promotions, which would blur the planted factor), spread over the period
    after a pre-period as long as the window. Deterministic: no random draws."""
    if n == 0 or days < 2 * length + 1:
        return []
    tree = catalogue.tree
    weight = np.bincount(catalogue.cat, weights=catalogue.base_weight, minlength=tree.n_cats)
    weight[~np.isnan(tree.cat_cycle)] = 0.0
    busiest = [int(c) for c in np.argsort(-weight, kind="stable") if weight[c] > 0][:n]
    day0 = start_us - start_us % US_PER_DAY
    first, last = length, days - length  # window start days: after a full pre-period
    out = []
    for i, cat in enumerate(busiest):
        factor, discount = PROMOTION_PLAN[i % len(PROMOTION_PLAN)]
        start_day = first + (i * (last - first)) // max(len(busiest) - 1, 1) if len(busiest) > 1 else first
        members = np.flatnonzero(catalogue.cat == cat)
        whole_category = i % 2 == 0
        if not whole_category:
            # An item promotion: the category's most popular items; the rest of it is the control.
            order = np.argsort(-catalogue.base_weight[members], kind="stable")
            members = np.sort(members[order[: min(ITEMS_PER_ITEM_PROMOTION, len(members) // 2)]])
        out.append(
            PlantedPromotion(
                promotion_id=f"promo{i + 1}",
                category=tree.cat_paths[cat] if whole_category else None,
                items=members.astype(np.int64),
                start_us=day0 + start_day * US_PER_DAY,
                end_us=day0 + (start_day + length) * US_PER_DAY,
                discount=discount,
                factor=factor,
            )
        )
    return out


class PromotionEffects:
    """Vectorised look-ups of the planted promotions for (item, time) pairs."""

    def __init__(self, promotions: list[PlantedPromotion], n_items: int) -> None:
        self.promotions = promotions
        self.covers = []
        for p in promotions:
            mask = np.zeros(n_items, dtype=bool)
            mask[p.items] = True
            self.covers.append(mask)

    def _active(self, p: int, item: np.ndarray, t_us: np.ndarray) -> np.ndarray:
        promo = self.promotions[p]
        t = np.asarray(t_us)
        return self.covers[p][item] & (t >= promo.start_us) & (t < promo.end_us)

    def cart_factor(self, item: np.ndarray, t_us: np.ndarray) -> np.ndarray:
        """The planted multiplier of the cart probability (1 outside promotions)."""
        out = np.ones(len(item))
        for p, promo in enumerate(self.promotions):
            out = np.where(self._active(p, item, t_us), out * promo.factor, out)
        return out

    def price_factor(self, item: np.ndarray, t_us: np.ndarray) -> np.ndarray:
        """The price multiplier, 1 - discount inside a promotion (1 outside)."""
        out = np.ones(len(item))
        for p, promo in enumerate(self.promotions):
            out = np.where(self._active(p, item, t_us), out * (1.0 - promo.discount), out)
        return out


def promotions_table(promotions: list[PlantedPromotion], item_ids: pa.Array) -> pa.Table:
    """The calendar as a shop would export it (promotions.parquet): one row per category
    promotion, one row per item of an item promotion; ``end`` is the last day, inclusive."""
    rows: dict[str, list[object]] = {name: [] for name, _ in PROMOTION_SCHEMA_FIELDS}
    for p in promotions:
        targets = [(None, p.category)] if p.category else [(item_ids[int(i)].as_py(), None) for i in p.items]
        for item, category in targets:
            rows["promotion_id"].append(p.promotion_id)
            rows["item_id"].append(item)
            rows["category"].append(category)
            rows["start"].append(datetime.fromtimestamp(p.start_us / 1e6, tz=UTC).date())
            rows["end"].append(datetime.fromtimestamp((p.end_us - US_PER_DAY) / 1e6, tz=UTC).date())
            rows["discount"].append(p.discount)
    return pa.table({name: pa.array(rows[name], type) for name, type in PROMOTION_SCHEMA_FIELDS})
