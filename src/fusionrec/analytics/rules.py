"""Association rules for reports: the shared miner over baskets or sessions from the store.

The mining is `fusionrec.mining.rules.rules_from_frame` (one implementation for the
"bought together" recommender and for analytics); here the baskets come from a store query and
the rules get item titles and categories, and can be kept to one category subtree.
"""

from __future__ import annotations

import pandas as pd

from fusionrec.analytics import queries as q
from fusionrec.analytics.engine import run
from fusionrec.analytics.queries import Filters
from fusionrec.data.store import EventStore
from fusionrec.mining.rules import RULE_COLUMNS, rules_from_frame


def in_category(paths: pd.Series, category: str) -> pd.Series:
    """Whether each category path is ``category`` or below it."""
    paths = paths.fillna("")
    return (paths == category) | paths.str.startswith(category + " > ")


def association_rules(
    store: EventStore,
    filters: Filters | None = None,
    *,
    mode: str = "purchase",
    min_support: float = 0.0,
    min_confidence: float = 0.05,
    min_count: int = 2,
    category: str | None = None,
    top: int | None = 100,
    rows: pd.DataFrame | None = None,
    catalogue: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Pairwise rules ``antecedent -> consequent`` with support, confidence, lift and count.

    ``mode``: ``purchase`` (items bought in one session) or ``session`` (items viewed, carted or
    bought in one session). ``filters`` choose the baskets (a category filter keeps only that
    category's items in them); ``category`` keeps rules whose antecedent or consequent lies in that
    subtree. Strongest lift first, at most ``top`` rules. ``rows`` (``basket_id``, ``item_id``)
    and ``catalogue`` (`queries.item_categories` indexed by ``item_id``), when given, are used
    instead of reading the store (the live dashboard keeps both in memory).
    """
    f = filters or Filters()
    if rows is None:
        rows = run(store, q.baskets(f, mode))
    columns = [
        *RULE_COLUMNS,
        "antecedent_title",
        "consequent_title",
        "antecedent_category",
        "consequent_category",
    ]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    rules = rules_from_frame(
        rows,
        basket="basket_id",
        item="item_id",
        min_support=min_support,
        min_confidence=min_confidence,
        min_count=min_count,
    )
    if catalogue is None:
        catalogue = run(store, q.item_categories()).set_index("item_id")
    for side in ("antecedent", "consequent"):
        ids = rules[side].astype(str)
        rules[f"{side}_title"] = catalogue["title"].reindex(ids).to_numpy()
        rules[f"{side}_category"] = catalogue["category"].reindex(ids).to_numpy()
    if category:
        keep = in_category(rules["antecedent_category"], category) | in_category(
            rules["consequent_category"], category
        )
        rules = rules[keep]
    rules = rules.reset_index(drop=True)
    return rules.head(top) if top else rules
