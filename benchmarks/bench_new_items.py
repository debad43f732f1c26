"""A new item through the live service: how many of 30 users' top-20 it reaches after 0, 1 and 5 purchases.

Protocol (the measurement of issue 23, "a new item appeared in 0 of 30 users' top-20 even after 5
purchases"): the shop and fused version of `bench_hot_path.py` (``--events``, ``--model``, the same
``--workdir``, so both benchmarks score one model). The `Service` starts in this process with
pre-scoring on and, once the known users' lists are in, a new item is put into the catalogue
(`Service.put_item`, what ``PUT /v1/items/{id}`` calls): a copy of the busiest category's most used
item (same category, brand, tags and description, its title + "(new edition)"), unknown to the
model. The panel is the 30 users with the most events in that category (known users with
pre-scored lists); 5 other known users then buy the item one by one (`Service.ingest`, what
``POST /v1/events`` calls). After 0, 1 and 5 purchases: the share of the panel whose top-20
(`recommend`, k=20) holds the new item, the same for 30 users with no event in the category's
department, whether the template's similar list holds it, and what a guest on its page gets.
Also timed: the `put_item` call (the catalogue and the new-item index updated).

Runs on code without the new-item index too (``PYTHONPATH`` of an older checkout), for the before
numbers: ``--label before``. Results merge into ``--out`` by label.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_hot_path import prepare

NEW = "bench-new-item"
K = 20
PANEL = 30
COUNTS = """
SELECT i.category AS category, e.user_id AS user_id, e.item_id AS item_id, count(*) AS n
FROM events AS e JOIN items AS i ON i.item_id = e.item_id
WHERE e.user_id IS NOT NULL AND i.category IS NOT NULL
GROUP BY 1, 2, 3
"""


def run(args: argparse.Namespace) -> dict[str, Any]:
    from fusionrec.serving.recommend import RecQuery, recommend, related
    from fusionrec.serving.service import Service
    from fusionrec.serving.settings import load_settings

    store_url, models = prepare(Path(args.workdir), args.events, args.model)
    svc = Service(load_settings(None, store_url=store_url, models_dir=models, dev=True))
    svc.start()
    loaded = svc.registry.active
    assert loaded is not None, "no active version"
    while "precomputed" not in loaded.extras:
        time.sleep(0.2)
    counts = svc.on_writer(lambda: svc.store.query_arrow(COUNTS)).to_pandas()
    counts = counts[counts["user_id"].astype(str).isin(loaded.user_index)]
    category = counts.groupby("category")["n"].sum().idxmax()
    inside = counts[counts["category"] == category]
    panel = (
        inside.groupby("user_id")["n"].sum().sort_values(ascending=False).index[:PANEL].astype(str).tolist()
    )
    department = category.split(" > ")[0]
    touched = set(counts.loc[counts["category"].str.startswith(department), "user_id"].astype(str))
    strangers = sorted(set(loaded.user_index) - touched)[:PANEL]
    buyers = sorted(set(counts["user_id"].astype(str)) - set(panel) - set(strangers))[:5]
    template = str(inside.groupby("item_id")["n"].sum().idxmax())
    row = svc.catalogue.get(template) or {}
    body = {
        "title": f"{row.get('title')} (new edition)",
        "description": row.get("description"),
        "category": category,
        "brand": row.get("brand"),
        "price": row.get("price"),
        "tags": row.get("tags"),
        "in_stock": True,
        "hidden": False,
    }
    started = time.perf_counter()
    svc.put_item(NEW, {k: v for k, v in body.items() if v is not None})
    put_ms = (time.perf_counter() - started) * 1000

    def ranks(users: list[str]) -> list[int]:
        """The new item's rank (1-based) in each user's top-20 that holds it."""
        lists = [[e["item_id"] for e in recommend(svc, RecQuery(user_id=u, k=K))["items"]] for u in users]
        return [listed.index(NEW) + 1 for listed in lists if NEW in listed]

    def rank_in_similar() -> int | None:
        listed = [e["item_id"] for e in (related(svc, template, K, "similar") or {"items": []})["items"]]
        return listed.index(NEW) + 1 if NEW in listed else None

    out: dict[str, Any] = {
        "label": args.label,
        "events": args.events,
        "model": loaded.manifest.pipeline["model"],
        "users": len(loaded.user_index),
        "items": len(loaded.item_ids),
        "category": category,
        "template": template,
        "put_item_ms": round(put_ms, 1),
        "panel": len(panel),
        "strangers": len(strangers),
        "after_purchases": {},
    }
    bought = 0
    for target in (0, 1, 5):
        while bought < target:
            svc.ingest([{"user_id": buyers[bought], "item_id": NEW, "event_type": "purchase"}])
            bought += 1
        found = ranks(panel)
        out["after_purchases"][str(target)] = {
            "panel_top20": len(found),
            "panel_median_rank": float(np.median(found)) if found else None,
            "strangers_top20": len(ranks(strangers)),
            "rank_in_template_similar@20": rank_in_similar(),
        }
    guest = recommend(svc, RecQuery(session_id="bench-guest-on-new", context=NEW, k=10))
    view = svc.catalogue.view(loaded.item_ids)
    out["guest_on_its_page"] = {
        "fallback": guest["fallback"],
        "in_its_category": sum(
            view.category_of(loaded.item_index[e["item_id"]]) == category
            for e in guest["items"]
            if e["item_id"] in loaded.item_index
        ),
        "of": len(guest["items"]),
        "sources": sorted({s for e in guest["items"] for s in e["sources"]}),
    }
    out["load"] = os.getloadavg()[0]
    svc.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--model", default="fusion")
    parser.add_argument("--workdir", default="/tmp/fusionrec-hot-path")
    parser.add_argument("--label", default="after")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "results" / "new_items_serving.json"
    )
    args = parser.parse_args()
    # A fresh copy of the store per run: the purchases of one run must not be in the next.
    work = Path(args.workdir)
    store = work / "shop.duckdb"
    pristine = work / "shop.pristine.duckdb"
    if store.exists() and not pristine.exists():
        pristine.write_bytes(store.read_bytes())
    if pristine.exists():
        store.write_bytes(pristine.read_bytes())
    result = run(args)
    print(json.dumps(result))
    payload = json.loads(args.out.read_text()) if args.out.exists() else {}
    payload.setdefault("protocol", __doc__.split("\n\n", 1)[1].strip())
    payload["machine"] = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()}
    payload.setdefault("runs", {})[args.label] = result
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
