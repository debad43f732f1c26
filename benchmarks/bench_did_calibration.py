"""How often the promotion analysis "finds" an effect where none was planted (its false-positive rate).

Protocol: the synthetic shop of docs/analytics.md (1,000,000 events, seed 3, cart_rate 0.1) with
no promotions planted. For the 12 second-level categories with the most items and 4 two-week
windows, two placebo promotions each: the whole category (a category promotion) and 30 of its
items drawn with a fixed seed (an item promotion). Each is analysed as `fusionrec campaigns` does
(`promotion_effects`' estimate and checks); an interval that excludes 0, for conversion or
revenue, is a false positive. At the nominal 95 % level about 5 % of the lifts should be.
Then coverage: shops of seeds 1 to 4 with 3 planted promotions each (`ShopConfig(promotions=3)`),
and how many planted conversion and revenue effects lie inside their intervals.

    PYTHONPATH=src python benchmarks/bench_did_calibration.py
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import numpy as np

from fusionrec.analytics import queries as q
from fusionrec.analytics.effects import (
    Effect,
    Promotion,
    promotion_effect,
    promotion_effects,
    with_placebo_checks,
)
from fusionrec.analytics.engine import run
from fusionrec.analytics.promotions import load_promotions
from fusionrec.data.store import open_store
from fusionrec.data.synthetic import ShopConfig, generate_frames

N_EVENTS = 1_000_000
SEED = 3
CATEGORIES = 12
WINDOW_DAYS = 14
FIRST_WINDOW_DAY = 28  # leaves two windows of data before the first one for its checks
WINDOWS = 4
ITEMS_PER_ITEM_PROMOTION = 30
OUT = Path(__file__).parent / "results" / "did-calibration.json"


def planted_coverage(seeds: range = range(1, 5)) -> dict[str, object]:
    """Planted effects inside their intervals, over shops with 3 promotions each."""
    rows = []
    for seed in seeds:
        shop = generate_frames(n_events=N_EVENTS, seed=seed, config=ShopConfig(cart_rate=0.1, promotions=3))
        store = open_store("duckdb:///:memory:")
        store.upsert_items(shop.items)
        store.insert_events(shop.events)
        assert shop.promotions is not None
        load_promotions(store, shop.promotions)
        truth = {p["promotion_id"]: p for p in shop.summary.planted.promotions}
        for effect in promotion_effects(store):
            for metric in ("conversion", "revenue"):
                lift = getattr(effect, metric)
                planted = truth[effect.name][f"{metric}_factor"] - 1
                rows.append(
                    {
                        "seed": seed,
                        "promotion": effect.name,
                        "metric": metric,
                        "planted": planted,
                        "estimate": lift.estimate,
                        "low": lift.low,
                        "high": lift.high,
                        "placebo_windows": effect.placebo_windows,
                        "inside": lift.low is not None and lift.low <= planted <= lift.high,
                        "detected": lift.detected,
                    }
                )
        store.close()
    return {"inside": sum(r["inside"] for r in rows), "effects": len(rows), "rows": rows}


def main() -> None:
    started = time.perf_counter()
    shop = generate_frames(n_events=N_EVENTS, seed=SEED, config=ShopConfig(cart_rate=0.1))
    store = open_store("duckdb:///:memory:")
    store.upsert_items(shop.items)
    store.insert_events(shop.events)
    catalogue = run(store, q.item_categories())[["item_id", "category"]]
    first_day = run(store, q.date_bounds()).iloc[0]["first_day"]
    counts = catalogue["category"].value_counts()
    categories = [c for c in counts.index if c.count(" > ") == 1][:CATEGORIES]
    rng = np.random.default_rng(0)
    placebos = []
    for category in categories:
        members = catalogue.loc[catalogue["category"] == category, "item_id"].to_numpy()
        for w in range(WINDOWS):
            start = first_day + timedelta(days=FIRST_WINDOW_DAY + w * WINDOW_DAYS)
            end = start + timedelta(days=WINDOW_DAYS - 1)
            name = f"{category} {start}"
            placebos.append(Promotion(f"category {name}", start, end, categories=(category,)))
            chosen = rng.choice(members, size=min(ITEMS_PER_ITEM_PROMOTION, len(members)), replace=False)
            placebos.append(Promotion(f"items {name}", start, end, items=tuple(sorted(chosen))))

    rows = []
    for promotion in placebos:

        def estimate(start: date, end: date, promotion: Promotion = promotion) -> Effect:
            return promotion_effect(store, replace(promotion, start=start, end=end))

        plain = estimate(promotion.start, promotion.end)
        checked = with_placebo_checks(estimate, promotion.start, promotion.end, None, True)
        for metric in ("conversion", "revenue"):
            rows.append(
                {
                    "promotion": promotion.promotion_id,
                    "kind": "category" if promotion.categories else "items",
                    "metric": metric,
                    "clustered_detected": getattr(plain, metric).detected,
                    "calibrated_detected": getattr(checked, metric).detected,
                    "estimate": getattr(checked, metric).estimate,
                    "placebo_windows": checked.placebo_windows,
                    "diverged": checked.diverged,
                }
            )
    store.close()

    def rate(key: str, kind: str | None = None) -> float:
        chosen = [r for r in rows if r["estimate"] is not None and (kind is None or r["kind"] == kind)]
        return round(sum(r[key] for r in chosen) / max(len(chosen), 1), 4)

    result = {
        "protocol": __doc__.split("\n\n")[1].replace("\n", " "),
        "lifts": len([r for r in rows if r["estimate"] is not None]),
        "false_positive_rate": {
            "clustered by item (before)": {
                k or "all": rate("clustered_detected", k) for k in (None, "category", "items")
            },
            "with placebo windows (now)": {
                k or "all": rate("calibrated_detected", k) for k in (None, "category", "items")
            },
        },
        "rows": rows,
    }
    result["planted_coverage"] = planted_coverage()
    result["seconds"] = round(time.perf_counter() - started, 1)
    OUT.write_text(json.dumps(result, indent=1, default=str))
    coverage = result["planted_coverage"]
    print(json.dumps({k: v for k, v in result.items() if k not in {"rows", "planted_coverage"}}, indent=1))
    print(f"planted effects inside their intervals: {coverage['inside']} of {coverage['effects']}")
    for row in coverage["rows"]:
        if row["seed"] == 3:
            print(row)


if __name__ == "__main__":
    main()
